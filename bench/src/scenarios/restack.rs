//! restack: a stack from `shared/fixtures/make-stack.sh` restacked and pushed by gantry (accept
//! -> `completed` observed over WebSocket) and by the fastest plain-git script
//! (`shared/peers/git/restack-baseline.sh --method replay-tree`), each on its own copy of the
//! same fixture, alternating which goes first, several repetitions; both results are checked
//! with `verify-restack.py`.
//!
//! gantry's copy is registered first (outside the timing): the repo (its first sync clones it),
//! then every branch of `stack.tsv` with its parent, as a user would.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::JobsDb;
use crate::api::Api;
use crate::error::{BenchError, BenchResult};
use crate::peers;
use crate::report::{Report, Table};
use crate::server::{ServerChild, ServerOptions};
use crate::stats::median;
use crate::ws;

#[derive(Clone, Debug, clap::Args)]
pub struct RestackArgs {
    /// Branches in the linear part of the stack (make-stack.sh adds side-a and side-b).
    #[arg(long, default_value_t = 50)]
    pub branches: usize,
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    #[arg(long, default_value_os_t = peers::default_shared())]
    pub shared: PathBuf,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rep {
    pub rep: usize,
    pub baseline_s: f64,
    pub gantry_s: f64,
    pub baseline_verified: bool,
    pub gantry_verified: bool,
}

fn path_str(p: &Path) -> BenchResult<&str> {
    p.to_str()
        .ok_or_else(|| BenchError::Protocol(format!("non-UTF-8 path {}", p.display())))
}

fn verify(verifier: &Path, dir: &Path) -> bool {
    match peers::run(
        "python3",
        &[
            path_str(verifier).unwrap_or_default(),
            path_str(dir).unwrap_or_default(),
        ],
        None,
        &[],
    ) {
        Ok(out) => out.contains("VERIFY OK"),
        Err(e) => {
            eprintln!("restack: verify {}: {e}", dir.display());
            false
        }
    }
}

/// Brings the fixture's `work` clone and `stack.tsv` up to what gantry pushed, so that
/// `verify-restack.py` checks gantry's result (remote == local, patch-ids, ancestry).
fn adopt_remote(dir: &Path) -> BenchResult<()> {
    let work = dir.join("work");
    let work_s = path_str(&work)?;
    peers::run("git", &["-C", work_s, "fetch", "-q", "origin"], None, &[])?;
    let refs = peers::run(
        "git",
        &[
            "-C",
            work_s,
            "for-each-ref",
            "--format=%(refname:strip=3) %(objectname)",
            "refs/remotes/origin",
        ],
        None,
        &[],
    )?;
    let tips: std::collections::HashMap<&str, &str> =
        refs.lines().filter_map(|l| l.split_once(' ')).collect();
    let stack =
        std::fs::read_to_string(dir.join("stack.tsv")).map_err(BenchError::io("stack.tsv"))?;
    let mut updates = String::new();
    let mut new_stack = String::new();
    for line in stack.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (Some(b), Some(p)) = (f.first(), f.get(1)) else {
            continue;
        };
        if let Some(tip) = tips.get(b) {
            updates.push_str(&format!("update refs/heads/{b} {tip}\n"));
        }
        new_stack.push_str(&format!(
            "{b}\t{p}\t{}\n",
            tips.get(p).copied().unwrap_or_default()
        ));
    }
    let mut child = std::process::Command::new("git")
        .args(["-C", work_s, "update-ref", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(BenchError::io("git update-ref"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(updates.as_bytes())
            .map_err(BenchError::io("git update-ref"))?;
    }
    child.wait().map_err(BenchError::io("git update-ref"))?;
    std::fs::write(dir.join("stack.tsv"), new_stack).map_err(BenchError::io("stack.tsv"))?;
    Ok(())
}

/// Registers a fixture copy in gantry: the repo, then every branch with its parent.
async fn register(api: &Api, db: &JobsDb, dir: &Path, name: &str) -> BenchResult<String> {
    let remote = dir.join("remote.git");
    let repo = api.create_repo(name, path_str(&remote)?).await?;
    db.wait_drained(Duration::from_secs(120)).await?;
    let stack =
        std::fs::read_to_string(dir.join("stack.tsv")).map_err(BenchError::io("stack.tsv"))?;
    for line in stack.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let (Some(b), Some(p)) = (f.first(), f.get(1)) {
            api.act_ok(&repo, "register_existing_branch", Some(b), Some(p))
                .await?;
        }
    }
    db.wait_drained(Duration::from_secs(300)).await?;
    Ok(repo)
}

/// Posts `restack_repo` and waits for its end on the repo's job topic; returns seconds and the
/// final status.
async fn restack_over_ws(
    server: &ServerChild,
    api: &Api,
    repo: &str,
) -> BenchResult<(f64, String)> {
    let mut socket = ws::connect(&server.url, &server.token, ws::source_ip(0)).await?;
    ws::subscribe(&mut socket, 1, &format!("repo/{repo}/jobs"), None).await?;
    let snapshot = ws::next_json(&mut socket).await?;
    if snapshot["type"] != "snapshot" {
        return Err(BenchError::Protocol(format!(
            "expected a snapshot: {snapshot}"
        )));
    }
    let start = Instant::now();
    let job = api.act_ok(repo, "restack_repo", None, None).await?;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(300), ws::next_text(&mut socket))
            .await
            .map_err(|_| BenchError::Timeout("the restack job".into()))??
            .ok_or_else(|| BenchError::Protocol("socket closed".into()))?;
        if ws::kind(&frame) != ws::Kind::Diff || !frame.contains(&job) {
            continue;
        }
        let diff: Value = serde_json::from_str(&frame)?;
        for op in diff["ops"].as_array().into_iter().flatten() {
            if op["key"] == job.as_str() {
                let status = op["row"]["status"].as_str().unwrap_or_default();
                if matches!(status, "completed" | "error" | "cancelled") {
                    return Ok((start.elapsed().as_secs_f64(), status.to_owned()));
                }
            }
        }
    }
}

