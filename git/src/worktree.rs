//! Per-job worktrees and crash recovery for them. Work that needs a checkout (a `git rebase`
//! that may stop on a conflict) runs in a detached, locked worktree of its own under
//! `<clone>.worktrees/`, so jobs never share an index or a `HEAD`, and nothing ever checks out
//! a branch (which would stop `fetch` from updating it).
//!
//! Removal is explicit and async ([`Worktree::cleanup`]); dropping a guard without it falls
//! back to a best-effort removal, and [`cleanup_stale_worktrees`] sweeps whatever a crash left.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::clone::{RepoClone, unique_suffix};
use crate::error::GitError;
use crate::runner::{GitCommand, Location};

/// A detached, locked worktree owned by one job. Call [`Worktree::cleanup`] when done, on
/// success, error and cancellation alike.
#[derive(Debug)]
pub struct Worktree {
    clone: RepoClone,
    dir: PathBuf,
    cleaned: bool,
}

impl Worktree {
    /// Adds a worktree detached at `commit` under `<clone>.worktrees/<name>-<unique>`.
    /// `name` is sanitised to `[A-Za-z0-9._-]`; it only helps a person reading the directory.
    pub async fn add(
        clone: &RepoClone,
        name: &str,
        commit: &str,
        cancel: &CancellationToken,
    ) -> Result<Worktree, GitError> {
        let root = clone.worktrees_dir();
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|e| GitError::io(format!("creating {}", root.display()), e))?;
        let dir = root.join(format!("{}-{}", sanitize(name), unique_suffix()));
        let mut guard = Worktree {
            clone: clone.clone(),
            dir,
            cleaned: false,
        };
        let added = clone
            .cmd()
            .args([
                "worktree", "add", "--quiet", "--detach", "--lock", "--reason",
            ])
            .arg("gantry job worktree")
            .arg(&guard.dir)
            .arg(commit)
            .run(cancel)
            .await;
        if let Err(e) = added {
            let _ = guard.remove().await;
            guard.cleaned = true;
            return Err(e);
        }
        Ok(guard)
    }

    /// The worktree's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A git command running inside the worktree.
    pub fn cmd(&self) -> GitCommand {
        self.clone.git().command(Location::WorkTree(&self.dir))
    }

    /// Removes the worktree (`worktree remove -f -f`, `prune`, then the directory itself if
    /// git left it). Runs even if the job was cancelled: it uses its own token.
    pub async fn cleanup(mut self) -> Result<(), GitError> {
        self.cleaned = true;
        self.remove().await
    }

    async fn remove(&self) -> Result<(), GitError> {
        remove_worktree(&self.clone, &self.dir).await
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        tracing::warn!(dir = %self.dir.display(), "worktree dropped without cleanup");
        let clone = self.clone.clone();
        let dir = self.dir.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let _ = remove_worktree(&clone, &dir).await;
                });
            }
            // No runtime: at least free the disk; the admin entry goes at the next sweep.
            Err(_) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}

async fn remove_worktree(clone: &RepoClone, dir: &Path) -> Result<(), GitError> {
    let token = CancellationToken::new();
    let removed = clone
        .cmd()
        .args(["worktree", "remove", "-f", "-f"])
        .arg(dir)
        .run(&token)
        .await;
    let pruned = clone.cmd().args(["worktree", "prune"]).run(&token).await;
    if tokio::fs::try_exists(dir).await.unwrap_or(false) {
        tokio::fs::remove_dir_all(dir)
            .await
            .map_err(|e| GitError::io(format!("removing {}", dir.display()), e))?;
    }
    removed.and(pruned)
}

fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    let trimmed = cleaned.trim_start_matches(['.', '-']);
    if trimmed.is_empty() {
        "job".to_string()
    } else {
        trimmed.to_string()
    }
}

/// What [`cleanup_stale_worktrees`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Worktree directories removed.
    pub worktrees: Vec<PathBuf>,
    /// Stale lock files removed.
    pub locks: Vec<PathBuf>,
}

