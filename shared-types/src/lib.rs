//! The wire contract of gantry.
//!
//! Every client (the dashboard, the TUI, scripts, tests) and the server speak through these types,
//! so they live in one crate that depends on serde alone. Field names are snake_case and times are
//! RFC 3339 strings in UTC, as `CONTRACT.md` fixes them.

#![forbid(unsafe_code)]

pub mod admin;
pub mod branch;
pub mod job;
pub mod repo;
pub mod rest;
pub mod task;
pub mod topic;
pub mod ws;

pub use branch::{Branch, DiffStat};
pub use job::{
    BranchConflict, Job, JobKind, JobResult, JobStatus, Progress, ProgressLine, RefMove,
    UnknownJobKind,
};
pub use repo::{BranchSyncStatus, Repo};
pub use task::{Task, TaskStatus};
pub use topic::{InvalidTopic, Topic};

/// A point in time, serialised as an RFC 3339 string in UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
