//! The SQLite backend: every SQL statement gantry runs on SQLite lives in this file.
//!
//! Writes go through a pool of exactly one connection, so they never meet `SQLITE_BUSY` from each
//! other and `AUTOINCREMENT` positions follow commit order; reads use a separate pool that WAL lets
//! run beside the writer.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use gantry_types::admin::{Org, TokenInfo};
use gantry_types::ws::Op;
use gantry_types::{
    Branch, Job, JobKind, JobStatus, Progress, ProgressLine, Repo, Task, TaskStatus,
};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::watch;

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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

type Tx = Transaction<'static, Sqlite>;

/// How long a statement waits for a lock held by another process, by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    /// The connection that checkpoints the WAL (see [`checkpoint_wal`]).
    checkpoint: SqlitePool,
    /// Stops the checkpoint task when the last handle on the store is dropped.
    _checkpoint_task: Arc<tokio_util::sync::DropGuard>,
    commits: Arc<watch::Sender<i64>>,
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> StorageResult<SqliteStore> {
        Self::open_with(path, DEFAULT_BUSY_TIMEOUT).await
    }

    /// Like [`SqliteStore::open`], waiting at most `busy_timeout` for a lock another process
    /// holds before a statement fails as busy (which requests answer with 503).
    pub async fn open_with(path: &Path, busy_timeout: Duration) -> StorageResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            .foreign_keys(true);
        // The writer never checkpoints: SQLite's automatic checkpoint runs inside the commit
        // that crosses the threshold and fsyncs the database file there, a few ms that would
        // land on one request in a hundred. A separate connection does it off that path.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        let checkpoint = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(checkpoint_wal(checkpoint.clone(), stop.clone()));
        let store = SqliteStore {
            write,
            read,
            checkpoint,
            _checkpoint_task: Arc::new(stop.drop_guard()),
            commits: Arc::new(watch::channel(0).0),
        };
        store.initialise().await?;
        let position = store.max_position().await?;
        store.commits.send_replace(position);
        Ok(store)
    }

    /// Creates the epoch and the default organisation on first start.
    async fn initialise(&self) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        let epoch = uuid::Uuid::new_v4().simple().to_string();
        sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?1)")
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
        let org: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'default_org'")
                .fetch_optional(&mut *tx)
                .await?;
        if org.is_none() {
            let id = new_id();
            sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES (?1, 'default', ?2)")
                .bind(&id)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO meta (key, value) VALUES ('default_org', ?1)")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn begin(&self) -> StorageResult<Tx> {
        match self.write.begin_with("BEGIN IMMEDIATE").await {
            // A COMMIT that failed (a full disk) or a transaction SQLite rolled back on its own
            // leaves sqlx counting an open transaction on the writer connection, which then
            // refuses every later BEGIN: replace that connection, once.
            Err(sqlx::Error::InvalidSavePointStatement | sqlx::Error::BeginFailed) => {
                tracing::warn!(
                    "replacing the database writer connection after a failed transaction"
                );
                if let Ok(conn) = self.write.acquire().await {
                    let _ = conn.close().await;
                }
                Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
            }
            other => Ok(other?),
        }
    }

    /// Appends the change-log rows and commits; then wakes the projector.
    async fn commit(&self, mut tx: Tx, changes: ChangeSet) -> StorageResult<()> {
        let mut last = None;
        if !changes.is_empty() {
            let now = now_ms();
            let rows: Vec<(String, String)> = changes.into_rows().collect();
            // One statement for every topic the transaction touched (see `values_insert`).
            let sql = values_insert(
                "INSERT INTO change_log (topic, ops, committed_at) VALUES ",
                3,
                rows.len(),
                " RETURNING position",
            );
            let mut insert = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for (topic, ops) in rows {
                insert = insert.bind(topic).bind(ops).bind(now);
            }
            last = insert.fetch_all(&mut *tx).await?.into_iter().max();
        }
        tx.commit().await?;
        if let Some(position) = last {
            self.commits.send_modify(|p| *p = (*p).max(position));
        }
        Ok(())
    }

    async fn max_position(&self) -> StorageResult<i64> {
        let max: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(v) FROM (SELECT MAX(position) AS v FROM change_log \
             UNION ALL SELECT seq AS v FROM sqlite_sequence WHERE name = 'change_log')",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(max.unwrap_or(0))
    }

    pub fn commits(&self) -> watch::Receiver<i64> {
        self.commits.subscribe()
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
        self.checkpoint.close().await;
    }

    pub async fn epoch(&self) -> StorageResult<String> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'epoch'")
            .fetch_optional(&self.read)
            .await?
            .ok_or(StorageError::NotFound("epoch"))
    }

    pub async fn default_org_id(&self) -> StorageResult<String> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'default_org'")
            .fetch_optional(&self.read)
            .await?
            .ok_or(StorageError::NotFound("default organisation"))
    }

    pub async fn create_org(&self, name: &str) -> StorageResult<String> {
        let mut tx = self.begin().await?;
        let id = new_id();
        let inserted = sqlx::query(
            "INSERT INTO orgs (id, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (hash) DO NOTHING",
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
            "SELECT id, org_id, scope FROM tokens WHERE hash = ?1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.read)
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (hash) DO NOTHING \
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
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(token_info)
        .collect()
    }

    pub async fn revoke_token(&self, token_id: &str) -> StorageResult<Option<TokenInfo>> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
            .bind(token_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT id, org_id, scope, label, created_at, revoked_at FROM tokens WHERE id = ?1",
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
            "SELECT id, revoked_at FROM tokens WHERE revoked_at IS NOT NULL AND revoked_at >= ?1",
        )
        .bind(since_ms)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("revoked_at")?)))
            .collect()
    }

    pub async fn find_org(&self, id_or_name: &str) -> StorageResult<Option<Org>> {
        let row = sqlx::query(
            "SELECT id, name, created_at FROM orgs WHERE id = ?1 \
             UNION ALL SELECT id, name, created_at FROM orgs WHERE name = ?1 LIMIT 1",
        )
        .bind(id_or_name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(org).transpose()
    }

    pub async fn list_orgs(&self) -> StorageResult<Vec<Org>> {
        sqlx::query("SELECT id, name, created_at FROM orgs ORDER BY name")
            .fetch_all(&self.read)
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
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6) \
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
        let job = insert_job(&mut tx, &first_sync, now).await?;
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
        sqlx::query("UPDATE repos SET webhook_secret = ?2 WHERE id = ?1")
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
                sqlx::query("SELECT id, org_id, webhook_secret FROM repos WHERE remote_url = ?1")
                    .bind(url)
                    .fetch_all(&self.read)
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
        let now = now_ms();
        if !new.allow_shared_branch {
            let claimed: Option<String> = sqlx::query_scalar(
                "SELECT id FROM tasks WHERE repo_id = ?1 AND branch = ?2 \
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
            "SELECT head_sha FROM branches WHERE repo_id = ?1 AND name = ?2 AND last_seen_at >= ?3",
        )
        .bind(&new.repo_id)
        .bind(&new.branch)
        .bind(now.saturating_sub(ms(new.stale_after)))
        .fetch_optional(&mut *tx)
        .await?;
        let mut changes = ChangeSet::default();
        let (status, head_sha, attach_job, created_job) = match fresh_head {
            Some(head) => (TaskStatus::Ready, Some(head), None, None),
            None => {
                let standing: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE repo_id = ?1 AND kind = 'register_existing_branch' \
                     AND branch = ?2 AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1",
                )
                .bind(&new.repo_id)
                .bind(&new.branch)
                .fetch_optional(&mut *tx)
                .await?;
                match standing {
                    Some(job_id) => (TaskStatus::PendingBranchAttach, None, Some(job_id), None),
                    None => {
                        let job = insert_job(
                            &mut tx,
                            &NewJob {
                                repo_id: new.repo_id.clone(),
                                kind: JobKind::RegisterExistingBranch,
                                branch: Some(new.branch.clone()),
                                parent: None,
                                max_attempts: new.max_attempts,
                                idempotency_key: None,
                            },
                            now,
                        )
                        .await?;
                        changes.job(&job);
                        (
                            TaskStatus::PendingBranchAttach,
                            None,
                            Some(job.id.clone()),
                            Some(job),
                        )
                    }
                }
            }
        };
        let row = sqlx::query(concat!(
            "INSERT INTO tasks (id, repo_id, title, branch, status, attach_job_id, head_sha, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) RETURNING ",
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
        let now = now_ms();
        let cutoff = now.saturating_sub(ms(interval));
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT r.id FROM repos r WHERE (r.branch_sync_at IS NULL OR r.branch_sync_at < ?1) \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.repo_id = r.id AND j.kind = 'sync_repo' \
                 AND (j.status IN ('queued', 'running') OR j.created_at >= ?1))",
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
            let job = insert_job(&mut tx, &new, now).await?;
            changes.job(&job);
            jobs.push(job);
        }
        self.commit(tx, changes).await?;
        Ok(jobs)
    }

    pub async fn list_repos(&self, org_id: &str) -> StorageResult<Vec<Repo>> {
        sqlx::query(concat!(
            "SELECT ",
            repo_columns!(),
            " FROM repos WHERE org_id = ?1 ORDER BY name"
        ))
        .bind(org_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(rows::repo)
        .collect()
    }

    pub async fn get_repo(&self, org_id: &str, repo_id: &str) -> StorageResult<Option<Repo>> {
        sqlx::query(concat!(
            "SELECT ",
            repo_columns!(),
            " FROM repos WHERE id = ?1 AND org_id = ?2"
        ))
        .bind(repo_id)
        .bind(org_id)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(rows::repo)
        .transpose()
    }

    pub async fn find_repo_by_name(&self, org_id: &str, name: &str) -> StorageResult<Option<Repo>> {
        sqlx::query(concat!(
            "SELECT ",
            repo_columns!(),
            " FROM repos WHERE name = ?1 AND org_id = ?2"
        ))
        .bind(name)
        .bind(org_id)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(rows::repo)
        .transpose()
    }

    pub async fn repo_org(&self, repo_id: &str) -> StorageResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT org_id FROM repos WHERE id = ?1")
            .bind(repo_id)
            .fetch_optional(&self.read)
            .await?)
    }

    pub async fn job_org(&self, job_id: &str) -> StorageResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT r.org_id FROM jobs j JOIN repos r ON r.id = j.repo_id WHERE j.id = ?1",
        )
        .bind(job_id)
        .fetch_optional(&self.read)
        .await?)
    }

    pub async fn repo_remote_url(&self, repo_id: &str) -> StorageResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT remote_url FROM repos WHERE id = ?1")
                .bind(repo_id)
                .fetch_optional(&self.read)
                .await?,
        )
    }

    pub async fn branch_links(&self, repo_id: &str) -> StorageResult<Vec<BranchLink>> {
        let rows = sqlx::query("SELECT name, parent, tracked FROM branches WHERE repo_id = ?1")
            .bind(repo_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(BranchLink {
                    name: row.try_get("name")?,
                    parent: row.try_get("parent")?,
                    tracked: row.try_get::<i64, _>("tracked")? != 0,
                })
            })
            .collect()
    }

    pub async fn list_branches(&self, repo_id: &str) -> StorageResult<Vec<Branch>> {
        sqlx::query(concat!(
            "SELECT ",
            branch_columns!(),
            " FROM branches WHERE repo_id = ?1 ORDER BY name"
        ))
        .bind(repo_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(rows::branch)
        .collect()
    }

    pub async fn list_tasks(&self, repo_id: &str) -> StorageResult<Vec<Task>> {
        sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE repo_id = ?1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(repo_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(rows::task)
        .collect()
    }

    pub async fn enqueue_job(&self, new: NewJob) -> StorageResult<Enqueued> {
        let mut tx = self.begin().await?;
        let target_key = new.target_key();
        if let Some(key) = &new.idempotency_key {
            let existing = sqlx::query(concat!(
                "SELECT ",
                job_columns!(),
                ", target_key FROM jobs \
                 WHERE repo_id = ?1 AND idempotency_key = ?2"
            ))
            .bind(&new.repo_id)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                let job = rows::job(&row)?;
                let existing_target: String = row.try_get("target_key")?;
                return if existing_target == target_key {
                    Ok(Enqueued::Existing(job))
                } else {
                    Err(StorageError::IdempotencyMismatch(job.id))
                };
            }
        }
        let queued = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs \
             WHERE repo_id = ?1 AND target_key = ?2 AND status = 'queued'"
        ))
        .bind(&new.repo_id)
        .bind(&target_key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = queued {
            return Ok(Enqueued::Existing(rows::job(&row)?));
        }
        let job = insert_job(&mut tx, &new, now_ms()).await?;
        let mut changes = ChangeSet::default();
        changes.job(&job);
        self.commit(tx, changes).await?;
        Ok(Enqueued::Created(job))
    }

    pub async fn get_job(&self, org_id: &str, job_id: &str) -> StorageResult<Option<Job>> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = ?1 \
             AND repo_id IN (SELECT id FROM repos WHERE org_id = ?2)"
        ))
        .bind(job_id)
        .bind(org_id)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(rows::job)
        .transpose()
    }

    pub async fn list_jobs(&self, repo_id: &str, limit: u32) -> StorageResult<Vec<Job>> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE repo_id = ?1 \
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))
        .bind(repo_id)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
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
        let mut tx = self.begin().await?;
        let now = now_ms();
        let mut changes = ChangeSet::default();
        let mut claimed = Vec::new();
        while claimed.len() < limit {
            match claim_in(&mut tx, worker, lease, now, &mut changes).await? {
                Some(job) => claimed.push(job),
                None => break,
            }
        }
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
        let cancel_requested: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = ?3 \
             WHERE id = ?1 AND attempt = ?2 AND status = 'running' RETURNING cancel_requested",
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
        Ok(LeaseRenewed {
            cancel_requested: cancel_requested != 0,
        })
    }

    pub async fn report_progress_lines(
        &self,
        job_id: &str,
        attempt: u32,
        lines: &[Progress],
    ) -> StorageResult<()> {
        let Some(last) = lines.last() else {
            return Ok(());
        };
        let count = i64::try_from(lines.len()).unwrap_or(i64::MAX);
        let mut tx = self.begin().await?;
        let now = now_ms();
        let row = sqlx::query(concat!(
            "UPDATE jobs SET progress_step = ?3, progress_total = ?4, progress_text = ?5, \
             progress_seq = progress_seq + ?7, updated_at = ?6 \
             WHERE id = ?1 AND attempt = ?2 AND status = 'running' \
             RETURNING ",
            job_columns!(),
            ", progress_seq"
        ))
        .bind(job_id)
        .bind(i64::from(attempt))
        .bind(i64::from(last.step))
        .bind(i64::from(last.total))
        .bind(&last.text)
        .bind(now)
        .bind(count)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(fenced(job_id, attempt));
        };
        let job = rows::job(&row)?;
        let last_seq: i64 = row.try_get("progress_seq")?;
        let progress_lines: Vec<ProgressLine> = lines
            .iter()
            .zip(last_seq - count + 1..)
            .map(|(progress, seq)| ProgressLine {
                job_id: job.id.clone(),
                attempt,
                seq: u32::try_from(seq).unwrap_or(u32::MAX),
                step: progress.step,
                total: progress.total,
                text: progress.text.clone(),
                at: ts(now),
            })
            .collect();
        // One statement for all lines: every statement is a round trip to the connection's
        // thread, which costs more than SQLite's own work here.
        let sql = values_insert(
            "INSERT INTO job_progress (job_id, seq, attempt, step, total, text, at) VALUES ",
            7,
            progress_lines.len(),
            "",
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for line in &progress_lines {
            insert = insert
                .bind(&line.job_id)
                .bind(i64::from(line.seq))
                .bind(i64::from(attempt))
                .bind(i64::from(line.step))
                .bind(i64::from(line.total))
                .bind(&line.text)
                .bind(now);
        }
        insert.execute(&mut *tx).await?;
        let mut changes = ChangeSet::default();
        changes.job(&job);
        for line in &progress_lines {
            changes.progress_line(line);
        }
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
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM jobs WHERE id = ?1 \
             AND repo_id IN (SELECT id FROM repos WHERE org_id = ?2)",
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
                     completed_at = ?2, updated_at = ?2 WHERE id = ?1 AND status = 'queued' RETURNING ",
                    job_columns!()
                ),
                false,
            ),
            "running" => (
                concat!(
                    "UPDATE jobs SET cancel_requested = 1, updated_at = ?2 \
                     WHERE id = ?1 AND status = 'running' RETURNING ",
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
        let expired = sqlx::query(
            "SELECT id, attempt, max_attempts FROM jobs WHERE status = 'running' \
             AND (?1 OR lease_expires_at < ?2)",
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
        let now = now_ms();
        let doomed = sqlx::query(
            "SELECT id, repo_id FROM ( \
                 SELECT id, repo_id, completed_at, ROW_NUMBER() OVER \
                     (PARTITION BY repo_id ORDER BY completed_at DESC, id DESC) AS rank \
                 FROM jobs WHERE status IN ('completed', 'error', 'cancelled')) \
             WHERE completed_at < ?1 OR rank > ?2",
        )
        .bind(now.saturating_sub(ms(policy.finished_job_max_age)))
        .bind(i64::from(policy.finished_jobs_per_repo))
        .fetch_all(&mut *tx)
        .await?;
        let mut changes = ChangeSet::default();
        for row in &doomed {
            let id: String = row.try_get("id")?;
            let repo_id: String = row.try_get("repo_id")?;
            sqlx::query("DELETE FROM jobs WHERE id = ?1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            changes.job_removed(&repo_id, &id);
        }
        let log = sqlx::query(
            "DELETE FROM change_log WHERE committed_at < ?1 \
             OR position <= (SELECT MAX(position) FROM change_log) - ?2",
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
             WHERE position > ?1 ORDER BY position LIMIT ?2",
        )
        .bind(position)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(stored_change).collect()
    }

    pub async fn projection_seed(&self, retain_rows: u32) -> StorageResult<ProjectionSeed> {
        // One read transaction: WAL gives it a consistent snapshot of every table.
        let mut tx = self.read.begin().await?;
        let position: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(v) FROM (SELECT MAX(position) AS v FROM change_log \
             UNION ALL SELECT seq AS v FROM sqlite_sequence WHERE name = 'change_log')",
        )
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
                 SELECT * FROM change_log ORDER BY position DESC LIMIT ?1) ORDER BY position",
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
            position: position.unwrap_or(0),
            topics,
            retained,
        })
    }
}

