//! The job handlers of the six git kinds: each opens the repo's server-owned clone, runs the
//! operation of `gantry-git` (which fetches first), and answers with the refreshed branch
//! projection and what moved, so the engine commits all of it with the job's final state.

pub mod demo;
mod progress;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use gantry_git::{
    Git, GitError, RepoClone, RestackOptions, RestackOutcome, Selection, Stack, TrackedBranch,
};
use gantry_types::{BranchConflict, JobKind, JobResult, RefMove};
use tracing::{info, warn};

use crate::engine::{HandlerRegistry, JobContext, JobError, JobHandler};
use crate::storage::{BranchState, JobEffects};
use progress::JobProgress;

/// Where the server keeps its clones, below the data dir.
pub fn repos_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("repos")
}

/// One handler serves all six kinds; the kind picks the operation.
pub struct GitJobs {
    git: Git,
    repos_dir: PathBuf,
}

impl GitJobs {
    pub fn new(git: Git, data_dir: &Path) -> GitJobs {
        GitJobs {
            git,
            repos_dir: repos_dir(data_dir),
        }
    }

    pub fn registry(self) -> HandlerRegistry {
        HandlerRegistry::uniform(Arc::new(self))
    }

    /// Removes worktrees and stale locks that a crashed process left in any clone.
    ///
    /// A server killed with SIGKILL leaves its git children running (a push in flight, say):
    /// first wait, a bounded time, for them to finish, so that a lock they still hold is never
    /// taken for a stale one.
    pub async fn recover(&self) {
        let Ok(entries) = std::fs::read_dir(&self.repos_dir) else {
            return;
        };
        wait_for_orphans(&self.repos_dir, ORPHAN_WAIT).await;
        let cancel = tokio_util::sync::CancellationToken::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "git") {
                continue;
            }
            let Some(clone) = RepoClone::open_existing(&self.git, &path) else {
                continue;
            };
            match gantry_git::cleanup_stale_worktrees(&clone, &cancel).await {
                Ok(report) if !report.worktrees.is_empty() || !report.locks.is_empty() => {
                    info!(
                        clone = %path.display(),
                        worktrees = report.worktrees.len(),
                        locks = report.locks.len(),
                        "cleaned up after a crash"
                    );
                }
                Ok(_) => {}
                Err(error) => warn!(clone = %path.display(), %error, "cleaning up a clone failed"),
            }
        }
    }

    async fn run(&self, ctx: &JobContext) -> Result<JobEffects, JobError> {
        let job = &ctx.job;
        let progress = JobProgress::new(ctx);
        let remote = ctx
            .store
            .repo_remote_url(&ctx.repo.id)
            .await
            .map_err(|e| JobError::Transient(format!("reading the repo: {e}")))?
            .ok_or_else(|| JobError::failed("the repo no longer exists"))?;
        let path = self.repos_dir.join(format!("{}.git", ctx.repo.id));
        let clone =
            RepoClone::open_or_clone(&self.git, &path, &remote, &ctx.repo.trunk, &ctx.cancel)
                .await
                .map_err(git_error)?;
        let rows = ctx
            .store
            .list_branches(&ctx.repo.id)
            .await
            .map_err(|e| JobError::Transient(format!("reading the branch rows: {e}")))?;
        let previous_conflicts: HashMap<String, BranchConflict> = rows
            .iter()
            .filter_map(|b| Some((b.name.clone(), b.conflict.clone()?)))
            .collect();
        let tracked: Vec<TrackedBranch> = rows
            .into_iter()
            .filter(|b| b.tracked)
            .filter_map(|b| {
                Some(TrackedBranch {
                    name: b.name,
                    parent: b.parent?,
                    base_sha: b.base_sha,
                })
            })
            .collect();
        let stack = Stack::new(&ctx.repo.trunk, tracked)
            .map_err(|e| JobError::failed(format!("the recorded stack is invalid: {e}")))?;
        let options = RestackOptions {
            label: Some(job.id.clone()),
            ..RestackOptions::default()
        };
        let branch = job.branch.clone().unwrap_or_default();
        let mut result = JobResult::default();

        let (stack, restacked, conflicts) = match job.kind {
            JobKind::SyncRepo => {
                let outcome = gantry_git::sync(&clone, &stack, &progress, &ctx.cancel)
                    .await
                    .map_err(git_error)?;
                result.merged = outcome.merged.clone();
                result
                    .details
                    .insert("deleted".into(), serde_json::json!(outcome.deleted));
                result
                    .details
                    .insert("trunk_sha".into(), serde_json::json!(outcome.trunk_sha));
                let reparented: Vec<_> = outcome
                    .reparented
                    .iter()
                    .map(|r| serde_json::json!({"branch": r.branch, "from": r.old_parent, "to": r.new_parent}))
                    .collect();
                result
                    .details
                    .insert("reparented".into(), serde_json::json!(reparented));
                (
                    Stack::new(&ctx.repo.trunk, outcome.stack).map_err(stack_error)?,
                    Vec::new(),
                    Vec::new(),
                )
            }
            JobKind::RegisterExistingBranch => {
                let outcome = gantry_git::register(
                    &clone,
                    &stack,
                    &branch,
                    job.parent.as_deref(),
                    &progress,
                    &ctx.cancel,
                )
                .await
                .map_err(git_error)?;
                result
                    .details
                    .insert("parent".into(), serde_json::json!(outcome.tracked.parent));
                result.details.insert(
                    "base_sha".into(),
                    serde_json::json!(outcome.tracked.base_sha),
                );
                result.details.insert(
                    "needs_restack".into(),
                    serde_json::json!(outcome.needs_restack),
                );
                (
                    stack.with_branch(outcome.tracked).map_err(stack_error)?,
                    Vec::new(),
                    Vec::new(),
                )
            }
            JobKind::RestackRepo
            | JobKind::RestackSubtree
            | JobKind::RebaseBranch
            | JobKind::ReparentBranch => {
                let (selection, selected) = match job.kind {
                    JobKind::RestackRepo => (
                        Selection::All,
                        stack.branches().iter().map(|b| b.name.clone()).collect(),
                    ),
                    JobKind::RebaseBranch => {
                        (Selection::Branch(branch.clone()), vec![branch.clone()])
                    }
                    _ => (
                        Selection::Subtree(branch.clone()),
                        stack
                            .subtree(&branch)
                            .iter()
                            .map(|b| b.name.clone())
                            .collect(),
                    ),
                };
                let outcome = if job.kind == JobKind::ReparentBranch {
                    let parent = job.parent.clone().unwrap_or_default();
                    gantry_git::reparent(
                        &clone,
                        &stack,
                        &branch,
                        &parent,
                        &options,
                        &progress,
                        &ctx.cancel,
                    )
                    .await
                } else {
                    gantry_git::restack(
                        &clone,
                        &stack,
                        &selection,
                        &options,
                        &progress,
                        &ctx.cancel,
                    )
                    .await
                };
                let outcome = match outcome {
                    Ok(outcome) => outcome,
                    Err(GitError::PushRejected { branches }) => {
                        return Err(self
                            .rejected(ctx, &clone, &stack, branches, &previous_conflicts)
                            .await);
                    }
                    Err(error) => return Err(git_error(error)),
                };
                let conflicts = record_restack(&mut result, &outcome);
                let stack = Stack::new(&ctx.repo.trunk, outcome.stack).map_err(stack_error)?;
                (stack, selected, conflicts)
            }
        };

        let states = gantry_git::local_branch_states(&clone, &stack, &ctx.cancel)
            .await
            .map_err(git_error)?;
        let branches = project(states, &previous_conflicts, &restacked, &conflicts, &job.id);
        let effects = JobEffects {
            message: Some(summary(job.kind, &result)),
            result: Some(result),
            branches: Some(branches),
        };
        if conflicts.is_empty() {
            Ok(effects)
        } else {
            let message = conflict_message(&conflicts);
            Err(JobError::Failed {
                message,
                effects: Box::new(effects),
            })
        }
    }

    /// Someone pushed to a branch while the job worked: nothing was published. The job fails
    /// naming the branches, with the projection refreshed from what the remote has now.
    async fn rejected(
        &self,
        ctx: &JobContext,
        clone: &RepoClone,
        stack: &Stack,
        branches: Vec<String>,
        previous_conflicts: &HashMap<String, BranchConflict>,
    ) -> JobError {
        let message = format!(
            "{} moved on the remote while this job ran; nothing was pushed and their commits are untouched. Run it again to restack onto the new state.",
            branches.join(", ")
        );
        let mut result = JobResult::default();
        result
            .details
            .insert("rejected_branches".into(), serde_json::json!(branches));
        let states =
            match gantry_git::branch_states(clone, stack, &gantry_git::NoProgress, &ctx.cancel)
                .await
            {
                Ok(states) => Some(project(states, previous_conflicts, &[], &[], &ctx.job.id)),
                Err(_) => None,
            };
        JobError::Failed {
            message,
            effects: Box::new(JobEffects {
                message: None,
                result: Some(result),
                branches: states,
            }),
        }
    }
}

