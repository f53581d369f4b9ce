//! The application's services: what a request may ask of gantry, independent of HTTP. Handlers
//! translate between HTTP and these calls; the CLI and tests reach the same logic through REST.

use std::sync::Arc;

use dashmap::{DashMap, DashSet};
use gantry_projections::CloseReason;
use gantry_types::admin::{CreateTokenRequest, CreatedToken, Org, TokenInfo};
use gantry_types::rest::{ActionRequest, CreateRepoRequest, CreateTaskRequest, WebhookResponse};
use gantry_types::{Job, JobKind, Repo, Task};

use crate::api::error::{ApiError, ApiResult};
use crate::auth::{Principal, Scope, generate_token, hash_token};
use crate::engine::Engine;
use crate::limits::RateLimiter;
use crate::storage::{
    CancelOutcome, Enqueued, NewJob, NewTask, StorageError, StorageResult, Store,
};
use crate::validate::{self, RemotePolicy};
use crate::webhook;
use crate::ws::WsConfig;
use crate::ws::registry::Connections;
use gantry_projections::Hub;

#[derive(Clone, Debug)]
pub struct AppConfig {
    /// Which remote schemes repos may use (and so which transports git may use).
    pub remotes: RemotePolicy,
    pub max_attempts: u32,
    pub ws: WsConfig,
    /// A cached branch row older than this is stale: a task on it waits for a register job.
    pub stale_after: std::time::Duration,
    /// The largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Write requests per second per token (0: unlimited); beyond, 429 with `Retry-After`.
    pub accept_rate: u32,
}

pub struct App {
    pub store: Store,
    pub engine: Arc<Engine>,
    pub hub: Arc<Hub>,
    pub connections: Connections,
    pub config: AppConfig,
    /// token hash -> principal; the accept path must not wait on the database to authenticate.
    tokens: DashMap<String, Principal>,
    /// repo id -> organisation id; a repo never changes organisation.
    repo_orgs: DashMap<String, String>,
    /// Ids of tokens known to be revoked, so that a cache entry written by a request that raced
    /// the revocation is never used.
    revoked: DashSet<String>,
    /// Write requests per token.
    pub write_rate: RateLimiter,
    /// job id -> organisation id; a job never changes repo. Bounded by [`JOB_ORGS_MAX`], so a
    /// reconnect storm of clients watching jobs is authorised from memory, not the database.
    job_orgs: DashMap<String, String>,
}

/// Entries kept in the job -> organisation cache before it is emptied and refilled.
const JOB_ORGS_MAX: usize = 100_000;

impl App {
    pub fn new(store: Store, engine: Arc<Engine>, hub: Arc<Hub>, config: AppConfig) -> App {
        App {
            store,
            engine,
            hub,
            connections: Connections::default(),
            write_rate: RateLimiter::new(config.accept_rate),
            config,
            tokens: DashMap::new(),
            repo_orgs: DashMap::new(),
            revoked: DashSet::new(),
            job_orgs: DashMap::new(),
        }
    }

    /// The organisation owning a repo, if it exists.
    pub async fn repo_org(&self, repo_id: &str) -> StorageResult<Option<String>> {
        if let Some(org) = self.repo_orgs.get(repo_id) {
            return Ok(Some(org.clone()));
        }
        let org = self.store.repo_org(repo_id).await?;
        if let Some(org) = &org {
            self.repo_orgs.insert(repo_id.to_owned(), org.clone());
        }
        Ok(org)
    }

    /// The organisation owning a job's repo, if the job exists.
    pub async fn job_org(&self, job_id: &str) -> StorageResult<Option<String>> {
        if let Some(org) = self.job_orgs.get(job_id) {
            return Ok(Some(org.clone()));
        }
        let org = self.store.job_org(job_id).await?;
        if let Some(org) = &org {
            if self.job_orgs.len() >= JOB_ORGS_MAX {
                self.job_orgs.clear();
            }
            self.job_orgs.insert(job_id.to_owned(), org.clone());
        }
        Ok(org)
    }

    pub async fn authenticate(&self, token: &str) -> ApiResult<Option<Principal>> {
        let hash = hash_token(token);
        if let Some(principal) = self.tokens.get(&hash) {
            if self.revoked.contains(&principal.token_id) {
                return Ok(None);
            }
            return Ok(Some(principal.clone()));
        }
        let principal = self.store.find_token(&hash).await?;
        if let Some(principal) = &principal {
            if self.revoked.contains(&principal.token_id) {
                return Ok(None);
            }
            self.tokens.insert(hash, principal.clone());
        }
        Ok(principal)
    }

    /// Whether this node knows the token to be revoked.
    pub fn is_revoked(&self, token_id: &str) -> bool {
        self.revoked.contains(token_id)
    }

    /// Forgets a revoked token on this node: its cache entry, its rate bucket, and its open
    /// WebSockets, which close with 4100 (`TOKEN_REVOKED`). Returns whether it was news.
    pub fn forget_token(&self, token_id: &str) -> bool {
        let news = self.revoked.insert(token_id.to_owned());
        self.tokens
            .retain(|_, principal| principal.token_id != token_id);
        self.write_rate.forget(token_id);
        self.connections
            .close_token(token_id, CloseReason::TokenRevoked);
        news
    }

