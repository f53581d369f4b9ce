use gantry_git::{NoProgress, Reparented, TrackedBranch, restack_repo, sync};
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// main <- p (2 commits) <- c (2 commits); main <- keep; then p is squash-merged into main.
async fn squash_world() -> (World, Vec<TrackedBranch>) {
    let w = World::new().await;
    let tracked = w.build_stack(&[("p", TRUNK, 2), ("c", "p", 2), ("keep", TRUNK, 1)]);
    w.checkout(TRUNK);
    w.sh(&["merge", "-q", "--squash", "p"]);
    w.sh(&["commit", "-q", "-m", "squash p"]);
    w.push(&[TRUNK]);
    (w, tracked)
}

#[tokio::test]
async fn squash_merged_parent_is_dropped_and_its_child_restacks_cleanly() {
    let (w, tracked) = squash_world().await;
    let own = own_patch_ids(&w, &tracked);
    let clone = w.server().await;
    let cancel = CancellationToken::new();

    let out = sync(&clone, &stack_of(tracked.clone()), &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!(out.merged, ["p"]);
    assert!(out.deleted.is_empty());
    assert_eq!(
        out.reparented,
        [Reparented {
            branch: "c".into(),
            old_parent: "p".into(),
            new_parent: TRUNK.into()
        }]
    );
    assert_eq!(out.trunk_sha, w.remote_sha(TRUNK));
    let c = out.stack.iter().find(|b| b.name == "c").unwrap();
    let c_before = tracked.iter().find(|b| b.name == "c").unwrap();
    assert_eq!(c.parent, TRUNK);
    assert_eq!(c.base_sha, c_before.base_sha, "c keeps its base");
    assert_eq!(out.stack.len(), 2);
    let remote_before = w.remote_refs();
    assert_eq!(w.remote_refs(), remote_before, "sync pushes nothing");

    let restacked = restack_repo(&clone, &stack_of(out.stack), &NoProgress, &cancel)
        .await
        .unwrap();
    assert!(restacked.conflicts.is_empty());
    let moved: Vec<&str> = restacked.moved.iter().map(|m| m.branch.as_str()).collect();
    assert_eq!(moved, ["c", "keep"]);
    let trunk = w.remote_sha(TRUNK);
    let c_tip = w.remote_sha("c");
    assert!(w.is_ancestor(&trunk, &c_tip));
    assert_eq!(
        w.patch_ids(&format!("{trunk}..{c_tip}")),
        own["c"],
        "only c's own commits"
    );
}

#[tokio::test]
async fn commits_already_upstream_are_skipped_like_rebase_does() {
    // Same graph, but c's recorded base is lost: the repaired base lies below p's commits,
    // so p's (already squashed) changes are in the range. Like `git rebase`, the restack must
    // drop them instead of replaying them as empty commits.
    let (w, tracked) = squash_world().await;
    let own = own_patch_ids(&w, &tracked);
    let clone = w.server().await;
    let cancel = CancellationToken::new();
    let synced = sync(&clone, &stack_of(tracked), &NoProgress, &cancel)
        .await
        .unwrap();
    let stack: Vec<TrackedBranch> = synced
        .stack
        .into_iter()
        .map(|mut b| {
            b.base_sha = None;
            b
        })
        .collect();

    let out = restack_repo(&clone, &stack_of(stack), &NoProgress, &cancel)
        .await
        .unwrap();
    assert!(out.conflicts.is_empty());
    let trunk = w.remote_sha(TRUNK);
    let c_tip = w.remote_sha("c");
    assert!(w.is_ancestor(&trunk, &c_tip));
    assert_eq!(w.patch_ids(&format!("{trunk}..{c_tip}")), own["c"]);
    assert_eq!(w.worktree_count(), 0);
}

#[tokio::test]
async fn merged_and_deleted_branches_are_dropped_and_children_repointed() {
    let w = World::new().await;
    // main <- a <- b <- c ; main <- gone <- d
    let tracked = w.build_stack(&[
        ("a", TRUNK, 1),
        ("b", "a", 1),
        ("c", "b", 1),
        ("gone", TRUNK, 1),
        ("d", "gone", 1),
    ]);
    // a and b merged with a real merge (fast-forward) into main; gone deleted on the remote.
    w.checkout(TRUNK);
    w.sh(&["merge", "-q", "--ff-only", "b"]);
    w.push(&[TRUNK]);
    w.sh(&["push", "-q", "origin", "--delete", "gone"]);
    let clone = w.server().await;

    let out = sync(
        &clone,
        &stack_of(tracked.clone()),
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(out.merged, ["a", "b"]);
    assert_eq!(out.deleted, ["gone"]);
    assert_eq!(
        out.reparented,
        [
            Reparented {
                branch: "c".into(),
                old_parent: "b".into(),
                new_parent: TRUNK.into()
            },
            Reparented {
                branch: "d".into(),
                old_parent: "gone".into(),
                new_parent: TRUNK.into()
            },
        ]
    );
    let names: Vec<&str> = out.stack.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["c", "d"]);
    let d = out.stack.iter().find(|b| b.name == "d").unwrap();
    assert_eq!(d.base_sha, tracked[4].base_sha);
    assert!(!clone.path().join("refs/heads/gone").exists());
    assert!(
        !w.clone_refs().contains_key("gone"),
        "fetch --prune mirrors the deletion"
    );
}
