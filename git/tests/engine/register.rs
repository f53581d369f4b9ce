use gantry_git::{GitError, NoProgress, StackError, TrackedBranch, register};
use tokio_util::sync::CancellationToken;

use crate::support::*;

#[tokio::test]
async fn register_with_given_guessed_and_missing_branches() {
    let w = World::new().await;
    let tracked = w.build_stack(&[("a", TRUNK, 1), ("b", "a", 1)]);
    // Untracked branches pushed by a person: one on b, one on trunk, one on b's history.
    w.build_stack(&[("on-b", "b", 2), ("on-trunk", TRUNK, 1)]);
    let trunk_before = w.remote_sha(TRUNK);
    w.advance_trunk("t1");
    let stack = stack_of(tracked);
    let clone = w.server().await;
    let cancel = CancellationToken::new();

    let guessed = register(&clone, &stack, "on-b", None, &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!(
        guessed.tracked,
        TrackedBranch::new("on-b", "b", Some(w.remote_sha("b")))
    );
    assert!(!guessed.needs_restack);

    let to_trunk = register(&clone, &stack, "on-trunk", None, &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!(to_trunk.tracked.parent, TRUNK);
    assert_eq!(
        to_trunk.tracked.base_sha.as_deref(),
        Some(trunk_before.as_str())
    );
    assert!(
        to_trunk.needs_restack,
        "trunk moved on since on-trunk forked"
    );

    let given = register(&clone, &stack, "on-b", Some("a"), &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!(
        given.tracked,
        TrackedBranch::new("on-b", "a", Some(w.remote_sha("a")))
    );
    assert!(!given.needs_restack);

    let missing = register(&clone, &stack, "nope", None, &NoProgress, &cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, GitError::BranchNotFound { ref branch } if branch == "nope"),
        "{missing:?}"
    );
    assert!(!missing.is_transient());

    let untracked_parent = register(
        &clone,
        &stack,
        "on-b",
        Some("on-trunk"),
        &NoProgress,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(
        untracked_parent,
        GitError::Stack(StackError::MissingParent { .. })
    ));
    let bad = register(
        &clone,
        &stack,
        "--upload-pack=touch x",
        None,
        &NoProgress,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(bad, GitError::InvalidBranchName(_)));
}