fn token_info(row: &SqliteRow) -> StorageResult<TokenInfo> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        scope: row.try_get("scope")?,
        label: row.try_get("label")?,
        created_at: ts(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
    })
}

fn org(row: &SqliteRow) -> StorageResult<Org> {
    Ok(Org {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: ts(row.try_get("created_at")?),
    })
}

/// `head` followed by `rows` groups of `columns` `?` placeholders, then `tail`: a multi-row
/// statement built only from these constant pieces (no value ever enters the SQL text).
fn values_insert(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let group = format!("({})", vec!["?"; columns].join(", "));
    format!("{head}{}{tail}", vec![group; rows].join(", "))
}

fn json(row: &impl serde::Serialize) -> Value {
    serde_json::to_value(row).unwrap_or(Value::Null)
}

fn stored_change(row: &SqliteRow) -> StorageResult<StoredChange> {
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

async fn insert_job(tx: &mut Tx, new: &NewJob, now: i64) -> StorageResult<Job> {
    let row = sqlx::query(concat!(
        "INSERT INTO jobs (id, repo_id, kind, branch, parent, target_key, status, max_attempts, \
         run_at, idempotency_key, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?8, ?8) RETURNING ",
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
    .fetch_one(&mut **tx)
    .await?;
    rows::job(&row)
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
    let superseding: Option<String> = sqlx::query_scalar(
        "SELECT q.id FROM jobs q JOIN jobs r ON q.repo_id = r.repo_id \
         AND q.target_key = r.target_key WHERE r.id = ?1 AND q.status = 'queued'",
    )
    .bind(job_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(other) = superseding {
        let moved = sqlx::query(concat!(
            "UPDATE tasks SET attach_job_id = ?2, updated_at = ?3 WHERE attach_job_id = ?1 \
             AND status = 'pending_branch_attach' RETURNING ",
            task_columns!()
        ))
        .bind(job_id)
        .bind(&other)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
        for row in &moved {
            changes.task(&rows::task(row)?);
        }
        let message = format!("{message}; superseded by queued job {other}");
        return fail_running_in(tx, job_id, &message, now, changes).await;
    }
    let row = sqlx::query(concat!(
        "UPDATE jobs SET status = 'queued', run_at = ?3, message = ?4, updated_at = ?5, \
         lease_owner = NULL, lease_expires_at = NULL, cancel_requested = 0, \
         max_attempts = max_attempts + ?6 \
         WHERE id = ?1 AND status = 'running' AND (?2 IS NULL OR attempt = ?2) \
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
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let job = rows::job(&row)?;
    changes.job(&job);
    release_branches(tx, &job, now, changes).await?;
    update_repo_sync(tx, &job.repo_id, "restore", None, now, changes).await?;
    Ok(Some(job))
}

async fn fail_running_in(
    tx: &mut Tx,
    job_id: &str,
    message: &str,
    now: i64,
    changes: &mut ChangeSet,
) -> StorageResult<Option<Job>> {
    let row = sqlx::query(concat!(
        "UPDATE jobs SET status = 'error', message = ?2, completed_at = ?3, updated_at = ?3, \
         lease_owner = NULL, lease_expires_at = NULL WHERE id = ?1 AND status = 'running' \
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
        " FROM tasks WHERE attach_job_id = ?1 AND status = 'pending_branch_attach'"
    ))
    .bind(&job.id)
    .fetch_all(&mut **tx)
    .await?;
    for row in &waiting {
        let task = rows::task(row)?;
        let head: Option<String> = if job.status == JobStatus::Completed {
            sqlx::query_scalar("SELECT head_sha FROM branches WHERE repo_id = ?1 AND name = ?2")
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
            "UPDATE tasks SET status = ?2, status_message = ?3, head_sha = ?4, updated_at = ?5 \
             WHERE id = ?1 RETURNING ",
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
/// Copies committed WAL frames into the database file every [`CHECKPOINT_INTERVAL`], beside the
/// writer: a passive checkpoint never waits for it nor blocks it. Ends when the store is closed
/// or dropped.
async fn checkpoint_wal(pool: SqlitePool, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(%error, "checkpointing the write-ahead log failed");
        }
    }
    pool.close().await;
}

/// Claims the first due job of a repo with no running job (this transaction's claims included).
async fn claim_in(
    tx: &mut Tx,
    worker: &str,
    lease: Duration,
    now: i64,
    changes: &mut ChangeSet,
) -> StorageResult<Option<ClaimedJob>> {
    let row = sqlx::query(concat!(
        "UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = ?1, \
         updated_at = ?1, completed_at = NULL, lease_owner = ?2, lease_expires_at = ?3, \
         progress_step = NULL, progress_total = NULL, progress_text = NULL \
         WHERE id = (SELECT j.id FROM jobs j WHERE j.status = 'queued' AND j.run_at <= ?1 \
             AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.repo_id = j.repo_id \
                             AND r.status = 'running') \
             ORDER BY j.run_at, j.created_at LIMIT 1) \
         RETURNING ",
        job_columns!(),
        ""
    ))
    .bind(now)
    .bind(worker)
    .bind(now.saturating_add(ms(lease)))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let job = rows::job(&row)?;
    let repo_row = sqlx::query(concat!(
        "UPDATE repos SET branch_sync_status = 'syncing', updated_at = ?2 WHERE id = ?1 \
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
            "UPDATE branches SET active_job_id = ?3, updated_at = ?4 \
             WHERE repo_id = ?1 AND name = ?2 RETURNING ",
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
        "UPDATE jobs SET status = ?3, message = COALESCE(?4, message), result = ?5, \
         completed_at = ?6, updated_at = ?6, lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = ?1 AND attempt = ?2 AND status = 'running' RETURNING ",
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
        "UPDATE branches SET active_job_id = NULL, updated_at = ?3 \
         WHERE repo_id = ?1 AND active_job_id = ?2 RETURNING ",
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
            "UPDATE repos SET branch_sync_status = 'synced', branch_sync_at = ?2, \
             branch_sync_error = NULL, updated_at = ?2 WHERE id = ?1 RETURNING ",
            repo_columns!(),
            ""
        ),
        "error" => concat!(
            "UPDATE repos SET branch_sync_status = 'error', branch_sync_error = ?3, \
             updated_at = ?2 WHERE id = ?1 RETURNING ",
            repo_columns!(),
            ""
        ),
        _ => concat!(
            "UPDATE repos SET branch_sync_status = CASE \
                 WHEN branch_sync_error IS NOT NULL THEN 'error' \
                 WHEN branch_sync_at IS NULL THEN 'pending' ELSE 'synced' END, \
             updated_at = ?2 WHERE id = ?1 RETURNING ",
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
    let existing: Vec<String> = sqlx::query_scalar("SELECT name FROM branches WHERE repo_id = ?1")
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15, ?14, ?14, ?14) \
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
        sqlx::query("DELETE FROM branches WHERE repo_id = ?1 AND name = ?2")
            .bind(repo_id)
            .bind(&name)
            .execute(&mut **tx)
            .await?;
        changes.branch_removed(repo_id, &name);
    }
    Ok(())
}
