use gantry_git::{BranchState, DiffStat, NoProgress, TrackedBranch, branch_states, restack_repo};
use tokio_util::sync::CancellationToken;

use crate::support::*;

#[tokio::test]
async fn branch_states_on_a_known_graph() {
    let w = World::new().await;
    // main <- a (2 new files) <- b (edits shared.txt line two); untracked u edits it too.
    let mut tracked = w.build_stack(&[("a", TRUNK, 2)]);
    w.start_branch("b", "a");
    w.commit(
        "shared.txt",
        "line one\nline two by b\nline three\n",
        "b: edit",
    );
    w.start_branch("u", TRUNK);
    w.commit(
        "shared.txt",
        "line one\nline two by u\nline three\n",
        "u: edit",
    );
    w.push(&["b", "u"]);
    tracked.push(TrackedBranch::new("b", "a", Some(w.remote_sha("a"))));
    w.checkout(TRUNK);
    w.commit(
        "shared.txt",
        "line one\nline two by trunk\nline three\n",
        "trunk: edit",
    );
    w.push(&[TRUNK]);
    let clone = w.server().await;
    let stack = stack_of(tracked.clone());

    let states = branch_states(&clone, &stack, &NoProgress, &CancellationToken::new())
        .await
        .unwrap();
    let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "u"], "trunk is not listed");
    let get = |n: &str| -> &BranchState { states.iter().find(|s| s.name == n).unwrap() };

    let a = get("a");
    assert!(a.tracked);
    assert_eq!(a.parent.as_deref(), Some(TRUNK));
    assert_eq!((a.ahead, a.behind), (2, 1));
    assert!(a.needs_restack);
    assert!(!a.conflicts_with_trunk);
    assert_eq!(
        a.diff_stat,
        DiffStat {
            files_changed: 2,
            insertions: 2,
            deletions: 0
        }
    );
    assert_eq!(a.head_sha, w.remote_sha("a"));

    let b = get("b");
    assert_eq!(b.parent.as_deref(), Some("a"));
    assert_eq!((b.ahead, b.behind), (1, 0));
    assert!(!b.needs_restack, "b sits on a's tip");
    assert!(b.conflicts_with_trunk);
    assert_eq!(
        b.diff_stat,
        DiffStat {
            files_changed: 1,
            insertions: 1,
            deletions: 1
        }
    );

    let u = get("u");
    assert!(!u.tracked);
    assert_eq!(u.parent, None);
    assert_eq!(u.base_sha, None);
    assert_eq!((u.ahead, u.behind), (1, 1));
    assert!(u.needs_restack);
    assert!(u.conflicts_with_trunk);
    assert_eq!(
        u.diff_stat,
        DiffStat {
            files_changed: 1,
            insertions: 1,
            deletions: 1
        }
    );

    // After a restack, a sits on trunk; b conflicts and is left as is.
    let out = restack_repo(&clone, &stack, &NoProgress, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.conflicts[0].branch, "b");
    let states = branch_states(
        &clone,
        &stack_of(out.stack),
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let a = states.iter().find(|s| s.name == "a").unwrap();
    assert_eq!((a.ahead, a.behind, a.needs_restack), (2, 0, false));
    let b = states.iter().find(|s| s.name == "b").unwrap();
    assert!(b.needs_restack);
    assert_eq!(
        b.behind, 3,
        "a's two rewritten commits and the trunk commit"
    );
    assert_eq!(
        b.diff_stat,
        DiffStat {
            files_changed: 1,
            insertions: 1,
            deletions: 1
        },
        "measured from its base"
    );
}

#[tokio::test]
async fn branch_states_handles_hundreds_of_branches_quickly() {
    let w = World::new().await;
    // 300 branches made with one fast-import: 150 tracked in chains of 3, 150 untracked.
    let mut stream = String::new();
    let trunk = w.remote_sha(TRUNK);
    let mut tracked = Vec::new();
    for i in 0..300 {
        let name = format!("br/{i:03}");
        let (from, parent) = if i < 150 && i % 3 != 0 {
            (
                format!("refs/heads/br/{:03}", i - 1),
                format!("br/{:03}", i - 1),
            )
        } else {
            (trunk.clone(), TRUNK.to_string())
        };
        let content = format!("{i}\n");
        stream.push_str(&format!(
            "commit refs/heads/{name}\ncommitter P <p@x> 1700000000 +0000\ndata 3\nmsg\nfrom {from}\nM 100644 inline f{i}.txt\ndata {}\n{content}\n",
            content.len()
        ));
        if i < 150 {
            tracked.push((name, parent));
        }
    }
    let out = git_raw(
        &w.remote,
        &["fast-import", "--quiet"],
        Some(stream.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.advance_trunk("t1");
    let clone = w.server().await;
    let stack = stack_of(
        tracked
            .into_iter()
            .map(|(n, p)| TrackedBranch::new(n, p, None))
            .collect(),
    );

    let started = std::time::Instant::now();
    let states = branch_states(&clone, &stack, &NoProgress, &CancellationToken::new())
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("branch_states for 300 branches: {took:?}");
    assert_eq!(states.len(), 300);
    for s in &states {
        let on_trunk = s.parent.as_deref().is_none_or(|p| p == TRUNK);
        assert_eq!((s.ahead, s.behind), (1, u32::from(on_trunk)), "{}", s.name);
        assert!(s.needs_restack, "{}", s.name);
    }
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}
