//! Several nodes on one database: concurrent writers and one gapless order for every subscriber,
//! 200 jobs shared by two real `gantry serve` processes, identical requests racing on two nodes,
//! a node killed mid-restack, database connections cut under load, and admin tokens that work on
//! every node.
//!
//! The concurrent-writers test runs on both backends (one node on SQLite, two on PostgreSQL);
//! the others need PostgreSQL and run in its pass of the suite (`GANTRY_TEST_DATABASE=postgres`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gantry_server::engine::HandlerRegistry;
use gantry_server::engine::test_handlers::TestHandler;
use gantry_tests::gitrepo::{Remote, refs_of};
use gantry_tests::ws::{TopicMirror, WsClient, follow};
use gantry_tests::{Api, BinaryServer, DEADLINE, TestServer, eventually, postgres_only, time};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REMOTE: &str = "https://example.invalid/cluster.git";

fn test_handlers() -> HandlerRegistry {
    HandlerRegistry::uniform(Arc::new(TestHandler))
}

/// An in-process node on the database at `url`.
async fn node(
    url: &str,
    tune: impl FnOnce(&mut gantry_server::server::ServerConfig),
) -> TestServer {
    let url = url.to_owned();
    TestServer::start_with(test_handlers(), move |config| {
        config.database_url = Some(url);
        tune(config);
    })
    .await
}

