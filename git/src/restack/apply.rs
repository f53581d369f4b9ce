//! Computing every branch's new tip, parent first, without touching any ref.
//!
//! The fast path is `git replay --contained` over a whole subtree at once (in-memory merges,
//! no worktree, no index). A subtree whose recorded bases are inconsistent goes branch by
//! branch with `git replay`. When replay fails (a conflict, a merge commit) the one branch is
//! redone with `git rebase` in a detached worktree, which either succeeds (rebase drops what
//! replay cannot) or stops and tells which commit and files conflict. Replay keeps commits
//! that became empty because their change is already upstream; rebase drops them, so a final
//! check redoes any such branch with rebase to keep rebase's semantics.

use std::collections::{HashMap, HashSet};

use tokio_util::sync::CancellationToken;

use crate::clone::RepoClone;
use crate::error::GitError;
use crate::live::Live;
use crate::progress::Steps;
use crate::restack::plan::Planned;
use crate::restack::{Conflict, RestackMethod};
use crate::stack::Stack;
use crate::worktree::Worktree;

/// How a branch ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Already on its parent's tip.
    InPlace,
    /// Has a new tip.
    Moved { new: String, via: Via },
    /// Stopped on a conflict (reported in the conflicts list).
    Conflict,
    /// An ancestor conflicted; left alone.
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// No own commits: the new tip is the parent's new tip.
    FastForward,
    Replay,
    Rebase,
}

/// What [`Applier::run`] produced.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub fates: HashMap<String, Fate>,
    pub onto: HashMap<String, String>,
    pub conflicts: Vec<Conflict>,
}

pub(crate) struct Applier<'a> {
    pub clone: &'a RepoClone,
    pub stack: &'a Stack,
    pub live: &'a Live,
    pub plan: &'a [Planned],
    pub method: RestackMethod,
    pub label: &'a str,
    pub cancel: &'a CancellationToken,
    pub worktree: Option<Worktree>,
    index: HashMap<String, usize>,
    /// Branches of a subtree whose one-shot replay failed: restacked one by one.
    single_only: HashSet<usize>,
    result: Applied,
}

enum RebaseResult {
    Done(String),
    Stopped { commit: String, files: Vec<String> },
}

