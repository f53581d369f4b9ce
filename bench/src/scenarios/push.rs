//! push: N connections subscribed to one topic while a job changes state at a steady rate;
//! measures commit -> client latency from the `committed_at` each diff carries (same machine,
//! same clock) and the diffs delivered per second across all connections.
//!
//! The topic is `repo/{id}/jobs`; the job is a `tick-<rate>-<count>` bench job, one progress
//! write (one transaction, one diff) every 1/rate s. Each client reads every frame, takes the
//! time it arrived and subtracts `committed_at`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Bench, subscribe_many};
use crate::error::{BenchError, BenchResult};
use crate::handlers::unix_us;
use crate::machine::CpuSnapshot;
use crate::report::{Report, Table, count, ms};
use crate::server::ServerOptions;
use crate::stats::{Samples, Summary};
use crate::ws::{self, Kind, Ws};

#[derive(Clone, Debug, clap::Args)]
pub struct PushArgs {
    /// Subscriber counts, one run each.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "1,100,1000,10000")]
    pub subscribers: Vec<usize>,
    /// Diffs per second on the topic, one run each per subscriber count.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "50")]
    pub rates: Vec<usize>,
    /// Seconds the job keeps changing.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Also write the latency chart (PNG) here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PushResult {
    pub subscribers: usize,
    pub rate: usize,
    pub expected_diffs: u64,
    pub delivered_diffs: u64,
    pub latency: Summary,
    /// Diffs delivered per second across all connections, first to last arrival.
    pub delivered_per_s: f64,
    pub slow_consumer_closes: u64,
    pub clients_closed_early: usize,
    pub connect_s: f64,
    pub server_cores: f64,
    pub client_cores: f64,
    pub busy_pct: f64,
}

#[derive(Default)]
struct Outcome {
    latencies: Samples,
    diffs: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    closed_early: bool,
}

/// Reads diffs until `expected` arrived, the connection closed, or `stop` fired.
async fn client(mut ws: Ws, expected: u64, stop: CancellationToken) -> Outcome {
    let mut out = Outcome {
        latencies: Samples::with_capacity(expected as usize),
        ..Outcome::default()
    };
    while out.diffs < expected {
        let frame = tokio::select! {
            f = ws::next_text(&mut ws) => f,
            () = stop.cancelled() => break,
        };
        let Ok(Some(frame)) = frame else {
            out.closed_early = true;
            break;
        };
        if ws::kind(&frame) != Kind::Diff {
            continue;
        }
        let now = Instant::now();
        let now_us = unix_us() as i64;
        if let Some(at) = ws::committed_at_us(&frame) {
            out.latencies
                .push_us(u64::try_from(now_us - at).unwrap_or(0));
        }
        out.diffs += 1;
        out.first.get_or_insert(now);
        out.last = Some(now);
    }
    out
}

pub async fn run(args: &PushArgs) -> BenchResult<Report> {
    crate::machine::raise_open_files();
    let mut report = Report::begin(
        "push",
        json!({
            "subscribers": args.subscribers, "rates": args.rates, "duration_s": args.duration,
        }),
    );
    let mut table = Table::new(
        "commit -> client latency on one topic (ms) and diffs delivered",
        &[
            "subscribers",
            "diffs/s on topic",
            "p50",
            "p99",
            "max",
            "delivered/expected",
            "delivered diffs/s",
            "slow closes",
            "server cores",
            "client cores",
        ],
    );
    let mut results = Vec::new();
    for &n in &args.subscribers {
        for &rate in &args.rates {
            let r = one(n, rate, args.duration).await?;
            table.row(vec![
                count(n as f64),
                rate.to_string(),
                ms(r.latency.p50_ms),
                ms(r.latency.p99_ms),
                ms(r.latency.max_ms),
                format!(
                    "{}/{}",
                    count(r.delivered_diffs as f64),
                    count(r.expected_diffs as f64)
                ),
                count(r.delivered_per_s),
                r.slow_consumer_closes.to_string(),
                format!("{:.2}", r.server_cores),
                format!("{:.2}", r.client_cores),
            ]);
            report.result(&r);
            results.push(r);
        }
    }
    report.tables.push(table);
    report.note("committed_at has millisecond resolution and is taken just before the commit, so each latency reads 0-1 ms high (0.5 ms on average)");
    report.note("client and server share the machine's cores; the client's own scheduling delay is part of every figure");
    if let Some(path) = &args.chart {
        crate::chart::push_latency(&results, path)?;
        report.note(format!("chart: {}", path.display()));
    }
    Ok(report)
}

pub async fn one(n: usize, rate: usize, duration: u64) -> BenchResult<PushResult> {
    let bench = Bench::start(
        &ServerOptions {
            workers: 4,
            progress_per_line: true,
            ..ServerOptions::default()
        },
        1,
    )
    .await?;
    let mut server = bench.server;
    let api = bench.api;
    let repo = bench.repos[0].clone();
    let topic = format!("repo/{repo}/jobs");
    let connect_start = Instant::now();
    let clients = subscribe_many(
        &server.url,
        &server.token,
        std::slice::from_ref(&topic),
        n,
        256,
    )
    .await?;
    let connect_s = connect_start.elapsed().as_secs_f64();

    let count_steps = rate as u64 * duration;
    // queued + running + one per step + completed
    let expected = count_steps + 3;
    let stop = CancellationToken::new();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(client(c.ws, expected, stop.clone())))
        .collect();
    let own_pid = std::process::id();
    let cpu0 = CpuSnapshot::take(&[server.pid, own_pid]);
    let job = api
        .act_ok(
            &repo,
            "register_existing_branch",
            Some(&format!("tick-{rate}-{count_steps}-run")),
            None,
        )
        .await?;
    api.wait_job(&job, Duration::from_secs(duration * 3 + 60))
        .await?;
    // Give the last diffs time to arrive, then stop whoever is still waiting.
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(15)).await;
            stop.cancel();
        })
    };
    let mut all = Samples::default();
    let (mut delivered, mut closed_early) = (0u64, 0usize);
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for task in tasks {
        let o = task
            .await
            .map_err(|e| BenchError::Protocol(format!("client task: {e}")))?;
        delivered += o.diffs;
        closed_early += usize::from(o.closed_early);
        all.extend(o.latencies);
        first = match (first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = match (last, o.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    stopper.abort();
    let share = CpuSnapshot::take(&[server.pid, own_pid]).share_since(&cpu0);
    let stats = server.stats().await?;
    server.stop().await?;
    let span = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    Ok(PushResult {
        subscribers: n,
        rate,
        expected_diffs: expected * n as u64,
        delivered_diffs: delivered,
        latency: all.summary(),
        delivered_per_s: if span > 0.0 {
            delivered as f64 / span
        } else {
            0.0
        },
        slow_consumer_closes: stats["hub"]["slow_consumer_closes"].as_u64().unwrap_or(0),
        clients_closed_early: closed_early,
        connect_s,
        server_cores: share.cores.first().copied().unwrap_or(0.0),
        client_cores: share.cores.get(1).copied().unwrap_or(0.0),
        busy_pct: share.busy_pct,
    })
}
