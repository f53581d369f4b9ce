//! `gantry serve`: flags, logging, and the signal handling around a [`Server`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use gantry_server::engine::EngineConfig;
use gantry_server::server::{Server, ServerConfig, default_handlers};
use gantry_server::validate::RemoteScheme;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Parser)]
pub struct ServeArgs {
    /// Where the database, clones and the admin token live.
    #[arg(long, env = "GANTRY_DATA_DIR", default_value = "./gantry-data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "GANTRY_BIND", default_value = "127.0.0.1:7420")]
    pub bind: String,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB` (default: gantry.db in the data dir). Several
    /// nodes, each with its own data dir, may share one PostgreSQL database.
    #[arg(long, env = "GANTRY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Admin token to accept; otherwise one is generated at first start and kept in the data dir.
    #[arg(long = "admin-token", env = "GANTRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Create a local demo remote with a stack of branches, and register it.
    #[arg(long)]
    pub demo: bool,
    /// The git program to run (default: git on PATH).
    #[arg(long, env = "GANTRY_GIT")]
    pub git: Option<PathBuf>,
    /// Allow repos whose remote is a local path or file:// URL.
    #[arg(long, env = "GANTRY_ALLOW_FILE_REMOTES")]
    pub allow_file_remotes: bool,
    /// Jobs that may run at once (on different repos).
    #[arg(long, env = "GANTRY_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// Seconds a running job's lease lasts without a heartbeat.
    #[arg(long, env = "GANTRY_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// Attempts per job before it ends in `error`.
    #[arg(long, env = "GANTRY_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// First retry delay in milliseconds (doubles per attempt, capped at 60 s, with jitter).
    #[arg(long, env = "GANTRY_RETRY_BASE_MS", default_value_t = 2000)]
    pub retry_base_ms: u64,
    /// Days finished jobs are kept.
    #[arg(long, env = "GANTRY_KEEP_JOBS_DAYS", default_value_t = 7)]
    pub keep_jobs_days: u64,
    /// Finished jobs kept per repo.
    #[arg(long, env = "GANTRY_KEEP_JOBS_PER_REPO", default_value_t = 1000)]
    pub keep_jobs_per_repo: u32,
    /// Seconds after which a repo's branches are refreshed by a queued sync (0: never).
    #[arg(long, env = "GANTRY_REFRESH_SECS", default_value_t = 600)]
    pub refresh_secs: u64,
    /// Seconds after which a cached branch row is stale for task creation.
    #[arg(long, env = "GANTRY_STALE_AFTER_SECS", default_value_t = 300)]
    pub stale_after_secs: u64,
    #[arg(long, env = "GANTRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Remote schemes repos may use, and so the only transports git may use: any of https, ssh,
    /// http (unencrypted), file (also by --allow-file-remotes). ext:: and fd:: never.
    #[arg(
        long,
        env = "GANTRY_REMOTE_SCHEMES",
        value_delimiter = ',',
        default_value = "https,ssh",
        value_parser = parse_scheme
    )]
    pub remote_schemes: Vec<RemoteScheme>,
    /// Browser origins allowed to open WebSockets (comma-separated `scheme://host[:port]`);
    /// default: only the server's own origin. Clients that send no Origin are not browsers and
    /// are allowed.
    #[arg(long, env = "GANTRY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// The largest request body accepted, in bytes (413 beyond).
    #[arg(long, env = "GANTRY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// The largest WebSocket frame or message a client may send, in bytes (close 4101 beyond).
    #[arg(long, env = "GANTRY_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,
    /// Topics one WebSocket connection may subscribe to at once.
    #[arg(long, env = "GANTRY_WS_MAX_SUBSCRIPTIONS", default_value_t = 64)]
    pub ws_max_subscriptions: usize,
    /// Open WebSocket connections per token (0: no limit; beyond, the upgrade answers 429).
    #[arg(
        long,
        env = "GANTRY_WS_MAX_CONNECTIONS_PER_TOKEN",
        default_value_t = 64
    )]
    pub ws_max_connections_per_token: usize,
    /// Write requests (actions, repos, tasks, cancels) per second per token (0: no limit;
    /// beyond, 429 with Retry-After).
    #[arg(long, env = "GANTRY_ACCEPT_RATE", default_value_t = 1000)]
    pub accept_rate: u32,
    /// Milliseconds SQLite waits for a lock another process holds before a request answers 503.
    #[arg(long, env = "GANTRY_SQLITE_BUSY_TIMEOUT_MS", default_value_t = 5000)]
    pub sqlite_busy_timeout_ms: u64,
}

fn parse_scheme(value: &str) -> Result<RemoteScheme, String> {
    RemoteScheme::parse(value)
        .ok_or_else(|| format!("unknown remote scheme {value:?}: use https, ssh, http or file"))
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let mut engine = EngineConfig {
        workers: args.workers.max(1),
        lease: Duration::from_secs(args.lease_secs.max(1)),
        max_attempts: args.max_attempts.max(1),
        ..EngineConfig::default()
    };
    engine.heartbeat = engine.lease / 3;
    engine.retry.base = Duration::from_millis(args.retry_base_ms);
    engine.prune.finished_job_max_age = Duration::from_secs(args.keep_jobs_days * 24 * 3600);
    engine.prune.finished_jobs_per_repo = args.keep_jobs_per_repo;
    engine.refresh_interval =
        (args.refresh_secs > 0).then(|| Duration::from_secs(args.refresh_secs));
    let mut config = ServerConfig {
        bind: args.bind,
        database_url: args.database_url,
        admin_token: args.token,
        allow_file_remotes: args.allow_file_remotes,
        demo: args.demo,
        git_program: args.git,
        stale_after: Duration::from_secs(args.stale_after_secs),
        engine,
        remote_schemes: args.remote_schemes,
        max_body_bytes: args.max_body_bytes,
        accept_rate: args.accept_rate,
        sqlite_busy_timeout: Duration::from_millis(args.sqlite_busy_timeout_ms),
        ..ServerConfig::new(args.data_dir)
    };
    config.ws.max_message_bytes = args.ws_max_message_bytes.max(1024);
    config.ws.max_connections_per_token = args.ws_max_connections_per_token;
    config.ws.allowed_origins = args.allowed_origins;
    config.projections.max_subscriptions_per_connection = args.ws_max_subscriptions.max(1);
    let handlers = default_handlers(&config).await;
    let server = Server::start(config, handlers)
        .await
        .context("starting the server")?;
    println!("gantry listening on {}", server.url());
    println!("dashboard {}", server.dashboard_url());

    wait_for_signal().await?;
    server.shutdown().await.context("shutting down")?;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
