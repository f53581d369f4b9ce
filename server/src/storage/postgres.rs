//! The PostgreSQL backend: every SQL statement gantry runs on PostgreSQL lives in this file.
//!
//! Several `gantry serve` nodes share one database, so everything that SQLite got from having a
//! single writer is made explicit here:
//! - change positions come from one counter row updated just before commit, which serialises the
//!   committing writers so that positions follow commit order (a reader never skips a change);
//! - a commit notifies the other nodes (`pg_notify`, delivered at commit) and each node's listener
//!   wakes its projector, which reads the log itself;
//! - jobs are claimed with `FOR UPDATE SKIP LOCKED`, and the partial unique indexes (one running
//!   job per repo, one queued job per target) are the arbiters of races between nodes;
//! - maintenance that every node runs (lease expiry, periodic refresh, pruning) locks what it
//!   works on, so two nodes doing it at once do it once.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use gantry_types::admin::{Org, TokenInfo};
use gantry_types::ws::Op;
use gantry_types::{
    Branch, Job, JobKind, JobStatus, Progress, ProgressLine, Repo, Task, TaskStatus,
};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::TopicRows;
use super::changes::{ChangeSet, StoredChange, TopicKey};
use super::rows;
use super::{
    BranchLink, BranchState, CancelOutcome, ClaimedJob, Enqueued, FinishJob, JobEnd, LeaseRenewed,
    NewJob, NewTask, ProjectionSeed, PrunePolicy, StorageError, StorageResult, WebhookTarget,
    fenced,
};
use crate::auth::{Principal, Scope};
use crate::clock::{ms_after, now_ms, ts};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

type Tx = Transaction<'static, Postgres>;

/// The `application_name` of gantry's connections when the URL does not set one; it lets an
/// operator find (or cut) a node's sessions in `pg_stat_activity`.
const DEFAULT_APPLICATION_NAME: &str = "gantry";

/// Connections per node. Workers, heartbeats, progress writers, the projector and HTTP requests
/// share them; the LISTEN connection is separate.
const POOL_SIZE: u32 = 10;

/// How often a claim is retried at once when another node won the race for the same repo.
const CLAIM_TRIES: usize = 4;

/// Keys (second half; the first is the schema's hash) of the transaction-scoped advisory locks
/// that serialise cluster-wide chores, so that two nodes never do them at the same time.
mod lock {
    pub const INITIALISE: i32 = 1;
    pub const REFRESH: i32 = 2;
    pub const PRUNE: i32 = 3;
}

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    listen_pool: PgPool,
    /// The NOTIFY channel of this schema (several gantry schemas may share a database).
    channel: Arc<str>,
    commits: Arc<watch::Sender<i64>>,
    stop: CancellationToken,
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether `error` is a statement given up after `lock_timeout`.
fn lock_timed_out(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().as_deref() == Some("55P03"),
        _ => false,
    }
}

/// Whether `error` is a unique violation of the index `constraint`.
fn violates(error: &sqlx::Error, constraint: &str) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}

