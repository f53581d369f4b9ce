//! The six git job kinds through a real server on real repositories: the resulting commit
//! graphs, conflicts, a foreign push mid-job, a squash-merged parent, and recovery from SIGKILL.

use std::collections::BTreeSet;
use std::path::Path;

use gantry_tests::gitrepo::{Remote, refs_of};
use gantry_tests::{Api, BinaryServer, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn terminal(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "error" | "cancelled")
    )
}

/// Runs an action to its end and returns the final job.
async fn run(
    api: &Api,
    repo: &str,
    kind: &str,
    branch: Option<&str>,
    parent: Option<&str>,
) -> Value {
    let job = api.act(repo, kind, branch, parent).await;
    api.wait_job(job["id"].as_str().unwrap(), "finished", terminal)
        .await
}

async fn run_ok(
    api: &Api,
    repo: &str,
    kind: &str,
    branch: Option<&str>,
    parent: Option<&str>,
) -> Value {
    let job = run(api, repo, kind, branch, parent).await;
    assert_eq!(job["status"], "completed", "{kind} {branch:?}: {job}");
    job
}

async fn branches(api: &Api, repo: &str) -> Value {
    let (status, body) = api.get(&format!("/v1/repos/{repo}/branches")).await;
    assert_eq!(status, StatusCode::OK);
    body["branches"].clone()
}

fn row<'a>(branches: &'a Value, name: &str) -> &'a Value {
    branches
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {branches}"))
}

