//! `gantry-bench`: one subcommand per scenario; each prints a table and can write JSON.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gantry_bench::child::{self, ChildArgs};
use gantry_bench::scenarios::{accept, idle, jobs, push, quick, restack, resume};

#[derive(Parser)]
#[command(
    name = "gantry-bench",
    about = "Benchmarks of gantry against its peers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// POST actions at fixed rates; 202 latency, with and without long jobs running.
    Accept(accept::AcceptArgs),
    /// Subscribers on one topic while a job changes state: commit -> client latency, diffs/s.
    Push(push::PushArgs),
    /// Idle subscribed connections: server memory per connection.
    Idle(idle::IdleArgs),
    /// Job burn-down and enqueue -> start latency, beside graphile-worker.
    Jobs(jobs::JobsArgs),
    /// Restack a 52-branch fixture: gantry against the fastest plain-git script.
    Restack(restack::RestackArgs),
    /// Thousands of clients reconnect and resume at once.
    Resume(resume::ResumeArgs),
    /// Small sizes of every scenario that needs no shared/ folder (CI).
    Quick(quick::QuickArgs),
    /// Redraw the push chart from a `push --json` file.
    Chart {
        json: std::path::PathBuf,
        png: std::path::PathBuf,
    },
    /// Internal: the server child of a benchmark.
    #[command(hide = true)]
    ServeChild(ChildArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Two workers: the machine has two cores, shared with the server child.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::ServeChild(args) => child::run(args).await.context("server child")?,
            Command::Accept(a) => drop(accept::run(&a).await?.finish(a.json.as_deref())?),
            Command::Push(a) => drop(push::run(&a).await?.finish(a.json.as_deref())?),
            Command::Idle(a) => drop(idle::run(&a).await?.finish(a.json.as_deref())?),
            Command::Jobs(a) => drop(jobs::run(&a).await?.finish(a.json.as_deref())?),
            Command::Restack(a) => drop(restack::run(&a).await?.finish(a.json.as_deref())?),
            Command::Resume(a) => drop(resume::run(&a).await?.finish(a.json.as_deref())?),
            Command::Quick(a) => drop(quick::run(&a).await?.finish(a.json.as_deref())?),
            Command::Chart { json, png } => {
                let text = std::fs::read_to_string(&json)
                    .with_context(|| format!("reading {}", json.display()))?;
                let report: serde_json::Value = serde_json::from_str(&text)?;
                let results: Vec<push::PushResult> =
                    serde_json::from_value(report["results"].clone())?;
                gantry_bench::chart::push_latency(&results, &png)?;
                println!("wrote {}", png.display());
            }
        }
        Ok(())
    })
}
