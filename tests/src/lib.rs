//! Shared harness for gantry's end-to-end tests: real servers (in-process on a loopback port, or
//! the real binary as a child process), a small REST client, and waiting helpers.
//!
//! Tests never sleep for a fixed time to "let things happen": they wait for an observable state
//! with a deadline, so they are both fast and robust on a loaded machine.
//!
//! The backend follows `GANTRY_TEST_DATABASE` (see `gantry_server::test_support`): SQLite files by
//! default; with `postgres`, a fresh PostgreSQL schema per data dir, so the same tests cover both.

pub mod gitrepo;
pub mod ws;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use gantry_server::engine::test_handlers::TestHandler;
use gantry_server::engine::{EngineConfig, HandlerRegistry, RetryPolicy};
use gantry_server::server::{Server, ServerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a test waits for a state before failing.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Engine timings small enough for tests to see leases expire and retries happen quickly.
pub fn fast_engine() -> EngineConfig {
    EngineConfig {
        workers: 4,
        lease: Duration::from_secs(2),
        heartbeat: Duration::from_millis(300),
        poll_interval: Duration::from_millis(50),
        max_attempts: 3,
        retry: RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
        },
        shutdown_grace: Duration::from_secs(5),
        // Tests that want the periodic refresh turn it on; others must not see its syncs.
        refresh_interval: None,
        // Tests count diffs per progress line; coalescing has its own test.
        progress_interval: Duration::ZERO,
        ..EngineConfig::default()
    }
}