/// Registers a repo and its branches (parent first) through jobs, as a user would.
async fn register(api: &Api, remote: &Remote, name: &str, stack: &[(&str, &str)]) -> String {
    let (status, body) = api
        .post(
            "/v1/repos",
            &json!({"name": name, "remote_url": remote.url()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let repo = body["repo"]["id"].as_str().unwrap().to_owned();
    api.wait_status(body["job"]["id"].as_str().unwrap(), "completed")
        .await;
    for (branch, parent) in stack {
        run_ok(
            api,
            &repo,
            "register_existing_branch",
            Some(branch),
            Some(parent),
        )
        .await;
    }
    repo
}

/// main <- a (2 commits) <- b <- c, and a <- side; then main moves ahead.
struct Fixture {
    remote: Remote,
    old_main: String,
    own: std::collections::BTreeMap<&'static str, BTreeSet<String>>,
}

const STACK: [(&str, &str); 4] = [("a", "main"), ("b", "a"), ("c", "b"), ("side", "a")];

fn fixture() -> Fixture {
    let remote = Remote::new();
    let old_main = remote.sha("main");
    remote.branch("a", "main");
    remote.commit("a.txt", "a1\n", "a1");
    remote.commit("a.txt", "a1\na2\n", "a2");
    remote.branch("b", "a");
    remote.commit("b.txt", "b\n", "b1");
    remote.branch("c", "b");
    remote.commit("c.txt", "c\n", "c1");
    remote.branch("side", "a");
    remote.commit("side.txt", "side\n", "side1");
    remote.push(&["a", "b", "c", "side"]);
    let mut own = std::collections::BTreeMap::new();
    for (branch, parent) in STACK {
        let base = if parent == "main" {
            old_main.clone()
        } else {
            remote.sha(parent)
        };
        own.insert(branch, remote.patch_ids(&base, &remote.sha(branch)));
    }
    advance_main(&remote, "main.txt");
    Fixture {
        remote,
        old_main,
        own,
    }
}

fn advance_main(remote: &Remote, file: &str) -> String {
    remote.checkout("main");
    remote.git(&["pull", "--quiet", "--ff-only", "origin", "main"]);
    let sha = remote.commit(file, &format!("{file}\n"), &format!("trunk moves: {file}"));
    remote.push(&["main"]);
    sha
}

/// Every branch contains its parent's tip, keeps its own commits, and the remote equals the
/// server's clone.
fn assert_stacked(server: &TestServer, repo: &str, fx: &Fixture, stack: &[(&'static str, &str)]) {
    let remote = &fx.remote;
    for (branch, parent) in stack {
        assert!(
            remote.contains(branch, &remote.sha(parent)),
            "{branch} lacks {parent}'s tip"
        );
        let own = remote.patch_ids(&remote.sha(parent), &remote.sha(branch));
        assert_eq!(&own, &fx.own[branch], "{branch} changed its own commits");
    }
    assert_eq!(
        refs_of(&server.clone_dir(repo)),
        remote.refs(),
        "the remote equals the server's refs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_restack_subtree_rebase_and_restack_repo_produce_correct_graphs() {
    let fx = fixture();
    let server = TestServer::start_git(None).await;
    let api = &server.api;
    let repo = register(api, &fx.remote, "graph", &STACK).await;
    let rows = branches(api, &repo).await;
    assert_eq!(row(&rows, "a")["needs_restack"], true);
    assert_eq!(row(&rows, "b")["needs_restack"], false);
    assert_eq!(row(&rows, "a")["behind"], 1);

    let synced = run_ok(api, &repo, "sync_repo", None, None).await;
    assert_eq!(
        synced["result"]["details"]["trunk_sha"],
        fx.remote.sha("main")
    );

    // restack_subtree a: a, b, c and side move, parent first, and the job says so.
    let job = run_ok(api, &repo, "restack_subtree", Some("a"), None).await;
    let moved: Vec<&str> = job["result"]["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["branch"].as_str().unwrap())
        .collect();
    assert_eq!(moved.len(), 4, "{job}");
    assert_eq!(moved[0], "a");
    for m in job["result"]["moved"].as_array().unwrap() {
        assert_eq!(m["to"], fx.remote.sha(m["branch"].as_str().unwrap()));
    }
    assert_stacked(&server, &repo, &fx, &STACK);
    assert_ne!(fx.remote.sha("main"), fx.old_main);
    let rows = branches(api, &repo).await;
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|b| b["needs_restack"] == false),
        "{rows}"
    );
    assert!(
        job["progress"]["total"].as_u64().unwrap() > 1,
        "restack reports steps: {job}"
    );

    // Running it again is a no-op.
    let again = run_ok(api, &repo, "restack_subtree", Some("a"), None).await;
    assert_eq!(again["result"]["moved"], json!([]));

    // rebase_branch a moves a alone; b now needs a restack.
    advance_main(&fx.remote, "main2.txt");
    let job = run_ok(api, &repo, "rebase_branch", Some("a"), None).await;
    assert_eq!(job["result"]["moved"].as_array().unwrap().len(), 1, "{job}");
    assert!(fx.remote.contains("a", &fx.remote.sha("main")));
    assert!(!fx.remote.contains("b", &fx.remote.sha("a")));
    assert_eq!(row(&branches(api, &repo).await, "b")["needs_restack"], true);

    // restack_repo brings every branch onto its parent's tip.
    let job = run_ok(api, &repo, "restack_repo", None, None).await;
    assert_eq!(
        job["result"]["moved"].as_array().unwrap().len(),
        3,
        "b, c and side: {job}"
    );
    assert_stacked(&server, &repo, &fx, &STACK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reparent_moves_a_branch_and_refuses_its_own_subtree_in_the_request() {
    let fx = fixture();
    let server = TestServer::start_git(None).await;
    let api = &server.api;
    let repo = register(api, &fx.remote, "reparent", &STACK).await;

    // Refused in the request path, from the cached rows, before any job exists.
    let (status, body) = api
        .post(
            &format!("/v1/repos/{repo}/actions"),
            &json!({"kind": "reparent_branch", "branch": "a", "parent": "c"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "parent_in_subtree");
    let (status, body) = api
        .post(
            &format!("/v1/repos/{repo}/actions"),
            &json!({"kind": "reparent_branch", "branch": "c", "parent": "ghost"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_parent"))
    );

    // c moves from b onto side: it keeps only its own commit and now contains side, not b.
    let job = run_ok(api, &repo, "reparent_branch", Some("c"), Some("side")).await;
    assert!(
        job["result"]["moved"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["branch"] == "c")
    );
    let remote = &fx.remote;
    assert!(remote.contains("c", &remote.sha("side")));
    assert!(!remote.contains("c", &remote.sha("b")));
    assert_eq!(
        remote.patch_ids(&remote.sha("side"), &remote.sha("c")),
        fx.own["c"]
    );
    assert_eq!(row(&branches(api, &repo).await, "c")["parent"], "side");
    assert_eq!(refs_of(&server.clone_dir(&repo)), remote.refs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_guesses_the_parent_and_unicode_branch_names_work_end_to_end() {
    let fx = fixture();
    let server = TestServer::start_git(None).await;
    let api = &server.api;
    let repo = register(api, &fx.remote, "register", &STACK[..2]).await;
    let name = "feature/über-fix";
    fx.remote.branch(name, "b");
    fx.remote.commit("ü.txt", "ü\n", "unicode work");
    fx.remote.push(&[name]);

    let job = run_ok(api, &repo, "register_existing_branch", Some(name), None).await;
    assert_eq!(
        job["result"]["details"]["parent"], "b",
        "guessed from the tracked tips: {job}"
    );
    let rows = branches(api, &repo).await;
    assert_eq!(row(&rows, name)["tracked"], true);
    assert_eq!(row(&rows, name)["parent"], "b");

    let job = run_ok(api, &repo, "restack_subtree", Some("a"), None).await;
    assert!(
        job["result"]["moved"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["branch"] == name),
        "{job}"
    );
    assert!(fx.remote.contains(name, &fx.remote.sha("b")));
    assert!(fx.remote.contains(name, &fx.remote.sha("main")));

    // A branch that exists nowhere fails with a clear message, not a retry loop.
    let job = run(
        api,
        &repo,
        "register_existing_branch",
        Some("no/such-branch"),
        None,
    )
    .await;
    assert_eq!(job["status"], "error");
    assert_eq!(job["attempt"], 1);
    assert!(
        job["message"].as_str().unwrap().contains("no/such-branch"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_mid_stack_leaves_its_subtree_untouched_and_restacks_the_siblings() {
    let remote = Remote::new();
    remote.commit("shared.txt", "base\n", "shared file");
    remote.push(&["main"]);
    remote.branch("a", "main");
    remote.commit("a.txt", "a\n", "a1");
    remote.branch("b", "a");
    let conflicting = remote.commit("shared.txt", "b's version\n", "b edits shared");
    remote.branch("c", "b");
    remote.commit("c.txt", "c\n", "c1");
    remote.branch("side", "a");
    remote.commit("side.txt", "side\n", "side1");
    remote.push(&["a", "b", "c", "side"]);
    remote.checkout("main");
    remote.commit("shared.txt", "trunk's version\n", "trunk edits shared");
    remote.push(&["main"]);
    let before = remote.refs();

    let server = TestServer::start_git(None).await;
    let api = &server.api;
    let repo = register(api, &remote, "conflict", &STACK).await;
    let job = run(api, &repo, "restack_repo", None, None).await;
    assert_eq!(job["status"], "error", "{job}");
    let message = job["message"].as_str().unwrap();
    assert!(
        message.contains('b') && message.contains("shared.txt"),
        "{message}"
    );
    let conflict = &job["result"]["conflicts"][0];
    assert_eq!(conflict["branch"], "b");
    assert_eq!(conflict["commit"], conflicting);
    assert_eq!(conflict["files"], json!(["shared.txt"]));
    assert_eq!(conflict["blocked"], json!(["c"]));

    let after = remote.refs();
    assert_eq!(
        after["b"], before["b"],
        "the conflicting branch is untouched on the remote"
    );
    assert_eq!(after["c"], before["c"], "its subtree is untouched");
    assert_ne!(after["a"], before["a"], "a was restacked");
    assert_ne!(
        after["side"], before["side"],
        "the sibling subtree went through"
    );
    assert!(remote.contains("side", &after["a"]));
    assert_eq!(
        refs_of(&server.clone_dir(&repo)),
        after,
        "nothing half-published locally either"
    );
    let rows = branches(api, &repo).await;
    assert_eq!(
        row(&rows, "b")["conflict"]["files"],
        json!(["shared.txt"]),
        "the branch is marked"
    );
    assert!(row(&rows, "side")["conflict"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squash_merged_parent_is_dropped_and_its_child_restacks_without_conflict() {
    let fx = fixture();
    let remote = &fx.remote;
    let server = TestServer::start_git(None).await;
    let api = &server.api;
    let repo = register(api, remote, "squash", &STACK[..3]).await;

    // A person squash-merges a into main.
    remote.checkout("main");
    remote.git(&["pull", "--quiet", "--ff-only", "origin", "main"]);
    remote.git(&["merge", "--squash", "--quiet", "origin/a"]);
    remote.git(&["commit", "--quiet", "-m", "squash a"]);
    remote.push(&["main"]);

    let job = run_ok(api, &repo, "sync_repo", None, None).await;
    assert_eq!(job["result"]["merged"], json!(["a"]), "{job}");
    let rows = branches(api, &repo).await;
    assert_eq!(
        row(&rows, "b")["parent"],
        "main",
        "b moved to a's nearest surviving ancestor"
    );
    assert_eq!(row(&rows, "a")["tracked"], false);

    let job = run_ok(api, &repo, "restack_subtree", Some("b"), None).await;
    assert!(job["result"]["conflicts"].as_array().unwrap().is_empty());
    assert!(remote.contains("b", &remote.sha("main")));
    assert_eq!(
        remote.patch_ids(&remote.sha("main"), &remote.sha("b")),
        fx.own["b"],
        "only b's own commits"
    );
    assert_eq!(
        remote.patch_ids(&remote.sha("b"), &remote.sha("c")),
        fx.own["c"]
    );
}

/// A git wrapper that pauses before `push` until the test lets it go.
fn pausing_git(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("git-pausing");
    let body = format!(
        "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = push ]; then\n    touch '{0}/at-push'\n    while [ ! -e '{0}/go' ]; do sleep 0.02; done\n    break\n  fi\ndone\nexec git \"$@\"\n",
        dir.display()
    );
    std::fs::write(&script, body).unwrap();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&script)
        .status()
        .unwrap();
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_pushing_between_fetch_and_push_loses_nothing_and_the_job_says_so() {
    let fx = fixture();
    let remote = &fx.remote;
    let gate = tempfile::tempdir().unwrap();
    let server = TestServer::start_git(Some(pausing_git(gate.path()))).await;
    let api = &server.api;
    std::fs::write(gate.path().join("go"), b"").unwrap();
    let repo = register(api, remote, "race", &STACK).await;
    std::fs::remove_file(gate.path().join("go")).unwrap();

    let job = api.act(&repo, "restack_subtree", Some("a"), None).await;
    let id = job["id"].as_str().unwrap();
    eventually("the job to reach its push", || async {
        gate.path().join("at-push").exists().then_some(())
    })
    .await;
    // Meanwhile a person pushes a new commit to b.
    remote.pull_all();
    remote.checkout("b");
    remote.git(&["reset", "--quiet", "--hard", "origin/b"]);
    let theirs = remote.commit("b2.txt", "theirs\n", "their work");
    remote.push(&["b"]);
    let before = remote.refs();
    std::fs::write(gate.path().join("go"), b"").unwrap();

    let job = api.wait_job(id, "finished", terminal).await;
    assert_eq!(job["status"], "error", "{job}");
    assert!(job["message"].as_str().unwrap().contains('b'), "{job}");
    assert_eq!(job["result"]["details"]["rejected_branches"], json!(["b"]));
    assert_eq!(remote.sha("b"), theirs, "their commit survives");
    assert_eq!(remote.refs(), before, "the atomic push moved nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_20_branch_restack_then_restart_completes_with_a_correct_graph() {
    let remote = Remote::new();
    let old_main = remote.sha("main");
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut own = Vec::new();
    let mut parent = "main".to_owned();
    for i in 0..20 {
        let name = format!("s{i:02}");
        remote.branch(&name, &parent);
        remote.commit(
            &format!("f{i}.txt"),
            &format!("{i}\n"),
            &format!("commit {i}"),
        );
        stack.push((name.clone(), parent.clone()));
        parent = name;
    }
    let names: Vec<&str> = stack.iter().map(|(n, _)| n.as_str()).collect();
    remote.push(&names);
    for (branch, parent) in &stack {
        let base = if parent == "main" {
            old_main.clone()
        } else {
            remote.sha(parent)
        };
        own.push(remote.patch_ids(&base, &remote.sha(branch)));
    }
    advance_main(&remote, "trunk.txt");

    // A slow git, so that the kill lands mid-job.
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("git-slow");
    std::fs::write(&slow, "#!/bin/sh\nsleep 0.15\nexec git \"$@\"\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&slow)
        .status()
        .unwrap();
    let data = dir.path().join("data");
    let args = ["--lease-secs", "2"];
    let server = BinaryServer::spawn_with(&data, &args, false).await;
    let api = server.api.clone();
    let stack_refs: Vec<(&str, &str)> = stack
        .iter()
        .map(|(b, p)| (b.as_str(), p.as_str()))
        .collect();
    let repo = register(&api, &remote, "twenty", &stack_refs).await;
    server.terminate().await;

    let slow_args = ["--lease-secs", "2", "--git", slow.to_str().unwrap()];
    let server = BinaryServer::spawn_with(&data, &slow_args, false).await;
    let job = server.api.act(&repo, "restack_repo", None, None).await;
    let id = job["id"].as_str().unwrap().to_owned();
    server
        .api
        .wait_job(&id, "mid-restack", |j| {
            j["status"] == "running" && j["progress"]["step"].as_u64() >= Some(2)
        })
        .await;
    server.kill9().await;

    let server = BinaryServer::spawn_with(&data, &args, false).await;
    let done = server.api.wait_job(&id, "finished", terminal).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempt"], 2);
    for ((branch, parent), own) in stack.iter().zip(&own) {
        assert!(
            remote.contains(branch, &remote.sha(parent)),
            "{branch} lacks {parent}"
        );
        assert_eq!(
            &remote.patch_ids(&remote.sha(parent), &remote.sha(branch)),
            own,
            "{branch}"
        );
    }
    let clone = gantry_server::git_jobs::repos_dir(&data).join(format!("{repo}.git"));
    assert_eq!(refs_of(&clone), remote.refs());
    let worktrees = clone.with_extension("git.worktrees");
    let left: Vec<_> = std::fs::read_dir(&worktrees)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "worktrees left behind: {left:?}");
    let locks = find_locks(&clone);
    assert!(locks.is_empty(), "lock files left behind: {locks:?}");
    server.terminate().await;
}

fn find_locks(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                found.push(path);
            }
        }
    }
    found
}