/// How old a lock file must be before the sweep treats it as abandoned.
pub const STALE_LOCK_AGE: Duration = Duration::from_secs(60);

/// Crash recovery at server start, while no job runs on this clone: removes every worktree of
/// the clone (registered or not, locked or not), everything under `<clone>.worktrees/`, and the
/// stale lock files listed at [`remove_stale_locks`].
pub async fn cleanup_stale_worktrees(
    clone: &RepoClone,
    cancel: &CancellationToken,
) -> Result<CleanupReport, GitError> {
    let mut report = CleanupReport::default();
    let listing = clone
        .cmd()
        .args(["worktree", "list", "--porcelain", "-z"])
        .run_text(cancel)
        .await?;
    let registered: Vec<PathBuf> = listing
        .split("\0\0")
        .filter(|record| !record.split('\0').any(|line| line == "bare"))
        .filter_map(|record| {
            record
                .split('\0')
                .find_map(|line| line.strip_prefix("worktree "))
                .map(PathBuf::from)
        })
        .filter(|p| p.as_path() != clone.path())
        .collect();
    for dir in registered {
        match remove_worktree(clone, &dir).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "removing stale worktree"),
        }
        report.worktrees.push(dir);
    }

    // Admin entries git would not drop (e.g. a locked worktree whose removal failed).
    let admin = clone.path().join("worktrees");
    if let Ok(mut entries) = tokio::fs::read_dir(&admin).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let _ = tokio::fs::remove_dir_all(entry.path()).await;
        }
    }
    let root = clone.worktrees_dir();
    if let Ok(mut entries) = tokio::fs::read_dir(&root).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            if tokio::fs::remove_dir_all(&path).await.is_ok() && !report.worktrees.contains(&path) {
                report.worktrees.push(path);
            }
        }
    }
    clone.cmd().args(["worktree", "prune"]).run(cancel).await?;
    report.locks = remove_stale_locks(clone, STALE_LOCK_AGE).await?;
    Ok(report)
}

/// Removes lock files older than `older_than` that a killed git may have left in the clone:
/// `HEAD.lock`, `config.lock`, `packed-refs.lock`, `index.lock`, `shallow.lock`,
/// `FETCH_HEAD.lock`, `ORIG_HEAD.lock` at the top of the clone, and every `*.lock` under
/// `refs/`, `logs/` and `worktrees/` (ref, reflog and per-worktree index locks).
///
/// Only the server writes to its clone and it runs one job per repository at a time, so a
/// lock older than any single git command is abandoned. Operations call this before they
/// start, so a lock left by a cancelled job never blocks its retry for long.
pub async fn remove_stale_locks(
    clone: &RepoClone,
    older_than: Duration,
) -> Result<Vec<PathBuf>, GitError> {
    let root = clone.path().to_path_buf();
    tokio::task::spawn_blocking(move || sweep_locks(&root, older_than))
        .await
        .map_err(|e| GitError::io("sweeping lock files", std::io::Error::other(e)))
}

const TOP_LEVEL_LOCKS: &[&str] = &[
    "HEAD.lock",
    "config.lock",
    "packed-refs.lock",
    "index.lock",
    "shallow.lock",
    "FETCH_HEAD.lock",
    "ORIG_HEAD.lock",
];

fn sweep_locks(root: &Path, older_than: Duration) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let now = SystemTime::now();
    let mut consider = |path: PathBuf| {
        let stale = std::fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .map(|t| now.duration_since(t).unwrap_or_default() >= older_than)
            .unwrap_or(false);
        if stale && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    };
    for name in TOP_LEVEL_LOCKS {
        let path = root.join(name);
        if path.exists() {
            consider(path);
        }
    }
    let mut pending: Vec<PathBuf> = ["refs", "logs", "worktrees"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                consider(path);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn sanitizes_names() {
        assert_eq!(sanitize("restack stack/1-api"), "restack-stack-1-api");
        assert_eq!(sanitize("../../etc"), "etc");
        assert_eq!(sanitize(""), "job");
        assert_eq!(sanitize("über"), "ber");
    }
}
