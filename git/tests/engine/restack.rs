use std::sync::{Arc, Mutex};
use std::time::Instant;

use gantry_git::{
    GitError, NoProgress, RestackMethod, RestackOptions, Selection, TrackedBranch, rebase_branch,
    restack, restack_repo, restack_subtree,
};
use tokio_util::sync::CancellationToken;

use crate::support::*;

fn tree_spec() -> Vec<(&'static str, &'static str, usize)> {
    // main <- a <- b <- c ; a <- side
    vec![
        ("a", TRUNK, 2),
        ("b", "a", 1),
        ("c", "b", 2),
        ("side", "a", 1),
    ]
}

#[tokio::test]
async fn restack_repo_moves_a_tree_onto_the_new_trunk_and_rerun_is_a_noop() {
    let w = World::new().await;
    let tracked = w.build_stack(&tree_spec());
    let own = own_patch_ids(&w, &tracked);
    let new_trunk = w.advance_trunk("t1");
    let clone = w.server().await;

    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let last = Arc::new(Mutex::new((0u32, 0u32)));
    let sink = {
        let (seen, last) = (seen.clone(), last.clone());
        move |step: u32, total: u32, text: &str| {
            assert!(step <= total);
            seen.lock().unwrap().push(text.to_string());
            *last.lock().unwrap() = (step, total);
        }
    };
    let out = restack_repo(
        &clone,
        &stack_of(tracked.clone()),
        &sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    let moved: Vec<&str> = out.moved.iter().map(|m| m.branch.as_str()).collect();
    assert_eq!(moved, ["a", "b", "c", "side"]);
    assert!(out.conflicts.is_empty());
    assert_restacked(&w, &tracked, &own, &["a", "b", "c", "side"]);
    assert!(w.is_ancestor(&new_trunk, &w.remote_sha("c")));
    for b in &out.stack {
        assert_eq!(
            b.base_sha.as_deref(),
            Some(w.remote_sha(&b.parent).as_str()),
            "{}",
            b.name
        );
    }
    let texts = seen.lock().unwrap().clone();
    assert_eq!(texts.first().map(String::as_str), Some("fetching"));
    assert!(texts.iter().any(|t| t == "publishing 4 refs"), "{texts:?}");
    let (step, total) = *last.lock().unwrap();
    assert_eq!((step, total), (7, 7), "{texts:?}");
    assert_eq!(w.worktree_count(), 0);

    // Re-running, with the new metadata or with the stale one, moves nothing.
    let before = w.remote_refs();
    for stack in [out.stack.clone(), tracked.clone()] {
        let again = restack_repo(
            &clone,
            &stack_of(stack),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(again.moved.is_empty(), "{:?}", again.moved);
        assert_eq!(again.stack, out.stack);
    }
    assert_eq!(w.remote_refs(), before);
}

#[tokio::test]
async fn rebase_method_gives_the_same_result() {
    let w = World::new().await;
    let tracked = w.build_stack(&tree_spec());
    let own = own_patch_ids(&w, &tracked);
    w.advance_trunk("t1");
    let clone = w.server().await;
    let options = RestackOptions {
        method: RestackMethod::Rebase,
        ..Default::default()
    };
    let out = restack(
        &clone,
        &stack_of(tracked.clone()),
        &Selection::All,
        &options,
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(out.moved.len(), 4);
    assert_restacked(&w, &tracked, &own, &["a", "b", "c", "side"]);
    assert_eq!(w.worktree_count(), 0);
}

#[tokio::test]
async fn a_conflict_blocks_only_its_subtree() {
    let w = World::new().await;
    // main <- a <- b (edits shared.txt line two) <- c ; a <- side
    let mut tracked = w.build_stack(&[("a", TRUNK, 1)]);
    w.start_branch("b", "a");
    let b_commit = w.commit(
        "shared.txt",
        "line one\nline TWO from b\nline three\n",
        "b: edit shared",
    );
    w.push(&["b"]);
    tracked.push(TrackedBranch::new("b", "a", Some(w.remote_sha("a"))));
    tracked.extend(w.build_stack(&[("c", "b", 1), ("side", "a", 1)]));
    let own = own_patch_ids(&w, &tracked);
    w.checkout(TRUNK);
    w.commit(
        "shared.txt",
        "line one\nline 2 from trunk\nline three\n",
        "trunk: edit shared",
    );
    w.push(&[TRUNK]);
    let before = w.remote_refs();
    let clone = w.server().await;

    let out = restack_repo(
        &clone,
        &stack_of(tracked.clone()),
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    let moved: Vec<&str> = out.moved.iter().map(|m| m.branch.as_str()).collect();
    assert_eq!(moved, ["a", "side"]);
    assert_eq!(out.conflicts.len(), 1);
    let conflict = &out.conflicts[0];
    assert_eq!(conflict.branch, "b");
    assert_eq!(conflict.commit, b_commit);
    assert_eq!(conflict.files, ["shared.txt"]);
    assert_eq!(conflict.blocked, ["c"]);
    for untouched in ["b", "c"] {
        assert_eq!(
            w.remote_refs()[untouched],
            before[untouched],
            "{untouched} moved on the remote"
        );
        assert_eq!(
            w.clone_refs()[untouched],
            before[untouched],
            "{untouched} moved locally"
        );
    }
    assert_restacked(&w, &tracked, &own, &["a", "side"]);
    // Blocked branches keep a base that still marks their own commits.
    let b = out.stack.iter().find(|b| b.name == "b").unwrap();
    assert_eq!(b.base_sha.as_deref(), Some(before["a"].as_str()));
    assert_eq!(w.worktree_count(), 0);
    assert!(
        std::fs::read_dir(clone.worktrees_dir())
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn a_fully_conflicting_selection_is_still_an_outcome() {
    let w = World::new().await;
    w.start_branch("x", TRUNK);
    w.commit("shared.txt", "line one\nx\nline three\n", "x: edit");
    w.push(&["x"]);
    let tracked = vec![TrackedBranch::new("x", TRUNK, Some(w.remote_sha(TRUNK)))];
    w.checkout(TRUNK);
    w.commit("shared.txt", "line one\ntrunk\nline three\n", "trunk: edit");
    w.push(&[TRUNK]);
    let clone = w.server().await;
    let out = rebase_branch(
        &clone,
        &stack_of(tracked),
        "x",
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(out.moved.is_empty());
    assert_eq!(out.conflicts[0].branch, "x");
    assert_eq!(out.conflicts[0].files, ["shared.txt"]);
}

#[tokio::test]
async fn a_concurrent_push_is_never_overwritten() {
    let w = World::new().await;
    let tracked = w.build_stack(&[("a", TRUNK, 1), ("b", "a", 1)]);
    w.advance_trunk("t1");
    let before = w.remote_refs();
    let clone = w.server().await;

    let person = w.person.clone();
    let pushed = Arc::new(Mutex::new(None::<String>));
    let hook_pushed = pushed.clone();
    let options = RestackOptions {
        before_publish: Some(Arc::new(move |moves: &[gantry_git::RefMove]| {
            assert_eq!(moves.len(), 2);
            // A person pushes a commit to b between the engine's fetch and its push.
            git_in(&person, &["checkout", "-q", "b"]);
            std::fs::write(person.join("late.txt"), "late\n").unwrap();
            git_in(&person, &["add", "late.txt"]);
            git_in(&person, &["commit", "-q", "-m", "late work"]);
            git_in(&person, &["push", "-q", "origin", "b"]);
            *hook_pushed.lock().unwrap() = Some(git_in(&person, &["rev-parse", "HEAD"]));
        })),
        ..Default::default()
    };
    let err = restack(
        &clone,
        &stack_of(tracked),
        &Selection::All,
        &options,
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();

    match &err {
        GitError::PushRejected { branches } => assert_eq!(branches, &["b".to_string()]),
        other => panic!("expected PushRejected, got {other:?}"),
    }
    assert!(!err.is_transient());
    let late = pushed.lock().unwrap().clone().unwrap();
    let after = w.remote_refs();
    assert_eq!(after["b"], late, "the person's push was overwritten");
    assert_eq!(after["a"], before["a"], "the atomic push moved a");
    // Local refs were restored to the fetched values.
    let local = w.clone_refs();
    assert_eq!(local["a"], before["a"]);
    assert_eq!(local["b"], before["b"]);
}

#[tokio::test]
async fn rebase_branch_and_restack_subtree_cover_their_selection_only() {
    let w = World::new().await;
    let tracked = w.build_stack(&[("a", TRUNK, 1), ("b", "a", 1), ("z", TRUNK, 1)]);
    let own = own_patch_ids(&w, &tracked);
    w.advance_trunk("t1");
    let before = w.remote_refs();
    let clone = w.server().await;
    let cancel = CancellationToken::new();

    let out = rebase_branch(
        &clone,
        &stack_of(tracked.clone()),
        "a",
        &NoProgress,
        &cancel,
    )
    .await
    .unwrap();
    let moved: Vec<&str> = out.moved.iter().map(|m| m.branch.as_str()).collect();
    assert_eq!(moved, ["a"]);
    assert_eq!(w.remote_sha("b"), before["b"]);
    assert_eq!(w.remote_sha("z"), before["z"]);
    assert_restacked(&w, &tracked, &own, &["a"]);

    let out = restack_subtree(&clone, &stack_of(out.stack), "a", &NoProgress, &cancel)
        .await
        .unwrap();
    let moved: Vec<&str> = out.moved.iter().map(|m| m.branch.as_str()).collect();
    assert_eq!(moved, ["b"]);
    assert_eq!(w.remote_sha("z"), before["z"]);
    assert_restacked(&w, &tracked, &own, &["a", "b"]);

    let err = rebase_branch(
        &clone,
        &stack_of(tracked.clone()),
        "ghost",
        &NoProgress,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            GitError::Stack(gantry_git::StackError::NotTracked { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn twenty_branch_stack_restacks_and_rerun_is_a_noop() {
    let w = World::new().await;
    let names: Vec<String> = (1..=20).map(|i| format!("stack/{i:02}")).collect();
    let spec: Vec<(&str, &str, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.as_str(),
                if i == 0 { TRUNK } else { names[i - 1].as_str() },
                1,
            )
        })
        .collect();
    let tracked = w.build_stack(&spec);
    let own = own_patch_ids(&w, &tracked);
    w.advance_trunk("t1");
    let clone = w.server().await;
    let cancel = CancellationToken::new();

    let started = Instant::now();
    let out = restack_repo(&clone, &stack_of(tracked.clone()), &NoProgress, &cancel)
        .await
        .unwrap();
    eprintln!(
        "20-branch restack (fetch + replay + publish): {:?}",
        started.elapsed()
    );
    assert_eq!(out.moved.len(), 20);
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_restacked(&w, &tracked, &own, &all);

    let again = restack_repo(&clone, &stack_of(out.stack), &NoProgress, &cancel)
        .await
        .unwrap();
    assert!(again.moved.is_empty());
}

#[tokio::test]
async fn an_interrupted_run_converges_on_the_same_refs() {
    // Two identical worlds (pinned dates make commit ids equal): one restacks straight
    // through; the other is cancelled right before publishing, with a local ref left moved
    // and a worktree left behind, then re-run.
    let spec = [("a", TRUNK, 1), ("b", "a", 2), ("side", "a", 1)];
    let straight = World::new().await;
    let tracked = straight.build_stack(&spec);
    straight.advance_trunk("t1");
    let clone = straight.server().await;
    restack_repo(
        &clone,
        &stack_of(tracked.clone()),
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    let w = World::new().await;
    let tracked2 = w.build_stack(&spec);
    assert_eq!(tracked, tracked2);
    w.advance_trunk("t1");
    let clone = w.server().await;
    let cancel = CancellationToken::new();
    let hook_cancel = cancel.clone();
    let options = RestackOptions {
        before_publish: Some(Arc::new(move |_: &[gantry_git::RefMove]| {
            hook_cancel.cancel()
        })),
        ..Default::default()
    };
    let err = restack(
        &clone,
        &stack_of(tracked.clone()),
        &Selection::All,
        &options,
        &NoProgress,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, GitError::Cancelled), "{err:?}");
    assert_eq!(
        w.remote_refs()["a"],
        tracked[1].base_sha.clone().unwrap(),
        "nothing was published"
    );
    // Leftovers of a crash: a local ref moved but never pushed, a worktree.
    let trunk = w.remote_sha(TRUNK);
    git_in(&w.clone_path, &["update-ref", "refs/heads/a", &trunk]);
    git_in(
        &w.clone_path,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            "--lock",
            clone.worktrees_dir().join("crashed").to_str().unwrap(),
            &trunk,
        ],
    );

    restack_repo(
        &clone,
        &stack_of(tracked),
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(w.remote_refs(), straight.remote_refs());
    assert_eq!(w.clone_refs(), straight.clone_refs());
}

#[tokio::test]
async fn a_stale_base_below_where_the_branch_meets_trunk_is_advanced() {
    // x forked from the trunk's second commit, but its recorded base is the first one (it was
    // rebased by hand). Replaying from the recorded base would re-apply the trunk's
    // "shared file" commit, which conflicts with the trunk's later edit of that file.
    let w = World::new().await;
    let first = w.sh(&["rev-parse", "HEAD~1"]);
    w.build_stack(&[("x", TRUNK, 1)]);
    let tracked = vec![TrackedBranch::new("x", TRUNK, Some(first))];
    w.checkout(TRUNK);
    w.commit(
        "shared.txt",
        "line one\nedited by trunk\nline three\n",
        "trunk: edit shared",
    );
    w.push(&[TRUNK]);
    let before = w.remote_sha("x");
    let clone = w.server().await;

    let out = restack_repo(
        &clone,
        &stack_of(tracked),
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
    let trunk = w.remote_sha(TRUNK);
    let x = w.remote_sha("x");
    assert!(w.is_ancestor(&trunk, &x));
    assert_eq!(
        w.patch_ids(&format!("{trunk}..{x}")),
        w.patch_ids(&format!("{before}~1..{before}"))
    );
}

#[tokio::test]
async fn branches_gone_from_the_remote_are_skipped_with_their_subtree() {
    let w = World::new().await;
    let tracked = w.build_stack(&[("a", TRUNK, 1), ("b", "a", 1), ("z", TRUNK, 1)]);
    w.advance_trunk("t1");
    w.sh(&["push", "-q", "origin", "--delete", "a"]);
    let clone = w.server().await;
    let stack = stack_of(tracked);
    let cancel = CancellationToken::new();

    let out = restack_repo(&clone, &stack, &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!(out.skipped, ["a", "b"]);
    let moved: Vec<&str> = out.moved.iter().map(|m| m.branch.as_str()).collect();
    assert_eq!(moved, ["z"]);

    let err = rebase_branch(&clone, &stack, "b", &NoProgress, &cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitError::BranchNotFound { ref branch } if branch == "a"),
        "{err:?}"
    );
    let err = restack_subtree(&clone, &stack, "a", &NoProgress, &cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitError::BranchNotFound { ref branch } if branch == "a"),
        "{err:?}"
    );
}
