//! Durable state behind one interface, with the SQL of each backend kept in its own module.
//!
//! Every method is one transaction. Methods that change what clients can see also append the
//! matching change-log rows in that same transaction (see [`changes`]), so the projections can
//! never show a state that was not committed, nor miss one that was.
//!
//! The job methods are the transitions of the job state machine (see `engine::state`); each is
//! fenced where a worker calls it, so a worker that lost its lease cannot write.

pub mod changes;
#[macro_use]
mod rows;
pub mod postgres;
pub mod sqlite;

use std::time::Duration;

use gantry_types::admin::{Org, TokenInfo};
use gantry_types::{
    Branch, BranchConflict, DiffStat, Job, JobKind, JobResult, Progress, Repo, Task,
};
use serde_json::Value;
use tokio::sync::watch;

pub use changes::{ChangeSet, StoredChange, TopicKey};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::auth::{Principal, Scope};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The worker's (job id, attempt) no longer holds the job: its lease was taken over or the
    /// job already finished. Its write was refused.
    #[error("job {job_id} attempt {attempt} no longer holds its lease")]
    Fenced { job_id: String, attempt: u32 },
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("job {0} has already finished")]
    JobFinished(String),
    /// A live task already claims the branch.
    #[error("branch is claimed by task {0}")]
    BranchClaimed(String),
    /// The same Idempotency-Key was used before for a different action.
    #[error("idempotency key was used for another action (job {0})")]
    IdempotencyMismatch(String),
    /// Concurrent writers (other nodes) kept changing the {0} this write depends on; retrying
    /// the request later will succeed.
    #[error("the {0} kept changing under concurrent writers; try again")]
    Contended(&'static str),
}

impl StorageError {
    /// Whether the database itself is unavailable or overloaded, rather than the request wrong.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StorageError::Database(e) => match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
                sqlx::Error::Database(db) => {
                    // PostgreSQL: connection exceptions (08), serialization failures and
                    // deadlocks (40), insufficient resources (53), operator intervention such
                    // as a terminated session or a shutdown (57).
                    let code = db.code();
                    let code = code.as_deref().unwrap_or_default();
                    let postgres = db
                        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .is_some()
                        && ["08", "40", "53", "57"].iter().any(|c| code.starts_with(c));
                    // SQLite's primary result codes (the low byte of the extended code):
                    // BUSY, LOCKED, IOERR, FULL, CANTOPEN.
                    let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                        && code
                            .parse::<i32>()
                            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14));
                    if postgres {
                        return true;
                    }
                    let msg = db.message();
                    sqlite
                        || msg.contains("locked")
                        || msg.contains("busy")
                        || msg.contains("full")
                        || msg.contains("disk I/O")
                }
                _ => false,
            },
            StorageError::Contended(_) => true,
            _ => false,
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// A job to insert, as accepted by the request path.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub repo_id: String,
    pub kind: JobKind,
    pub branch: Option<String>,
    pub parent: Option<String>,
    pub max_attempts: u32,
    pub idempotency_key: Option<String>,
}

impl NewJob {
    /// Identifies "the same kind and target" for the dedupe of queued jobs.
    pub fn target_key(&self) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}",
            self.kind,
            self.branch.as_deref().unwrap_or(""),
            self.parent.as_deref().unwrap_or("")
        )
    }
}

/// A task to create, as accepted by the request path.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub repo_id: String,
    pub title: String,
    pub branch: String,
    /// Create it even if a live task already claims the branch.
    pub allow_shared_branch: bool,
    /// A cached branch row seen longer ago than this is stale.
    pub stale_after: Duration,
    /// For the register job, when one is needed.
    pub max_attempts: u32,
}

/// A repo a webhook may concern, with what is needed to verify it.
#[derive(Clone)]
pub struct WebhookTarget {
    pub repo_id: String,
    pub org_id: String,
    pub secret: Option<String>,
}

/// The secret never reaches a log through `Debug`.
impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("repo_id", &self.repo_id)
            .field("org_id", &self.org_id)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The answer to an accept: a new job, or the job that already stands for the same request.
#[derive(Clone, Debug)]
pub enum Enqueued {
    Created(Job),
    Existing(Job),
}

impl Enqueued {
    pub fn job(&self) -> &Job {
        match self {
            Enqueued::Created(job) | Enqueued::Existing(job) => job,
        }
    }

    pub fn into_job(self) -> Job {
        match self {
            Enqueued::Created(job) | Enqueued::Existing(job) => job,
        }
    }
}

/// A job a worker just claimed, with its repo, read in the claiming transaction.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub job: Job,
    pub repo: Repo,
    pub org_id: String,
}

/// What a heartbeat learned: the lease is renewed, and whether cancel was asked meanwhile.
#[derive(Clone, Copy, Debug)]
pub struct LeaseRenewed {
    pub cancel_requested: bool,
}

