//! accept: POST actions at a fixed rate against a server whose jobs take seconds, and measure
//! how long the 202 takes. Open loop: request `i` is sent at `start + i/rate` whether or not
//! earlier ones answered, so a slow server cannot slow the load down and hide its latency.
//!
//! Two server modes per rate, each on a fresh database:
//! - `queue only`: the engine runs no job (workers = 0): the request path alone;
//! - `10 long jobs`: 10 repos and 10 workers, so 10 `sleep-5000` jobs run at all times, each
//!   writing a progress step every 10 ms (1,000 writes/s competing for the same database).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::Bench;
use crate::error::BenchResult;
use crate::machine::CpuSnapshot;
use crate::report::{Report, Table, ms};
use crate::server::ServerOptions;
use crate::stats::{Samples, Summary};

#[derive(Clone, Debug, clap::Args)]
pub struct AcceptArgs {
    /// Requests per second, one run each.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "100,500,2000")]
    pub rates: Vec<usize>,
    /// Seconds of load per run (the first second is warm-up, not counted).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Long jobs running during the loaded runs (one repo and one worker each).
    #[arg(long, default_value_t = 10)]
    pub long_jobs: usize,
    /// Only the mode with long jobs running.
    #[arg(long)]
    pub loaded_only: bool,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AcceptResult {
    pub mode: String,
    pub rate: usize,
    pub sent: usize,
    pub accepted: usize,
    pub errors: usize,
    pub latency: Summary,
    /// How late the generator sent requests (its own scheduling, not the server).
    pub send_lag_p99_ms: f64,
    pub server_cores: f64,
    pub busy_pct: f64,
}

pub async fn run(args: &AcceptArgs) -> BenchResult<Report> {
    let mut report = Report::begin(
        "accept",
        serde_json::to_value(json!({
            "rates": args.rates, "duration_s": args.duration, "long_jobs": args.long_jobs,
        }))?,
    );
    let mut table = Table::new(
        "POST /v1/repos/{id}/actions -> 202 (ms)",
        &[
            "mode",
            "rate/s",
            "sent",
            "errors",
            "p50",
            "p90",
            "p99",
            "max",
            "server cores",
            "machine busy %",
        ],
    );
    let mut modes = vec![("10 long jobs", args.long_jobs)];
    if !args.loaded_only {
        modes.insert(0, ("queue only", 0));
    }
    for &rate in &args.rates {
        for &(mode, jobs) in &modes {
            let result = one(mode, jobs, rate, args.duration).await?;
            table.row(vec![
                if jobs == 0 {
                    mode.to_owned()
                } else {
                    format!("{jobs} long jobs")
                },
                rate.to_string(),
                result.sent.to_string(),
                result.errors.to_string(),
                ms(result.latency.p50_ms),
                ms(result.latency.p90_ms),
                ms(result.latency.p99_ms),
                ms(result.latency.max_ms),
                format!("{:.2}", result.server_cores),
                format!("{:.0}", result.busy_pct),
            ]);
            report.result(&result);
        }
    }
    report.tables.push(table);
    report.note("latency is measured by the client around one HTTP/1.1 request on a kept-alive connection (reqwest), so it includes the client's own overhead");
    report.note("long jobs: `sleep-5000` test jobs, each writing a progress step every 10 ms; requests use distinct branch names so none is deduplicated");
    Ok(report)
}

pub async fn one(
    mode: &str,
    long_jobs: usize,
    rate: usize,
    duration: u64,
) -> BenchResult<AcceptResult> {
    let repos = long_jobs.max(10);
    let bench = Bench::start(
        &ServerOptions {
            workers: long_jobs,
            ..ServerOptions::default()
        },
        repos,
    )
    .await?;
    // With workers, the first job of each repo starts at once: the long jobs are running.
    let total = rate * duration as usize;
    let warmup = rate; // the first second
    let samples = Arc::new(Mutex::new((
        Samples::with_capacity(total),
        Samples::with_capacity(total),
        0usize,
        0usize,
    )));
    let cpu0 = CpuSnapshot::take(&[bench.server.pid]);
    let start = tokio::time::Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + period * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let api = bench.api.clone();
        let repo = bench.repos[i % bench.repos.len()].clone();
        let samples = samples.clone();
        tasks.push(tokio::spawn(async move {
            let lag = tokio::time::Instant::now().saturating_duration_since(due);
            let branch = format!("sleep-5000-{i}");
            let sent = Instant::now();
            let outcome = api
                .act(&repo, "register_existing_branch", Some(&branch), None)
                .await;
            let took = sent.elapsed();
            let mut s = samples.lock().await;
            match outcome {
                Ok((status, _)) if status == reqwest::StatusCode::ACCEPTED => {
                    s.3 += 1;
                    if i >= warmup {
                        s.0.push(took);
                        s.1.push(lag);
                    }
                }
                _ => s.2 += 1,
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let share = CpuSnapshot::take(&[bench.server.pid]).share_since(&cpu0);
    bench.stop().await?;
    let s = samples.lock().await;
    Ok(AcceptResult {
        mode: mode.to_owned(),
        rate,
        sent: total,
        accepted: s.3,
        errors: s.2,
        latency: s.0.summary(),
        send_lag_p99_ms: s.1.summary().p99_ms,
        server_cores: share.cores.first().copied().unwrap_or(0.0),
        busy_pct: share.busy_pct,
    })
}