impl<'a> Applier<'a> {
    pub(crate) fn new(
        clone: &'a RepoClone,
        stack: &'a Stack,
        live: &'a Live,
        plan: &'a [Planned],
        method: RestackMethod,
        label: &'a str,
        cancel: &'a CancellationToken,
    ) -> Applier<'a> {
        let index = plan
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        Applier {
            clone,
            stack,
            live,
            plan,
            method,
            label,
            cancel,
            worktree: None,
            index,
            single_only: HashSet::new(),
            result: Applied::default(),
        }
    }

    /// Runs the plan. The caller must clean up `self.worktree` afterwards, whatever happened.
    pub(crate) async fn run(&mut self, steps: &mut Steps<'_>) -> Result<Applied, GitError> {
        let total = self.plan.len();
        for i in 0..total {
            if self.result.fates.contains_key(&self.plan[i].name) {
                continue;
            }
            let name = self.plan[i].name.clone();
            if self.parent_stopped(i) {
                self.result.fates.insert(name, Fate::Blocked);
                steps.skip(1);
                continue;
            }
            let batch = self.batch_from(i);
            if batch.len() > 1 {
                steps.next(&format!(
                    "restacking {name} and {} branches above it ({}/{total})",
                    batch.len() - 1,
                    i + 1
                ));
                if let Some(tips) = self.replay(&batch).await? {
                    steps.skip(batch.len() as u32 - 1);
                    for (&m, new) in batch.iter().zip(tips) {
                        self.settle(
                            m,
                            Fate::Moved {
                                new,
                                via: Via::Replay,
                            },
                        );
                    }
                    continue;
                }
                // The subtree did not replay in one go: go branch by branch through it (a
                // conflict is somewhere inside; re-batching above each branch would replay the
                // same commits again and again).
                self.single_only.extend(batch.iter().copied());
            } else {
                steps.next(&format!("restacking {name} ({}/{total})", i + 1));
            }
            let fate = self.restack_one(i, false).await?;
            self.settle(i, fate);
        }
        self.redo_emptied().await?;
        Ok(std::mem::take(&mut self.result))
    }

    /// The tip `plan[i]` must end up on: its parent's new tip if the parent was restacked in
    /// this run, else the parent's live tip.
    fn onto(&self, i: usize) -> String {
        let parent = &self.plan[i].parent;
        match self.result.fates.get(parent) {
            Some(Fate::Moved { new, .. }) => new.clone(),
            _ => self.live.tip(parent).unwrap_or_default().to_string(),
        }
    }

    fn parent_stopped(&self, i: usize) -> bool {
        matches!(
            self.result.fates.get(&self.plan[i].parent),
            Some(Fate::Conflict | Fate::Blocked)
        )
    }

    fn settle(&mut self, i: usize, fate: Fate) {
        let onto = self.onto(i);
        let name = self.plan[i].name.clone();
        self.result.onto.insert(name.clone(), onto);
        self.result.fates.insert(name, fate);
    }

    /// `plan[i]` plus the branches above it that can be replayed together with it: those whose
    /// base is their parent's live tip (they sit on it now). Only when `plan[i]` itself has
    /// own commits to move; parent first.
    fn batch_from(&self, i: usize) -> Vec<usize> {
        let root = &self.plan[i];
        let onto = self.onto(i);
        if self.method == RestackMethod::Rebase
            || !self.clone.git().has_replay()
            || self.single_only.contains(&i)
            || root.base == onto
            || root.base == root.old
        {
            return vec![i];
        }
        let mut members = vec![i];
        let mut at = 0;
        while at < members.len() {
            let parent = self.plan[members[at]].name.clone();
            for child in self.stack.children(&parent) {
                let Some(&c) = self.index.get(child) else {
                    continue;
                };
                let planned = &self.plan[c];
                if self.live.tip(&planned.parent) == Some(planned.base.as_str()) {
                    members.push(c);
                }
            }
            at += 1;
        }
        members
    }

    /// One `git replay --contained` for `members` (a subtree, parent first). Returns their
    /// new tips in the same order, or `None` when the replay did not go through.
    async fn replay(&self, members: &[usize]) -> Result<Option<Vec<String>>, GitError> {
        let root = &self.plan[members[0]];
        let onto = self.onto(members[0]);
        let in_batch: HashSet<&str> = members
            .iter()
            .map(|&m| self.plan[m].name.as_str())
            .collect();
        let mut leaves: Vec<&str> = members
            .iter()
            .map(|&m| &self.plan[m])
            .filter(|p| {
                !self
                    .stack
                    .children(&p.name)
                    .iter()
                    .any(|c| in_batch.contains(c.as_str()))
            })
            .map(|p| p.old.as_str())
            .collect();
        leaves.sort();
        leaves.dedup();
        let out = self
            .clone
            .cmd()
            .args(["replay", "--contained", "--onto", &onto])
            .arg(format!("^{}", root.base))
            .args(&leaves)
            // 1 = conflict; 128 = something replay cannot do (e.g. a merge commit).
            .allow_exit_codes(&[1, 128])
            .output(self.cancel)
            .await?;
        if out.code != 0 {
            tracing::debug!(branch = %root.name, code = out.code, "replay did not go through");
            return Ok(None);
        }
        let text = out.text();
        let updates = parse_replay(&text);
        let mut tips: Vec<String> = Vec::with_capacity(members.len());
        for (k, &m) in members.iter().enumerate() {
            let p = &self.plan[m];
            let new = match updates.get(p.name.as_str()) {
                Some((new, old)) if *old == p.old => new.clone(),
                _ => {
                    // No own commits on a parent in the batch: it follows that parent.
                    let parent_pos = members[..k]
                        .iter()
                        .position(|&x| self.plan[x].name == p.parent && self.plan[x].old == p.old);
                    match parent_pos {
                        Some(pos) => tips[pos].clone(),
                        None => return Ok(None),
                    }
                }
            };
            tips.push(new);
        }
        Ok(Some(tips))
    }

    /// Restacks `plan[i]` alone onto its parent's current result.
    async fn restack_one(&mut self, i: usize, force_rebase: bool) -> Result<Fate, GitError> {
        let onto = self.onto(i);
        let planned = self.plan[i].clone();
        if planned.base == onto {
            return Ok(Fate::InPlace);
        }
        if planned.base == planned.old {
            return Ok(Fate::Moved {
                new: onto,
                via: Via::FastForward,
            });
        }
        let use_replay =
            !force_rebase && self.method == RestackMethod::Auto && self.clone.git().has_replay();
        if use_replay
            && let Some(tips) = self.replay(&[i]).await?
            && let Some(new) = tips.into_iter().next()
        {
            return Ok(Fate::Moved {
                new,
                via: Via::Replay,
            });
        }
        match self.rebase(&planned, &onto).await? {
            RebaseResult::Done(new) => Ok(Fate::Moved {
                new,
                via: Via::Rebase,
            }),
            RebaseResult::Stopped { commit, files } => {
                let blocked: Vec<String> = self
                    .stack
                    .subtree(&planned.name)
                    .iter()
                    .skip(1)
                    .filter(|b| self.index.contains_key(&b.name))
                    .map(|b| b.name.clone())
                    .collect();
                self.result.conflicts.push(Conflict {
                    branch: planned.name.clone(),
                    commit,
                    files,
                    blocked,
                });
                Ok(Fate::Conflict)
            }
        }
    }

    /// `git rebase --onto <onto> <base> <old>` on a detached HEAD in the job's worktree.
    async fn rebase(&mut self, p: &Planned, onto: &str) -> Result<RebaseResult, GitError> {
        if self.worktree.is_none() {
            self.worktree = Some(Worktree::add(self.clone, self.label, onto, self.cancel).await?);
        }
        let Some(wt) = self.worktree.as_ref() else {
            return Err(GitError::unexpected("rebase", "no worktree"));
        };
        let out = wt
            .cmd()
            .args([
                "rebase",
                "--quiet",
                "--no-autosquash",
                "--no-update-refs",
                "--no-fork-point",
                "--empty=drop",
                "--onto",
                onto,
                &p.base,
                &p.old,
            ])
            .allow_exit_codes(&[1])
            .output(self.cancel)
            .await?;
        if out.code == 0 {
            let head = wt
                .cmd()
                .args(["rev-parse", "--verify", "HEAD"])
                .run_text(self.cancel)
                .await?;
            return Ok(RebaseResult::Done(head.trim().to_string()));
        }
        let files_out = wt
            .cmd()
            .args(["diff", "--name-only", "--diff-filter=U", "-z"])
            .output(self.cancel)
            .await?;
        let mut files: Vec<String> = files_out
            .text()
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        files.sort();
        files.dedup();
        let commit = wt
            .cmd()
            .args(["rev-parse", "--verify", "-q", "REBASE_HEAD"])
            .allow_exit_codes(&[1])
            .run_text(self.cancel)
            .await?
            .trim()
            .to_string();
        let _ = wt.cmd().args(["rebase", "--abort"]).run(self.cancel).await;
        if files.is_empty() {
            return Err(GitError::Command {
                args: vec![
                    "rebase".into(),
                    "--onto".into(),
                    onto.into(),
                    p.base.clone(),
                    p.old.clone(),
                ],
                code: Some(out.code),
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(RebaseResult::Stopped { commit, files })
    }

    /// Finds branches whose replayed commits include one that became empty (its change was
    /// already upstream) and redoes them, and everything restacked on them, with rebase.
    async fn redo_emptied(&mut self) -> Result<(), GitError> {
        let replayed: Vec<usize> = (0..self.plan.len())
            .filter(|&i| {
                matches!(
                    self.result.fates.get(&self.plan[i].name),
                    Some(Fate::Moved {
                        via: Via::Replay,
                        ..
                    })
                )
            })
            .collect();
        if replayed.is_empty() {
            return Ok(());
        }
        let emptied = self.find_emptied(&replayed).await?;
        if emptied.is_empty() {
            return Ok(());
        }
        tracing::info!(branches = ?emptied, "replayed commits became empty; redoing with rebase");
        let mut redone: HashSet<String> = HashSet::new();
        for i in 0..self.plan.len() {
            let name = self.plan[i].name.clone();
            let parent = self.plan[i].parent.clone();
            let moved = matches!(self.result.fates.get(&name), Some(Fate::Moved { .. }));
            if !(emptied.contains(&name) || (moved && redone.contains(&parent))) {
                continue;
            }
            if self.parent_stopped(i) {
                self.result.fates.insert(name.clone(), Fate::Blocked);
                redone.insert(name);
                continue;
            }
            let fate = self.restack_one(i, true).await?;
            self.settle(i, fate);
            redone.insert(name);
        }
        Ok(())
    }

    async fn find_emptied(&self, replayed: &[usize]) -> Result<HashSet<String>, GitError> {
        let replayed_names: HashSet<&str> = replayed
            .iter()
            .map(|&i| self.plan[i].name.as_str())
            .collect();
        let mut args: Vec<String> = Vec::new();
        for &i in replayed {
            if let Some(Fate::Moved { new, .. }) = self.result.fates.get(&self.plan[i].name) {
                args.push(new.clone());
            }
            if !replayed_names.contains(self.plan[i].parent.as_str())
                && let Some(onto) = self.result.onto.get(&self.plan[i].name)
            {
                args.push(format!("^{onto}"));
            }
        }
        args.sort();
        args.dedup();
        let out = self
            .clone
            .cmd()
            .args(["log", "--boundary", "--format=%H %T %P"])
            .args(&args)
            .arg("--")
            .run_text(self.cancel)
            .await?;
        let mut tree: HashMap<&str, &str> = HashMap::new();
        let mut first_parent: HashMap<&str, &str> = HashMap::new();
        for line in out.lines() {
            let mut words = line.split(' ');
            if let (Some(c), Some(t)) = (words.next(), words.next()) {
                tree.insert(c, t);
                if let Some(p) = words.next() {
                    first_parent.insert(c, p);
                }
            }
        }
        let mut emptied = HashSet::new();
        for &i in replayed {
            let name = &self.plan[i].name;
            let (Some(Fate::Moved { new, .. }), Some(onto)) =
                (self.result.fates.get(name), self.result.onto.get(name))
            else {
                continue;
            };
            let mut at = new.as_str();
            let mut guard = 0usize;
            while at != onto.as_str() && guard < 100_000 {
                guard += 1;
                let Some(&parent) = first_parent.get(at) else {
                    break;
                };
                if let (Some(t), Some(pt)) = (tree.get(at), tree.get(parent))
                    && t == pt
                {
                    emptied.insert(name.clone());
                    break;
                }
                at = parent;
            }
        }
        Ok(emptied)
    }
}

/// `update refs/heads/<name> <new> <old>` lines -> name -> (new, old).
fn parse_replay(text: &str) -> HashMap<&str, (String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            if words.next()? != "update" {
                return None;
            }
            let name = words.next()?.strip_prefix("refs/heads/")?;
            let new = words.next()?.to_string();
            let old = words.next()?.to_string();
            Some((name, (new, old)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_replay;

    #[test]
    fn parses_replay_updates() {
        let text =
            "update refs/heads/a 111 000\nupdate refs/heads/x/y 222 333\nupdate refs/tags/t 4 5\n";
        let u = parse_replay(text);
        assert_eq!(u.get("a"), Some(&("111".to_string(), "000".to_string())));
        assert_eq!(u.get("x/y"), Some(&("222".to_string(), "333".to_string())));
        assert_eq!(u.len(), 2);
    }
}