/// The result of cancelling a job.
#[derive(Clone, Debug)]
pub enum CancelOutcome {
    /// It was queued and is now `cancelled`.
    Cancelled(Job),
    /// It is running; it was asked to stop and will end `cancelled` at its next safe point.
    Requested(Job),
}

/// A branch as a git job observed it; the store keeps first-seen times and active jobs.
#[derive(Clone, Debug, PartialEq)]
pub struct BranchState {
    pub name: String,
    pub head_sha: String,
    pub parent: Option<String>,
    pub base_sha: Option<String>,
    pub tracked: bool,
    pub ahead: u32,
    pub behind: u32,
    pub needs_restack: bool,
    pub conflicts_with_trunk: bool,
    pub diff_stat: DiffStat,
    pub conflict: Option<BranchConflict>,
}

/// What a finished job writes besides its own row, in the same transaction.
#[derive(Clone, Debug, Default)]
pub struct JobEffects {
    pub message: Option<String>,
    pub result: Option<JobResult>,
    /// The repo's complete branch projection after the job, replacing the cached one.
    pub branches: Option<Vec<BranchState>>,
}

/// The answer to a worker write whose attempt no longer holds the job.
fn fenced(job_id: &str, attempt: u32) -> StorageError {
    StorageError::Fenced {
        job_id: job_id.to_owned(),
        attempt,
    }
}

/// One running job's end, as [`Store::finish_jobs`] records it.
#[derive(Clone, Debug)]
pub struct FinishJob {
    pub job_id: String,
    pub attempt: u32,
    pub end: JobEnd,
    pub effects: JobEffects,
}

/// How a running job ends.
#[derive(Clone, Debug)]
pub enum JobEnd {
    Completed,
    Failed,
    Cancelled,
}

/// The minimal parent links of the cached projection, enough to validate a request cheaply.
#[derive(Clone, Debug)]
pub struct BranchLink {
    pub name: String,
    pub parent: Option<String>,
    pub tracked: bool,
}

/// Everything a projector needs to start: all current rows per topic at one position.
#[derive(Debug, Default)]
pub struct ProjectionSeed {
    pub position: i64,
    pub topics: Vec<TopicRows>,
    pub retained: Vec<StoredChange>,
}

/// One topic's rows (by key) and the position of its last change.
#[derive(Debug, Default)]
pub struct TopicRows {
    pub topic: String,
    pub position: i64,
    pub rows: Vec<(String, Value)>,
}

/// Limits for pruning finished jobs and the change log.
#[derive(Clone, Copy, Debug)]
pub struct PrunePolicy {
    pub finished_job_max_age: Duration,
    pub finished_jobs_per_repo: u32,
    pub change_log_max_age: Duration,
    pub change_log_max_rows: u32,
}