impl PgStore {
    /// Connects, brings the schema up to date, and starts listening for other nodes' commits.
    ///
    /// The URL may choose a schema with `options=-c search_path=NAME` and name the connections
    /// with `application_name=NAME` (default `gantry`).
    pub async fn open(url: &str) -> StorageResult<PgStore> {
        let mut options = PgConnectOptions::from_str(url)?;
        if options.get_application_name().is_none() {
            options = options.application_name(DEFAULT_APPLICATION_NAME);
        }
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            // A connection cut by the server (restart, failover, pg_terminate_backend) is found
            // dead here and replaced, instead of failing the request that drew it.
            .test_before_acquire(true)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&pool)
            .await?;
        // Channel names are identifiers: at most 63 bytes. A longer schema name is cut on a
        // character boundary; a shared prefix would only cost spurious wake-ups.
        let mut channel = format!("gantry_changes.{schema}");
        while channel.len() > 63 {
            channel.pop();
        }
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        let store = PgStore {
            pool,
            listen_pool,
            channel: channel.into(),
            commits: Arc::new(watch::channel(0).0),
            stop: CancellationToken::new(),
        };
        store.initialise().await?;
        let position = store.max_position().await?;
        store.commits.send_replace(position);
        tokio::spawn(listen(
            store.listen_pool.clone(),
            store.channel.clone(),
            store.commits.clone(),
            store.stop.clone(),
        ));
        Ok(store)
    }

    /// Creates the epoch and the default organisation on first start; nodes starting together
    /// take turns.
    async fn initialise(&self) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        advisory_lock(&mut tx, lock::INITIALISE).await?;
        let epoch = uuid::Uuid::new_v4().simple().to_string();
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(epoch)
        .execute(&mut *tx)
        .await?;
        let org: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'default_org'")
                .fetch_optional(&mut *tx)
                .await?;
        if org.is_none() {
            let id = new_id();
            sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, 'default', $2)")
                .bind(&id)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO meta (key, value) VALUES ('default_org', $1)")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn begin(&self) -> StorageResult<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Appends the change-log rows, notifies every node, and commits; then wakes the projector.
    async fn commit(&self, mut tx: Tx, changes: ChangeSet) -> StorageResult<()> {
        let mut last = None;
        if !changes.is_empty() {
            let (topics, ops): (Vec<String>, Vec<String>) = changes.into_rows().unzip();
            let count = i64::try_from(topics.len()).unwrap_or(i64::MAX);
            // Taking the positions is the transaction's last lock: the counter row stays locked
            // until commit, so the next writer gets larger positions only after this one is
            // visible, and it never waits on anything while holding the row (no deadlock).
            // The notification is queued in the transaction and delivered at commit.
            let position: i64 = sqlx::query(
                "WITH counter AS ( \
                     UPDATE change_counter SET position = position + $1 RETURNING position), \
                 appended AS ( \
                     INSERT INTO change_log (position, topic, ops, committed_at) \
                     SELECT counter.position - $1 + u.ord, u.topic, u.ops, $4 \
                     FROM counter, UNNEST($2::text[], $3::text[]) WITH ORDINALITY \
                         AS u (topic, ops, ord)) \
                 SELECT counter.position, pg_notify($5, counter.position::text)::text \
                 FROM counter",
            )
            .bind(count)
            .bind(topics)
            .bind(ops)
            .bind(now_ms())
            .bind(&*self.channel)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            last = Some(position);
        }
        tx.commit().await?;
        if let Some(position) = last {
            self.commits.send_modify(|p| *p = (*p).max(position));
        }
        Ok(())
    }

    async fn max_position(&self) -> StorageResult<i64> {
        Ok(sqlx::query_scalar("SELECT position FROM change_counter")
            .fetch_one(&self.pool)
            .await?)
    }

    pub fn commits(&self) -> watch::Receiver<i64> {
        self.commits.subscribe()
    }

    pub async fn close(&self) {
        self.stop.cancel();
        self.pool.close().await;
        self.listen_pool.close().await;
    }

    pub async fn epoch(&self) -> StorageResult<String> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'epoch'")
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StorageError::NotFound("epoch"))
    }

    pub async fn default_org_id(&self) -> StorageResult<String> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'default_org'")
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StorageError::NotFound("default organisation"))
    }

    pub async fn create_org(&self, name: &str) -> StorageResult<String> {
        let mut tx = self.begin().await?;
        let id = new_id();
        let inserted = sqlx::query(
            "INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StorageError::AlreadyExists("organisation"));
        }
        self.commit(tx, ChangeSet::default()).await?;
        Ok(id)
    }

    pub async fn insert_token(
        &self,
        org_id: &str,
        token_hash: &str,
        scope: Scope,
        label: &str,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO tokens (id, org_id, hash, scope, label, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING",
        )
        .bind(new_id())
        .bind(org_id)
        .bind(token_hash)
        .bind(scope.as_str())
        .bind(label)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        self.commit(tx, ChangeSet::default()).await
    }

    pub async fn find_token(&self, token_hash: &str) -> StorageResult<Option<Principal>> {
        let row = sqlx::query(
            "SELECT id, org_id, scope FROM tokens WHERE hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let scope: String = row.try_get("scope")?;
        Ok(Some(Principal {
            token_id: row.try_get("id")?,
            org_id: row.try_get("org_id")?,
            scope: Scope::parse(&scope)
                .ok_or_else(|| StorageError::Corrupt(format!("token scope {scope:?}")))?,
        }))
    }

    pub async fn create_token(
        &self,
        org_id: &str,
        token_hash: &str,
        scope: Scope,
        label: Option<&str>,
    ) -> StorageResult<TokenInfo> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO tokens (id, org_id, hash, scope, label, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING \
             RETURNING id, org_id, scope, label, created_at, revoked_at",
        )
        .bind(new_id())
        .bind(org_id)
        .bind(token_hash)
        .bind(scope.as_str())
        .bind(label)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StorageError::AlreadyExists("token"));
        };
        let info = token_info(&row)?;
        self.commit(tx, ChangeSet::default()).await?;
        Ok(info)
    }

    pub async fn list_tokens(&self) -> StorageResult<Vec<TokenInfo>> {
        sqlx::query(
            "SELECT id, org_id, scope, label, created_at, revoked_at FROM tokens \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(token_info)
        .collect()
    }

    pub async fn revoke_token(&self, token_id: &str) -> StorageResult<Option<TokenInfo>> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(token_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT id, org_id, scope, label, created_at, revoked_at FROM tokens WHERE id = $1",
        )
        .bind(token_id)
        .fetch_optional(&mut *tx)
        .await?;
        let info = row.as_ref().map(token_info).transpose()?;
        self.commit(tx, ChangeSet::default()).await?;
        Ok(info)
    }

    pub async fn revoked_tokens_since(&self, since_ms: i64) -> StorageResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT id, revoked_at FROM tokens WHERE revoked_at IS NOT NULL AND revoked_at >= $1",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("revoked_at")?)))
            .collect()
    }

    pub async fn find_org(&self, id_or_name: &str) -> StorageResult<Option<Org>> {
        let row = sqlx::query(
            "SELECT id, name, created_at FROM orgs WHERE id = $1 OR name = $1 \
             ORDER BY (id = $1) DESC LIMIT 1",
        )
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(org).transpose()
    }

    pub async fn list_orgs(&self) -> StorageResult<Vec<Org>> {
        sqlx::query("SELECT id, name, created_at FROM orgs ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(org)
            .collect()
    }

    pub async fn create_repo(
        &self,
        org_id: &str,
        name: &str,
        remote_url: &str,
        trunk: &str,
        first_sync: NewJob,
    ) -> StorageResult<(Repo, Job)> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let row = sqlx::query(concat!(
            "INSERT INTO repos (id, org_id, name, remote_url, trunk, branch_sync_status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) \
             ON CONFLICT (org_id, name) DO NOTHING RETURNING ",
            repo_columns!(),
            ""
        ))
        .bind(&first_sync.repo_id)
        .bind(org_id)
        .bind(name)
        .bind(remote_url)
        .bind(trunk)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StorageError::AlreadyExists("repo"));
        };
        let repo = rows::repo(&row)?;
        let job = insert_job(&mut tx, &first_sync, now)
            .await?
            .ok_or(StorageError::AlreadyExists("job"))?;
        let mut changes = ChangeSet::default();
        changes.repo(org_id, &repo);
        changes.job(&job);
        self.commit(tx, changes).await?;
        Ok((repo, job))
    }

    pub async fn set_webhook_secret(
        &self,
        repo_id: &str,
        secret: Option<&str>,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE repos SET webhook_secret = $2 WHERE id = $1")
            .bind(repo_id)
            .bind(secret)
            .execute(&mut *tx)
            .await?;
        self.commit(tx, ChangeSet::default()).await
    }

    pub async fn webhook_targets(&self, urls: &[String]) -> StorageResult<Vec<WebhookTarget>> {
        let mut targets = Vec::new();
        for url in urls {
            let rows =
                sqlx::query("SELECT id, org_id, webhook_secret FROM repos WHERE remote_url = $1")
                    .bind(url)
                    .fetch_all(&self.pool)
                    .await?;
            for row in &rows {
                let repo_id: String = row.try_get("id")?;
                if targets.iter().any(|t: &WebhookTarget| t.repo_id == repo_id) {
                    continue;
                }
                targets.push(WebhookTarget {
                    repo_id,
                    org_id: row.try_get("org_id")?,
                    secret: row.try_get("webhook_secret")?,
                });
            }
        }
        Ok(targets)
    }

    pub async fn create_task(&self, new: NewTask) -> StorageResult<(Task, Option<Job>)> {
        let mut tx = self.begin().await?;
        // Task creations on one repo take turns (across nodes), so that the checks below (branch
        // already claimed, register job already standing) hold until this one commits. NO KEY
        // UPDATE leaves inserts of the repo's jobs (foreign-key checks) unblocked.
        sqlx::query("SELECT id FROM repos WHERE id = $1 FOR NO KEY UPDATE")
            .bind(&new.repo_id)
            .fetch_optional(&mut *tx)
            .await?;
        let now = now_ms();
        if !new.allow_shared_branch {
            let claimed: Option<String> = sqlx::query_scalar(
                "SELECT id FROM tasks WHERE repo_id = $1 AND branch = $2 \
                 AND status IN ('pending_branch_attach', 'ready') ORDER BY created_at LIMIT 1",
            )
            .bind(&new.repo_id)
            .bind(&new.branch)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(task) = claimed {
                return Err(StorageError::BranchClaimed(task));
            }
        }
        let fresh_head: Option<String> = sqlx::query_scalar(
            "SELECT head_sha FROM branches WHERE repo_id = $1 AND name = $2 AND last_seen_at >= $3",
        )
        .bind(&new.repo_id)
        .bind(&new.branch)
        .bind(now.saturating_sub(ms(new.stale_after)))
        .fetch_optional(&mut *tx)
        .await?;
        let mut changes = ChangeSet::default();
        let (status, head_sha, attach_job, created_job) = match fresh_head {
            Some(head) => (TaskStatus::Ready, Some(head), None, None),
            None => match standing_register_job(&mut tx, &new.repo_id, &new.branch).await? {
                Some(job_id) => (TaskStatus::PendingBranchAttach, None, Some(job_id), None),
                None => {
                    let register = NewJob {
                        repo_id: new.repo_id.clone(),
                        kind: JobKind::RegisterExistingBranch,
                        branch: Some(new.branch.clone()),
                        parent: None,
                        max_attempts: new.max_attempts,
                        idempotency_key: None,
                    };
                    match insert_job(&mut tx, &register, now).await? {
                        Some(job) => {
                            changes.job(&job);
                            (
                                TaskStatus::PendingBranchAttach,
                                None,
                                Some(job.id.clone()),
                                Some(job),
                            )
                        }
                        // A concurrent request (any node) queued the same register job after
                        // the check above; it is committed now, so attach to it.
                        None => {
                            let job_id = standing_register_job(&mut tx, &new.repo_id, &new.branch)
                                .await?
                                .ok_or(StorageError::Contended("register job"))?;
                            (TaskStatus::PendingBranchAttach, None, Some(job_id), None)
                        }
                    }
                }
            },
        };
        let row = sqlx::query(concat!(
            "INSERT INTO tasks (id, repo_id, title, branch, status, attach_job_id, head_sha, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING ",
            task_columns!()
        ))
        .bind(new_id())
        .bind(&new.repo_id)
        .bind(&new.title)
        .bind(&new.branch)
        .bind(status.as_str())
        .bind(&attach_job)
        .bind(&head_sha)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let task = rows::task(&row)?;
        changes.task(&task);
        self.commit(tx, changes).await?;
        Ok((task, created_job))
    }

    pub async fn enqueue_due_syncs(
        &self,
        interval: Duration,
        max_attempts: u32,
    ) -> StorageResult<Vec<Job>> {
        let mut tx = self.begin().await?;
        // Every node runs this timer; one at a time, each sees the syncs the previous one queued.
        advisory_lock(&mut tx, lock::REFRESH).await?;
        let now = now_ms();
        let cutoff = now.saturating_sub(ms(interval));
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT r.id FROM repos r WHERE (r.branch_sync_at IS NULL OR r.branch_sync_at < $1) \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.repo_id = r.id AND j.kind = 'sync_repo' \
                 AND (j.status IN ('queued', 'running') OR j.created_at >= $1))",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        let mut changes = ChangeSet::default();
        let mut jobs = Vec::new();
        for repo_id in due {
            let new = NewJob {
                repo_id,
                kind: JobKind::SyncRepo,
                branch: None,
                parent: None,
                max_attempts,
                idempotency_key: None,
            };
            // A sync queued meanwhile by a request already does the refresh.
            if let Some(job) = insert_job(&mut tx, &new, now).await? {
                changes.job(&job);
                jobs.push(job);
            }
        }
        self.commit(tx, changes).await?;
        Ok(jobs)
    }

    pub async fn list_repos(&self, org_id: &str) -> StorageResult<Vec<Repo>> {
        sqlx::query(concat!(
            "SELECT ",
            repo_columns!(),
            " FROM repos WHERE org_id = $1 ORDER BY name"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::repo)
        .collect()
    }

    pub async fn get_repo(&self, org_id: &str, repo_id: &str) -> StorageResult<Option<Repo>> {
        sqlx::query(concat!(
            "SELECT ",
            repo_columns!(),
            " FROM repos WHERE id = $1 AND org_id = $2"
        ))
        .bind(repo_id)
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rows::repo)
        .transpose()
    }

    pub async fn find_repo_by_name(&self, org_id: &str, name: &str) -> StorageResult<Option<Repo>> {
        sqlx::query(concat!(
            "SELECT ",
            repo_columns!(),
            " FROM repos WHERE name = $1 AND org_id = $2"
        ))
        .bind(name)
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rows::repo)
        .transpose()
    }

    pub async fn repo_org(&self, repo_id: &str) -> StorageResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT org_id FROM repos WHERE id = $1")
            .bind(repo_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn job_org(&self, job_id: &str) -> StorageResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT r.org_id FROM jobs j JOIN repos r ON r.id = j.repo_id WHERE j.id = $1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn repo_remote_url(&self, repo_id: &str) -> StorageResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT remote_url FROM repos WHERE id = $1")
                .bind(repo_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn branch_links(&self, repo_id: &str) -> StorageResult<Vec<BranchLink>> {
        let rows = sqlx::query("SELECT name, parent, tracked FROM branches WHERE repo_id = $1")
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(BranchLink {
                    name: row.try_get("name")?,
                    parent: row.try_get("parent")?,
                    tracked: row.try_get("tracked")?,
                })
            })
            .collect()
    }

    pub async fn list_branches(&self, repo_id: &str) -> StorageResult<Vec<Branch>> {
        sqlx::query(concat!(
            "SELECT ",
            branch_columns!(),
            " FROM branches WHERE repo_id = $1 ORDER BY name"
        ))
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::branch)
        .collect()
    }

    pub async fn list_tasks(&self, repo_id: &str) -> StorageResult<Vec<Task>> {
        sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE repo_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::task)
        .collect()
    }

    pub async fn enqueue_job(&self, new: NewJob) -> StorageResult<Enqueued> {
        // Identical requests may race on two nodes: the unique indexes let one insert win, and
        // the loser finds the winner's job on its next look (it is committed by then).
        for _ in 0..3 {
            if let Some(enqueued) = self.try_enqueue_job(&new).await? {
                return Ok(enqueued);
            }
        }
        Err(StorageError::Contended("job"))
    }

    /// One look-then-insert; `None` when a concurrent identical request inserted first.
    async fn try_enqueue_job(&self, new: &NewJob) -> StorageResult<Option<Enqueued>> {
        let mut tx = self.begin().await?;
        let target_key = new.target_key();
        if let Some(key) = &new.idempotency_key {
            let existing = sqlx::query(concat!(
                "SELECT ",
                job_columns!(),
                ", target_key FROM jobs \
                 WHERE repo_id = $1 AND idempotency_key = $2"
            ))
            .bind(&new.repo_id)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                let job = rows::job(&row)?;
                let existing_target: String = row.try_get("target_key")?;
                return if existing_target == target_key {
                    Ok(Some(Enqueued::Existing(job)))
                } else {
                    Err(StorageError::IdempotencyMismatch(job.id))
                };
            }
        }
        let queued = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs \
             WHERE repo_id = $1 AND target_key = $2 AND status = 'queued'"
        ))
        .bind(&new.repo_id)
        .bind(&target_key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = queued {
            return Ok(Some(Enqueued::Existing(rows::job(&row)?)));
        }
        let Some(job) = insert_job(&mut tx, new, now_ms()).await? else {
            return Ok(None);
        };
        let mut changes = ChangeSet::default();
        changes.job(&job);
        self.commit(tx, changes).await?;
        Ok(Some(Enqueued::Created(job)))
    }

    pub async fn get_job(&self, org_id: &str, job_id: &str) -> StorageResult<Option<Job>> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1 \
             AND repo_id IN (SELECT id FROM repos WHERE org_id = $2)"
        ))
        .bind(job_id)
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rows::job)
        .transpose()
    }

    pub async fn list_jobs(&self, repo_id: &str, limit: u32) -> StorageResult<Vec<Job>> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE repo_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(repo_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::job)
        .collect()
    }

    /// Claims up to `limit` due jobs, each of a repo with no running job, in one transaction.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> StorageResult<Vec<ClaimedJob>> {
        for _ in 0..CLAIM_TRIES {
            match self.try_claim_jobs(worker, lease, limit).await {
                // Another node claimed a job of the same repo at the same moment and committed
                // first. That repo is now busy, so the next try looks past it; after a few
                // tries "nothing claimed now" is the answer, not an error.
                Err(StorageError::Database(e))
                    if violates(&e, "jobs_one_running_per_repo") || lock_timed_out(&e) => {}
                other => return other,
            }
        }
        Ok(Vec::new())
    }

    async fn try_claim_jobs(
        &self,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> StorageResult<Vec<ClaimedJob>> {
        let mut tx = self.begin().await?;
        // A claim can wait inside the unique index: when its snapshot predates another node's
        // claim on the same repo, it waits on that job's writes (progress, then its end) until
        // the job stops running, and only then becomes the repo's running job. The wait is cut
        // short, so that a busy repo never holds up this node's claims on other repos; each
        // start time is taken after its claim.
        sqlx::query("SET LOCAL lock_timeout = '200ms'")
            .execute(&mut *tx)
            .await?;
        let mut changes = ChangeSet::default();
        let mut claimed = Vec::new();
        while claimed.len() < limit {
            match claim_in(&mut tx, worker, lease, &mut changes).await? {
                Some(job) => claimed.push(job),
                None => break,
            }
        }
        if claimed.is_empty() {
            return Ok(claimed);
        }
        // Taking the positions waits like any writer (for the change counter, under load).
        sqlx::query("SET LOCAL lock_timeout = DEFAULT")
            .execute(&mut *tx)
            .await?;
        self.commit(tx, changes).await?;
        Ok(claimed)
    }

    pub async fn heartbeat_job(
        &self,
        job_id: &str,
        attempt: u32,
        lease: Duration,
    ) -> StorageResult<LeaseRenewed> {
        let mut tx = self.begin().await?;
        let cancel_requested: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = $3 \
             WHERE id = $1 AND attempt = $2 AND status = 'running' RETURNING cancel_requested",
        )
        .bind(job_id)
        .bind(i64::from(attempt))
        .bind(ms_after(lease))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cancel_requested) = cancel_requested else {
            return Err(fenced(job_id, attempt));
        };
        self.commit(tx, ChangeSet::default()).await?;
        Ok(LeaseRenewed { cancel_requested })
    }

    /// Records several progress lines in order. Each line is its own fenced transaction here;
    /// coalescing them into one commit is a SQLite writer optimisation not yet ported.
    pub async fn report_progress_lines(
        &self,
        job_id: &str,
        attempt: u32,
        lines: &[Progress],
    ) -> StorageResult<()> {
        for line in lines {
            self.report_progress(job_id, attempt, line).await?;
        }
        Ok(())
    }

    pub async fn report_progress(
        &self,
        job_id: &str,
        attempt: u32,
        progress: &Progress,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let row = sqlx::query(concat!(
            "UPDATE jobs SET progress_step = $3, progress_total = $4, progress_text = $5, \
             progress_seq = progress_seq + 1, updated_at = $6 \
             WHERE id = $1 AND attempt = $2 AND status = 'running' \
             RETURNING ",
            job_columns!(),
            ", progress_seq"
        ))
        .bind(job_id)
        .bind(i64::from(attempt))
        .bind(i64::from(progress.step))
        .bind(i64::from(progress.total))
        .bind(&progress.text)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(fenced(job_id, attempt));
        };
        let job = rows::job(&row)?;
        let seq: i64 = row.try_get("progress_seq")?;
        let line = ProgressLine {
            job_id: job.id.clone(),
            attempt,
            seq: u32::try_from(seq).unwrap_or(u32::MAX),
            step: progress.step,
            total: progress.total,
            text: progress.text.clone(),
            at: ts(now),
        };
        sqlx::query(
            "INSERT INTO job_progress (job_id, seq, attempt, step, total, text, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&line.job_id)
        .bind(seq)
        .bind(i64::from(attempt))
        .bind(i64::from(line.step))
        .bind(i64::from(line.total))
        .bind(&line.text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut changes = ChangeSet::default();
        changes.job(&job);
        changes.progress_line(&line);
        self.commit(tx, changes).await
    }

    /// Records how several running jobs ended, in one transaction. Each entry is fenced on its
    /// own: a stale one answers `Fenced` and writes nothing. An error of the transaction as a
    /// whole is the outer error.
    pub async fn finish_jobs(&self, ends: &[FinishJob]) -> StorageResult<Vec<StorageResult<Job>>> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let mut changes = ChangeSet::default();
        let mut results = Vec::with_capacity(ends.len());
        for end in ends {
            results.push(
                finish_in(&mut tx, end, now, &mut changes)
                    .await?
                    .ok_or_else(|| fenced(&end.job_id, end.attempt)),
            );
        }
        self.commit(tx, changes).await?;
        Ok(results)
    }

    pub async fn retry_job(
        &self,
        job_id: &str,
        attempt: u32,
        delay: Duration,
        message: &str,
    ) -> StorageResult<Job> {
        self.requeue(job_id, Some(attempt), delay, message, false)
            .await
    }

    pub async fn release_job(&self, job_id: &str, attempt: u32) -> StorageResult<Job> {
        self.requeue(
            job_id,
            Some(attempt),
            Duration::ZERO,
            "handed back at shutdown",
            true,
        )
        .await
    }

    /// Puts a running job back in the queue. With `attempt`, only if it still holds that attempt.
    /// `refund` gives back the attempt (a shutdown is not the job's failure).
    async fn requeue(
        &self,
        job_id: &str,
        attempt: Option<u32>,
        delay: Duration,
        message: &str,
        refund: bool,
    ) -> StorageResult<Job> {
        let mut tx = self.begin().await?;
        let mut changes = ChangeSet::default();
        let job = requeue_in(
            &mut tx,
            job_id,
            attempt,
            delay,
            message,
            refund,
            &mut changes,
        )
        .await?
        .ok_or_else(|| fenced(job_id, attempt.unwrap_or(0)))?;
        self.commit(tx, changes).await?;
        Ok(job)
    }

    pub async fn cancel_job(&self, org_id: &str, job_id: &str) -> StorageResult<CancelOutcome> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        // The row is locked, so a claim on another node cannot move it between this read and
        // the update that depends on it.
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM jobs WHERE id = $1 \
             AND repo_id IN (SELECT id FROM repos WHERE org_id = $2) FOR UPDATE",
        )
        .bind(job_id)
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(status) = status else {
            return Err(StorageError::NotFound("job"));
        };
        let (sql, requested) = match status.as_str() {
            "queued" => (
                concat!(
                    "UPDATE jobs SET status = 'cancelled', message = 'cancelled before it started', \
                     completed_at = $2, updated_at = $2 WHERE id = $1 AND status = 'queued' RETURNING ",
                    job_columns!()
                ),
                false,
            ),
            "running" => (
                concat!(
                    "UPDATE jobs SET cancel_requested = TRUE, updated_at = $2 \
                     WHERE id = $1 AND status = 'running' RETURNING ",
                    job_columns!()
                ),
                true,
            ),
            _ => return Err(StorageError::JobFinished(job_id.to_owned())),
        };
        let row = sqlx::query(sql)
            .bind(job_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let job = rows::job(&row)?;
        let mut changes = ChangeSet::default();
        changes.job(&job);
        settle_tasks(&mut tx, &job, now, &mut changes).await?;
        self.commit(tx, changes).await?;
        Ok(if requested {
            CancelOutcome::Requested(job)
        } else {
            CancelOutcome::Cancelled(job)
        })
    }

    pub async fn expire_leases(&self, all_running: bool) -> StorageResult<Vec<Job>> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        // Every node runs this check. Locking the expired rows (and skipping those another
        // node is handling) means each lost job is requeued once.
        let expired = sqlx::query(
            "SELECT id, attempt, max_attempts FROM jobs WHERE status = 'running' \
             AND ($1 OR lease_expires_at < $2) ORDER BY id FOR UPDATE SKIP LOCKED",
        )
        .bind(all_running)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut changes = ChangeSet::default();
        let mut jobs = Vec::new();
        for row in &expired {
            let id: String = row.try_get("id")?;
            let attempt: i64 = row.try_get("attempt")?;
            let max_attempts: i64 = row.try_get("max_attempts")?;
            let job = if attempt < max_attempts {
                let message = format!("attempt {attempt} lost its worker; retrying");
                requeue_in(
                    &mut tx,
                    &id,
                    None,
                    Duration::ZERO,
                    &message,
                    false,
                    &mut changes,
                )
                .await?
            } else {
                let message =
                    format!("attempt {attempt} of {max_attempts} lost its worker; giving up");
                fail_running_in(&mut tx, &id, &message, now, &mut changes).await?
            };
            jobs.extend(job);
        }
        self.commit(tx, changes).await?;
        Ok(jobs)
    }

    pub async fn prune(&self, policy: PrunePolicy) -> StorageResult<(u64, u64)> {
        let mut tx = self.begin().await?;
        // Every node prunes; one at a time, so that a removal is announced once.
        advisory_lock(&mut tx, lock::PRUNE).await?;
        let now = now_ms();
        let doomed = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM ( \
                 SELECT id, completed_at, ROW_NUMBER() OVER \
                     (PARTITION BY repo_id ORDER BY completed_at DESC, id DESC) AS newest \
                 FROM jobs WHERE status IN ('completed', 'error', 'cancelled')) AS finished \
             WHERE completed_at < $1 OR newest > $2) RETURNING id, repo_id",
        )
        .bind(now.saturating_sub(ms(policy.finished_job_max_age)))
        .bind(i64::from(policy.finished_jobs_per_repo))
        .fetch_all(&mut *tx)
        .await?;
        let mut changes = ChangeSet::default();
        for row in &doomed {
            let id: String = row.try_get("id")?;
            let repo_id: String = row.try_get("repo_id")?;
            changes.job_removed(&repo_id, &id);
        }
        let log = sqlx::query(
            "DELETE FROM change_log WHERE committed_at < $1 \
             OR position <= (SELECT position FROM change_counter) - $2",
        )
        .bind(now.saturating_sub(ms(policy.change_log_max_age)))
        .bind(i64::from(policy.change_log_max_rows))
        .execute(&mut *tx)
        .await?;
        self.commit(tx, changes).await?;
        Ok((doomed.len() as u64, log.rows_affected()))
    }

    pub async fn changes_after(
        &self,
        position: i64,
        limit: u32,
    ) -> StorageResult<Vec<StoredChange>> {
        let rows = sqlx::query(
            "SELECT position, topic, ops, committed_at FROM change_log \
             WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .bind(position)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_change).collect()
    }

    pub async fn projection_seed(&self, retain_rows: u32) -> StorageResult<ProjectionSeed> {
        // One snapshot for every table and the counter: the rows are exactly the state after
        // `position`, and the log after it holds everything that came later.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let position: i64 = sqlx::query_scalar("SELECT position FROM change_counter")
            .fetch_one(&mut *tx)
            .await?;
        let last_positions: HashMap<String, i64> =
            sqlx::query("SELECT topic, MAX(position) AS p FROM change_log GROUP BY topic")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("topic")?, row.try_get("p")?)))
                .collect::<StorageResult<_>>()?;
        let mut topics: HashMap<String, Vec<(String, Value)>> = HashMap::new();
        let mut add = |topic: String, key: String, row: Value| {
            topics.entry(topic).or_default().push((key, row));
        };
        for row in sqlx::query(concat!("SELECT ", repo_columns!(), " FROM repos"))
            .fetch_all(&mut *tx)
            .await?
        {
            let repo = rows::repo(&row)?;
            let org_id: String = row.try_get("org_id")?;
            add(TopicKey::org_repos(&org_id), repo.id.clone(), json(&repo));
        }
        for row in sqlx::query(concat!("SELECT ", job_columns!(), " FROM jobs"))
            .fetch_all(&mut *tx)
            .await?
        {
            let job = rows::job(&row)?;
            let value = json(&job);
            add(
                TopicKey::repo_jobs(&job.repo_id),
                job.id.clone(),
                value.clone(),
            );
            add(TopicKey::job(&job.id), job.id.clone(), value);
        }
        for row in
            sqlx::query("SELECT job_id, seq, attempt, step, total, text, at FROM job_progress")
                .fetch_all(&mut *tx)
                .await?
        {
            let line = rows::progress_line(&row)?;
            add(
                TopicKey::job(&line.job_id),
                TopicKey::progress_line(&line.job_id, line.seq),
                json(&line),
            );
        }
        for row in sqlx::query(concat!("SELECT ", branch_columns!(), " FROM branches"))
            .fetch_all(&mut *tx)
            .await?
        {
            let branch = rows::branch(&row)?;
            add(
                TopicKey::repo_branches(&branch.repo_id),
                branch.name.clone(),
                json(&branch),
            );
        }
        for row in sqlx::query(concat!("SELECT ", task_columns!(), " FROM tasks"))
            .fetch_all(&mut *tx)
            .await?
        {
            let task = rows::task(&row)?;
            add(
                TopicKey::repo_tasks(&task.repo_id),
                task.id.clone(),
                json(&task),
            );
        }
        let retained = sqlx::query(
            "SELECT position, topic, ops, committed_at FROM ( \
                 SELECT * FROM change_log ORDER BY position DESC LIMIT $1) AS tail \
             ORDER BY position",
        )
        .bind(i64::from(retain_rows))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(stored_change)
        .collect::<StorageResult<Vec<_>>>()?;
        tx.commit().await?;
        let mut all_topics: Vec<String> = topics.keys().cloned().collect();
        all_topics.extend(last_positions.keys().cloned());
        all_topics.sort();
        all_topics.dedup();
        let topics = all_topics
            .into_iter()
            .map(|topic| {
                let position = last_positions.get(&topic).copied().unwrap_or(0);
                let rows = topics.remove(&topic).unwrap_or_default();
                TopicRows {
                    topic,
                    position,
                    rows,
                }
            })
            .collect();
        Ok(ProjectionSeed {
            position,
            topics,
            retained,
        })
    }
}

