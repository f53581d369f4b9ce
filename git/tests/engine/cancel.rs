use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use gantry_git::{
    Git, GitError, Location, NoProgress, RestackMethod, RestackOptions, Selection, Worktree,
    cleanup_stale_worktrees, restack,
};
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// A git wrapper that hangs (as `sleep`, so killing it kills the hang) on `rebase`.
fn hanging_git(dir: &std::path::Path) -> std::path::PathBuf {
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let path = dir.join("slow-git");
    std::fs::write(
        &path,
        format!("#!/bin/sh\ncase \" $* \" in *\" rebase --quiet \"*) exec sleep 30 ;; esac\nexec {real} \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn cancelling_kills_git_and_leaves_no_worktree() {
    let w = World::new().await;
    let tracked = w.build_stack(&[("a", TRUNK, 1), ("b", "a", 1)]);
    w.advance_trunk("t1");
    let before = w.remote_refs();
    let slow = Git::discover(Some(hanging_git(w.dir.path())))
        .await
        .unwrap()
        .with_env("GIT_CONFIG_GLOBAL", "/dev/null");
    let clone = gantry_git::RepoClone::open_or_clone(
        &slow,
        &w.clone_path,
        w.remote.to_str().unwrap(),
        TRUNK,
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.cancel();
    });
    let options = RestackOptions {
        method: RestackMethod::Rebase,
        ..Default::default()
    };
    let started = Instant::now();
    let err = restack(
        &clone,
        &stack_of(tracked),
        &Selection::All,
        &options,
        &NoProgress,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, GitError::Cancelled), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hanging git was not killed"
    );
    assert!(!err.is_transient());
    assert_eq!(w.worktree_count(), 0);
    assert!(
        std::fs::read_dir(clone.worktrees_dir())
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(w.remote_refs(), before);
    assert_eq!(w.clone_refs(), before);
}

#[tokio::test]
async fn a_cancelled_command_is_killed_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let git = Git::discover(Some(hanging_git(dir.path()))).await.unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let err = git
        .command(Location::Nowhere)
        .args(["rebase", "--quiet"])
        .run(&cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(5));
    // An already-cancelled token never starts a process.
    assert!(matches!(
        git.command(Location::Nowhere)
            .arg("--version")
            .run(&cancel)
            .await,
        Err(GitError::Cancelled)
    ));
}

#[tokio::test]
async fn failures_are_typed_with_trimmed_stderr() {
    let git = engine_git().await;
    let err = git
        .command(Location::Nowhere)
        .args(["rev-parse", "--verify", "refs/heads/none"])
        .run(&CancellationToken::new())
        .await
        .unwrap_err();
    match err {
        GitError::Command { args, code, stderr } => {
            assert_eq!(args, ["rev-parse", "--verify", "refs/heads/none"]);
            assert_eq!(code, Some(128));
            assert!(stderr.starts_with("fatal:"), "{stderr}");
            assert_eq!(stderr, stderr.trim());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        gantry_git::Git::discover(Some("/nonexistent/git".into()))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn cleanup_removes_leftover_worktrees_and_stale_locks() {
    let w = World::new().await;
    let clone = w.server().await;
    let cancel = CancellationToken::new();
    let trunk = w.remote_sha(TRUNK);

    // A crashed job's worktree (the guard is forgotten, as if the process died) ...
    let leftover = Worktree::add(&clone, "crashed job", &trunk, &cancel)
        .await
        .unwrap();
    let leftover_dir = leftover.path().to_path_buf();
    std::mem::forget(leftover);
    // ... one whose directory is already gone, a stray directory, and an old ref lock.
    let ghost = clone.worktrees_dir().join("ghost");
    git_in(
        &w.clone_path,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            "--lock",
            ghost.to_str().unwrap(),
            &trunk,
        ],
    );
    std::fs::remove_dir_all(&ghost).unwrap();
    std::fs::create_dir_all(clone.worktrees_dir().join("stray/sub")).unwrap();
    let lock = w.clone_path.join("refs/heads/main.lock");
    let fresh_lock = w.clone_path.join("refs/heads/fresh.lock");
    std::fs::write(&lock, "").unwrap();
    std::fs::write(&fresh_lock, "").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(w.worktree_count(), 2);

    let report = cleanup_stale_worktrees(&clone, &cancel).await.unwrap();
    assert_eq!(w.worktree_count(), 0);
    assert!(!leftover_dir.exists());
    assert!(
        std::fs::read_dir(clone.worktrees_dir())
            .unwrap()
            .next()
            .is_none()
    );
    assert!(report.worktrees.contains(&leftover_dir));
    assert_eq!(report.locks, std::slice::from_ref(&lock));
    assert!(!lock.exists());
    assert!(
        fresh_lock.exists(),
        "a fresh lock may belong to a running git"
    );
    std::fs::remove_file(fresh_lock).unwrap();

    // A guard that is cleaned up properly leaves nothing either.
    let wt = Worktree::add(&clone, "job", &trunk, &cancel).await.unwrap();
    assert!(wt.path().join("README.md").exists());
    wt.cleanup().await.unwrap();
    assert_eq!(w.worktree_count(), 0);
}

#[tokio::test]
async fn open_or_clone_reuses_the_clone_and_follows_a_new_url() {
    let w = World::new().await;
    let first = w.server().await;
    assert!(w.clone_path.join("HEAD").is_file());
    let siblings: Vec<_> = std::fs::read_dir(w.clone_path.parent().unwrap())
        .unwrap()
        .collect();
    assert_eq!(siblings.len(), 1, "no staging directory left behind");
    let moved = w.dir.path().join("moved.git");
    std::fs::rename(&w.remote, &moved).unwrap();
    let again = gantry_git::RepoClone::open_or_clone(
        &w.git,
        first.path(),
        moved.to_str().unwrap(),
        TRUNK,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    again.fetch(&CancellationToken::new()).await.unwrap();
    let url = git_in(&w.clone_path, &["config", "remote.origin.url"]);
    assert_eq!(url, moved.to_str().unwrap());
}

/// The server spawns operations on a multi-threaded runtime: their futures must be `Send`.
#[allow(dead_code, clippy::let_underscore_future)]
fn operation_futures_are_send(clone: &gantry_git::RepoClone, stack: &gantry_git::Stack) {
    fn send<T: Send>(_: T) {}
    let cancel = CancellationToken::new();
    let opts = RestackOptions::default();
    send(gantry_git::sync(clone, stack, &NoProgress, &cancel));
    send(restack(
        clone,
        stack,
        &Selection::All,
        &opts,
        &NoProgress,
        &cancel,
    ));
    send(gantry_git::reparent(
        clone,
        stack,
        "a",
        "b",
        &opts,
        &NoProgress,
        &cancel,
    ));
    send(gantry_git::register(
        clone,
        stack,
        "a",
        None,
        &NoProgress,
        &cancel,
    ));
    send(gantry_git::branch_states(
        clone,
        stack,
        &NoProgress,
        &cancel,
    ));
    send(gantry_git::local_branch_states(clone, stack, &cancel));
    send(cleanup_stale_worktrees(clone, &cancel));
    send(gantry_git::RepoClone::open_or_clone(
        clone.git(),
        "x",
        "y",
        "main",
        &cancel,
    ));
}
