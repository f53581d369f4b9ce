//! The Job row and its vocabulary: what a job does (`JobKind`), where it stands (`JobStatus`),
//! how far it got (`Progress`) and what it changed (`JobResult`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// The six git stack operations gantry runs as jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    SyncRepo,
    RestackRepo,
    RestackSubtree,
    RebaseBranch,
    ReparentBranch,
    RegisterExistingBranch,
}

impl JobKind {
    pub const ALL: [JobKind; 6] = [
        Self::SyncRepo,
        Self::RestackRepo,
        Self::RestackSubtree,
        Self::RebaseBranch,
        Self::ReparentBranch,
        Self::RegisterExistingBranch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SyncRepo => "sync_repo",
            Self::RestackRepo => "restack_repo",
            Self::RestackSubtree => "restack_subtree",
            Self::RebaseBranch => "rebase_branch",
            Self::ReparentBranch => "reparent_branch",
            Self::RegisterExistingBranch => "register_existing_branch",
        }
    }

    /// Whether the action names the branch it works on.
    pub fn requires_branch(self) -> bool {
        !matches!(self, Self::SyncRepo | Self::RestackRepo)
    }

    pub fn requires_parent(self) -> bool {
        matches!(self, Self::ReparentBranch)
    }

    pub fn accepts_parent(self) -> bool {
        matches!(self, Self::ReparentBranch | Self::RegisterExistingBranch)
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownJobKind(pub String);

impl fmt::Display for UnknownJobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown job kind {:?}; expected one of ", self.0)?;
        for (i, kind) in JobKind::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(kind.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownJobKind {}

impl FromStr for JobKind {
    type Err = UnknownJobKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownJobKind(s.to_owned()))
    }
}

/// The status vocabulary shared by every client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Error,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "error" => Self::Error,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// A finished job never changes status again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Error | Self::Cancelled)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The latest step a running job reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Progress {
    pub step: u32,
    pub total: u32,
    pub text: String,
}

/// One reported step, kept as a line of the job's progress log (topic `job/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ProgressLine {
    pub job_id: String,
    pub attempt: u32,
    pub seq: u32,
    pub step: u32,
    pub total: u32,
    pub text: String,
    pub at: Timestamp,
}

/// A branch a job moved, from which commit to which.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RefMove {
    pub branch: String,
    pub from: String,
    pub to: String,
}

/// A branch whose restack stopped on a conflict; its subtree was left untouched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BranchConflict {
    pub branch: String,
    /// The commit being replayed when the conflict happened.
    pub commit: String,
    pub files: Vec<String>,
    /// Descendants that were skipped because they sit on the conflicting branch.
    #[serde(default)]
    pub blocked: Vec<String>,
}

/// What a finished job changed. Every field is empty for a job that changed nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JobResult {
    #[serde(default)]
    pub moved: Vec<RefMove>,
    #[serde(default)]
    pub conflicts: Vec<BranchConflict>,
    /// Branches that sync found merged into trunk and stopped tracking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
    /// Free-form facts a kind reports (e.g. a registered branch's guessed parent).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Job {
    pub id: String,
    pub repo_id: String,
    pub kind: JobKind,
    pub branch: Option<String>,
    pub parent: Option<String>,
    pub status: JobStatus,
    /// A human sentence: why it failed, or what it did.
    pub message: Option<String>,
    pub progress: Option<Progress>,
    /// 0 while never started; each claim by a worker adds one.
    pub attempt: u32,
    pub max_attempts: u32,
    /// Set when cancel was asked of a running job; it ends `cancelled` at its next safe point.
    pub cancel_requested: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub result: Option<JobResult>,
}
