//! End to end against a real gantry server running in this process: the TUI's own event loop,
//! driven by injected keys, restacks a stack branch and the screen shows the job go
//! queued -> running -> completed, live.
//!
//! Two servers:
//! - the demo (`gantry serve --demo`: a local remote with a stack, registered and synced by the
//!   real git handlers), the way a person first meets the TUI;
//! - the real server with stand-in job handlers: a sync reports a stack of branches, and a
//!   restack holds at a gate the test opens, so "running" (with its progress step) stays on
//!   screen for as long as the test looks. Everything else (HTTP, WebSocket, storage, the job
//!   engine, projections) is the real server.
//!
//! The loop runs with no frame cap, so every state the app goes through is drawn and recorded.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TuiDriver, column_of, line_with, select_branch, status_on};
use crossterm::event::KeyCode;
use futures::future::BoxFuture;
use gantry_server::engine::handler::{JobContext, JobError, JobHandler};
use gantry_server::engine::{EngineConfig, HandlerRegistry, RetryPolicy};
use gantry_server::server::{Server, ServerConfig, default_handlers};
use gantry_server::storage::{BranchState, JobEffects};
use gantry_types::{DiffStat, JobKind, JobResult};
use tokio::sync::watch;

/// The stack the stand-in sync reports: main <- api <- model <- {ui <- docs, experiment}.
const STACK: &[(&str, &str)] = &[
    ("stack/1-api", "main"),
    ("stack/2-model", "stack/1-api"),
    ("stack/3-ui", "stack/2-model"),
    ("stack/4-docs", "stack/3-ui"),
    ("side/experiment", "stack/2-model"),
];

fn branches(needs_restack: bool) -> Vec<BranchState> {
    STACK
        .iter()
        .map(|(name, parent)| BranchState {
            name: (*name).to_owned(),
            head_sha: format!("{:0>40}", name.len()),
            parent: Some((*parent).to_owned()),
            base_sha: None,
            tracked: true,
            ahead: 1,
            behind: u32::from(needs_restack),
            needs_restack,
            conflicts_with_trunk: false,
            diff_stat: DiffStat::default(),
            conflict: None,
        })
        .collect()
}

/// Sync reports the stack; a restack holds at the gate until the test opens it.
struct StackHandler {
    gate: watch::Receiver<bool>,
}

impl JobHandler for StackHandler {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<JobEffects, JobError>> {
        Box::pin(async move {
            match ctx.job.kind {
                JobKind::SyncRepo => Ok(JobEffects {
                    message: Some("synced".to_owned()),
                    result: Some(JobResult::default()),
                    branches: Some(branches(true)),
                }),
                JobKind::RestackSubtree => {
                    let branch = ctx.job.branch.clone().unwrap_or_default();
                    ctx.progress(1, 2, format!("restacking {branch}"));
                    let mut gate = self.gate.clone();
                    tokio::select! {
                        _ = gate.wait_for(|open| *open) => {}
                        () = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
                    }
                    ctx.progress(2, 2, "pushing");
                    Ok(JobEffects {
                        message: Some("moved 3 branches".to_owned()),
                        result: Some(JobResult::default()),
                        branches: Some(branches(false)),
                    })
                }
                _ => Ok(JobEffects::default()),
            }
        })
    }
}

fn config(dir: &tempfile::TempDir) -> ServerConfig {
    let mut config = ServerConfig::new(dir.path());
    config.bind = "127.0.0.1:0".to_owned();
    config.allow_file_remotes = true;
    config.engine = EngineConfig {
        poll_interval: Duration::from_millis(50),
        heartbeat: Duration::from_millis(300),
        lease: Duration::from_secs(5),
        retry: RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
        },
        ..EngineConfig::default()
    };
    config
}

async fn start_server(gate: watch::Receiver<bool>) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let handlers = HandlerRegistry::uniform(Arc::new(StackHandler { gate }));
    let server = Server::start(config(&dir), handlers)
        .await
        .expect("server starts");
    (server, dir)
}