pub async fn run(args: &RestackArgs) -> BenchResult<Report> {
    let make = peers::need(&args.shared.join("fixtures/make-stack.sh"))?;
    let baseline = peers::need(&args.shared.join("peers/git/restack-baseline.sh"))?;
    let verifier = peers::need(&args.shared.join("peers/git/verify-restack.py"))?;
    let mut report = Report::begin(
        "restack",
        json!({"branches": args.branches + 2, "reps": args.reps}),
    );
    let tmp = tempfile::Builder::new()
        .prefix("gantry-bench-restack-")
        .tempdir()
        .map_err(BenchError::io("temp dir"))?;
    let fixture = tmp.path().join("fixture");
    peers::run(
        "bash",
        &[
            path_str(&make)?,
            path_str(&fixture)?,
            &args.branches.to_string(),
        ],
        None,
        &[],
    )?;
    let mut server = ServerChild::start(&ServerOptions {
        workers: 4,
        git: true,
        ..ServerOptions::default()
    })
    .await?;
    let api = Api::new(&server.url, &server.token)?;
    let db = JobsDb::open(None, &server.db_path()).await?;
    let mut reps = Vec::new();
    for rep in 0..args.reps {
        let copy = |tag: &str| -> BenchResult<PathBuf> {
            let dir = tmp.path().join(format!("rep{rep}-{tag}"));
            peers::run(
                "cp",
                &["-a", path_str(&fixture)?, path_str(&dir)?],
                None,
                &[],
            )?;
            Ok(dir)
        };
        let (base_dir, gantry_dir) = (copy("baseline")?, copy("gantry")?);
        let repo = register(&api, &db, &gantry_dir, &format!("stack-{rep}")).await?;
        let run_baseline = || -> BenchResult<f64> {
            let (s, _) = peers::timed(
                "bash",
                &[
                    path_str(&baseline)?,
                    path_str(&base_dir)?,
                    "--method",
                    "replay-tree",
                ],
                &[],
            )?;
            Ok(s)
        };
        let (baseline_s, (gantry_s, status)) = if rep % 2 == 0 {
            let b = run_baseline()?;
            (b, restack_over_ws(&server, &api, &repo).await?)
        } else {
            let g = restack_over_ws(&server, &api, &repo).await?;
            (run_baseline()?, g)
        };
        if status != "completed" {
            let log = crate::server::log_tail(&server.log_path());
            return Err(BenchError::Protocol(format!(
                "gantry's restack ended {status}:\n{log}"
            )));
        }
        adopt_remote(&gantry_dir)?;
        let r = Rep {
            rep,
            baseline_s,
            gantry_s,
            baseline_verified: verify(&verifier, &base_dir),
            gantry_verified: verify(&verifier, &gantry_dir),
        };
        eprintln!(
            "restack rep {rep}: baseline {:.3} s, gantry {:.3} s",
            r.baseline_s, r.gantry_s
        );
        report.result(&r);
        reps.push(r);
        let _ = std::fs::remove_dir_all(&base_dir);
        let _ = std::fs::remove_dir_all(&gantry_dir);
    }
    let _ = server.stats().await?;
    db.close().await;
    server.stop().await?;
    let b = median(&reps.iter().map(|r| r.baseline_s).collect::<Vec<_>>());
    let g = median(&reps.iter().map(|r| r.gantry_s).collect::<Vec<_>>());
    let mut table = Table::new(
        format!(
            "restack + push of {} branches (median of {} reps, seconds)",
            args.branches + 2,
            args.reps
        ),
        &[
            "who",
            "median s",
            "min s",
            "max s",
            "verified",
            "ratio to plain git",
        ],
    );
    let row = |who: &str, xs: Vec<f64>, ok: usize, ratio: f64| {
        vec![
            who.to_owned(),
            format!("{:.3}", median(&xs)),
            format!("{:.3}", xs.iter().copied().fold(f64::INFINITY, f64::min)),
            format!("{:.3}", xs.iter().copied().fold(0.0, f64::max)),
            format!("{ok}/{}", xs.len()),
            format!("{ratio:.2}"),
        ]
    };
    table.row(row(
        "restack-baseline.sh --method replay-tree",
        reps.iter().map(|r| r.baseline_s).collect(),
        reps.iter().filter(|r| r.baseline_verified).count(),
        1.0,
    ));
    table.row(row(
        "gantry restack_repo (accept -> completed over WS)",
        reps.iter().map(|r| r.gantry_s).collect(),
        reps.iter().filter(|r| r.gantry_verified).count(),
        g / b,
    ));
    report.tables.push(table);
    report.note("the script's time is its wall clock (bash included); gantry's runs from just before the POST to the `completed` diff on the repo's job topic, and includes the job's fetch, plan, replay, ref transaction, atomic push and branch-state refresh");
    Ok(report)
}