fn json(row: &impl serde::Serialize) -> Value {
    serde_json::to_value(row).unwrap_or(Value::Null)
}

fn stored_change(row: &PgRow) -> StorageResult<StoredChange> {
    let ops: String = row.try_get("ops")?;
    let ops: Vec<Op> = serde_json::from_str(&ops)
        .map_err(|e| StorageError::Corrupt(format!("change log ops: {e}")))?;
    Ok(StoredChange {
        position: row.try_get("position")?,
        topic: row.try_get("topic")?,
        committed_at: ts(row.try_get("committed_at")?),
        ops,
    })
}

/// Inserts a queued job; `None` when an identical one is already queued, or the idempotency key
/// is taken (by a concurrent request on any node: the unique indexes decide).
async fn insert_job(tx: &mut Tx, new: &NewJob, now: i64) -> StorageResult<Option<Job>> {
    let row = sqlx::query(concat!(
        "INSERT INTO jobs (id, repo_id, kind, branch, parent, target_key, status, max_attempts, \
         run_at, idempotency_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $8, $8) \
         ON CONFLICT DO NOTHING RETURNING ",
        job_columns!(),
        ""
    ))
    .bind(new_id())
    .bind(&new.repo_id)
    .bind(new.kind.as_str())
    .bind(&new.branch)
    .bind(&new.parent)
    .bind(new.target_key())
    .bind(i64::from(new.max_attempts))
    .bind(now)
    .bind(&new.idempotency_key)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(rows::job).transpose()
}