/// The job's status on every frame, with repeats folded: the path it took on screen.
fn path_of(history: &[String], job_row: &str) -> Vec<&'static str> {
    history
        .iter()
        .filter_map(|frame| status_on(frame, job_row))
        .fold(Vec::new(), |mut seen, status| {
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            seen
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_demo_pressing_r_on_a_stack_branch_shows_queued_running_completed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(&dir);
    config.demo = true;
    let handlers = default_handlers(&config).await;
    let server = Server::start(config, handlers)
        .await
        .expect("the demo server starts");
    let mut tui = TuiDriver::start(&server.url(), server.admin_token(), 140, 36);

    // The demo registers its stack with queued jobs; wait until they are all done and the
    // stack tree shows at least four stacked branches.
    let screen = tui
        .wait_for("the demo stack, synced and idle", |s| {
            s.contains("Stack · demo")
                && s.contains("0 running · 0 queued")
                && ["stack/1-api", "stack/2-model", "stack/3-ui", "stack/4-docs"]
                    .iter()
                    .all(|b| s.contains(&format!("─ {b} ")))
        })
        .await;
    assert_eq!(
        column_of(&screen, "stack/2-model"),
        column_of(&screen, "stack/1-api").map(|c| c + 3),
        "stack/2-model is indented under stack/1-api:\n{screen}"
    );

    select_branch(&mut tui, "stack/1-api").await;
    tui.press(KeyCode::Char('r'));
    let job_row = "restack subtree stack/1-api";
    tui.wait_for("the restack completed", |s| {
        status_on(s, job_row) == Some("completed")
    })
    .await;
    assert_eq!(
        path_of(&tui.history, job_row),
        vec!["queued", "running", "completed"],
        "last screen:\n{}",
        tui.screen()
    );
    tui.quit().await.expect("the TUI ends cleanly on q");
    server.shutdown().await.expect("server stops");
}

async fn create_repo(server: &Server) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/repos", server.url()))
        .bearer_auth(server.admin_token())
        .json(&serde_json::json!({"name": "demo", "remote_url": "https://example.test/demo.git"}))
        .send()
        .await
        .expect("POST /v1/repos");
    assert_eq!(response.status().as_u16(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_held_restack_the_screen_shows_each_state_and_the_step() {
    let (open_gate, gate) = watch::channel(false);
    let (server, _dir) = start_server(gate).await;
    let mut tui = TuiDriver::start(&server.url(), server.admin_token(), 130, 34);

    tui.wait_for("live and no repos yet", |s| {
        s.contains("● live") && s.contains("no repos yet")
    })
    .await;
    // The repo appears live, its first sync runs, and the stack tree fills in.
    create_repo(&server).await;
    let screen = tui
        .wait_for("the synced stack", |s| {
            s.contains("✓ synced") && s.contains("└─ stack/4-docs") && s.contains("✓ completed")
        })
        .await;
    assert!(
        line_with(&screen, "─ stack/1-api ").is_some_and(|l| l.contains("↻ restack")),
        "{screen}"
    );

    select_branch(&mut tui, "stack/2-model").await;
    tui.press(KeyCode::Char('r'));

    let job_row = "restack subtree stack/2-model";
    let screen = tui
        .wait_for("the restack job queued", |s| {
            status_on(s, job_row) == Some("queued")
        })
        .await;
    assert!(screen.contains("restack_subtree stack/2-model"), "{screen}");
    let screen = tui
        .wait_for("the restack job running at its first step", |s| {
            line_with(s, job_row).is_some_and(|l| {
                l.contains("● running") && l.contains("1/2 restacking stack/2-model")
            })
        })
        .await;
    // The branch shows the job working on it, with its step.
    assert!(
        line_with(&screen, "─ stack/2-model").is_some_and(|l| l.contains("● running 1/2")),
        "{screen}"
    );

    open_gate.send_replace(true);
    let screen = tui
        .wait_for("the restack job completed", |s| {
            status_on(s, job_row) == Some("completed")
        })
        .await;
    assert!(
        line_with(&screen, job_row).is_some_and(|l| l.contains("moved 3 branches")),
        "{screen}"
    );
    // The refreshed branch rows arrived too: nothing needs a restack any more.
    let screen = tui
        .wait_for("the stack refreshed", |s| !s.contains("↻ restack"))
        .await;
    assert!(!line_with(&screen, "─ stack/2-model").is_some_and(|l| l.contains("● running")));

    // Every frame showed the job moving forward only: queued, then running, then completed.
    assert_eq!(
        path_of(&tui.history, job_row),
        vec!["queued", "running", "completed"]
    );

    tui.quit().await.expect("the TUI ends cleanly on q");
    server.shutdown().await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_server_is_down_the_ui_stays_usable_and_it_resumes_after_a_restart() {
    let (_open, gate) = watch::channel(true);
    let dir = tempfile::tempdir().expect("temp dir");
    let handlers = HandlerRegistry::uniform(Arc::new(StackHandler { gate: gate.clone() }));
    let server = Server::start(config(&dir), handlers)
        .await
        .expect("server starts");
    let addr = server.addr();
    let token = server.admin_token().to_owned();
    let mut tui = TuiDriver::start(&server.url(), &token, 130, 34);
    create_repo(&server).await;
    tui.wait_for("the synced stack", |s| {
        s.contains("● live") && s.contains("└─ stack/4-docs") && s.contains("✓ completed")
    })
    .await;

    server.shutdown().await.expect("server stops");
    tui.wait_for("the connection lost", |s| {
        s.contains("◌ reconnecting") || s.contains("✗ offline")
    })
    .await;
    // The UI still answers keys, and keeps what it knew on screen.
    tui.press(KeyCode::Char('?'));
    tui.wait_for("the help while offline", |s| {
        s.contains("restack the whole repo")
    })
    .await;
    tui.press(KeyCode::Esc);
    // A request that cannot reach the server says so; nothing crashes.
    tui.press(KeyCode::Char('s'));
    let screen = tui
        .wait_for("the failed request reported", |s| {
            s.contains("sync_repo failed: cannot reach the server")
        })
        .await;
    assert!(screen.contains("└─ stack/4-docs"), "{screen}");

    // The server comes back on the same address; the TUI reconnects on its own and resumes.
    let mut config = config(&dir);
    config.bind = addr.to_string();
    let handlers = HandlerRegistry::uniform(Arc::new(StackHandler { gate }));
    let server = Server::start(config, handlers)
        .await
        .expect("server restarts");
    tui.wait_for("live again", |s| s.contains("● live")).await;
    select_branch(&mut tui, "stack/3-ui").await;
    tui.press(KeyCode::Char('r'));
    tui.wait_for("a restack after the restart completed", |s| {
        status_on(s, "restack subtree stack/3-ui") == Some("completed")
    })
    .await;
    tui.quit().await.expect("the TUI ends cleanly on q");
    server.shutdown().await.expect("server stops");
}