/// A REST client bound to one server and token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base.into(),
            token: token.into(),
        }
    }

    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: token.to_owned(),
            ..self.clone()
        }
    }

    async fn decode(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let body = response.bytes().await.expect("reading body");
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)}))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        Self::decode(response).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_with(path, body, &[]).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::decode(request.send().await.expect("POST")).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .delete(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("DELETE");
        Self::decode(response).await
    }

    /// Creates an organisation (with an admin token) and returns its id.
    pub async fn create_org(&self, name: &str) -> String {
        let (status, body) = self.post("/v1/orgs", &json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "create org: {body}");
        body["org"]["id"].as_str().expect("org id").to_owned()
    }

    /// Creates a token (with an admin token) and returns (secret, id).
    pub async fn create_token(&self, org: &str, scope: &str) -> (String, String) {
        let (status, body) = self
            .post("/v1/tokens", &json!({"org": org, "scope": scope}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "create token: {body}");
        (
            body["token"].as_str().expect("token").to_owned(),
            body["info"]["id"].as_str().expect("token id").to_owned(),
        )
    }

    /// Registers a repo and returns its id.
    pub async fn create_repo(&self, name: &str, remote_url: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/repos",
                &json!({"name": name, "remote_url": remote_url}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create repo: {body}");
        body["repo"]["id"].as_str().expect("repo id").to_owned()
    }

    /// Registers a repo and waits for its first sync to complete (a no-op under the test
    /// handlers), so that what a test starts next is the repo's only job.
    pub async fn create_synced_repo(&self, name: &str, remote_url: &str) -> String {
        let id = self.create_repo(name, remote_url).await;
        let (_, jobs) = self.get(&format!("/v1/repos/{id}/jobs")).await;
        self.wait_status(
            jobs["jobs"][0]["id"].as_str().expect("first sync job"),
            "completed",
        )
        .await;
        id
    }

    /// Posts an action and returns the 202's job.
    pub async fn act(
        &self,
        repo_id: &str,
        kind: &str,
        branch: Option<&str>,
        parent: Option<&str>,
    ) -> Value {
        let (status, body) = self
            .post(
                &format!("/v1/repos/{repo_id}/actions"),
                &json!({"kind": kind, "branch": branch, "parent": parent}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "action {kind} {branch:?}: {body}"
        );
        body["job"].clone()
    }

    pub async fn job(&self, job_id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/jobs/{job_id}")).await;
        assert_eq!(status, StatusCode::OK, "get job {job_id}: {body}");
        body["job"].clone()
    }

    /// Waits until the job satisfies `done`, returning it.
    pub async fn wait_job(&self, job_id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let job = self.job(job_id).await;
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job_id} never became {what}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_status(&self, job_id: &str, status: &str) -> Value {
        self.wait_job(job_id, status, |job| job["status"] == status)
            .await
    }
}

/// Waits until `check` returns Some, or fails the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server running inside the test process, on a loopback port, with a real SQLite file.
pub struct TestServer {
    pub server: Option<Server>,
    pub api: Api,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server whose every job kind runs the engine's [`TestHandler`].
    pub async fn start() -> TestServer {
        Self::start_with(HandlerRegistry::uniform(Arc::new(TestHandler)), |_| {}).await
    }

    pub async fn start_with(
        handlers: HandlerRegistry,
        tune: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_path_buf();
        let mut server = Self::start_in(&data_dir, handlers, tune).await;
        server._dir = Some(dir);
        server
    }

    /// A server running the real git jobs (with `git_program` as its git, if given).
    pub async fn start_git(git_program: Option<PathBuf>) -> TestServer {
        Self::start_git_with(git_program, |_| {}).await
    }

    pub async fn start_git_with(
        git_program: Option<PathBuf>,
        tune: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_path_buf();
        let git = gantry_git::Git::discover(git_program)
            .await
            .expect("git >= 2.40");
        let handlers = gantry_server::git_jobs::GitJobs::new(git, &data_dir).registry();
        let mut server = Self::start_in(&data_dir, handlers, tune).await;
        server._dir = Some(dir);
        server
    }

    /// The server's clone of a repo.
    pub fn clone_dir(&self, repo_id: &str) -> PathBuf {
        gantry_server::git_jobs::repos_dir(&self.data_dir).join(format!("{repo_id}.git"))
    }

    /// A server on an existing data dir (to test restarts).
    pub async fn start_in(
        data_dir: &Path,
        handlers: HandlerRegistry,
        tune: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let mut config = ServerConfig::new(data_dir);
        config.bind = "127.0.0.1:0".to_owned();
        config.allow_file_remotes = true;
        config.engine = fast_engine();
        config.database_url = test_database_url(data_dir).await;
        tune(&mut config);
        let server = Server::start(config, handlers)
            .await
            .expect("server starts");
        let api = Api::new(server.url(), server.admin_token());
        TestServer {
            server: Some(server),
            api,
            data_dir: data_dir.to_path_buf(),
            _dir: None,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    /// Waits until the projections have applied every change this server committed, so that a
    /// snapshot taken next includes them (a commit is visible to REST before it is projected).
    pub async fn wait_projected(&self) {
        let app = self.server().app();
        let committed = *app.store.commits().borrow();
        eventually("the projections to catch up", || async {
            (app.hub.position() >= committed).then_some(())
        })
        .await;
    }

    /// Lets a `block-<tag>` test job finish.
    pub fn release(&self, tag: &str) {
        release(&self.data_dir, tag);
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }
}

/// The database of a test server on `data_dir` on the selected backend: `None` for SQLite (the
/// file in the data dir), or that data dir's own PostgreSQL schema, kept across restarts.
/// Fails the test when PostgreSQL was asked for and is unreachable: never a silent fallback.
pub async fn test_database_url(data_dir: &Path) -> Option<String> {
    gantry_server::test_support::database_url_for(data_dir)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "GANTRY_TEST_DATABASE=postgres, but no fresh schema could be made at {}: {e}",
                gantry_server::test_support::postgres_base_url()
            )
        })
}

/// A fresh PostgreSQL schema for tests that need PostgreSQL itself (several nodes on one
/// database), or `None` in the SQLite pass of the suite, where they have nothing to test. The
/// PostgreSQL pass (`GANTRY_TEST_DATABASE=postgres`, run by `scripts/test`) fails them when the
/// database is unreachable.
pub async fn postgres_only(test: &str) -> Option<String> {
    if !gantry_server::test_support::postgres_selected() {
        eprintln!("{test}: runs in the PostgreSQL pass only (GANTRY_TEST_DATABASE=postgres)");
        return None;
    }
    let url = gantry_server::test_support::fresh_postgres_url()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is unreachable: {e}",
                gantry_server::test_support::postgres_base_url()
            )
        });
    Some(url)
}

/// A database that several servers of one test share: a fresh PostgreSQL schema in the
/// PostgreSQL pass, `None` on SQLite (where one file belongs to one process).
pub async fn shared_database() -> Option<String> {
    if !gantry_server::test_support::postgres_selected() {
        return None;
    }
    postgres_only("shared_database").await
}

