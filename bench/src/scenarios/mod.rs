//! The scenarios, one module each, and the helpers they share: a bench server with repos ready,
//! a database poller, and opening many subscribed WebSocket clients.

pub mod accept;
pub mod idle;
pub mod jobs;
pub mod push;
pub mod quick;
pub mod restack;
pub mod resume;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::Semaphore;

use crate::api::Api;
use crate::error::{BenchError, BenchResult};
use crate::server::{ServerChild, ServerOptions};
use crate::ws::{self, Cursor, Ws};

/// A bench server child, its REST client and its repos (whose first sync has finished, when
/// the engine has workers).
pub struct Bench {
    pub server: ServerChild,
    pub api: Api,
    pub repos: Vec<String>,
}

impl Bench {
    pub async fn start(options: &ServerOptions, repos: usize) -> BenchResult<Bench> {
        let server = ServerChild::start(options).await?;
        let api = Api::new(&server.url, &server.token)?;
        let mut ids = Vec::with_capacity(repos);
        for i in 0..repos {
            ids.push(
                api.create_repo(&format!("bench-{i}"), &format!("/nonexistent/bench-{i}"))
                    .await?,
            );
        }
        let bench = Bench {
            server,
            api,
            repos: ids,
        };
        if options.workers > 0 {
            let db = JobsDb::open(options.database_url.as_deref(), &bench.server.db_path()).await?;
            db.wait_drained(Duration::from_secs(60)).await?;
            db.close().await;
        }
        Ok(bench)
    }

    pub async fn stop(self) -> BenchResult<()> {
        self.server.stop().await
    }
}

/// A read-only connection to the server's database, to watch the job table the way the peers'
/// scripts watch theirs.
pub enum JobsDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl JobsDb {
    pub async fn open(database_url: Option<&str>, sqlite_path: &Path) -> BenchResult<JobsDb> {
        match database_url {
            Some(url) if url.starts_with("postgres") => Ok(JobsDb::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await?,
            )),
            other => {
                let path = other
                    .and_then(|u| u.strip_prefix("sqlite://"))
                    .map_or_else(|| sqlite_path.to_path_buf(), std::path::PathBuf::from);
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true);
                Ok(JobsDb::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(options)
                        .await?,
                ))
            }
        }
    }

    const PENDING: &'static str =
        "SELECT COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'running')";

    /// Jobs not yet finished.
    pub async fn pending(&self) -> BenchResult<i64> {
        Ok(match self {
            JobsDb::Sqlite(p) => sqlx::query(Self::PENDING)
                .fetch_one(p)
                .await?
                .try_get("n")?,
            JobsDb::Postgres(p) => sqlx::query(Self::PENDING)
                .fetch_one(p)
                .await?
                .try_get("n")?,
        })
    }

    /// Polls every 20 ms (as the peers' scripts do) until no job is pending; returns when.
    pub async fn wait_drained(&self, deadline: Duration) -> BenchResult<std::time::Instant> {
        let until = std::time::Instant::now() + deadline;
        loop {
            let n = self.pending().await?;
            if n == 0 {
                return Ok(std::time::Instant::now());
            }
            if std::time::Instant::now() > until {
                return Err(BenchError::Timeout(format!("{n} jobs still pending")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn close(self) {
        match self {
            JobsDb::Sqlite(p) => p.close().await,
            JobsDb::Postgres(p) => p.close().await,
        }
    }
}

/// A client subscribed to some topics, with where each snapshot left it.
pub struct Subscribed {
    pub ws: Ws,
    pub cursors: Vec<Cursor>,
}

/// Opens `n` connections (at most `parallel` handshakes at once), each subscribed to `topics`
/// and past their snapshots. Connection `i` picks its loopback source address.
pub async fn subscribe_many(
    base: &str,
    token: &str,
    topics: &[String],
    n: usize,
    parallel: usize,
) -> BenchResult<Vec<Subscribed>> {
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let gate = gate.clone();
        let (base, token, topics) = (base.to_owned(), token.to_owned(), topics.to_vec());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let mut ws = ws::connect(&base, &token, ws::source_ip(i)).await?;
            let mut cursors = Vec::with_capacity(topics.len());
            for (id, topic) in topics.iter().enumerate() {
                ws::subscribe(&mut ws, id as u64 + 1, topic, None).await?;
                let snapshot = ws::next_json(&mut ws).await?;
                if snapshot["type"] != "snapshot" {
                    return Err(BenchError::Protocol(format!(
                        "expected a snapshot: {snapshot}"
                    )));
                }
                cursors.push(Cursor {
                    epoch: ws::epoch(&snapshot),
                    position: snapshot["position"].as_i64().unwrap_or(0),
                });
            }
            Ok::<_, BenchError>(Subscribed { ws, cursors })
        }));
    }
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(
            task.await
                .map_err(|e| BenchError::Protocol(format!("client task: {e}")))??,
        );
    }
    Ok(out)
}
