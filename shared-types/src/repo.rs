//! The Repo row: a remote repository that gantry keeps a clone of and runs jobs on.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Where the cached branch projection of a repo stands relative to its remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum BranchSyncStatus {
    /// Registered, never synced yet.
    Pending,
    /// A `sync_repo` (or another job that refreshes branches) is running.
    Syncing,
    /// The last refresh succeeded at `branch_sync_at`.
    Synced,
    /// The last refresh failed; `branch_sync_error` says why.
    Error,
}

impl BranchSyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Syncing => "syncing",
            Self::Synced => "synced",
            Self::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "syncing" => Self::Syncing,
            "synced" => Self::Synced,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Repo {
    pub id: String,
    pub name: String,
    /// The remote, with any credentials redacted.
    pub remote_url: String,
    pub trunk: String,
    pub branch_sync_status: BranchSyncStatus,
    pub branch_sync_at: Option<Timestamp>,
    pub branch_sync_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
