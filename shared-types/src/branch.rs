//! The Branch row: gantry's cached projection of one branch of a repo.
//!
//! It is recomputed by jobs from the server's clone and read by requests without touching git, so
//! it is what makes the request path cheap.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Size of a branch's own changes against the commit it is stacked on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DiffStat {
    pub files_changed: u32,
    pub insertions: u32,
    pub deletions: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Branch {
    pub repo_id: String,
    pub name: String,
    pub head_sha: String,
    /// The branch it is stacked on (trunk or another tracked branch); `None` when untracked.
    pub parent: Option<String>,
    /// The parent tip it was last stacked on.
    pub base_sha: Option<String>,
    /// Whether gantry manages it as part of a stack.
    pub tracked: bool,
    /// Its own commits, not in its parent.
    pub ahead: u32,
    /// Parent commits it lacks.
    pub behind: u32,
    pub needs_restack: bool,
    pub conflicts_with_trunk: bool,
    pub diff_stat: DiffStat,
    /// The job that is working on this branch right now, if any.
    pub active_job_id: Option<String>,
    /// The conflict its last restack stopped on; cleared when a restack of it succeeds.
    pub conflict: Option<crate::BranchConflict>,
    pub first_seen_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub updated_at: Timestamp,
}
