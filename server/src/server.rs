//! Assembling and running a server: data dir, storage, admin token, engine, HTTP; and stopping
//! it cleanly (stop accepting, hand running jobs back, close the database).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::app::{App, AppConfig};
use crate::auth::{Scope, generate_token, hash_token};
use crate::engine::{Engine, EngineConfig, HandlerRegistry};
use crate::projector::{self, ProjectionConfig};
use crate::storage::{PgStore, SqliteStore, StorageError, Store};
use crate::validate::{RemotePolicy, RemoteScheme};
use crate::ws::WsConfig;
use gantry_projections::CloseReason;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub bind: String,
    /// `sqlite://PATH` or `postgres://...` (several nodes may share one PostgreSQL database);
    /// `None` means `gantry.db` inside the data dir.
    pub database_url: Option<String>,
    /// The admin token to accept (from `GANTRY_TOKEN`); otherwise one is generated and kept.
    pub admin_token: Option<String>,
    /// Allow local-path and `file://` remotes (added to `remote_schemes`).
    pub allow_file_remotes: bool,
    /// The remote schemes repos may use, and so the transports git may use.
    pub remote_schemes: Vec<RemoteScheme>,
    /// Create and register the demo repo at start.
    pub demo: bool,
    /// The git program (default: `git` on PATH).
    pub git_program: Option<PathBuf>,
    pub engine: EngineConfig,
    pub projections: ProjectionConfig,
    pub ws: WsConfig,
    pub max_body_bytes: usize,
    /// A cached branch row older than this is stale for task creation.
    pub stale_after: Duration,
    /// Write requests per second per token (0: unlimited).
    pub accept_rate: u32,
    /// How long SQLite waits for a lock held by another process before answering busy.
    pub sqlite_busy_timeout: Duration,
    /// How often this node looks for tokens revoked on other nodes.
    pub token_recheck_interval: Duration,
}

impl ServerConfig {
    /// The remote schemes in force: the configured ones, plus `file` when allowed.
    pub fn remote_policy(&self) -> RemotePolicy {
        RemotePolicy::new(self.remote_schemes.iter().copied()).with_file(self.allow_file_remotes)
    }
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            bind: "127.0.0.1:7420".to_owned(),
            database_url: None,
            admin_token: None,
            allow_file_remotes: false,
            remote_schemes: vec![RemoteScheme::Https, RemoteScheme::Ssh],
            demo: false,
            git_program: None,
            engine: EngineConfig::default(),
            projections: ProjectionConfig::default(),
            ws: WsConfig::default(),
            max_body_bytes: 64 * 1024,
            stale_after: Duration::from_secs(300),
            // Unlimited for embedders and benchmarks; `gantry serve` defaults to 1000/s
            // (`--accept-rate`).
            accept_rate: 0,
            sqlite_busy_timeout: crate::storage::sqlite::DEFAULT_BUSY_TIMEOUT,
            token_recheck_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("unsupported database url {0:?}: use sqlite://PATH or postgres://...")]
    DatabaseUrl(String),
    #[error("http server failed: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Demo(#[from] crate::git_jobs::demo::DemoError),
    #[error("--demo needs git: {0}")]
    DemoGit(gantry_git::GitError),
}

pub struct Server {
    addr: SocketAddr,
    admin_token: String,
    app: Arc<App>,
    stop: CancellationToken,
    http: JoinHandle<std::io::Result<()>>,
    projector: JoinHandle<()>,
    revocations: JoinHandle<()>,
}

