use gantry_git::demo::{DEMO_CONFLICT_BRANCH, DEMO_CONFLICT_FILE};
use gantry_git::{NoProgress, RepoClone, Stack, create_demo_remote, restack_repo};
use tokio_util::sync::CancellationToken;

use crate::support::*;

#[tokio::test]
async fn demo_remote_restacks_with_one_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let git = engine_git().await;
    let demo = create_demo_remote(&git, dir.path()).await.unwrap();
    let again = create_demo_remote(&git, &dir.path().join("second"))
        .await
        .unwrap();
    assert_eq!(demo.branches, again.branches, "the demo is deterministic");
    assert!(demo.branches.len() >= 5);

    let cancel = CancellationToken::new();
    let clone = RepoClone::open_or_clone(
        &git,
        dir.path().join("data/demo.git"),
        demo.remote_path.to_str().unwrap(),
        &demo.trunk,
        &cancel,
    )
    .await
    .unwrap();
    let stack = Stack::new(&demo.trunk, demo.branches.clone()).unwrap();
    let out = restack_repo(&clone, &stack, &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!(out.conflicts.len(), 1);
    assert_eq!(out.conflicts[0].branch, DEMO_CONFLICT_BRANCH);
    assert_eq!(out.conflicts[0].files, [DEMO_CONFLICT_FILE]);
    assert_eq!(out.moved.len(), demo.branches.len() - 1);
    let trunk = refs(&demo.remote_path)[&demo.trunk].clone();
    for m in &out.moved {
        assert!(
            git_raw(
                &demo.remote_path,
                &["merge-base", "--is-ancestor", &trunk, &m.to],
                None
            )
            .status
            .success()
        );
    }
}

#[tokio::test]
async fn relative_paths_mean_the_process_working_directory() {
    // A data dir given as a relative path (`gantry serve --data-dir ./data`).
    let dir = tempfile::tempdir().unwrap();
    let git = engine_git().await;
    let demo = create_demo_remote(&git, dir.path()).await.unwrap();
    let cwd = std::env::current_dir().unwrap();
    let relative = pathdiff(dir.path(), &cwd).join("data/rel.git");
    let clone = RepoClone::open_or_clone(
        &git,
        &relative,
        demo.remote_path.to_str().unwrap(),
        "main",
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(clone.path().is_absolute());
    assert!(dir.path().join("data/rel.git/HEAD").is_file());
    clone.fetch(&CancellationToken::new()).await.unwrap();
}

/// `to` relative to `from`, with `..` steps (both absolute).
fn pathdiff(to: &std::path::Path, from: &std::path::Path) -> std::path::PathBuf {
    let depth = from.components().count() - 1;
    let mut out = std::path::PathBuf::new();
    for _ in 0..depth {
        out.push("..");
    }
    out.join(to.strip_prefix("/").unwrap())
}
