//! quick: every scenario that needs nothing from `shared/`, at small sizes, in well under two
//! minutes, for CI to keep the harness alive. It checks what must hold whatever the machine's
//! speed (every request accepted, every diff delivered, every client resumed without a
//! per-client query, the chart written) and never gates on a timing.

use std::path::PathBuf;

use serde_json::json;

use crate::error::{BenchError, BenchResult};
use crate::report::{Report, Table, ms};

#[derive(Clone, Debug, clap::Args)]
pub struct QuickArgs {
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn check(ok: bool, what: String, failures: &mut Vec<String>) {
    if !ok {
        eprintln!("quick: FAILED {what}");
        failures.push(what);
    }
}

pub async fn run(_args: &QuickArgs) -> BenchResult<Report> {
    crate::machine::raise_open_files();
    let mut report = Report::begin("quick", json!({}));
    let mut table = Table::new(
        "quick pass (small sizes; timings are informative only)",
        &["scenario", "size", "result"],
    );
    let mut failures = Vec::new();

    let a = super::accept::one("10 long jobs", 4, 100, 3).await?;
    check(
        a.errors == 0 && a.accepted == a.sent,
        format!("accept: {} of {} accepted", a.accepted, a.sent),
        &mut failures,
    );
    table.row(vec![
        "accept".into(),
        "100/s for 3 s, 4 long jobs".into(),
        format!(
            "p50 {} ms, p99 {} ms, {} errors",
            ms(a.latency.p50_ms),
            ms(a.latency.p99_ms),
            a.errors
        ),
    ]);
    report.result(&a);

    let mut pushes = Vec::new();
    for n in [1, 50] {
        let p = super::push::one(n, 50, 2).await?;
        check(
            p.delivered_diffs == p.expected_diffs && p.slow_consumer_closes == 0,
            format!(
                "push {n}: {} of {} diffs delivered",
                p.delivered_diffs, p.expected_diffs
            ),
            &mut failures,
        );
        table.row(vec![
            "push".into(),
            format!("{n} subscribers, 50 diffs/s, 2 s"),
            format!(
                "p50 {} ms, p99 {} ms, {}/{} delivered",
                ms(p.latency.p50_ms),
                ms(p.latency.p99_ms),
                p.delivered_diffs,
                p.expected_diffs
            ),
        ]);
        report.result(&p);
        pushes.push(p);
    }
    let chart = std::env::temp_dir().join(format!("gantry-bench-quick-{}.png", std::process::id()));
    crate::chart::push_latency(&pushes, &chart)?;
    let written = std::fs::metadata(&chart).map(|m| m.len()).unwrap_or(0);
    check(
        written > 1000,
        format!("chart: {written} bytes"),
        &mut failures,
    );
    let _ = std::fs::remove_file(&chart);

    let steps = super::idle::measure(200, 2).await?;
    let last = steps.last().cloned();
    check(
        last.as_ref()
            .is_some_and(|s| s.connections == 200 && s.rss_kib > 0),
        "idle: 200 connections held".into(),
        &mut failures,
    );
    if let Some(s) = last {
        table.row(vec![
            "idle".into(),
            "200 connections".into(),
            format!("{:.1} KiB per connection", s.per_connection_kib),
        ]);
        report.result(&s);
    }

    let b = super::jobs::gantry_burn(500, 4, 20, None).await?;
    table.row(vec![
        "jobs burn-down".into(),
        "500 jobs, SQLite".into(),
        format!("{:.0} jobs/s", b.jobs_per_s),
    ]);
    report.result(&b);
    let l = super::jobs::gantry_latency(50, 50, None).await?;
    check(
        l.summary.n == 50,
        format!("jobs latency: {} of 50 jobs recorded", l.summary.n),
        &mut failures,
    );
    table.row(vec![
        "jobs latency".into(),
        "50 jobs at 50/s, SQLite".into(),
        format!(
            "p50 {} ms, p99 {} ms",
            ms(l.summary.p50_ms),
            ms(l.summary.p99_ms)
        ),
    ]);
    report.result(&l);

    let r = super::resume::storm(200, 20, 64).await?;
    check(
        r.resumed == r.clients && r.caught_up == r.clients,
        format!(
            "resume: {} resumed, {} caught up of {}",
            r.resumed, r.caught_up, r.clients
        ),
        &mut failures,
    );
    check(
        r.queries_during_storm < r.clients as u64,
        format!(
            "resume: {} SQL statements for {} clients",
            r.queries_during_storm, r.clients
        ),
        &mut failures,
    );
    table.row(vec![
        "resume storm".into(),
        "200 clients, 20 missed diffs".into(),
        format!(
            "{:.2} s, {} SQL statements",
            r.all_caught_up_s, r.queries_during_storm
        ),
    ]);
    report.result(&r);

    report.tables.push(table);
    if failures.is_empty() {
        report.note("all checks passed");
        Ok(report)
    } else {
        Err(BenchError::Protocol(format!(
            "quick checks failed: {}",
            failures.join("; ")
        )))
    }
}
