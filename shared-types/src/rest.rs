//! REST request and response bodies, and the one error shape every endpoint uses.

use serde::{Deserialize, Serialize};

use crate::{Branch, Job, Repo, Task};

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CreateRepoRequest {
    pub name: String,
    pub remote_url: String,
    #[serde(default)]
    pub trunk: Option<String>,
    /// The secret GitHub signs this repo's webhooks with (`POST /v1/hooks/github`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// The webhook secret never reaches a log through `Debug`.
impl std::fmt::Debug for CreateRepoRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRepoRequest")
            .field("name", &self.name)
            .field("remote_url", &"<not shown>")
            .field("trunk", &self.trunk)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CreateRepoResponse {
    pub repo: Repo,
    /// The repo's first sync (its clone), already queued.
    pub job: Job,
}

/// `kind` stays a string here so that an unknown kind gets its own precise error, not a generic
/// decoding failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ActionRequest {
    pub kind: String,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CreateTaskRequest {
    pub title: String,
    pub branch: String,
    /// Create the task even when another live task already claims the branch.
    #[serde(default)]
    pub allow_shared_branch: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RepoResponse {
    pub repo: Repo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ReposResponse {
    pub repos: Vec<Repo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JobResponse {
    pub job: Job,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JobsResponse {
    pub jobs: Vec<Job>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BranchesResponse {
    pub branches: Vec<Branch>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TaskResponse {
    pub task: Task,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TasksResponse {
    pub tasks: Vec<Task>,
}

/// The answer to a webhook delivery: `queued` with the sync jobs (new or already standing), or
/// `ignored` with the reason (an event other than `push`, or no repo with that remote).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct WebhookResponse {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub jobs: Vec<Job>,
}

/// `{"error": {"code", "message"}}`, the body of every 4xx and 5xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorInfo {
    /// A stable snake_case code that programs can match on.
    pub code: String,
    /// A human sentence.
    pub message: String,
}