/// The queued or running register job of a branch, if any.
async fn standing_register_job(
    tx: &mut Tx,
    repo_id: &str,
    branch: &str,
) -> StorageResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM jobs WHERE repo_id = $1 AND kind = 'register_existing_branch' \
         AND branch = $2 AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1",
    )
    .bind(repo_id)
    .bind(branch)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Takes a transaction-scoped advisory lock for a cluster-wide chore of this schema.
async fn advisory_lock(tx: &mut Tx, key: i32) -> StorageResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema()), $1)")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Running -> queued inside a transaction. When another job for the same target was queued
/// meanwhile, that job will do this one's work, so this one ends `error` as superseded instead.
async fn requeue_in(
    tx: &mut Tx,
    job_id: &str,
    attempt: Option<u32>,
    delay: Duration,
    message: &str,
    refund: bool,
    changes: &mut ChangeSet,
) -> StorageResult<Option<Job>> {
    let now = now_ms();
    if let Some(other) = superseding_job(tx, job_id).await? {
        return supersede(tx, job_id, &other, message, now, changes).await;
    }
    // A request on another node may queue the same target after the check above; the unique
    // index then refuses this update, and the savepoint lets the transaction go on to supersede.
    let mut savepoint = sqlx::Acquire::begin(&mut **tx).await?;
    let requeued = sqlx::query(concat!(
        "UPDATE jobs SET status = 'queued', run_at = $3, message = $4, updated_at = $5, \
         lease_owner = NULL, lease_expires_at = NULL, cancel_requested = FALSE, \
         max_attempts = max_attempts + $6 \
         WHERE id = $1 AND status = 'running' AND ($2 IS NULL OR attempt = $2) \
         RETURNING ",
        job_columns!(),
        ""
    ))
    .bind(job_id)
    .bind(attempt.map(i64::from))
    .bind(now.saturating_add(ms(delay)))
    .bind(message)
    .bind(now)
    .bind(i64::from(refund))
    .fetch_optional(&mut *savepoint)
    .await;
    let row = match requeued {
        Ok(row) => {
            savepoint.commit().await?;
            row
        }
        Err(e) if violates(&e, "jobs_one_queued_per_target") => {
            savepoint.rollback().await?;
            let other = superseding_job(tx, job_id)
                .await?
                .ok_or(StorageError::Contended("queued job"))?;
            return supersede(tx, job_id, &other, message, now, changes).await;
        }
        Err(e) => return Err(e.into()),
    };
    let Some(row) = row else { return Ok(None) };
    let job = rows::job(&row)?;
    changes.job(&job);
    release_branches(tx, &job, now, changes).await?;
    update_repo_sync(tx, &job.repo_id, "restore", None, now, changes).await?;
    Ok(Some(job))
}