/// All jobs of a repo, as the REST API shows them (by id).
async fn job_table(api: &Api, repo: &str) -> BTreeMap<String, Value> {
    let (status, body) = api.get(&format!("/v1/repos/{repo}/jobs?limit=1000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jobs = body["jobs"].as_array().expect("jobs");
    assert!(jobs.len() < 1000, "the table must fit one page");
    jobs.iter()
        .map(|job| (job["id"].as_str().unwrap().to_owned(), job.clone()))
        .collect()
}

/// Subscribes to the job lists of `repos`, returning mirrors by topic.
async fn subscribe_jobs(ws: &mut WsClient, repos: &[String]) -> HashMap<String, TopicMirror> {
    let mut mirrors = HashMap::new();
    for repo in repos {
        let topic = format!("repo/{repo}/jobs");
        let snapshot = ws.subscribe(&topic, None).await;
        mirrors.insert(topic, TopicMirror::from_snapshot(&snapshot));
    }
    mirrors
}

/// The statuses each job went through on a mirror, in the order its diffs showed them.
fn status_sequences(mirror: &TopicMirror) -> HashMap<String, Vec<String>> {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for diff in &mirror.diffs {
        for op in diff["ops"].as_array().unwrap() {
            let Some(status) = op["row"]["status"].as_str() else {
                continue;
            };
            let statuses = seen
                .entry(op["key"].as_str().unwrap().to_owned())
                .or_default();
            if statuses.last().map(String::as_str) != Some(status) {
                statuses.push(status.to_owned());
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_every_node_give_subscribers_one_gapless_order() {
    // Two nodes on one PostgreSQL schema; a single node on SQLite (one process per file).
    let shared = gantry_tests::shared_database().await;
    let mut nodes = vec![match &shared {
        Some(url) => node(url, |_| {}).await,
        None => TestServer::start().await,
    }];
    if let Some(url) = &shared {
        nodes.push(node(url, |_| {}).await);
    }
    let apis: Vec<Api> = nodes.iter().map(|n| n.api.clone()).collect();

    // Four repos, each with a running job that blocks, so that the writers' jobs stay queued
    // until the writers cancel them: every request is one committed change.
    let mut repos = Vec::new();
    for i in 0..4 {
        let repo = apis[0]
            .create_synced_repo(&format!("writers-{i}"), REMOTE)
            .await;
        let blocker = apis[0]
            .act(&repo, "rebase_branch", Some(&format!("block-w{i}")), None)
            .await;
        apis[0]
            .wait_job(blocker["id"].as_str().unwrap(), "blocked", |j| {
                j["status"] == "running" && j["progress"]["step"] == 1
            })
            .await;
        repos.push(repo);
    }
    let mut clients = Vec::new();
    let mut starts: Vec<HashMap<String, i64>> = Vec::new();
    for api in &apis {
        let mut ws = WsClient::connect(&api.base, &api.token).await;
        let mirrors = subscribe_jobs(&mut ws, &repos).await;
        starts.push(
            mirrors
                .iter()
                .map(|(t, m)| (t.clone(), m.position))
                .collect(),
        );
        clients.push((ws, mirrors));
    }

    // 8 writers, spread over the nodes, enqueue and cancel as fast as they can for 4 seconds.
    let started = tokio::time::Instant::now();
    let commits = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let api = apis[w % apis.len()].clone();
            let repo = repos[w % repos.len()].clone();
            let commits = commits.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while started.elapsed() < Duration::from_secs(4) && n < 100 {
                    let job = api
                        .act(&repo, "rebase_branch", Some(&format!("w{w}-{n}")), None)
                        .await;
                    let (status, body) = api
                        .post(
                            &format!("/v1/jobs/{}/cancel", job["id"].as_str().unwrap()),
                            &json!({}),
                        )
                        .await;
                    assert!(status.is_success(), "cancel: {body}");
                    commits.fetch_add(2, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let elapsed = started.elapsed();
    let commits = commits.load(Ordering::Relaxed);
    eprintln!(
        "{commits} changes from 8 writers on {} node(s) in {elapsed:.1?}: {:.0}/s",
        apis.len(),
        commits as f64 / elapsed.as_secs_f64()
    );

    let mut finals = HashMap::new();
    for repo in &repos {
        finals.insert(format!("repo/{repo}/jobs"), job_table(&apis[0], repo).await);
    }
    // Every node's subscriber reaches exactly the final table through gapless diffs.
    for (ws, mirrors) in &mut clients {
        follow(ws, mirrors, |mirrors| {
            mirrors.iter().all(|(topic, m)| m.rows == finals[topic])
        })
        .await;
        assert!(
            ws.next_within(Duration::from_millis(200)).await.is_none(),
            "no change beyond the final table"
        );
    }
    // And they saw the same diffs in the same order, whichever node they were on (from the later
    // of their two snapshots on: a node's projections may lag the other's by a few changes).
    if clients.len() == 2 {
        for topic in finals.keys() {
            let common = starts[0][topic].max(starts[1][topic]);
            let on = |i: usize| -> Vec<(i64, i64, Value)> {
                clients[i].1[topic]
                    .diffs
                    .iter()
                    .filter(|d| d["prev"].as_i64().unwrap() >= common)
                    .map(|d| {
                        (
                            d["position"].as_i64().unwrap(),
                            d["prev"].as_i64().unwrap(),
                            d["ops"].clone(),
                        )
                    })
                    .collect()
            };
            assert_eq!(on(0), on(1), "{topic} differs between the nodes");
        }
    }
    for i in 0..4 {
        for node in &nodes {
            node.release(&format!("w{i}"));
        }
    }
}

/// The node logs that say they started `job_id`.
fn runs_of(job_id: &str, logs: &[String]) -> Vec<usize> {
    logs.iter()
        .enumerate()
        .flat_map(|(node, log)| {
            log.lines()
                .filter(|line| line.contains("job started") && line.contains(job_id))
                .map(move |_| node)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_200_jobs_each_run_once_and_one_repo_never_runs_two() {
    let Some(url) = postgres_only("two_nodes_share_200_jobs").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = ["--database-url", url.as_str()];
    let a = BinaryServer::spawn(&dir.path().join("a"), &args).await;
    let b = BinaryServer::spawn(&dir.path().join("b"), &args).await;
    let mut repos = Vec::new();
    for i in 0..10 {
        repos.push(
            a.api
                .create_synced_repo(&format!("shared-{i}"), REMOTE)
                .await,
        );
    }
    let mut ws = WsClient::connect(&b.api.base, &b.api.token).await;
    let mut mirrors = subscribe_jobs(&mut ws, &repos).await;

    // 200 jobs, accepted half by each node, by 4 concurrent clients.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let apis = [a.api.clone(), b.api.clone()];
            let repos = repos.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..50 {
                    let api = &apis[n % 2];
                    let repo = &repos[(w * 50 + n) % repos.len()];
                    let job = api
                        .act(
                            repo,
                            "rebase_branch",
                            Some(&format!("sleep-20-{w}x{n}")),
                            None,
                        )
                        .await;
                    ids.push(job["id"].as_str().unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for writer in writers {
        ids.extend(writer.await.expect("writer"));
    }
    assert_eq!(ids.len(), 200);

    // B's client sees every job complete...
    follow(&mut ws, &mut mirrors, |mirrors| {
        ids.iter().all(|id| {
            mirrors.values().any(|m| {
                m.rows
                    .get(id)
                    .is_some_and(|row| row["status"] == "completed")
            })
        })
    })
    .await;

    // ...each run exactly once, by one of the two nodes, as attempt 1...
    let logs = [a.log(), b.log()];
    let mut ran_on = [0; 2];
    for id in &ids {
        let job = b.api.job(id).await;
        assert_eq!(
            (job["status"].as_str(), job["attempt"].as_u64()),
            (Some("completed"), Some(1)),
            "{job}"
        );
        let runs = runs_of(id, &logs);
        assert_eq!(runs.len(), 1, "job {id} started {} times", runs.len());
        ran_on[runs[0]] += 1;
    }
    eprintln!(
        "jobs run on node A: {}, on node B: {}",
        ran_on[0], ran_on[1]
    );
    assert!(
        ran_on.iter().all(|&n| n > 0),
        "both nodes took work: {ran_on:?}"
    );

    // ...never two at once on one repo...
    for repo in &repos {
        let table = job_table(&b.api, repo).await;
        let mut intervals: Vec<_> = table
            .values()
            .map(|job| (time(job, "started_at"), time(job, "completed_at"), job))
            .collect();
        intervals.sort_by_key(|(started, completed, _)| (*started, *completed));
        for pair in intervals.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "two jobs of repo {repo} overlapped:\n{}\n{}\nlogs:\n{}\n{}",
                pair[0].2,
                pair[1].2,
                logs[0],
                logs[1]
            );
        }
    }

    // ...and, on B, the jobs that ran on A went queued -> running -> completed in that order.
    let mut seen_from_a = 0;
    for mirror in mirrors.values() {
        for (job, statuses) in status_sequences(mirror) {
            if !ids.contains(&job) {
                continue;
            }
            assert_eq!(statuses, ["queued", "running", "completed"], "job {job}");
            if runs_of(&job, &logs) == [0] {
                seen_from_a += 1;
            }
        }
    }
    assert_eq!(seen_from_a, ran_on[0], "B saw every job that A ran");
    a.terminate().await;
    b.terminate().await;
}

/// A git that is slow (0.15 s a call) while `gate` exists, so a kill can land mid-job.
fn gated_git(dir: &Path, gate: &Path) -> std::path::PathBuf {
    let script = dir.join("git-gated");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then sleep 0.15; fi\nexec git \"$@\"\n",
            gate.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    script
}

fn terminal(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "error" | "cancelled")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_node_running_a_restack_lets_the_other_finish_it() {
    let Some(url) = postgres_only("sigkill_of_the_node_running_a_restack").await else {
        return;
    };
    // main <- s0 <- s1 <- ... <- s7, then main moves ahead: a restack rewrites every branch.
    let remote = Remote::new();
    let old_main = remote.sha("main");
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut parent = "main".to_owned();
    for i in 0..8 {
        let branch = format!("s{i}");
        remote.branch(&branch, &parent);
        remote.commit(&format!("{branch}.txt"), &format!("{branch}\n"), &branch);
        stack.push((branch.clone(), parent));
        parent = branch;
    }
    let names: Vec<&str> = stack.iter().map(|(b, _)| b.as_str()).collect();
    remote.push(&names);
    let own: Vec<_> = stack
        .iter()
        .map(|(branch, parent)| {
            let base = if parent == "main" {
                old_main.clone()
            } else {
                remote.sha(parent)
            };
            remote.patch_ids(&base, &remote.sha(branch))
        })
        .collect();
    remote.checkout("main");
    remote.commit("trunk.txt", "trunk\n", "trunk moves");
    remote.push(&["main"]);

    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("slow");
    let git = gated_git(dir.path(), &gate);
    let args = [
        "--database-url",
        url.as_str(),
        "--lease-secs",
        "2",
        "--git",
        git.to_str().unwrap(),
    ];
    let mut nodes = [
        Some(BinaryServer::spawn_with(&dir.path().join("a"), &args, false).await),
        Some(BinaryServer::spawn_with(&dir.path().join("b"), &args, false).await),
    ];
    let api = nodes[0].as_ref().unwrap().api.clone();
    let (status, body) = api
        .post(
            "/v1/repos",
            &json!({"name": "stack", "remote_url": remote.url()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let repo = body["repo"]["id"].as_str().unwrap().to_owned();
    api.wait_status(body["job"]["id"].as_str().unwrap(), "completed")
        .await;
    for (branch, parent) in &stack {
        let job = api
            .act(
                &repo,
                "register_existing_branch",
                Some(branch),
                Some(parent),
            )
            .await;
        let job = api
            .wait_job(job["id"].as_str().unwrap(), "finished", terminal)
            .await;
        assert_eq!(job["status"], "completed", "register {branch}: {job}");
    }

    std::fs::write(&gate, b"").unwrap();
    let job = api.act(&repo, "restack_repo", None, None).await;
    let id = job["id"].as_str().unwrap().to_owned();
    api.wait_job(&id, "mid-restack", |j| {
        j["status"] == "running" && j["progress"]["step"].as_u64() >= Some(2)
    })
    .await;
    let logs: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().log()).collect();
    let runner = runs_of(&id, &logs);
    assert_eq!(runner.len(), 1, "one node runs the restack: {runner:?}");
    let victim = runner[0];
    nodes[victim].take().unwrap().kill9().await;
    std::fs::remove_file(&gate).unwrap();

    let survivor = nodes[1 - victim].take().unwrap();
    let done = survivor
        .api
        .wait_job(&id, "finished on the surviving node", terminal)
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert!(
        runs_of(&id, &[survivor.log()]).len() == 1,
        "the surviving node ran attempt 2"
    );
    for ((branch, parent), own) in stack.iter().zip(&own) {
        assert!(
            remote.contains(branch, &remote.sha(parent)),
            "{branch} lacks {parent}"
        );
        assert_eq!(
            &remote.patch_ids(&remote.sha(parent), &remote.sha(branch)),
            own,
            "{branch} changed its own commits"
        );
    }
    let clone = gantry_server::git_jobs::repos_dir(&survivor.data_dir).join(format!("{repo}.git"));
    assert_eq!(
        refs_of(&clone),
        remote.refs(),
        "the survivor's clone equals the remote"
    );
    let worktrees = clone.with_extension("git.worktrees");
    let left: Vec<_> = std::fs::read_dir(&worktrees)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "worktrees left behind: {left:?}");
    survivor.terminate().await;
}

/// The `application_name` a database URL gives its connections.
fn application_name(url: &str) -> String {
    url.split(['?', '&'])
        .filter_map(|p| p.strip_prefix("application_name="))
        .next_back()
        .expect("application_name in the test URL")
        .to_owned()
}

/// A connection to the test database for the test's own inspections.
async fn admin() -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&gantry_server::test_support::postgres_base_url())
        .await
        .expect("test database")
}

/// Terminates every session named `app`, returning how many there were.
async fn cut(db: &mut sqlx::PgConnection, app: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND application_name = $1",
    )
    .bind(app)
    .fetch_one(db)
    .await
    .expect("terminate")
}

/// Whether a session named `app` is listening for change notifications.
async fn listening(db: &mut sqlx::PgConnection, app: &str) -> bool {
    sqlx::query_scalar(
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = $1 \
         AND query LIKE 'LISTEN %'",
    )
    .bind(app)
    .fetch_one(db)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_database_connections_are_reopened_and_no_change_is_missed() {
    let Some(url) = postgres_only("cut_database_connections").await else {
        return;
    };
    // Node A has its own session name, runs no jobs, and never polls the log: after a cut, it
    // learns of node B's commits only if its listener came back.
    let app_a = format!("{}_a", application_name(&url));
    let url_a = format!("{url}&application_name={app_a}");
    let a = node(&url_a, |config| {
        config.engine.workers = 0;
        config.projections.poll_interval = Duration::from_secs(3600);
    })
    .await;
    let b = node(&url, |_| {}).await;
    let repo = b.api.create_synced_repo("cut", REMOTE).await;
    let mut ws = WsClient::connect(&a.api.base, &a.api.token).await;
    let mut mirrors = subscribe_jobs(&mut ws, std::slice::from_ref(&repo)).await;
    let mut db = admin().await;

    // Requests alternate between the nodes. A request may fail while its connection is cut;
    // the client retries it with the same Idempotency-Key, so an unknown outcome is never
    // doubled. Only 202s count as accepted.
    let apis = [a.api.clone(), b.api.clone()];
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writer = {
        let (repo, accepted) = (repo.clone(), accepted.clone());
        tokio::spawn(async move {
            for n in 0..120 {
                let api = &apis[n % 2];
                let key = format!("cut-{n}");
                let body = json!({"kind": "rebase_branch", "branch": format!("sleep-5-{n}")});
                let deadline = tokio::time::Instant::now() + DEADLINE;
                loop {
                    let (status, job) = api
                        .post_with(
                            &format!("/v1/repos/{repo}/actions"),
                            &body,
                            &[("idempotency-key", &key)],
                        )
                        .await;
                    if status == StatusCode::ACCEPTED {
                        accepted
                            .lock()
                            .unwrap()
                            .push(job["job"]["id"].as_str().unwrap().to_owned());
                        break;
                    }
                    assert!(
                        status.is_server_error() && tokio::time::Instant::now() < deadline,
                        "request {n}: {status} {job}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    for round in 1..=3 {
        eventually("requests accepted before the cut", || async {
            (accepted.lock().unwrap().len() >= round * 30).then_some(())
        })
        .await;
        assert!(
            listening(&mut db, &app_a).await,
            "A listens before cut {round}"
        );
        let cut_sessions = cut(&mut db, &app_a).await;
        assert!(
            cut_sessions >= 2,
            "cut {round} ended the pool's and the listener's sessions"
        );
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !listening(&mut db, &app_a).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "A never listened again after cut {round}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    writer.await.expect("writer");
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 120);

    // The jobs now run (on B) and commit only through B: A's subscriber must see all of it.
    for id in &accepted {
        b.api.wait_status(id, "completed").await;
    }
    let table = job_table(&b.api, &repo).await;
    assert!(
        accepted.iter().all(|id| table.contains_key(id)),
        "nothing accepted was lost"
    );
    let topic = format!("repo/{repo}/jobs");
    follow(&mut ws, &mut mirrors, |mirrors| {
        mirrors[&topic].rows == table
    })
    .await;
    for (job, statuses) in status_sequences(&mirrors[&topic]) {
        if accepted.contains(&job) {
            assert_eq!(statuses, ["queued", "running", "completed"], "job {job}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_nodes_generated_admin_token_works_on_every_node() {
    let Some(url) = postgres_only("each_nodes_generated_admin_token").await else {
        return;
    };
    // No GANTRY_TOKEN: each node generates its own token into its data dir.
    let a = node(&url, |config| config.admin_token = None).await;
    let b = node(&url, |config| config.admin_token = None).await;
    let (token_a, token_b) = (a.server().admin_token(), b.server().admin_token());
    assert_ne!(token_a, token_b);
    for token in [token_a, token_b] {
        for api in [&a.api, &b.api] {
            let (status, body) = api.with_token(token).get("/v1/repos").await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(a.data_dir.join("admin-token"))
            .unwrap()
            .trim(),
        token_a
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_racing_on_two_nodes_get_one_job() {
    let Some(url) = postgres_only("identical_requests_racing_on_two_nodes").await else {
        return;
    };
    let a = node(&url, |_| {}).await;
    let b = node(&url, |_| {}).await;
    let repo = a.api.create_synced_repo("race", REMOTE).await;
    let blocker = a
        .api
        .act(&repo, "rebase_branch", Some("block-race"), None)
        .await;
    a.api
        .wait_status(blocker["id"].as_str().unwrap(), "running")
        .await;

    // 40 targets, each requested at the same moment through both nodes (half of them with an
    // Idempotency-Key too): each pair must name one job, and each target must have one.
    let path = format!("/v1/repos/{repo}/actions");
    let mut pairs = Vec::new();
    for n in 0..40 {
        let body = json!({"kind": "restack_subtree", "branch": format!("race-{n}")});
        let key = format!("race-key-{n}");
        let headers: Vec<(&str, String)> = if n % 2 == 0 {
            vec![("idempotency-key", key)]
        } else {
            Vec::new()
        };
        let send = |api: Api| {
            let (path, body, headers) = (path.clone(), body.clone(), headers.clone());
            tokio::spawn(async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                api.post_with(&path, &body, &headers).await
            })
        };
        pairs.push((send(a.api.clone()), send(b.api.clone())));
    }
    for (n, (on_a, on_b)) in pairs.into_iter().enumerate() {
        let ((status_a, job_a), (status_b, job_b)) = (on_a.await.unwrap(), on_b.await.unwrap());
        assert_eq!(
            (status_a, status_b),
            (StatusCode::ACCEPTED, StatusCode::ACCEPTED),
            "race-{n}: {job_a} {job_b}"
        );
        assert_eq!(job_a["job"]["id"], job_b["job"]["id"], "race-{n}");
    }
    let table = job_table(&a.api, &repo).await;
    for n in 0..40 {
        let branch = format!("race-{n}");
        let jobs = table
            .values()
            .filter(|j| j["branch"] == branch.as_str())
            .count();
        assert_eq!(jobs, 1, "{branch} has one job");
    }
    for node in [&a, &b] {
        node.release("race");
    }
}
