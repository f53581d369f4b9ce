//! Restacks a fixture made by `make-stack.sh` (a `remote.git` and a `stack.tsv`) with the
//! engine and prints the time, for comparing with the plain-git baseline script.
//!
//! Usage: `cargo run --release -p gantry-git --example restack_fixture -- FIXTURE_DIR [--rebase]`
//! The server clone is made first (outside the timing) in `FIXTURE_DIR/gantry-clone.git`; the
//! timed part is what a `restack_repo` job does: fetch, plan, replay, one ref transaction, one
//! atomic push. `GIT_COMMITTER_NAME`, `GIT_COMMITTER_EMAIL` and `GIT_COMMITTER_DATE` are
//! honoured, to compare commits with the baseline's bit for bit.

use std::path::PathBuf;
use std::time::Instant;

use gantry_git::{
    Git, NoProgress, RepoClone, RestackMethod, RestackOptions, Selection, Stack, TrackedBranch,
    restack,
};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.first()
            .ok_or("usage: restack_fixture FIXTURE_DIR [--rebase]")?,
    );
    let method = if args.iter().any(|a| a == "--rebase") {
        RestackMethod::Rebase
    } else {
        RestackMethod::Auto
    };
    let tsv = std::fs::read_to_string(dir.join("stack.tsv"))?;
    let branches: Vec<TrackedBranch> = tsv
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(TrackedBranch::new(
                f.next()?,
                f.next()?,
                f.next().map(str::to_string),
            ))
        })
        .collect();
    let stack = Stack::new("main", branches)?;
    let mut git = Git::discover(None).await?;
    // Pinning the committer (as the baseline script does) makes the commits bit-identical to
    // the baseline's, so the two results can be compared ref by ref.
    if let (Ok(name), Ok(email)) = (
        std::env::var("GIT_COMMITTER_NAME"),
        std::env::var("GIT_COMMITTER_EMAIL"),
    ) {
        git = git.with_committer(gantry_git::Identity { name, email });
    }
    if let Ok(date) = std::env::var("GIT_COMMITTER_DATE") {
        git = git.with_env("GIT_COMMITTER_DATE", date);
    }
    let cancel = CancellationToken::new();
    let remote = dir.join("remote.git");
    let clone = RepoClone::open_or_clone(
        &git,
        dir.join("gantry-clone.git"),
        remote.to_str().ok_or("non-UTF-8 path")?,
        "main",
        &cancel,
    )
    .await?;

    let options = RestackOptions {
        method,
        ..Default::default()
    };
    let started = Instant::now();
    let out = restack(
        &clone,
        &stack,
        &Selection::All,
        &options,
        &NoProgress,
        &cancel,
    )
    .await?;
    let took = started.elapsed();
    println!(
        "gantry restack: moved={} conflicts={} took={:?}",
        out.moved.len(),
        out.conflicts.len(),
        took
    );
    for c in &out.conflicts {
        println!(
            "conflict: {} at {} in {:?}, blocks {:?}",
            c.branch, c.commit, c.files, c.blocked
        );
    }
    Ok(())
}