/// Another queued job for the same target as `job_id`, if any.
async fn superseding_job(tx: &mut Tx, job_id: &str) -> StorageResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT q.id FROM jobs q JOIN jobs r ON q.repo_id = r.repo_id \
         AND q.target_key = r.target_key WHERE r.id = $1 AND q.status = 'queued' AND q.id <> r.id",
    )
    .bind(job_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Ends a running job as superseded by the queued `other`, moving its waiting tasks there.
async fn supersede(
    tx: &mut Tx,
    job_id: &str,
    other: &str,
    message: &str,
    now: i64,
    changes: &mut ChangeSet,
) -> StorageResult<Option<Job>> {
    let moved = sqlx::query(concat!(
        "UPDATE tasks SET attach_job_id = $2, updated_at = $3 WHERE attach_job_id = $1 \
         AND status = 'pending_branch_attach' RETURNING ",
        task_columns!()
    ))
    .bind(job_id)
    .bind(other)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    for row in &moved {
        changes.task(&rows::task(row)?);
    }
    let message = format!("{message}; superseded by queued job {other}");
    fail_running_in(tx, job_id, &message, now, changes).await
}

async fn fail_running_in(
    tx: &mut Tx,
    job_id: &str,
    message: &str,
    now: i64,
    changes: &mut ChangeSet,
) -> StorageResult<Option<Job>> {
    let row = sqlx::query(concat!(
        "UPDATE jobs SET status = 'error', message = $2, completed_at = $3, updated_at = $3, \
         lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND status = 'running' \
         RETURNING ",
        job_columns!(),
        ""
    ))
    .bind(job_id)
    .bind(message)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let job = rows::job(&row)?;
    changes.job(&job);
    release_branches(tx, &job, now, changes).await?;
    update_repo_sync(tx, &job.repo_id, "restore", None, now, changes).await?;
    settle_tasks(tx, &job, now, changes).await?;
    Ok(Some(job))
}

/// Tasks waiting on a finished register job turn `ready` with the branch's head, or
/// `attach_failed` with the job's message, in the job's own transaction.
async fn settle_tasks(
    tx: &mut Tx,
    job: &Job,
    now: i64,
    changes: &mut ChangeSet,
) -> StorageResult<()> {
    if !job.status.is_terminal() {
        return Ok(());
    }
    let waiting = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE attach_job_id = $1 AND status = 'pending_branch_attach'"
    ))
    .bind(&job.id)
    .fetch_all(&mut **tx)
    .await?;
    for row in &waiting {
        let task = rows::task(row)?;
        let head: Option<String> = if job.status == JobStatus::Completed {
            sqlx::query_scalar("SELECT head_sha FROM branches WHERE repo_id = $1 AND name = $2")
                .bind(&task.repo_id)
                .bind(&task.branch)
                .fetch_optional(&mut **tx)
                .await?
        } else {
            None
        };
        let (status, message) = match (&head, job.status) {
            (Some(_), _) => (TaskStatus::Ready, None),
            (None, JobStatus::Completed) => (
                TaskStatus::AttachFailed,
                Some(format!(
                    "branch {} was not found after registering it",
                    task.branch
                )),
            ),
            (None, status) => (
                TaskStatus::AttachFailed,
                Some(
                    job.message
                        .clone()
                        .unwrap_or_else(|| format!("the register job ended {status}")),
                ),
            ),
        };
        let row = sqlx::query(concat!(
            "UPDATE tasks SET status = $2, status_message = $3, head_sha = $4, updated_at = $5 \
             WHERE id = $1 RETURNING ",
            task_columns!()
        ))
        .bind(&task.id)
        .bind(status.as_str())
        .bind(message)
        .bind(head)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        changes.task(&rows::task(&row)?);
    }
    Ok(())
}