/// The configured backend. An enum, not a trait object, so the methods stay plain `async fn`s.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Whether only one process can use this database (SQLite), so that at start every running
    /// job is known to have lost its worker.
    pub fn is_single_process(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    /// A receiver that changes whenever a transaction with change-log rows commits, carrying the
    /// highest position written so far by this process (or seen through notifications).
    pub fn commits(&self) -> watch::Receiver<i64> {
        match self {
            Store::Sqlite(s) => s.commits(),
            Store::Postgres(s) => s.commits(),
        }
    }

    pub async fn epoch(&self) -> StorageResult<String> {
        dispatch!(self.epoch())
    }

    pub async fn default_org_id(&self) -> StorageResult<String> {
        dispatch!(self.default_org_id())
    }

    pub async fn create_org(&self, name: &str) -> StorageResult<String> {
        dispatch!(self.create_org(name))
    }

    pub async fn insert_token(
        &self,
        org_id: &str,
        token_hash: &str,
        scope: Scope,
        label: &str,
    ) -> StorageResult<()> {
        dispatch!(self.insert_token(org_id, token_hash, scope, label))
    }

    pub async fn find_token(&self, token_hash: &str) -> StorageResult<Option<Principal>> {
        dispatch!(self.find_token(token_hash))
    }

    /// Stores a new token (by its hash) and describes it.
    pub async fn create_token(
        &self,
        org_id: &str,
        token_hash: &str,
        scope: Scope,
        label: Option<&str>,
    ) -> StorageResult<TokenInfo> {
        dispatch!(self.create_token(org_id, token_hash, scope, label))
    }

    /// Every token, revoked ones included, oldest first. Never the hashes.
    pub async fn list_tokens(&self) -> StorageResult<Vec<TokenInfo>> {
        dispatch!(self.list_tokens())
    }

    /// Marks a token revoked (once: a second call keeps the first time). `None` when no token
    /// has this id.
    pub async fn revoke_token(&self, token_id: &str) -> StorageResult<Option<TokenInfo>> {
        dispatch!(self.revoke_token(token_id))
    }

    /// The ids of the tokens revoked at or after `since_ms` (unix ms), with when: how a node learns
    /// of revocations made on another node.
    pub async fn revoked_tokens_since(&self, since_ms: i64) -> StorageResult<Vec<(String, i64)>> {
        dispatch!(self.revoked_tokens_since(since_ms))
    }

    /// The organisation with this id, or else with this name.
    pub async fn find_org(&self, id_or_name: &str) -> StorageResult<Option<Org>> {
        dispatch!(self.find_org(id_or_name))
    }

    pub async fn list_orgs(&self) -> StorageResult<Vec<Org>> {
        dispatch!(self.list_orgs())
    }

    pub async fn create_repo(
        &self,
        org_id: &str,
        name: &str,
        remote_url: &str,
        trunk: &str,
        first_sync: NewJob,
    ) -> StorageResult<(Repo, Job)> {
        dispatch!(self.create_repo(org_id, name, remote_url, trunk, first_sync))
    }

    pub async fn set_webhook_secret(
        &self,
        repo_id: &str,
        secret: Option<&str>,
    ) -> StorageResult<()> {
        dispatch!(self.set_webhook_secret(repo_id, secret))
    }

    /// The repos whose remote is one of `urls`, in any organisation.
    pub async fn webhook_targets(&self, urls: &[String]) -> StorageResult<Vec<WebhookTarget>> {
        dispatch!(self.webhook_targets(urls))
    }

    /// Creates a task: `ready` from a fresh cached branch row, otherwise `pending_branch_attach`
    /// with a register job (the queued or running one for that branch, or a new one).
    /// Returns the task and the job it created, if any.
    pub async fn create_task(&self, new: NewTask) -> StorageResult<(Task, Option<Job>)> {
        dispatch!(self.create_task(new))
    }

    /// Queues a `sync_repo` for every repo not synced within `interval` and without a sync queued,
    /// running, or created within `interval`. Safe to run from several timers or nodes.
    pub async fn enqueue_due_syncs(
        &self,
        interval: Duration,
        max_attempts: u32,
    ) -> StorageResult<Vec<Job>> {
        dispatch!(self.enqueue_due_syncs(interval, max_attempts))
    }

    pub async fn list_repos(&self, org_id: &str) -> StorageResult<Vec<Repo>> {
        dispatch!(self.list_repos(org_id))
    }

    /// The repo, if it exists and belongs to `org_id`.
    pub async fn get_repo(&self, org_id: &str, repo_id: &str) -> StorageResult<Option<Repo>> {
        dispatch!(self.get_repo(org_id, repo_id))
    }

    pub async fn find_repo_by_name(&self, org_id: &str, name: &str) -> StorageResult<Option<Repo>> {
        dispatch!(self.find_repo_by_name(org_id, name))
    }

    pub async fn repo_org(&self, repo_id: &str) -> StorageResult<Option<String>> {
        dispatch!(self.repo_org(repo_id))
    }

    pub async fn job_org(&self, job_id: &str) -> StorageResult<Option<String>> {
        dispatch!(self.job_org(job_id))
    }

    pub async fn repo_remote_url(&self, repo_id: &str) -> StorageResult<Option<String>> {
        dispatch!(self.repo_remote_url(repo_id))
    }

    pub async fn branch_links(&self, repo_id: &str) -> StorageResult<Vec<BranchLink>> {
        dispatch!(self.branch_links(repo_id))
    }

    pub async fn list_branches(&self, repo_id: &str) -> StorageResult<Vec<Branch>> {
        dispatch!(self.list_branches(repo_id))
    }

    pub async fn list_tasks(&self, repo_id: &str) -> StorageResult<Vec<Task>> {
        dispatch!(self.list_tasks(repo_id))
    }

    /// Transition: (nothing) -> `queued`, or the existing job for the same request.
    pub async fn enqueue_job(&self, new: NewJob) -> StorageResult<Enqueued> {
        dispatch!(self.enqueue_job(new))
    }

    /// The job, if it exists and belongs to `org_id`.
    pub async fn get_job(&self, org_id: &str, job_id: &str) -> StorageResult<Option<Job>> {
        dispatch!(self.get_job(org_id, job_id))
    }

    pub async fn list_jobs(&self, repo_id: &str, limit: u32) -> StorageResult<Vec<Job>> {
        dispatch!(self.list_jobs(repo_id, limit))
    }

    /// Transition: `queued` -> `running` for the oldest due job whose repo has no running job.
    pub async fn claim_next_job(
        &self,
        worker: &str,
        lease: Duration,
    ) -> StorageResult<Option<ClaimedJob>> {
        Ok(self.claim_jobs(worker, lease, 1).await?.pop())
    }

    /// Transition: `queued` -> `running` for up to `limit` jobs, oldest due first, at most one
    /// per repo and none of a repo with a running job; one transaction for them all.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> StorageResult<Vec<ClaimedJob>> {
        dispatch!(self.claim_jobs(worker, lease, limit))
    }

    /// Renews the lease of a running job; fenced.
    pub async fn heartbeat_job(
        &self,
        job_id: &str,
        attempt: u32,
        lease: Duration,
    ) -> StorageResult<LeaseRenewed> {
        dispatch!(self.heartbeat_job(job_id, attempt, lease))
    }

    /// Records a progress step on the job row and as a line of its log; fenced.
    pub async fn report_progress(
        &self,
        job_id: &str,
        attempt: u32,
        progress: &Progress,
    ) -> StorageResult<()> {
        self.report_progress_lines(job_id, attempt, std::slice::from_ref(progress))
            .await
    }

    /// Records several progress steps in one transaction: each as a line of the job's log, the
    /// last one also on the job row; fenced. Nothing is written for no lines.
    pub async fn report_progress_lines(
        &self,
        job_id: &str,
        attempt: u32,
        lines: &[Progress],
    ) -> StorageResult<()> {
        dispatch!(self.report_progress_lines(job_id, attempt, lines))
    }

    /// Transition: `running` -> `completed` | `error` | `cancelled`, with the job's effects; fenced.
    pub async fn finish_job(
        &self,
        job_id: &str,
        attempt: u32,
        end: JobEnd,
        effects: JobEffects,
    ) -> StorageResult<Job> {
        self.finish_alone(&FinishJob {
            job_id: job_id.to_owned(),
            attempt,
            end,
            effects,
        })
        .await
    }

    /// [`finish_job`](Self::finish_job) for several jobs, committed together (one answer per
    /// entry, in order). When the shared transaction fails, each job is written alone, so one
    /// job's failing write never decides the others'.
    pub async fn finish_jobs(&self, ends: &[FinishJob]) -> Vec<StorageResult<Job>> {
        if let [end] = ends {
            return vec![self.finish_alone(end).await];
        }
        match dispatch!(self.finish_jobs(ends)) {
            Ok(results) => results,
            Err(_) => {
                let mut results = Vec::with_capacity(ends.len());
                for end in ends {
                    results.push(self.finish_alone(end).await);
                }
                results
            }
        }
    }

    /// One job's end in a transaction of its own.
    async fn finish_alone(&self, end: &FinishJob) -> StorageResult<Job> {
        dispatch!(self.finish_jobs(std::slice::from_ref(end)))?
            .pop()
            .unwrap_or_else(|| Err(fenced(&end.job_id, end.attempt)))
    }

    /// Transition: `running` -> `queued` again, due after `delay`, for a transient failure; fenced.
    pub async fn retry_job(
        &self,
        job_id: &str,
        attempt: u32,
        delay: Duration,
        message: &str,
    ) -> StorageResult<Job> {
        dispatch!(self.retry_job(job_id, attempt, delay, message))
    }

    /// Transition: `running` -> `queued` at once, without spending an attempt, because this node is
    /// shutting down; fenced.
    pub async fn release_job(&self, job_id: &str, attempt: u32) -> StorageResult<Job> {
        dispatch!(self.release_job(job_id, attempt))
    }

    /// Transition: `queued` -> `cancelled`, or a cancel request on a `running` job.
    pub async fn cancel_job(&self, org_id: &str, job_id: &str) -> StorageResult<CancelOutcome> {
        dispatch!(self.cancel_job(org_id, job_id))
    }

    /// Transition: `running` with an expired lease -> `queued` (attempt left) or `error`.
    /// With `all_running`, every running job counts as expired: used at start on a backend that
    /// only one process can use, where no running job can have a live worker.
    pub async fn expire_leases(&self, all_running: bool) -> StorageResult<Vec<Job>> {
        dispatch!(self.expire_leases(all_running))
    }

    /// Deletes finished jobs and change-log rows beyond the policy; returns (jobs, changes) removed.
    pub async fn prune(&self, policy: PrunePolicy) -> StorageResult<(u64, u64)> {
        dispatch!(self.prune(policy))
    }

    /// Change-log rows after `position`, in order.
    pub async fn changes_after(
        &self,
        position: i64,
        limit: u32,
    ) -> StorageResult<Vec<StoredChange>> {
        dispatch!(self.changes_after(position, limit))
    }

    /// All current rows per topic and the retained log tail, read in one consistent snapshot.
    pub async fn projection_seed(&self, retain_rows: u32) -> StorageResult<ProjectionSeed> {
        dispatch!(self.projection_seed(retain_rows))
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}
