//! A small REST client for the load generators: register repos, post actions, read jobs.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::error::{BenchError, BenchResult};

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> BenchResult<Api> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Api {
            http,
            base: base.to_owned(),
            token: token.to_owned(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    async fn post(&self, path: &str, body: &Value) -> BenchResult<(StatusCode, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    pub async fn get(&self, path: &str) -> BenchResult<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(BenchError::Protocol(format!(
                "GET {path}: {}",
                response.status()
            )));
        }
        Ok(response.json().await?)
    }

    /// Registers a repo; returns its id.
    pub async fn create_repo(&self, name: &str, remote_url: &str) -> BenchResult<String> {
        let (status, body) = self
            .post(
                "/v1/repos",
                &json!({"name": name, "remote_url": remote_url}),
            )
            .await?;
        if status != StatusCode::CREATED {
            return Err(BenchError::Protocol(format!(
                "create repo {name}: {status} {body}"
            )));
        }
        body["repo"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BenchError::Protocol(format!("create repo: {body}")))
    }

    /// Posts an action; returns the status and the job id (if any).
    pub async fn act(
        &self,
        repo: &str,
        kind: &str,
        branch: Option<&str>,
        parent: Option<&str>,
    ) -> BenchResult<(StatusCode, Option<String>)> {
        let (status, body) = self
            .post(
                &format!("/v1/repos/{repo}/actions"),
                &json!({"kind": kind, "branch": branch, "parent": parent}),
            )
            .await?;
        Ok((status, body["job"]["id"].as_str().map(str::to_owned)))
    }

    /// Posts an action that must be accepted; returns the job id.
    pub async fn act_ok(
        &self,
        repo: &str,
        kind: &str,
        branch: Option<&str>,
        parent: Option<&str>,
    ) -> BenchResult<String> {
        match self.act(repo, kind, branch, parent).await? {
            (StatusCode::ACCEPTED, Some(id)) => Ok(id),
            (status, _) => Err(BenchError::Protocol(format!(
                "action {kind} {branch:?} answered {status}"
            ))),
        }
    }

    pub async fn job(&self, id: &str) -> BenchResult<Value> {
        Ok(self.get(&format!("/v1/jobs/{id}")).await?["job"].clone())
    }

    /// Polls a job until it is terminal; returns it.
    pub async fn wait_job(&self, id: &str, deadline: Duration) -> BenchResult<Value> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let job = self.job(id).await?;
            if matches!(
                job["status"].as_str(),
                Some("completed" | "error" | "cancelled")
            ) {
                return Ok(job);
            }
            if tokio::time::Instant::now() > until {
                return Err(BenchError::Timeout(format!("job {id}: {job}")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