/// Clears `active_job_id` on the branches a finished job was working on.
/// Claims the first due job of a repo with no running job (this transaction's claims included),
/// skipping jobs another transaction holds.
async fn claim_in(
    tx: &mut Tx,
    worker: &str,
    lease: Duration,
    changes: &mut ChangeSet,
) -> StorageResult<Option<ClaimedJob>> {
    let due = now_ms();
    let claimed: Option<String> = sqlx::query_scalar(
        "UPDATE jobs SET status = 'running', attempt = attempt + 1, completed_at = NULL, \
         lease_owner = $2, progress_step = NULL, progress_total = NULL, progress_text = NULL \
         WHERE id = (SELECT j.id FROM jobs j WHERE j.status = 'queued' AND j.run_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.repo_id = j.repo_id \
                             AND r.status = 'running') \
             ORDER BY j.run_at, j.created_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED) \
         RETURNING id",
    )
    .bind(due)
    .bind(worker)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(job_id) = claimed else {
        return Ok(None);
    };
    let now = now_ms();
    let row = sqlx::query(concat!(
        "UPDATE jobs SET started_at = $2, updated_at = $2, lease_expires_at = $3 \
         WHERE id = $1 RETURNING ",
        job_columns!(),
        ""
    ))
    .bind(&job_id)
    .bind(now)
    .bind(now.saturating_add(ms(lease)))
    .fetch_one(&mut **tx)
    .await?;
    let job = rows::job(&row)?;
    let repo_row = sqlx::query(concat!(
        "UPDATE repos SET branch_sync_status = 'syncing', updated_at = $2 WHERE id = $1 \
         RETURNING ",
        repo_columns!(),
        ""
    ))
    .bind(&job.repo_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let repo = rows::repo(&repo_row)?;
    let org_id: String = repo_row.try_get("org_id")?;
    changes.job(&job);
    changes.repo(&org_id, &repo);
    if let Some(branch) = &job.branch {
        let rows = sqlx::query(concat!(
            "UPDATE branches SET active_job_id = $3, updated_at = $4 \
             WHERE repo_id = $1 AND name = $2 RETURNING ",
            branch_columns!(),
            ""
        ))
        .bind(&job.repo_id)
        .bind(branch)
        .bind(&job.id)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
        for row in &rows {
            changes.branch(&rows::branch(row)?);
        }
    }
    Ok(Some(ClaimedJob { job, repo, org_id }))
}

/// Records how one running job ended; `None` when the attempt is no longer the running one.
async fn finish_in(
    tx: &mut Tx,
    f: &FinishJob,
    now: i64,
    changes: &mut ChangeSet,
) -> StorageResult<Option<Job>> {
    let status = match f.end {
        JobEnd::Completed => JobStatus::Completed,
        JobEnd::Failed => JobStatus::Error,
        JobEnd::Cancelled => JobStatus::Cancelled,
    };
    let result = match &f.effects.result {
        Some(result) => Some(
            serde_json::to_string(result)
                .map_err(|e| StorageError::Corrupt(format!("job result: {e}")))?,
        ),
        None => None,
    };
    let row = sqlx::query(concat!(
        "UPDATE jobs SET status = $3, message = COALESCE($4, message), result = $5, \
         completed_at = $6, updated_at = $6, lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND attempt = $2 AND status = 'running' RETURNING ",
        job_columns!(),
        ""
    ))
    .bind(&f.job_id)
    .bind(i64::from(f.attempt))
    .bind(status.as_str())
    .bind(&f.effects.message)
    .bind(result)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let job = rows::job(&row)?;
    changes.job(&job);
    release_branches(tx, &job, now, changes).await?;
    let refreshed = f.effects.branches.is_some();
    if let Some(states) = &f.effects.branches {
        replace_branches(tx, &job.repo_id, states, now, changes).await?;
    }
    settle_tasks(tx, &job, now, changes).await?;
    let (sync_status, sync_error) = match (&f.end, refreshed) {
        (_, true) => ("synced", None),
        (JobEnd::Failed, false) => ("error", job.message.clone()),
        (_, false) => ("restore", None),
    };
    update_repo_sync(tx, &job.repo_id, sync_status, sync_error, now, changes).await?;
    Ok(Some(job))
}

async fn release_branches(
    tx: &mut Tx,
    job: &Job,
    now: i64,
    changes: &mut ChangeSet,
) -> StorageResult<()> {
    let rows = sqlx::query(concat!(
        "UPDATE branches SET active_job_id = NULL, updated_at = $3 \
         WHERE repo_id = $1 AND active_job_id = $2 RETURNING ",
        branch_columns!(),
        ""
    ))
    .bind(&job.repo_id)
    .bind(&job.id)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        changes.branch(&rows::branch(row)?);
    }
    Ok(())
}

