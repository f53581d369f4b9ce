//! The Task row: a unit of work attached to a branch.
//!
//! Creating one never waits for git: it uses the cached branch row, or it waits visibly in
//! `pending_branch_attach` while a background job registers the branch.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    PendingBranchAttach,
    Ready,
    AttachFailed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingBranchAttach => "pending_branch_attach",
            Self::Ready => "ready",
            Self::AttachFailed => "attach_failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending_branch_attach" => Self::PendingBranchAttach,
            "ready" => Self::Ready,
            "attach_failed" => Self::AttachFailed,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Task {
    pub id: String,
    pub repo_id: String,
    pub title: String,
    pub branch: String,
    pub status: TaskStatus,
    pub status_message: Option<String>,
    pub attach_job_id: Option<String>,
    pub head_sha: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
