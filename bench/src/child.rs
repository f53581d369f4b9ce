//! The server child: `gantry-bench serve-child` runs a real gantry [`Server`] in its own process
//! (so its memory and CPU are measured apart from the load generators), with the bench handlers
//! or the real git handlers, and answers a tiny line protocol on stdin/stdout:
//!
//! - it prints `READY <url> <admin token>` once it listens;
//! - `stats` answers `STATS <json>` (hub counters, connections, database queries so far, and the
//!   enqueue -> start latencies recorded since the last `stats`);
//! - `release` opens the gate of `gate-*` jobs and answers `OK`;
//! - end of input shuts the server down cleanly.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gantry_server::engine::EngineConfig;
use gantry_server::server::{Server, ServerConfig};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::error::{BenchError, BenchResult};
use crate::handlers::{BenchHandler, Shared};

/// How the parent configures the child (its command-line flags).
#[derive(Clone, Debug, clap::Args)]
pub struct ChildArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Jobs run at once (0: the engine never claims).
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    #[arg(long)]
    pub database_url: Option<String>,
    /// Run the real git job handlers instead of the bench handlers.
    #[arg(long)]
    pub git: bool,
    /// Count the SQL statements the server runs (sqlx's statement log, counted not printed).
    #[arg(long)]
    pub count_queries: bool,
    /// One transaction per progress line (no coalescing).
    #[arg(long)]
    pub progress_per_line: bool,
}

/// Counts sqlx's per-statement events.
struct QueryCounter(Arc<AtomicU64>);

impl<S: Subscriber> Layer<S> for QueryCounter {
    fn on_event(&self, _event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn init_tracing(count_queries: bool) -> Arc<AtomicU64> {
    let queries = Arc::new(AtomicU64::new(0));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    let counter = count_queries.then(|| {
        QueryCounter(queries.clone()).with_filter(filter_fn(|meta| meta.target() == "sqlx::query"))
    });
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(counter)
        .try_init();
    queries
}

pub async fn run(args: ChildArgs) -> BenchResult<()> {
    crate::machine::raise_open_files();
    let queries = init_tracing(args.count_queries);
    let mut config = ServerConfig::new(&args.data_dir);
    config.bind = "127.0.0.1:0".to_owned();
    config.database_url = args.database_url.clone();
    config.allow_file_remotes = true;
    config.engine = EngineConfig {
        workers: args.workers,
        refresh_interval: None,
        progress_interval: if args.progress_per_line {
            Duration::ZERO
        } else {
            EngineConfig::default().progress_interval
        },
        ..EngineConfig::default()
    };
    let handlers = if args.git {
        let git = gantry_git::Git::discover(None)
            .await
            .map_err(|e| BenchError::Child(format!("git: {e}")))?;
        gantry_server::git_jobs::GitJobs::new(git, &args.data_dir).registry()
    } else {
        BenchHandler::registry()
    };
    let server = Server::start(config, handlers).await?;
    let mut stdout = tokio::io::stdout();
    let say = |line: String| format!("{line}\n").into_bytes();
    stdout
        .write_all(&say(format!(
            "READY {} {}",
            server.url(),
            server.admin_token()
        )))
        .await
        .map_err(BenchError::io("stdout"))?;
    stdout.flush().await.map_err(BenchError::io("stdout"))?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match line.trim() {
            "stats" => {
                let app = server.app();
                let hub = app.hub.stats();
                let stats = json!({
                    "queries": queries.load(Ordering::Relaxed),
                    "ws_connections": app.connections.count(),
                    "running_jobs": app.engine.running_jobs(),
                    "hub": {
                        "position": hub.position,
                        "connections": hub.connections,
                        "subscriptions": hub.subscriptions,
                        "topics": hub.topics,
                        "retained_diffs": hub.retained_diffs,
                        "retained_bytes": hub.retained_bytes,
                        "slow_consumer_closes": hub.slow_consumer_closes,
                    },
                    "latencies_us": Shared::get().take_latencies(),
                });
                format!("STATS {stats}")
            }
            "release" => {
                Shared::get().open_gate();
                "OK".to_owned()
            }
            other => format!("ERR unknown command {other:?}"),
        };
        if stdout.write_all(&say(answer)).await.is_err() || stdout.flush().await.is_err() {
            break;
        }
    }
    // Bounded: a benchmark must stop by itself even if a connection lingers.
    let _ = tokio::time::timeout(Duration::from_secs(20), server.shutdown()).await;
    Ok(())
}
