//! jobs: the job engine's burn-down (jobs/s) and enqueue -> start latency of trivial jobs, with
//! graphile-worker (`shared/peers/jobs`) on the same PostgreSQL in the same run.
//!
//! Burn-down, shaped like the peer's: the jobs are queued first (not timed), then the workers
//! are let go and the clock runs until no job is pending, polled every 20 ms. gantry's workers
//! are held by `gate-*` jobs (one per worker, each on its own repo) while the no-op jobs queue
//! up on 100 repos; `release` opens the gates.
//!
//! Latency, shaped like the peer's: jobs posted one at a time at 50/s to an idle engine, each
//! carrying its enqueue time (taken just before the POST) in its branch name; the handler takes
//! `now - that` when it starts. So it includes the HTTP request, the insert and its commit, the
//! wake-up, the claim and the dispatch.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Bench, JobsDb};
use crate::error::{BenchError, BenchResult};
use crate::handlers::unix_us;
use crate::machine::CpuSnapshot;
use crate::peers;
use crate::report::{Report, Table, count, ms};
use crate::server::ServerOptions;
use crate::stats::{Samples, Summary, median};

#[derive(Clone, Debug, clap::Args)]
pub struct JobsArgs {
    /// Jobs per burn-down.
    #[arg(long, default_value_t = 20_000)]
    pub jobs: usize,
    /// gantry workers (jobs running at once); graphile's concurrency is 10.
    #[arg(long, default_value_t = 10)]
    pub workers: usize,
    /// Repos the burn-down's jobs are spread over (one job runs per repo at a time).
    #[arg(long, default_value_t = 100)]
    pub repos: usize,
    /// Jobs in the latency run (after 10 warm-up jobs), posted at `--rate`.
    #[arg(long, default_value_t = 500)]
    pub latency_jobs: usize,
    #[arg(long, default_value_t = 50)]
    pub rate: usize,
    /// Runs of each measurement (medians reported).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// gantry's database: SQLite in a temp dir by default, or `postgres://.../gantry_bench...`
    /// (recreated for every run).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Run graphile-worker on this PostgreSQL database (recreated for every run).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/gantry_bench_peer"
    )]
    pub peer_database_url: String,
    /// Skip the peer.
    #[arg(long)]
    pub no_peer: bool,
    /// The shared/ folder (peers and fixtures).
    #[arg(long, default_value_os_t = peers::default_shared())]
    pub shared: PathBuf,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Burn {
    pub who: String,
    pub settings: String,
    pub jobs: usize,
    pub seconds: f64,
    pub jobs_per_s: f64,
    pub enqueue_per_s: f64,
    pub server_cores: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub who: String,
    pub settings: String,
    pub summary: Summary,
}

fn backend(url: Option<&str>) -> &'static str {
    match url {
        Some(u) if u.starts_with("postgres") => "PostgreSQL",
        _ => "SQLite",
    }
}

async fn fresh(url: Option<&str>) -> BenchResult<()> {
    match url {
        Some(u) if u.starts_with("postgres") => peers::fresh_postgres_db(u).await,
        _ => Ok(()),
    }
}