impl Server {
    pub async fn start(
        config: ServerConfig,
        handlers: HandlerRegistry,
    ) -> Result<Server, ServeError> {
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| ServeError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let store = open_store(&config).await?;
        let admin_token =
            ensure_admin_token(&store, data_dir, config.admin_token.as_deref()).await?;

        let hub = projector::load_hub(&store, &config.projections).await?;
        let stop = CancellationToken::new();
        let projector = tokio::spawn(projector::run(
            store.clone(),
            hub.clone(),
            config.projections.clone(),
            stop.clone(),
        ));
        let engine = Engine::new(
            store.clone(),
            handlers,
            config.engine.clone(),
            data_dir.clone(),
        );
        engine.start().await?;
        let app = Arc::new(App::new(
            store,
            engine,
            hub,
            AppConfig {
                remotes: config.remote_policy(),
                max_attempts: config.engine.max_attempts,
                ws: config.ws.clone(),
                stale_after: config.stale_after,
                max_body_bytes: config.max_body_bytes,
                accept_rate: config.accept_rate,
            },
        ));

        if config.demo {
            let git = gantry_git::Git::discover(config.git_program.clone())
                .await
                .map_err(ServeError::DemoGit)?;
            let org_id = app.store.default_org_id().await?;
            let principal = crate::auth::Principal {
                token_id: String::new(),
                org_id,
                scope: Scope::Admin,
            };
            crate::git_jobs::demo::ensure_demo(&app, &git, data_dir, &principal).await?;
        }

        let listener =
            TcpListener::bind(&config.bind)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.bind.clone(),
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.bind.clone(),
            source,
        })?;
        let router = crate::api::router(app.clone())
            .layer(axum::extract::DefaultBodyLimit::max(config.max_body_bytes));
        // Diffs and 202s are small writes that must leave at once: Nagle's algorithm would
        // hold one back until the client's delayed ACK (up to 40 ms).
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                warn!(%error, "setting TCP_NODELAY failed");
            }
        });
        let http = tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );
        let revocations = tokio::spawn(watch_revocations(
            app.clone(),
            config.token_recheck_interval,
            stop.clone(),
        ));
        info!(%addr, node = app.engine.node_id(), "gantry is serving");
        Ok(Server {
            addr,
            admin_token,
            app,
            stop,
            http,
            projector,
            revocations,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The dashboard URL with the token in the fragment, which browsers never send to servers.
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/#token={}", self.addr, self.admin_token)
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops accepting requests, hands running jobs back to the queue, and closes storage.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        info!("shutting down");
        self.stop.cancel();
        // Open sockets would hold the HTTP server open; clients reconnect and resume elsewhere.
        self.app.connections.close_all(CloseReason::GoingAway);
        self.app.engine.shutdown().await;
        match tokio::time::timeout(Duration::from_secs(10), self.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(ServeError::Http(e)),
            Ok(Err(join)) => warn!(error = %join, "http task ended abnormally"),
            Err(_) => warn!("open connections did not close within 10 s"),
        }
        let _ = self.projector.await;
        let _ = self.revocations.await;
        self.app.store.close().await;
        info!("stopped");
        Ok(())
    }
}

async fn open_store(config: &ServerConfig) -> Result<Store, ServeError> {
    let path = match &config.database_url {
        None => config.data_dir.join("gantry.db"),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            return Ok(Store::Postgres(PgStore::open(url).await?));
        }
        Some(url) => match url.strip_prefix("sqlite://") {
            Some(path) => PathBuf::from(path),
            None => return Err(ServeError::DatabaseUrl(url.clone())),
        },
    };
    Ok(Store::Sqlite(
        SqliteStore::open_with(&path, config.sqlite_busy_timeout).await?,
    ))
}

/// Tokens revoked on another node sharing the database: found by a periodic look at recent
/// revocations, and then forgotten here (cache, rate bucket, open sockets) as if revoked here.
async fn watch_revocations(app: Arc<App>, every: Duration, stop: CancellationToken) {
    // Node clocks may disagree a little: look back further than one interval.
    const SKEW_MS: i64 = 60_000;
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since = crate::clock::now_ms() - SKEW_MS;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::clock::now_ms();
        match app.recheck_revocations(since).await {
            Ok(0) => {}
            Ok(n) => info!(tokens = n, "tokens revoked elsewhere are now refused here"),
            Err(error) => warn!(%error, "checking for revoked tokens failed"),
        }
        since = now - SKEW_MS;
    }
}

/// The admin token: the configured one, or the one kept in the data dir, or a new one.
async fn ensure_admin_token(
    store: &Store,
    data_dir: &Path,
    configured: Option<&str>,
) -> Result<String, ServeError> {
    let file = data_dir.join("admin-token");
    let token = match configured {
        Some(token) => token.to_owned(),
        None => match std::fs::read_to_string(&file) {
            Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
            _ => {
                let token = generate_token();
                write_private(&file, &token).map_err(|source| ServeError::DataDir {
                    path: file.clone(),
                    source,
                })?;
                token
            }
        },
    };
    let org = store.default_org_id().await?;
    store
        .insert_token(&org, &hash_token(&token), Scope::Admin, "admin")
        .await?;
    Ok(token)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// The handlers a real server runs: the git jobs, after cleaning up what a crash left in the
/// clones. Without a usable git, every job ends in `error` saying why, and the server stays up.
pub async fn default_handlers(config: &ServerConfig) -> HandlerRegistry {
    #[cfg(feature = "test-handlers")]
    if crate::engine::test_handlers::TestHandler::enabled() {
        return HandlerRegistry::uniform(Arc::new(crate::engine::test_handlers::TestHandler));
    }
    match gantry_git::Git::discover(config.git_program.clone()).await {
        Ok(git) => {
            // git may use only the transports of the allowed remote schemes (the demo's remote
            // is a local path).
            let policy = config
                .remote_policy()
                .with_file(config.allow_file_remotes || config.demo);
            let git = git.with_protocols(&policy.git_protocols());
            let jobs = crate::git_jobs::GitJobs::new(git, &config.data_dir);
            jobs.recover().await;
            jobs.registry()
        }
        Err(error) => {
            warn!(%error, "git is not usable; every job will fail until it is");
            HandlerRegistry::uniform(Arc::new(crate::git_jobs::GitUnavailable(error.to_string())))
        }
    }
}
