//! resume storm: N clients subscribed to one topic all drop their connections, the topic moves
//! on while they are away, and they all reconnect at once with `since` (well within the
//! retention window). Reports the time until every client is caught up, how many got `resumed`
//! (not a fresh snapshot), and how many SQL statements the server ran meanwhile: resumes are
//! served from the hub's memory, so that should not grow with N.
//!
//! The statements are counted in the server child from sqlx's own per-statement events.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;

use super::{Bench, subscribe_many};
use crate::error::{BenchError, BenchResult};
use crate::report::{Report, Table, count, ms};
use crate::server::ServerOptions;
use crate::stats::{Samples, Summary};
use crate::ws::{self, Kind};

#[derive(Clone, Debug, clap::Args)]
pub struct ResumeArgs {
    #[arg(long, default_value_t = 5000)]
    pub clients: usize,
    /// Progress steps written while the clients are away (each one diff on the topic).
    #[arg(long, default_value_t = 50)]
    pub missed: usize,
    /// Handshakes in flight at once while reconnecting.
    #[arg(long, default_value_t = 512)]
    pub parallel: usize,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResumeResult {
    pub clients: usize,
    pub missed_diffs: usize,
    pub resumed: usize,
    pub snapshots: usize,
    pub caught_up: usize,
    pub all_caught_up_s: f64,
    pub per_client: Summary,
    pub queries_during_storm: u64,
    pub queries_per_client: f64,
}

pub async fn run(args: &ResumeArgs) -> BenchResult<Report> {
    crate::machine::raise_open_files();
    let mut report = Report::begin(
        "resume",
        json!({
            "clients": args.clients, "missed": args.missed, "parallel": args.parallel,
        }),
    );
    let r = storm(args.clients, args.missed, args.parallel).await?;
    let mut table = Table::new(
        "reconnect storm, all clients resuming at once",
        &[
            "clients",
            "topics each",
            "missed diffs each",
            "resumed",
            "fresh snapshots",
            "all caught up s",
            "per client p50 ms",
            "p99 ms",
            "SQL statements during storm",
            "per client",
        ],
    );
    table.row(vec![
        count(r.clients as f64),
        "2".to_owned(),
        r.missed_diffs.to_string(),
        count(r.resumed as f64),
        count(r.snapshots as f64),
        format!("{:.2}", r.all_caught_up_s),
        ms(r.per_client.p50_ms),
        ms(r.per_client.p99_ms),
        r.queries_during_storm.to_string(),
        format!("{:.3}", r.queries_per_client),
    ]);
    report.tables.push(table);
    report.result(&r);
    report.note(format!("reconnects were made with at most {} WebSocket handshakes in flight (the listen backlog is finite; a real storm would spread over SYN retries)", args.parallel));
    report
        .note("per client: from the start of the storm until that client had every diff it missed");
    Ok(report)
}

pub async fn storm(clients: usize, missed: usize, parallel: usize) -> BenchResult<ResumeResult> {
    let mut bench = Bench::start(
        &ServerOptions {
            workers: 2,
            count_queries: true,
            progress_per_line: true,
            ..ServerOptions::default()
        },
        1,
    )
    .await?;
    let repo = bench.repos[0].clone();
    // Each client watches the repo's job list and one job (a dashboard with a job open): the
    // list moves while they are away, the job does not.
    let jobs = bench.api.get(&format!("/v1/repos/{repo}/jobs")).await?;
    let first_job = jobs["jobs"][0]["id"]
        .as_str()
        .ok_or_else(|| BenchError::Protocol(format!("no job in {jobs}")))?
        .to_owned();
    let topics = vec![format!("repo/{repo}/jobs"), format!("job/{first_job}")];
    let subscribed = subscribe_many(
        &bench.server.url,
        &bench.server.token,
        &topics,
        clients,
        256,
    )
    .await?;
    let cursors: Vec<Vec<ws::Cursor>> = subscribed.iter().map(|s| s.cursors.clone()).collect();
    drop(subscribed);
    let until = Instant::now() + Duration::from_secs(60);
    while bench.server.stats().await?["ws_connections"].as_u64() != Some(0) {
        if Instant::now() > until {
            return Err(BenchError::Timeout(
                "the server to see the clients go".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While they are away: queued, running, `missed - 3` steps, completed.
    let steps = missed.saturating_sub(3).max(1);
    let job = bench
        .api
        .act_ok(
            &repo,
            "register_existing_branch",
            Some(&format!("tick-1000-{steps}-away")),
            None,
        )
        .await?;
    bench.api.wait_job(&job, Duration::from_secs(60)).await?;
    let expected = steps + 3;

    let q0 = bench.server.stats().await?["queries"].as_u64().unwrap_or(0);
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let start = Instant::now();
    let tasks: Vec<_> = cursors
        .into_iter()
        .enumerate()
        .map(|(i, cursors)| {
            let (base, token, topics, gate) = (
                bench.server.url.clone(),
                bench.server.token.clone(),
                topics.clone(),
                gate.clone(),
            );
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await;
                let mut socket = ws::connect(&base, &token, ws::source_ip(i)).await?;
                for (id, (topic, cursor)) in topics.iter().zip(&cursors).enumerate() {
                    ws::subscribe(&mut socket, id as u64 + 1, topic, Some(cursor)).await?;
                }
                drop(permit);
                // Both answers and every missed diff, in whatever order they interleave.
                let (mut answers, mut all_resumed, mut seen) = (0, true, 0);
                while answers < topics.len() || seen < expected {
                    match ws::next_text(&mut socket).await? {
                        Some(f) => match ws::kind(&f) {
                            Kind::Diff => seen += 1,
                            Kind::Resumed => answers += 1,
                            Kind::Snapshot => {
                                answers += 1;
                                all_resumed = false;
                            }
                            Kind::Other => {}
                        },
                        None => break,
                    }
                    if !all_resumed && answers == topics.len() {
                        break;
                    }
                }
                let resumed = all_resumed && answers == topics.len();
                Ok::<_, BenchError>((resumed, seen >= expected, start.elapsed(), socket))
            })
        })
        .collect();
    let mut per_client = Samples::with_capacity(clients);
    let (mut resumed, mut caught_up, mut last) = (0, 0, Duration::ZERO);
    let mut sockets = Vec::with_capacity(clients);
    for task in tasks {
        let (r, done, took, socket) = task
            .await
            .map_err(|e| BenchError::Protocol(format!("client task: {e}")))??;
        resumed += usize::from(r);
        caught_up += usize::from(done);
        per_client.push(took);
        last = last.max(took);
        sockets.push(socket);
    }
    let q1 = bench.server.stats().await?["queries"].as_u64().unwrap_or(0);
    drop(sockets);
    bench.stop().await?;
    let queries = q1.saturating_sub(q0);
    Ok(ResumeResult {
        clients,
        missed_diffs: expected,
        resumed,
        snapshots: clients - resumed,
        caught_up,
        all_caught_up_s: last.as_secs_f64(),
        per_client: per_client.summary(),
        queries_during_storm: queries,
        queries_per_client: queries as f64 / clients.max(1) as f64,
    })
}
