//! The REST calls the TUI makes: enqueue an action, cancel a job, create a task.
//!
//! Each call runs on its own task (spawned by the connection task), so a slow or dead server
//! never holds up the UI or the WebSocket; its outcome comes back as a [`NetEvent`](super::NetEvent).
//! Every failure becomes a typed [`RestError`] carrying the server's `{"error": {code, message}}`.

use std::time::Duration;

use gantry_types::rest::{ActionRequest, CreateTaskRequest, ErrorBody, JobResponse, TaskResponse};
use gantry_types::{Job, JobKind, Task};
use serde::de::DeserializeOwned;

use crate::error::{RestError, TuiError};

/// How long one request may take before it counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A request the UI asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestRequest {
    /// `POST /v1/repos/{id}/actions`.
    Action {
        repo_id: String,
        kind: JobKind,
        branch: Option<String>,
        parent: Option<String>,
    },
    /// `POST /v1/jobs/{id}/cancel`.
    Cancel { job_id: String },
    /// `POST /v1/repos/{id}/tasks`.
    CreateTask {
        repo_id: String,
        title: String,
        branch: String,
    },
}

impl RestRequest {
    /// A short label for status messages: "restack_subtree stack/a", "cancel job 0192ab…".
    pub fn describe(&self) -> String {
        match self {
            RestRequest::Action {
                kind,
                branch,
                parent,
                ..
            } => {
                let mut text = kind.as_str().to_owned();
                if let Some(branch) = branch {
                    text.push(' ');
                    text.push_str(branch);
                }
                if let Some(parent) = parent {
                    text.push_str(" onto ");
                    text.push_str(parent);
                }
                text
            }
            RestRequest::Cancel { job_id } => format!("cancel job {}", short_id(job_id)),
            RestRequest::CreateTask { title, branch, .. } => {
                format!("create task {title:?} on {branch}")
            }
        }
    }
}

/// What a successful request answered.
#[derive(Clone, Debug, PartialEq)]
pub enum RestAnswer {
    Job(Job),
    Task(Task),
}

/// A finished request and how it went.
#[derive(Clone, Debug, PartialEq)]
pub struct RestOutcome {
    pub request: RestRequest,
    pub result: Result<RestAnswer, RestError>,
}

/// The last 8 characters of an id, enough to tell jobs apart on screen. The last ones, because
/// ids are UUIDv7: their first characters are a timestamp, shared by every job of the same
/// minute.
pub fn short_id(id: &str) -> &str {
    id.len()
        .checked_sub(8)
        .and_then(|start| id.get(start..))
        .unwrap_or(id)
}

/// A REST client bound to one server and token.
#[derive(Clone, Debug)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl RestClient {
    pub fn new(base: String, token: String) -> Result<RestClient, TuiError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| TuiError::Http(e.to_string()))?;
        Ok(RestClient { http, base, token })
    }

    pub async fn execute(&self, request: &RestRequest) -> Result<RestAnswer, RestError> {
        match request {
            RestRequest::Action {
                repo_id,
                kind,
                branch,
                parent,
            } => {
                let body = ActionRequest {
                    kind: kind.as_str().to_owned(),
                    branch: branch.clone(),
                    parent: parent.clone(),
                };
                let path = format!("/v1/repos/{}/actions", encode(repo_id));
                let answer: JobResponse = self.post(&path, &body).await?;
                Ok(RestAnswer::Job(answer.job))
            }
            RestRequest::Cancel { job_id } => {
                let path = format!("/v1/jobs/{}/cancel", encode(job_id));
                let answer: JobResponse = self.post(&path, &serde_json::json!({})).await?;
                Ok(RestAnswer::Job(answer.job))
            }
            RestRequest::CreateTask {
                repo_id,
                title,
                branch,
            } => {
                let body = CreateTaskRequest {
                    title: title.clone(),
                    branch: branch.clone(),
                    allow_shared_branch: false,
                };
                let path = format!("/v1/repos/{}/tasks", encode(repo_id));
                let answer: TaskResponse = self.post(&path, &body).await?;
                Ok(RestAnswer::Task(answer.task))
            }
        }
    }

    async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, RestError> {
        let response = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| RestError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RestError::Unreachable(e.to_string()))?;
        decode(status, &bytes)
    }
}

/// Turns an HTTP answer into the expected body or a typed error.
pub fn decode<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, RestError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|e| RestError::Unexpected {
            status,
            detail: e.to_string(),
        });
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(err) => Err(RestError::Server {
            status,
            code: err.error.code,
            message: err.error.message,
        }),
        Err(_) => Err(RestError::Unexpected {
            status,
            detail: String::from_utf8_lossy(body).chars().take(200).collect(),
        }),
    }
}

/// Percent-encodes one path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_become_typed_errors() {
        let body = br#"{"error":{"code":"branch_not_found","message":"no branch x"}}"#;
        let err = decode::<JobResponse>(422, body).err();
        assert_eq!(
            err,
            Some(RestError::Server {
                status: 422,
                code: "branch_not_found".into(),
                message: "no branch x".into()
            })
        );
        let err = decode::<JobResponse>(502, b"<html>bad gateway</html>").err();
        assert!(matches!(
            err,
            Some(RestError::Unexpected { status: 502, .. })
        ));
        let err = decode::<JobResponse>(202, b"{}").err();
        assert!(matches!(
            err,
            Some(RestError::Unexpected { status: 202, .. })
        ));
    }

    #[test]
    fn requests_describe_themselves() {
        let request = RestRequest::Action {
            repo_id: "r".into(),
            kind: JobKind::ReparentBranch,
            branch: Some("b".into()),
            parent: Some("main".into()),
        };
        assert_eq!(request.describe(), "reparent_branch b onto main");
        assert_eq!(short_id("01a1fd0f-7c3e-7a10-9b2e-4c1d2e3f4a5b"), "2e3f4a5b");
        assert_eq!(short_id("short"), "short");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
