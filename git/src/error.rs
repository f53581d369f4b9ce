//! One error type for the whole engine, so the server can map every failure to a job status
//! (retry, error, cancelled) with a single `match` and [`GitError::is_transient`].

use std::path::PathBuf;

use crate::refname::InvalidBranchName;
use crate::stack::StackError;

/// Everything that can go wrong while running git or a stack operation.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The git executable could not be started at all.
    #[error("cannot run git ({program}): {source}")]
    Spawn {
        /// The program that was tried.
        program: PathBuf,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },

    /// `git --version` answered with something older than the engine needs.
    #[error("git {found} is too old: gantry needs git {required} or newer")]
    VersionTooOld {
        /// The version git reported.
        found: String,
        /// The minimum version.
        required: String,
    },

    /// A git command exited with a non-zero status the caller did not expect.
    #[error("git {} failed (exit {}): {stderr}", args.join(" "), code.map_or_else(|| "signal".to_string(), |c| c.to_string()))]
    Command {
        /// The arguments after the program name (the fixed `-c` options are left out).
        args: Vec<String>,
        /// The exit code; `None` when git was killed by a signal.
        code: Option<i32>,
        /// git's standard error, trimmed and truncated.
        stderr: String,
    },

    /// The job's cancellation token fired; the running git child was killed.
    #[error("cancelled")]
    Cancelled,

    /// The atomic push was refused because these branches moved on the remote since the fetch
    /// (someone else pushed). Nothing changed on the remote and local refs were restored.
    #[error("push rejected: {} changed on the remote since the fetch", branches.join(", "))]
    PushRejected {
        /// The branches whose lease failed.
        branches: Vec<String>,
    },

    /// The remote refused the push for another reason (a hook, a protected branch, ...).
    /// Nothing changed on the remote (atomic) and local refs were restored.
    #[error("push refused by the remote for {}: {reason}", branches.join(", "))]
    PushRefused {
        /// The branches the remote refused.
        branches: Vec<String>,
        /// The remote's reason, as printed by `git push --porcelain`.
        reason: String,
    },

    /// A branch the operation needs does not exist on the remote.
    #[error("branch '{branch}' does not exist on the remote")]
    BranchNotFound {
        /// The missing branch.
        branch: String,
    },

    /// The branch is the trunk itself, which gantry never tracks, moves or pushes.
    #[error("'{branch}' is the trunk")]
    IsTrunk {
        /// The trunk name.
        branch: String,
    },

    /// A branch and its parent share no history, so there is nothing to rebase from.
    #[error("branch '{branch}' has no common history with '{parent}'")]
    NoMergeBase {
        /// The branch.
        branch: String,
        /// Its parent.
        parent: String,
    },

    /// A branch name broke git's ref rules (or gantry's extra ones).
    #[error(transparent)]
    InvalidBranchName(#[from] InvalidBranchName),

    /// The stack metadata is inconsistent, or a reparent would break it.
    #[error(transparent)]
    Stack(#[from] StackError),

    /// A filesystem operation around git (clone directory, worktree directory) failed.
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// git answered with output the engine could not understand.
    #[error("unexpected git output ({context}): {detail}")]
    Unexpected {
        /// Which command or step.
        context: String,
        /// What was wrong.
        detail: String,
    },
}

/// stderr fragments that mean "the network or a lock was in the way; the same command may work
/// a moment later". Everything else is treated as permanent.
const TRANSIENT_MARKERS: &[&str] = &[
    // network and transport
    "could not read from remote repository",
    "unable to access",
    "could not resolve host",
    "connection refused",
    "connection timed out",
    "connection reset",
    "operation timed out",
    "the remote end hung up",
    "early eof",
    "rpc failed",
    "broken pipe",
    "ssl_",
    "gnutls",
    "tls connection",
    "temporary failure",
    "http 5",
    "the requested url returned error: 5",
    "remote: internal server error",
    // lock contention
    "index.lock",
    ".lock': file exists",
    ".lock': file exists.",
    "another git process seems to be running",
    "unable to create lock",
];

/// OS errors that describe a moment (busy, full, out of processes) rather than a setup fault.
fn io_transient(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::TimedOut
            | K::Interrupted
            | K::WouldBlock
            | K::ResourceBusy
            | K::StorageFull
            | K::OutOfMemory
    )
}

impl GitError {
    /// Whether retrying the same operation later may succeed: network/fetch/push connection
    /// failures, `index.lock`/ref-lock contention, and busy or full OS resources. Conflicts,
    /// missing branches, rejected pushes, cancellation and invalid input are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            GitError::Command { stderr, .. } => {
                let lower = stderr.to_ascii_lowercase();
                TRANSIENT_MARKERS.iter().any(|m| lower.contains(m))
            }
            GitError::Io { source, .. } | GitError::Spawn { source, .. } => {
                io_transient(source.kind())
            }
            GitError::VersionTooOld { .. }
            | GitError::Cancelled
            | GitError::PushRejected { .. }
            | GitError::PushRefused { .. }
            | GitError::BranchNotFound { .. }
            | GitError::IsTrunk { .. }
            | GitError::NoMergeBase { .. }
            | GitError::InvalidBranchName(_)
            | GitError::Stack(_)
            | GitError::Unexpected { .. } => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> GitError {
        GitError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn unexpected(context: impl Into<String>, detail: impl Into<String>) -> GitError {
        GitError::Unexpected {
            context: context.into(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(stderr: &str) -> GitError {
        GitError::Command {
            args: vec!["fetch".into()],
            code: Some(128),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn network_and_lock_failures_are_transient() {
        assert!(
            cmd("fatal: unable to access 'https://x/': Could not resolve host: x").is_transient()
        );
        assert!(cmd("fatal: Could not read from remote repository.").is_transient());
        assert!(
            cmd("fatal: Unable to create '/r/index.lock': File exists.\n\nAnother git process seems to be running").is_transient()
        );
        assert!(
            cmd("error: cannot lock ref 'refs/heads/a': Unable to create '/r/refs/heads/a.lock': File exists.")
                .is_transient()
        );
    }

    #[test]
    fn conflicts_rejections_and_bad_input_are_not() {
        assert!(!cmd("CONFLICT (content): Merge conflict in a.txt").is_transient());
        assert!(
            !cmd("error: cannot lock ref 'refs/heads/a': is at 1234 but expected 5678")
                .is_transient()
        );
        assert!(
            !GitError::PushRejected {
                branches: vec!["a".into()]
            }
            .is_transient()
        );
        assert!(!GitError::BranchNotFound { branch: "a".into() }.is_transient());
        assert!(!GitError::Cancelled.is_transient());
    }
}