/// Sets the repo's branch sync status. `restore` means "no longer syncing": back to `synced` if
/// it ever synced, else `pending`, keeping the last error.
async fn update_repo_sync(
    tx: &mut Tx,
    repo_id: &str,
    status: &str,
    error: Option<String>,
    now: i64,
    changes: &mut ChangeSet,
) -> StorageResult<()> {
    let sql = match status {
        "synced" => concat!(
            "UPDATE repos SET branch_sync_status = 'synced', branch_sync_at = $2, \
             branch_sync_error = NULL, updated_at = $2 WHERE id = $1 RETURNING ",
            repo_columns!(),
            ""
        ),
        "error" => concat!(
            "UPDATE repos SET branch_sync_status = 'error', branch_sync_error = $3, \
             updated_at = $2 WHERE id = $1 RETURNING ",
            repo_columns!(),
            ""
        ),
        _ => concat!(
            "UPDATE repos SET branch_sync_status = CASE \
                 WHEN branch_sync_error IS NOT NULL THEN 'error' \
                 WHEN branch_sync_at IS NULL THEN 'pending' ELSE 'synced' END, \
             updated_at = $2 WHERE id = $1 RETURNING ",
            repo_columns!(),
            ""
        ),
    };
    let row = sqlx::query(sql)
        .bind(repo_id)
        .bind(now)
        .bind(error)
        .fetch_one(&mut **tx)
        .await?;
    let org_id: String = row.try_get("org_id")?;
    changes.repo(&org_id, &rows::repo(&row)?);
    Ok(())
}

