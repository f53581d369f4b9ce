//! gantry's git engine: runs stack operations (sync, restack, rebase, reparent, register) on a
//! server-owned bare clone of each repository, through the git CLI.
//!
//! It knows nothing of databases, HTTP or job queues: the server calls an operation from a job
//! handler with the clone, the stack metadata it stores ([`Stack`]), a [`Progress`] sink and a
//! cancellation token, and stores what comes back. Every operation fetches first and plans from
//! the remote's live refs, so re-running an interrupted job converges on the same result.
//!
//! Layout: [`runner`] starts git safely; [`clone`] owns the bare clone and its ref layout;
//! [`worktree`] the per-job worktrees and crash recovery; [`stack`] the pure stack model;
//! [`mod@restack`], [`mod@sync`], [`mod@register`] and [`states`] the operations; [`publish`]
//! the atomic ref move and push; [`demo`] a demo remote.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
pub mod clone;
pub mod demo;
pub mod error;
mod graph;
mod live;
pub mod progress;
pub mod publish;
pub mod redact;
pub mod refname;
pub mod register;
pub mod restack;
pub mod runner;
pub mod stack;
pub mod states;
pub mod sync;
pub mod worktree;

pub use batch::DiffStat;
pub use clone::RepoClone;
pub use demo::{DemoRemote, create_demo_remote};
pub use error::GitError;
pub use progress::{NoProgress, Progress};
pub use publish::RefMove;
pub use redact::redact_credentials;
pub use refname::{InvalidBranchName, validate_branch_name};
pub use register::{RegisterOutcome, register};
pub use restack::{
    BeforePublish, Conflict, RestackMethod, RestackOptions, RestackOutcome, Selection,
    rebase_branch, reparent, restack, restack_repo, restack_subtree,
};
pub use runner::{
    DEFAULT_PROTOCOLS, Git, GitCommand, GitOutput, GitVersion, Identity, Location, MIN_VERSION,
};
pub use stack::{Stack, StackError, TrackedBranch};
pub use states::{BranchState, branch_states, local_branch_states};
pub use sync::{Reparented, SyncOutcome, sync};
pub use worktree::{CleanupReport, Worktree, cleanup_stale_worktrees, remove_stale_locks};
