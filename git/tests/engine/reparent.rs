use gantry_git::{GitError, NoProgress, RestackOptions, StackError, reparent};
use tokio_util::sync::CancellationToken;

use crate::support::*;

#[tokio::test]
async fn reparent_refuses_bad_parents_with_typed_errors() {
    let w = World::new().await;
    let tracked = w.build_stack(&[("a", TRUNK, 1), ("b", "a", 1), ("c", "b", 1)]);
    let clone = w.server().await;
    let stack = stack_of(tracked);
    let cancel = CancellationToken::new();
    let opts = RestackOptions::default();
    let try_it = |branch: &'static str, parent: &'static str| {
        let (clone, stack, opts, cancel) = (&clone, &stack, &opts, &cancel);
        async move {
            reparent(clone, stack, branch, parent, opts, &NoProgress, cancel)
                .await
                .unwrap_err()
        }
    };
    assert!(matches!(
        try_it("a", "c").await,
        GitError::Stack(StackError::ParentInSubtree { ref branch, ref parent }) if branch == "a" && parent == "c"
    ));
    assert!(matches!(
        try_it("b", "b").await,
        GitError::Stack(StackError::ParentIsSelf { .. })
    ));
    assert!(matches!(
        try_it("b", "ghost").await,
        GitError::Stack(StackError::MissingParent { .. })
    ));
    assert!(matches!(
        try_it("ghost", "a").await,
        GitError::Stack(StackError::NotTracked { .. })
    ));
    assert!(matches!(
        try_it("b", "--upload-pack=x").await,
        GitError::InvalidBranchName(_)
    ));
    let err = try_it("b", "b").await;
    assert!(!err.is_transient());
}

#[tokio::test]
async fn reparent_moves_the_subtree_onto_the_new_parent() {
    let w = World::new().await;
    // main <- a <- b <- c ; main <- z.  Move b (with c) onto z: a's commit must leave b.
    let tracked = w.build_stack(&[
        ("a", TRUNK, 1),
        ("b", "a", 2),
        ("c", "b", 1),
        ("z", TRUNK, 1),
    ]);
    let own = own_patch_ids(&w, &tracked);
    let before = w.remote_refs();
    let clone = w.server().await;

    let out = reparent(
        &clone,
        &stack_of(tracked),
        "b",
        "z",
        &RestackOptions::default(),
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let moved: Vec<&str> = out.moved.iter().map(|m| m.branch.as_str()).collect();
    assert_eq!(moved, ["b", "c"]);
    let b = out.stack.iter().find(|b| b.name == "b").unwrap();
    assert_eq!(b.parent, "z");
    assert_eq!(b.base_sha.as_deref(), Some(before["z"].as_str()));
    assert_restacked(&w, &out.stack, &own, &["b", "c"]);
    assert!(
        !w.is_ancestor(&before["a"], &w.remote_sha("b")),
        "a's commit is still in b"
    );
    assert_eq!(w.remote_sha("a"), before["a"]);
    assert_eq!(w.remote_sha("z"), before["z"]);
}
