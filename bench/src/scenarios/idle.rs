//! idle: many idle connections, each subscribed to a topic; the server child's resident memory
//! (`VmRSS`) before and after, divided by the connections. Measured at several counts on the
//! way up, so the per-connection figure shows whether memory grows linearly.
//!
//! Both processes need one file descriptor per connection: the count is capped below this
//! machine's hard `RLIMIT_NOFILE` (raising it needs `CAP_SYS_RESOURCE`), and the report says so.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use super::{Bench, subscribe_many};
use crate::error::BenchResult;
use crate::report::{Report, Table, count};
use crate::server::ServerOptions;

#[derive(Clone, Debug, clap::Args)]
pub struct IdleArgs {
    /// Connections to hold open (capped by the open-file limit).
    #[arg(long, default_value_t = 50_000)]
    pub connections: usize,
    /// Measure at this many steps on the way up.
    #[arg(long, default_value_t = 4)]
    pub steps: usize,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IdleStep {
    pub connections: usize,
    pub rss_kib: u64,
    pub per_connection_kib: f64,
    pub connect_s: f64,
}

/// File descriptors kept free for everything that is not a connection.
const FD_RESERVE: u64 = 400;

pub async fn run(args: &IdleArgs) -> BenchResult<Report> {
    let limit = crate::machine::raise_open_files();
    let cap = usize::try_from(limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    let target = args.connections.min(cap);
    let mut report = Report::begin(
        "idle",
        json!({
            "connections_asked": args.connections, "connections": target, "open_files_limit": limit,
        }),
    );
    if target < args.connections {
        report.note(format!(
            "asked for {} connections, held {target}: this process and the server may open at most {limit} files each (the hard RLIMIT_NOFILE; raising it needs CAP_SYS_RESOURCE, which this machine does not grant)",
            args.connections
        ));
    }
    let steps = measure(target, args.steps.max(1)).await?;
    let mut table = Table::new(
        "server RSS with idle subscribed connections",
        &[
            "connections",
            "server RSS MiB",
            "KiB per connection",
            "connect s",
        ],
    );
    for s in &steps {
        table.row(vec![
            count(s.connections as f64),
            format!("{:.1}", s.rss_kib as f64 / 1024.0),
            format!("{:.2}", s.per_connection_kib),
            format!("{:.1}", s.connect_s),
        ]);
        report.result(s);
    }
    report.tables.push(table);
    report.note("per connection = (RSS with N connections - RSS with none) / N; each connection is a WebSocket subscribed to one topic (repo/{id}/jobs, 1 row), idle apart from the 25 s pings");
    Ok(report)
}

/// Opens `target` connections in `steps` steps; RSS after each.
pub async fn measure(target: usize, steps: usize) -> BenchResult<Vec<IdleStep>> {
    let bench = Bench::start(
        &ServerOptions {
            workers: 1,
            ..ServerOptions::default()
        },
        1,
    )
    .await?;
    let topic = format!("repo/{}/jobs", bench.repos[0]);
    // A first connection warms the allocator and the topic; the baseline is taken after it left.
    drop(
        subscribe_many(
            &bench.server.url,
            &bench.server.token,
            std::slice::from_ref(&topic),
            1,
            1,
        )
        .await?,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = bench.server.rss_kib();
    let mut held = Vec::with_capacity(target);
    let mut out = Vec::new();
    let mut open = 0usize;
    for step in 1..=steps {
        let goal = target * step / steps;
        let started = Instant::now();
        let more = subscribe_many(
            &bench.server.url,
            &bench.server.token,
            std::slice::from_ref(&topic),
            goal - open,
            256,
        )
        .await?;
        let connect_s = started.elapsed().as_secs_f64();
        // Each client keeps reading (answering pings) in its own task, like a real idle client.
        for c in more {
            held.push(tokio::spawn(async move {
                let mut ws = c.ws;
                while let Some(Ok(_)) = ws.next().await {}
            }));
        }
        open = goal;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = bench.server.rss_kib();
        out.push(IdleStep {
            connections: open,
            rss_kib: rss,
            per_connection_kib: (rss.saturating_sub(base)) as f64 / open.max(1) as f64,
            connect_s,
        });
    }
    for task in held {
        task.abort();
    }
    bench.stop().await?;
    Ok(out)
}