/// How long start-up waits for git processes a killed predecessor left behind.
const ORPHAN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until no process other than this one works inside `dir` (its working directory or its
/// command line names it), at most `limit`. Linux only (`/proc`); elsewhere it returns at once.
/// Returns whether it saw none at the end.
pub async fn wait_for_orphans(dir: &Path, limit: std::time::Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut warned = false;
    loop {
        let busy = processes_inside(dir);
        if busy.is_empty() {
            return true;
        }
        if !warned {
            info!(processes = ?busy, "waiting for git processes of a previous run to finish");
            warned = true;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(processes = ?busy, "git processes of a previous run are still running; recovering anyway");
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn processes_inside(dir: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .parse::<u32>()
                .ok()
                .map(|pid| (pid, e.path()))
        })
        .filter(|(pid, _)| *pid != me)
        .filter(|(_, path)| {
            let inside_cwd =
                std::fs::read_link(path.join("cwd")).is_ok_and(|cwd| cwd.starts_with(&dir));
            inside_cwd
                || std::fs::read(path.join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Stands in for the git jobs when git cannot run, so each job fails with the reason.
pub struct GitUnavailable(pub String);

impl JobHandler for GitUnavailable {
    fn run<'a>(&'a self, _ctx: &'a JobContext) -> BoxFuture<'a, Result<JobEffects, JobError>> {
        Box::pin(async move {
            Err(JobError::failed(format!(
                "git is not usable on this server: {}",
                self.0
            )))
        })
    }
}

impl JobHandler for GitJobs {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<JobEffects, JobError>> {
        Box::pin(GitJobs::run(self, ctx))
    }
}

fn record_restack(result: &mut JobResult, outcome: &RestackOutcome) -> Vec<BranchConflict> {
    result.moved = outcome
        .moved
        .iter()
        .map(|m| RefMove {
            branch: m.branch.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
        })
        .collect();
    result.conflicts = outcome
        .conflicts
        .iter()
        .map(|c| BranchConflict {
            branch: c.branch.clone(),
            commit: c.commit.clone(),
            files: c.files.clone(),
            blocked: c.blocked.clone(),
        })
        .collect();
    if !outcome.skipped.is_empty() {
        result
            .details
            .insert("skipped".into(), serde_json::json!(outcome.skipped));
    }
    result.conflicts.clone()
}

/// The branch rows to store: git's states, plus conflict marks. A branch this job restacked
/// loses its old mark (or gets a new one); other branches keep theirs.
fn project(
    states: Vec<gantry_git::BranchState>,
    previous: &HashMap<String, BranchConflict>,
    restacked: &[String],
    conflicts: &[BranchConflict],
    _job_id: &str,
) -> Vec<BranchState> {
    states
        .into_iter()
        .map(|s| {
            let conflict = conflicts
                .iter()
                .find(|c| c.branch == s.name)
                .cloned()
                .or_else(|| {
                    (!restacked.contains(&s.name))
                        .then(|| previous.get(&s.name).cloned())
                        .flatten()
                });
            BranchState {
                name: s.name,
                head_sha: s.head_sha,
                parent: s.parent,
                base_sha: s.base_sha,
                tracked: s.tracked,
                ahead: s.ahead,
                behind: s.behind,
                needs_restack: s.needs_restack,
                conflicts_with_trunk: s.conflicts_with_trunk,
                diff_stat: gantry_types::DiffStat {
                    files_changed: s.diff_stat.files_changed,
                    insertions: s.diff_stat.insertions,
                    deletions: s.diff_stat.deletions,
                },
                conflict,
            }
        })
        .collect()
}

fn summary(kind: JobKind, result: &JobResult) -> String {
    match kind {
        JobKind::SyncRepo if result.merged.is_empty() => "synced".to_owned(),
        JobKind::SyncRepo => format!("synced; merged and dropped: {}", result.merged.join(", ")),
        JobKind::RegisterExistingBranch => format!(
            "registered on {}",
            result
                .details
                .get("parent")
                .and_then(|p| p.as_str())
                .unwrap_or("?")
        ),
        _ if result.moved.is_empty() => "already up to date; nothing moved".to_owned(),
        _ => format!(
            "moved {} branch{}",
            result.moved.len(),
            if result.moved.len() == 1 { "" } else { "es" }
        ),
    }
}

fn conflict_message(conflicts: &[BranchConflict]) -> String {
    let parts: Vec<String> = conflicts
        .iter()
        .map(|c| {
            let blocked = if c.blocked.is_empty() {
                String::new()
            } else {
                format!(" (blocked: {})", c.blocked.join(", "))
            };
            let commit: String = c.commit.chars().take(12).collect();
            format!(
                "{} conflicts at commit {} in {}{}",
                c.branch,
                commit,
                c.files.join(", "),
                blocked
            )
        })
        .collect();
    format!(
        "restack stopped on a conflict: {}; those branches were left untouched",
        parts.join("; ")
    )
}

fn stack_error(error: gantry_git::StackError) -> JobError {
    JobError::failed(format!("the stack is invalid: {error}"))
}

fn git_error(error: GitError) -> JobError {
    match error {
        GitError::Cancelled => JobError::Cancelled,
        error if error.is_transient() => JobError::Transient(error.to_string()),
        error => JobError::failed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recovery_waits_for_git_left_running_by_a_killed_server() {
        let dir = tempfile::tempdir().unwrap();
        let clone = dir.path().join("repos").join("r.git");
        std::fs::create_dir_all(&clone).unwrap();
        // A process working inside a clone, as an orphaned `git push` would.
        let mut orphan = std::process::Command::new("sleep")
            .arg("0.3")
            .current_dir(&clone)
            .spawn()
            .unwrap();
        assert!(wait_for_orphans(&dir.path().join("repos"), ORPHAN_WAIT).await);
        assert!(
            orphan.try_wait().unwrap().is_some() || processes_inside(&clone).is_empty(),
            "recovery went on while the process still ran"
        );
        let _ = orphan.wait();
        // Bounded: a process that never ends does not block start-up forever.
        let mut stuck = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(&clone)
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        assert!(!wait_for_orphans(&clone, std::time::Duration::from_millis(100)).await);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let _ = stuck.kill();
        let _ = stuck.wait();
    }
}