/// Extra `gantry serve` arguments that put a binary server on the selected backend, unless the
/// test chose a database itself.
async fn database_args(data_dir: &Path, extra_args: &[&str]) -> Vec<String> {
    if extra_args.contains(&"--database-url") {
        return Vec::new();
    }
    match test_database_url(data_dir).await {
        Some(url) => vec!["--database-url".to_owned(), url],
        None => Vec::new(),
    }
}

/// Lets a `block-<tag>` test job in a server with this data dir finish.
pub fn release(data_dir: &Path, tag: &str) {
    let dir = data_dir.join("test-release");
    std::fs::create_dir_all(&dir).expect("release dir");
    std::fs::write(dir.join(tag), b"").expect("release file");
}

/// The `gantry` binary built beside this test (with the `test-handlers` feature, which this
/// crate enables for the workspace build).
pub fn gantry_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let binary = profile_dir.join(format!("gantry{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, which scripts/test does)",
        binary.display()
    );
    binary
}

/// The real `gantry serve` as a child process.
pub struct BinaryServer {
    child: tokio::process::Child,
    pub api: Api,
    pub data_dir: PathBuf,
    pub stderr_log: PathBuf,
}

impl BinaryServer {
    /// Starts `gantry serve` on `data_dir` with test handlers and a fixed admin token.
    pub async fn spawn(data_dir: &Path, extra_args: &[&str]) -> BinaryServer {
        Self::spawn_with(data_dir, extra_args, true).await
    }

    /// Starts `gantry serve`; with `test_handlers` false it runs the real git jobs.
    pub async fn spawn_with(
        data_dir: &Path,
        extra_args: &[&str],
        test_handlers: bool,
    ) -> BinaryServer {
        Self::launch(data_dir, "127.0.0.1:0", extra_args, test_handlers, &[]).await
    }

    /// Starts `gantry serve` with the real git jobs and without `--allow-file-remotes`.
    pub async fn spawn_strict(data_dir: &Path, extra_args: &[&str]) -> BinaryServer {
        let env = [("GANTRY_TEST_NO_FILE_REMOTES", "1")];
        Self::launch(data_dir, "127.0.0.1:0", extra_args, false, &env).await
    }

    /// Like [`BinaryServer::spawn_with`], with extra environment variables (e.g. `RUST_LOG`).
    pub async fn spawn_env(
        data_dir: &Path,
        extra_args: &[&str],
        test_handlers: bool,
        env: &[(&str, &str)],
    ) -> BinaryServer {
        Self::launch(data_dir, "127.0.0.1:0", extra_args, test_handlers, env).await
    }

    async fn launch(
        data_dir: &Path,
        bind: &str,
        extra_args: &[&str],
        test_handlers: bool,
        env: &[(&str, &str)],
    ) -> BinaryServer {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let stderr_log = data_dir.join(format!("server-{}.log", uuid_like()));
        let log = std::fs::File::create(&stderr_log).expect("log file");
        let token = "test-admin-token";
        let database = database_args(data_dir, extra_args).await;
        let mut child = tokio::process::Command::new(gantry_binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--bind", bind, "--refresh-secs", "0"])
            .args(
                (!env.iter().any(|(k, _)| *k == "GANTRY_TEST_NO_FILE_REMOTES"))
                    .then_some("--allow-file-remotes"),
            )
            .args(extra_args)
            .args(&database)
            .env("GANTRY_TOKEN", token)
            .env(
                "GANTRY_TEST_HANDLERS",
                if test_handlers { "1" } else { "0" },
            )
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gantry");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("gantry listening on ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "gantry did not start; its log:\n{}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            )
        });
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        BinaryServer {
            child,
            api: Api::new(url, token),
            data_dir: data_dir.to_path_buf(),
            stderr_log,
        }
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("wait")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// Parses an RFC 3339 time field of a row.
pub fn time(row: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    row[field]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("{field} is not a time in {row}"))
        .with_timezone(&chrono::Utc)
}

impl BinaryServer {
    /// Like [`BinaryServer::spawn`], but listening on `bind` (e.g. a fixed port, so that a
    /// restarted server is found again at the same address by clients that reconnect).
    pub async fn spawn_bound(data_dir: &Path, bind: &str, extra_args: &[&str]) -> BinaryServer {
        Self::launch(data_dir, bind, extra_args, true, &[]).await
    }
}