/// Replaces a repo's cached branch rows with what a job observed, keeping first-seen times and
/// active jobs, and removing branches that are gone.
async fn replace_branches(
    tx: &mut Tx,
    repo_id: &str,
    states: &[BranchState],
    now: i64,
    changes: &mut ChangeSet,
) -> StorageResult<()> {
    let existing: Vec<String> = sqlx::query_scalar("SELECT name FROM branches WHERE repo_id = $1")
        .bind(repo_id)
        .fetch_all(&mut **tx)
        .await?;
    let mut gone: std::collections::HashSet<String> = existing.into_iter().collect();
    for state in states {
        gone.remove(&state.name);
        let row = sqlx::query(concat!(
            "INSERT INTO branches (repo_id, name, head_sha, parent, base_sha, tracked, ahead, \
             behind, needs_restack, conflicts_with_trunk, files_changed, insertions, deletions, \
             conflict, first_seen_at, last_seen_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $14, $14, $14) \
             ON CONFLICT (repo_id, name) DO UPDATE SET head_sha = excluded.head_sha, \
             parent = excluded.parent, base_sha = excluded.base_sha, tracked = excluded.tracked, \
             ahead = excluded.ahead, behind = excluded.behind, \
             needs_restack = excluded.needs_restack, \
             conflicts_with_trunk = excluded.conflicts_with_trunk, \
             files_changed = excluded.files_changed, insertions = excluded.insertions, \
             deletions = excluded.deletions, conflict = excluded.conflict, \
             last_seen_at = excluded.last_seen_at, \
             updated_at = excluded.updated_at \
             RETURNING ",
            branch_columns!(),
            ""
        ))
        .bind(repo_id)
        .bind(&state.name)
        .bind(&state.head_sha)
        .bind(&state.parent)
        .bind(&state.base_sha)
        .bind(state.tracked)
        .bind(i64::from(state.ahead))
        .bind(i64::from(state.behind))
        .bind(state.needs_restack)
        .bind(state.conflicts_with_trunk)
        .bind(i64::from(state.diff_stat.files_changed))
        .bind(i64::from(state.diff_stat.insertions))
        .bind(i64::from(state.diff_stat.deletions))
        .bind(now)
        .bind(match &state.conflict {
            Some(conflict) => Some(
                serde_json::to_string(conflict)
                    .map_err(|e| StorageError::Corrupt(format!("branch conflict: {e}")))?,
            ),
            None => None,
        })
        .fetch_one(&mut **tx)
        .await?;
        changes.branch(&rows::branch(&row)?);
    }
    for name in gone {
        sqlx::query("DELETE FROM branches WHERE repo_id = $1 AND name = $2")
            .bind(repo_id)
            .bind(&name)
            .execute(&mut **tx)
            .await?;
        changes.branch_removed(repo_id, &name);
    }
    Ok(())
}

/// Wakes this node's projector when any node commits changes, until `stop`.
///
/// It holds the one connection of its own pool (LISTEN must stay on one session, which a shared
/// pool would hand out to others). Notifications sent while it is disconnected are lost, so after
/// every (re)connection it bumps `commits` anyway, and the projector re-reads the log after its
/// position: nothing committed in the meantime is missed.
async fn listen(
    pool: PgPool,
    channel: Arc<str>,
    commits: Arc<watch::Sender<i64>>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(50);
    let mut connected_before = false;
    while !stop.is_cancelled() {
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            listener = listener => match listener {
                Ok(listener) => listener,
                Err(error) => {
                    warn!(%error, retry_in_ms = backoff.as_millis() as u64,
                        "cannot listen for change notifications");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        if connected_before {
            info!("listening for change notifications again");
        }
        connected_before = true;
        backoff = Duration::from_millis(50);
        commits.send_modify(|_| {});
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                () = stop.cancelled() => return,
            };
            match received {
                Ok(Some(notification)) => {
                    // The payload only hurries the wake-up; the projector reads the log itself.
                    if let Ok(position) = notification.payload().parse::<i64>() {
                        commits.send_modify(|p| *p = (*p).max(position));
                    }
                }
                // sqlx lost the connection and has already reconnected and re-listened.
                Ok(None) => {
                    info!("change notifications reconnected; re-reading the log");
                    commits.send_modify(|_| {});
                }
                Err(error) => {
                    warn!(%error, "change notifications interrupted; reconnecting");
                    break;
                }
            }
        }
    }
}

fn token_info(row: &PgRow) -> StorageResult<TokenInfo> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        scope: row.try_get("scope")?,
        label: row.try_get("label")?,
        created_at: ts(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
    })
}

fn org(row: &PgRow) -> StorageResult<Org> {
    Ok(Org {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: ts(row.try_get("created_at")?),
    })
}