/// One gantry burn-down.
pub async fn gantry_burn(
    jobs: usize,
    workers: usize,
    repos: usize,
    database_url: Option<&str>,
) -> BenchResult<Burn> {
    fresh(database_url).await?;
    let options = ServerOptions {
        workers,
        database_url: database_url.map(str::to_owned),
        ..ServerOptions::default()
    };
    let mut bench = Bench::start(&options, repos.max(workers)).await?;
    for (i, repo) in bench.repos.iter().take(workers).enumerate() {
        bench
            .api
            .act_ok(
                repo,
                "register_existing_branch",
                Some(&format!("gate-{i}")),
                None,
            )
            .await?;
    }
    let until = Instant::now() + Duration::from_secs(30);
    while bench.server.stats().await?["running_jobs"].as_u64() != Some(workers as u64) {
        if Instant::now() > until {
            return Err(BenchError::Timeout("the gate jobs to start".into()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let enqueue_start = Instant::now();
    let api = bench.api.clone();
    let repos_list = bench.repos.clone();
    let failures = futures::stream::iter(0..jobs)
        .map(|i| {
            let api = api.clone();
            let repo = repos_list[i % repos_list.len()].clone();
            async move {
                api.act_ok(
                    &repo,
                    "register_existing_branch",
                    Some(&format!("noop-{i}")),
                    None,
                )
                .await
                .is_err()
            }
        })
        .buffer_unordered(32)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    if failures > 0 {
        return Err(BenchError::Protocol(format!(
            "{failures} jobs were not accepted"
        )));
    }
    let enqueue_s = enqueue_start.elapsed().as_secs_f64();
    let db = JobsDb::open(database_url, &bench.server.db_path()).await?;
    let cpu0 = CpuSnapshot::take(&[bench.server.pid]);
    bench.server.release().await?;
    let start = Instant::now();
    let done = db.wait_drained(Duration::from_secs(600)).await?;
    let seconds = done.duration_since(start).as_secs_f64();
    let share = CpuSnapshot::take(&[bench.server.pid]).share_since(&cpu0);
    db.close().await;
    bench.stop().await?;
    Ok(Burn {
        who: "gantry".into(),
        settings: format!(
            "{}, {workers} workers, {repos} repos",
            backend(database_url)
        ),
        jobs,
        seconds,
        jobs_per_s: jobs as f64 / seconds,
        enqueue_per_s: jobs as f64 / enqueue_s,
        server_cores: share.cores.first().copied().unwrap_or(0.0),
    })
}

/// One gantry latency run.
pub async fn gantry_latency(
    n: usize,
    rate: usize,
    database_url: Option<&str>,
) -> BenchResult<Latency> {
    fresh(database_url).await?;
    let options = ServerOptions {
        workers: 10,
        database_url: database_url.map(str::to_owned),
        ..ServerOptions::default()
    };
    let mut bench = Bench::start(&options, 10).await?;
    let db = JobsDb::open(database_url, &bench.server.db_path()).await?;
    let warmup = 10;
    let start = tokio::time::Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    for i in 0..warmup + n {
        if i == warmup {
            db.wait_drained(Duration::from_secs(30)).await?;
            let _ = bench.server.stats().await?; // drops the warm-up latencies
        }
        tokio::time::sleep_until(start + period * u32::try_from(i).unwrap_or(u32::MAX)).await;
        let repo = &bench.repos[i % bench.repos.len()];
        let branch = format!("lat-{}-{i}", unix_us());
        bench
            .api
            .act_ok(repo, "register_existing_branch", Some(&branch), None)
            .await?;
    }
    db.wait_drained(Duration::from_secs(60)).await?;
    db.close().await;
    let stats = bench.server.stats().await?;
    let mut samples = Samples::with_capacity(n);
    for v in stats["latencies_us"].as_array().into_iter().flatten() {
        samples.push_us(v.as_u64().unwrap_or(0));
    }
    bench.stop().await?;
    Ok(Latency {
        who: "gantry".into(),
        settings: format!(
            "{}, 10 workers, {rate} jobs/s, warm-up 10",
            backend(database_url)
        ),
        summary: samples.summary(),
    })
}

/// graphile-worker burn-down settings: (label, script arguments).
const PEER_BURNS: [(&str, &[&str]); 2] = [
    (
        "1 process, concurrency 10, localQueue.size=100, completeJobBatchDelay=0",
        &[
            "--procs",
            "1",
            "--concurrency",
            "10",
            "--local-queue=100",
            "--complete-batch-delay=0",
        ],
    ),
    (
        "1 process, concurrency 10 (defaults)",
        &["--procs", "1", "--concurrency", "10"],
    ),
];

fn peer_burn(
    dir: &std::path::Path,
    url: &str,
    jobs: usize,
    label: &str,
    args: &[&str],
) -> BenchResult<Burn> {
    let n = jobs.to_string();
    let mut all = vec!["--jobs", n.as_str()];
    all.extend_from_slice(args);
    let v = peers::node_script(dir, "graphile-burn.mjs", &all, url)?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Burn {
        who: "graphile-worker".into(),
        settings: format!("PostgreSQL, {label}"),
        jobs,
        seconds: f("seconds"),
        jobs_per_s: f("jobs_per_s"),
        enqueue_per_s: f("insert_jobs_per_s"),
        server_cores: f("postgres_cores") + f("node_cores"),
    })
}

fn peer_latency(dir: &std::path::Path, url: &str, n: usize, rate: usize) -> BenchResult<Latency> {
    let (n_s, rate_s) = (n.to_string(), rate.to_string());
    let v: Value = peers::node_script(
        dir,
        "graphile-latency.mjs",
        &["--jobs", &n_s, "--rate", &rate_s, "--concurrency", "10"],
        url,
    )?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Latency {
        who: "graphile-worker".into(),
        settings: format!("PostgreSQL, concurrency 10, {rate} jobs/s, warm-up 10"),
        summary: Summary {
            n: v["n"].as_u64().unwrap_or(0) as usize,
            p50_ms: f("p50"),
            p90_ms: f("p95"),
            p99_ms: f("p99"),
            max_ms: f("max"),
            mean_ms: 0.0,
        },
    })
}

pub async fn run(args: &JobsArgs) -> BenchResult<Report> {
    let mut report = Report::begin(
        "jobs",
        json!({
            "jobs": args.jobs, "workers": args.workers, "repos": args.repos,
            "latency_jobs": args.latency_jobs, "rate": args.rate, "runs": args.runs,
            "database_url": args.database_url, "peer": !args.no_peer,
        }),
    );
    let peer_dir = if args.no_peer {
        None
    } else {
        Some(peers::prepare_jobs_peer(&args.shared)?)
    };
    let mut burns: Vec<Vec<Burn>> = Vec::new();
    let mut lats: Vec<Vec<Latency>> = Vec::new();
    // Round-robin, as the peers' run.sh does, so drift in the machine's load hits every row.
    for run in 0..args.runs {
        let mut row = vec![
            gantry_burn(
                args.jobs,
                args.workers,
                args.repos,
                args.database_url.as_deref(),
            )
            .await?,
        ];
        if let Some(dir) = &peer_dir {
            for (label, a) in PEER_BURNS {
                peers::fresh_postgres_db(&args.peer_database_url).await?;
                row.push(peer_burn(
                    dir,
                    &args.peer_database_url,
                    args.jobs,
                    label,
                    a,
                )?);
            }
        }
        let mut lrow =
            vec![gantry_latency(args.latency_jobs, args.rate, args.database_url.as_deref()).await?];
        if let Some(dir) = &peer_dir {
            peers::fresh_postgres_db(&args.peer_database_url).await?;
            lrow.push(peer_latency(
                dir,
                &args.peer_database_url,
                args.latency_jobs,
                args.rate,
            )?);
        }
        eprintln!("jobs: run {}/{} done", run + 1, args.runs);
        burns.push(row);
        lats.push(lrow);
    }
    let mut table = Table::new(
        format!(
            "burn-down of {} trivial jobs (median of {} runs)",
            count(args.jobs as f64),
            args.runs
        ),
        &[
            "queue",
            "settings",
            "jobs/s",
            "seconds",
            "ratio to gantry",
            "enqueue jobs/s (not timed)",
            "cores used",
        ],
    );
    let gantry_rate = median(&burns.iter().map(|r| r[0].jobs_per_s).collect::<Vec<_>>());
    for i in 0..burns[0].len() {
        let rate = median(&burns.iter().map(|r| r[i].jobs_per_s).collect::<Vec<_>>());
        let b = &burns[0][i];
        table.row(vec![
            b.who.clone(),
            b.settings.clone(),
            count(rate),
            format!(
                "{:.2}",
                median(&burns.iter().map(|r| r[i].seconds).collect::<Vec<_>>())
            ),
            format!("{:.2}", rate / gantry_rate),
            count(median(
                &burns.iter().map(|r| r[i].enqueue_per_s).collect::<Vec<_>>(),
            )),
            format!(
                "{:.2}",
                median(&burns.iter().map(|r| r[i].server_cores).collect::<Vec<_>>())
            ),
        ]);
    }
    report.tables.push(table);
    let mut table = Table::new(
        format!(
            "enqueue -> start latency, {} jobs one at a time (ms, median of {} runs)",
            args.latency_jobs, args.runs
        ),
        &[
            "queue",
            "settings",
            "p50",
            "p90 (graphile: p95)",
            "p99",
            "max",
        ],
    );
    for i in 0..lats[0].len() {
        let m = |f: fn(&Summary) -> f64| {
            median(&lats.iter().map(|r| f(&r[i].summary)).collect::<Vec<_>>())
        };
        table.row(vec![
            lats[0][i].who.clone(),
            lats[0][i].settings.clone(),
            ms(m(|s| s.p50_ms)),
            ms(m(|s| s.p90_ms)),
            ms(m(|s| s.p99_ms)),
            ms(m(|s| s.max_ms)),
        ]);
    }
    report.tables.push(table);
    for row in burns {
        for b in row {
            report.result(&b);
        }
    }
    for row in lats {
        for l in row {
            report.result(&l);
        }
    }
    report.note("gantry's cores: the server process only; graphile's: all postgres + node processes (its script's own accounting)");
    report.note("gantry claims every free worker's job in one transaction and group-commits the ends that wait together; each job still writes its own row, its repo's sync state and its change-log rows (which the projector reads and fans out), where graphile deletes a finished job");
    if args.database_url.is_none() && !args.no_peer {
        report.note("gantry ran on SQLite (its default); graphile-worker on PostgreSQL: compare the PostgreSQL row once gantry's PostgreSQL backend is merged (--database-url postgres://postgres@127.0.0.1:5432/gantry_bench)");
    }
    Ok(report)
}