    /// Learns of tokens revoked (on any node) at or after `since_ms`, and forgets them here.
    /// Returns how many were news.
    pub async fn recheck_revocations(&self, since_ms: i64) -> StorageResult<usize> {
        let revoked = self.store.revoked_tokens_since(since_ms).await?;
        Ok(revoked
            .iter()
            .filter(|(id, _)| !self.revoked.contains(id))
            .filter(|(id, _)| self.forget_token(id))
            .count())
    }

    /// Refuses a write over the token's rate with 429 and `Retry-After`.
    pub fn check_write_rate(&self, principal: &Principal) -> ApiResult<()> {
        self.write_rate.check(&principal.token_id).map_err(|wait| {
            ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this token may make {} write requests per second; retry after {} ms",
                    self.config.accept_rate,
                    wait.as_millis()
                ),
            )
            .retry_after(wait.as_secs_f64().ceil() as u64)
        })
    }

    /// The repo named by id (or, for the CLI's convenience, by name) in the principal's
    /// organisation. Another organisation's repo is "not found", so existence does not leak.
    pub async fn repo(&self, principal: &Principal, id_or_name: &str) -> ApiResult<Repo> {
        if let Some(repo) = self.store.get_repo(&principal.org_id, id_or_name).await? {
            return Ok(repo);
        }
        self.store
            .find_repo_by_name(&principal.org_id, id_or_name)
            .await?
            .ok_or_else(|| ApiError::not_found("repo_not_found", format!("no repo {id_or_name:?}")))
    }

    pub async fn create_repo(
        &self,
        principal: &Principal,
        req: CreateRepoRequest,
    ) -> ApiResult<(Repo, Job)> {
        validate::repo_name(&req.name)?;
        validate::remote_url(&req.remote_url, &self.config.remotes)?;
        let trunk = req.trunk.unwrap_or_else(|| "main".to_owned());
        validate::branch_name("trunk", &trunk)?;
        let first_sync = NewJob {
            repo_id: uuid::Uuid::now_v7().to_string(),
            kind: JobKind::SyncRepo,
            branch: None,
            parent: None,
            max_attempts: self.config.max_attempts,
            idempotency_key: None,
        };
        let created = self
            .store
            .create_repo(
                &principal.org_id,
                &req.name,
                &req.remote_url,
                &trunk,
                first_sync,
            )
            .await
            .map_err(|e| match e {
                crate::storage::StorageError::AlreadyExists(_) => ApiError::conflict(
                    "repo_exists",
                    format!("a repo named {:?} already exists", req.name),
                ),
                other => other.into(),
            })?;
        if let Some(secret) = req.webhook_secret.as_deref().filter(|s| !s.is_empty()) {
            self.store
                .set_webhook_secret(&created.0.id, Some(secret))
                .await?;
        }
        self.engine.wake();
        Ok(created)
    }

    /// Validates an action against local facts only and queues it. Never touches git.
    pub async fn accept_action(
        &self,
        principal: &Principal,
        repo_id: &str,
        req: &ActionRequest,
        idempotency_key: Option<String>,
    ) -> ApiResult<Enqueued> {
        let repo = self.repo(principal, repo_id).await?;
        if let Some(key) = &idempotency_key {
            validate::idempotency_key(key)?;
        }
        let links = self.store.branch_links(&repo.id).await?;
        let action = validate::action(req, &repo.trunk, &links)?;
        let enqueued = self
            .store
            .enqueue_job(NewJob {
                repo_id: repo.id,
                kind: action.kind,
                branch: action.branch,
                parent: action.parent,
                max_attempts: self.config.max_attempts,
                idempotency_key,
            })
            .await?;
        if matches!(enqueued, Enqueued::Created(_)) {
            self.engine.wake();
        }
        Ok(enqueued)
    }

    /// Creates a task on a branch without ever touching git: from the cached branch row when it
    /// is fresh, otherwise pending a register job.
    pub async fn create_task(
        &self,
        principal: &Principal,
        repo_id: &str,
        req: CreateTaskRequest,
    ) -> ApiResult<Task> {
        let repo = self.repo(principal, repo_id).await?;
        let title = req.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            return Err(ApiError::invalid(
                "invalid_title",
                "title must be 1-200 characters",
            ));
        }
        validate::branch_name("branch", &req.branch)?;
        if req.branch == repo.trunk {
            return Err(ApiError::invalid(
                "branch_is_trunk",
                "a task needs a branch of its own, not the trunk",
            ));
        }
        let (task, job) = self
            .store
            .create_task(NewTask {
                repo_id: repo.id,
                title: title.to_owned(),
                branch: req.branch,
                allow_shared_branch: req.allow_shared_branch,
                stale_after: self.config.stale_after,
                max_attempts: self.config.max_attempts,
            })
            .await
            .map_err(|e| match e {
                StorageError::BranchClaimed(task) => ApiError::conflict(
                    "branch_claimed",
                    format!("task {task} already works on this branch; pass allow_shared_branch to share it"),
                ),
                other => other.into(),
            })?;
        if job.is_some() {
            self.engine.wake();
        }
        Ok(task)
    }

    /// A GitHub webhook delivery: a verified `push` queues a sync of every repo it concerns.
    pub async fn github_webhook(
        &self,
        event: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> ApiResult<WebhookResponse> {
        let ignored = |reason: &str| WebhookResponse {
            status: "ignored".into(),
            reason: Some(reason.into()),
            jobs: vec![],
        };
        let payload: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| ApiError::invalid("invalid_json", "the webhook body is not JSON"))?;
        let targets = self
            .store
            .webhook_targets(&webhook::repository_urls(&payload))
            .await?;
        let targets: Vec<_> = targets.into_iter().filter(|t| t.secret.is_some()).collect();
        if targets.is_empty() {
            return Ok(ignored("no repo with a webhook secret has this remote"));
        }
        let signature = signature.unwrap_or_default();
        let verified: Vec<_> = targets
            .into_iter()
            .filter(|t| {
                t.secret
                    .as_deref()
                    .is_some_and(|s| webhook::verify_signature(s.as_bytes(), body, signature))
            })
            .collect();
        if verified.is_empty() {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "X-Hub-Signature-256 does not match the repo's webhook secret",
            ));
        }
        match event {
            Some("push") => {}
            Some("ping") => return Ok(ignored("ping")),
            other => {
                return Ok(ignored(&format!(
                    "event {:?} does not change branches",
                    other.unwrap_or("")
                )));
            }
        }
        let mut jobs = Vec::new();
        for target in verified {
            let enqueued = self
                .store
                .enqueue_job(NewJob {
                    repo_id: target.repo_id,
                    kind: JobKind::SyncRepo,
                    branch: None,
                    parent: None,
                    max_attempts: self.config.max_attempts,
                    idempotency_key: None,
                })
                .await?;
            jobs.push(enqueued.into_job());
        }
        self.engine.wake();
        Ok(WebhookResponse {
            status: "queued".into(),
            reason: None,
            jobs,
        })
    }

    pub async fn job(&self, principal: &Principal, job_id: &str) -> ApiResult<Job> {
        self.store
            .get_job(&principal.org_id, job_id)
            .await?
            .ok_or_else(|| ApiError::not_found("job_not_found", format!("no job {job_id:?}")))
    }

    pub async fn cancel_job(&self, principal: &Principal, job_id: &str) -> ApiResult<Job> {
        let outcome = self
            .store
            .cancel_job(&principal.org_id, job_id)
            .await
            .map_err(|e| match e {
                crate::storage::StorageError::NotFound(_) => {
                    ApiError::not_found("job_not_found", format!("no job {job_id:?}"))
                }
                other => other.into(),
            })?;
        Ok(match outcome {
            CancelOutcome::Cancelled(job) => job,
            CancelOutcome::Requested(job) => {
                self.engine.cancel_local(&job.id);
                job
            }
        })
    }

    /// Creates an organisation (admin).
    pub async fn create_org(&self, name: &str) -> ApiResult<Org> {
        validate::org_name(name)?;
        let id = self.store.create_org(name).await.map_err(|e| match e {
            StorageError::AlreadyExists(_) => ApiError::conflict(
                "org_exists",
                format!("an organisation named {name:?} already exists"),
            ),
            other => other.into(),
        })?;
        self.store
            .find_org(&id)
            .await?
            .ok_or_else(|| ApiError::not_found("org_not_found", "the new organisation vanished"))
    }

    /// Creates a `read` or `write` token in an organisation (admin). The secret is returned
    /// here once and never stored.
    pub async fn create_token(&self, req: &CreateTokenRequest) -> ApiResult<CreatedToken> {
        let scope = match Scope::parse(req.scope.trim()) {
            Some(scope @ (Scope::Read | Scope::Write)) => scope,
            _ => {
                return Err(ApiError::invalid(
                    "invalid_scope",
                    "scope must be \"read\" or \"write\"",
                ));
            }
        };
        let label = req
            .label
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty());
        if label.is_some_and(|l| l.chars().count() > 200 || l.chars().any(char::is_control)) {
            return Err(ApiError::invalid(
                "invalid_label",
                "label must be at most 200 printable characters",
            ));
        }
        let org = self.store.find_org(&req.org).await?.ok_or_else(|| {
            ApiError::not_found("org_not_found", format!("no organisation {:?}", req.org))
        })?;
        let token = generate_token();
        let info = self
            .store
            .create_token(&org.id, &hash_token(&token), scope, label)
            .await?;
        Ok(CreatedToken { token, info })
    }

    /// Revokes a token (admin): at once on this node (cache, rate bucket, open sockets), within
    /// the re-check interval on the others.
    pub async fn revoke_token(&self, token_id: &str) -> ApiResult<TokenInfo> {
        let info = self.store.revoke_token(token_id).await?.ok_or_else(|| {
            ApiError::not_found("token_not_found", format!("no token {token_id:?}"))
        })?;
        self.forget_token(&info.id);
        Ok(info)
    }
}
