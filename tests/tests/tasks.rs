//! Tasks on existing branches never block: ready from a fresh cached row, or pending while a
//! register job attaches the branch. And branch state stays fresh without any request syncing:
//! webhooks and the periodic refresh queue syncs as jobs.

use std::collections::HashSet;
use std::time::Duration;

use gantry_server::webhook::sign;
use gantry_tests::gitrepo::Remote;
use gantry_tests::ws::{TopicMirror, WsClient};
use gantry_tests::{Api, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn repo_with(api: &Api, name: &str, remote: &str, secret: Option<&str>) -> String {
    let (status, body) = api
        .post(
            "/v1/repos",
            &json!({"name": name, "remote_url": remote, "webhook_secret": secret}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    api.wait_status(body["job"]["id"].as_str().unwrap(), "completed")
        .await;
    body["repo"]["id"].as_str().unwrap().to_owned()
}

async fn create_task(api: &Api, repo: &str, body: Value) -> (StatusCode, Value) {
    api.post(&format!("/v1/repos/{repo}/tasks"), &body).await
}

async fn job_count(api: &Api, repo: &str) -> usize {
    let (_, body) = api.get(&format!("/v1/repos/{repo}/jobs?limit=1000")).await;
    body["jobs"].as_array().unwrap().len()
}

fn pushed_remote() -> Remote {
    let remote = Remote::new();
    remote.branch("cached", "main");
    remote.commit("c.txt", "c\n", "cached work");
    remote.push(&["cached"]);
    remote
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_a_fresh_cached_branch_is_ready_in_the_answer_and_creates_no_job() {
    let remote = pushed_remote();
    let server = TestServer::start_git(None).await;
    let api = &server.api;
    let repo = repo_with(api, "fresh", &remote.url(), None).await;
    let jobs_before = job_count(api, &repo).await;

    let (status, body) =
        create_task(api, &repo, json!({"title": "Fix it", "branch": "cached"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let task = &body["task"];
    assert_eq!(task["status"], "ready");
    assert_eq!(task["head_sha"], remote.sha("cached"));
    assert!(task["attach_job_id"].is_null());
    assert_eq!(
        job_count(api, &repo).await,
        jobs_before,
        "no job for a fresh branch"
    );

    // A live task claims its branch.
    let (status, body) =
        create_task(api, &repo, json!({"title": "Again", "branch": "cached"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "branch_claimed");
    let (status, _) = create_task(
        api,
        &repo,
        json!({"title": "Shared", "branch": "cached", "allow_shared_branch": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, list) = api.get(&format!("/v1/repos/{repo}/tasks")).await;
    assert_eq!(list["tasks"].as_array().unwrap().len(), 2);

    for (body, code) in [
        (json!({"title": "", "branch": "x"}), "invalid_title"),
        (
            json!({"title": "t", "branch": "a..b"}),
            "invalid_branch_name",
        ),
        (json!({"title": "t", "branch": "main"}), "branch_is_trunk"),
    ] {
        let (status, answer) = create_task(api, &repo, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_a_remote_only_branch_goes_pending_then_ready_in_commit_order() {
    let remote = pushed_remote();
    let server = TestServer::start_git(None).await;
    let api = &server.api;
    let repo = repo_with(api, "remote-only", &remote.url(), None).await;
    remote.branch("feature/new", "main");
    remote.commit("n.txt", "n\n", "new work");
    remote.push(&["feature/new"]);

    server.wait_projected().await;
    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let tasks_topic = format!("repo/{repo}/tasks");
    let jobs_topic = format!("repo/{repo}/jobs");
    let mut tasks = TopicMirror::from_snapshot(&ws.subscribe(&tasks_topic, None).await);
    let mut jobs = TopicMirror::from_snapshot(&ws.subscribe(&jobs_topic, None).await);

    let (status, body) =
        create_task(api, &repo, json!({"title": "New", "branch": "feature/new"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let task = &body["task"];
    assert_eq!(task["status"], "pending_branch_attach");
    let task_id = task["id"].as_str().unwrap().to_owned();
    let job_id = task["attach_job_id"]
        .as_str()
        .expect("a register job")
        .to_owned();

    // Every frame, in arrival order, as (position, committed_at, topic, status).
    let mut events = Vec::new();
    while tasks
        .rows
        .get(&task_id)
        .is_none_or(|t| t["status"] == "pending_branch_attach")
    {
        let frame = ws.next().await;
        let topic = frame["topic"].as_str().unwrap().to_owned();
        let mirror = if topic == tasks_topic {
            &mut tasks
        } else {
            &mut jobs
        };
        mirror.apply(&frame);
        for op in frame["ops"].as_array().unwrap() {
            if op["key"] == task_id || op["key"] == job_id {
                events.push((
                    frame["position"].as_i64().unwrap(),
                    frame["committed_at"].clone(),
                    topic.clone(),
                    op["row"]["status"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let ready = &tasks.rows[&task_id];
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["head_sha"], remote.sha("feature/new"));

    let sequence = |topic: &str| {
        let mut statuses: Vec<&str> = Vec::new();
        for e in events.iter().filter(|e| e.2 == topic) {
            if statuses.last() != Some(&e.3.as_str()) {
                statuses.push(e.3.as_str());
            }
        }
        statuses
    };
    assert_eq!(sequence(&tasks_topic), ["pending_branch_attach", "ready"]);
    assert_eq!(sequence(&jobs_topic), ["queued", "running", "completed"]);
    let positions: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "frames arrive in commit order: {events:?}"
    );
    let at = |status: &str| {
        events
            .iter()
            .find(|e| e.3 == status)
            .unwrap_or_else(|| panic!("no {status} in {events:?}"))
            .clone()
    };
    assert_eq!(
        at("pending_branch_attach").1,
        at("queued").1,
        "the task and its job are one commit"
    );
    assert_eq!(
        at("ready").1,
        at("completed").1,
        "the task turns ready in the job's own commit"
    );
    assert!(at("running").0 < at("ready").0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_a_branch_that_exists_nowhere_ends_attach_failed() {
    let remote = pushed_remote();
    let server = TestServer::start_git(None).await;
    let api = &server.api;
    let repo = repo_with(api, "nowhere", &remote.url(), None).await;
    let (_, body) = create_task(
        api,
        &repo,
        json!({"title": "Ghost", "branch": "ghost/branch"}),
    )
    .await;
    let task_id = body["task"]["id"].as_str().unwrap().to_owned();
    let failed = eventually("the task to fail", || async {
        let (_, list) = api.get(&format!("/v1/repos/{repo}/tasks")).await;
        let task = list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == task_id)
            .cloned()?;
        (task["status"] != "pending_branch_attach").then_some(task)
    })
    .await;
    assert_eq!(failed["status"], "attach_failed");
    assert!(
        failed["status_message"]
            .as_str()
            .unwrap()
            .contains("ghost/branch"),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_tasks_on_one_missing_branch_share_one_register_job() {
    let remote = pushed_remote();
    let server = TestServer::start_git(None).await;
    let api = &server.api;
    let repo = repo_with(api, "shared", &remote.url(), None).await;
    remote.branch("late", "main");
    remote.commit("l.txt", "l\n", "late work");
    remote.push(&["late"]);
    let body = json!({"title": "t", "branch": "late", "allow_shared_branch": true});
    let (a, b) = tokio::join!(
        create_task(api, &repo, body.clone()),
        create_task(api, &repo, body.clone())
    );
    assert_eq!((a.0, b.0), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(
        a.1["task"]["attach_job_id"], b.1["task"]["attach_job_id"],
        "{a:?} {b:?}"
    );
    let (_, jobs) = api.get(&format!("/v1/repos/{repo}/jobs?limit=1000")).await;
    let registers = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "register_existing_branch" && j["branch"] == "late")
        .count();
    assert_eq!(registers, 1);
    eventually("both tasks ready", || async {
        let (_, list) = api.get(&format!("/v1/repos/{repo}/tasks")).await;
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "ready")
            .then_some(())
    })
    .await;
}

async fn hook(api: &Api, event: &str, body: &Value, signature: &str) -> (StatusCode, Value) {
    let response = api
        .http
        .post(format!("{}/v1/hooks/github", api.base))
        .header("X-GitHub-Event", event)
        .header("X-Hub-Signature-256", signature)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_queue_exactly_one_sync_and_refuse_bad_signatures() {
    let server = TestServer::start().await;
    let api = &server.api;
    let url = "https://github.com/acme/web.git";
    let repo = repo_with(api, "web", url, Some("s3cret")).await;
    let blocker = api
        .act(&repo, "rebase_branch", Some("block-hook"), None)
        .await;
    api.wait_status(blocker["id"].as_str().unwrap(), "running")
        .await;
    let payload = json!({"ref": "refs/heads/main", "repository": {"clone_url": url, "html_url": "https://github.com/acme/web"}});
    let signature = sign(b"s3cret", payload.to_string().as_bytes());
    let syncs = || async {
        let (_, jobs) = api.get(&format!("/v1/repos/{repo}/jobs?limit=1000")).await;
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == "sync_repo" && j["status"] == "queued")
            .count()
    };

    let (status, body) = hook(api, "push", &payload, &signature).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    let job_id = body["jobs"][0]["id"].clone();
    assert_eq!(syncs().await, 1);

    let burst = (0..10).map(|_| hook(api, "push", &payload, &signature));
    let answers = futures::future::join_all(burst).await;
    let ids: HashSet<String> = answers
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, StatusCode::ACCEPTED);
            b["jobs"][0]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        HashSet::from([job_id.as_str().unwrap().to_owned()]),
        "the burst reuses the queued sync"
    );
    assert_eq!(syncs().await, 1);

    let (status, body) = hook(
        api,
        "push",
        &payload,
        &sign(b"wrong", payload.to_string().as_bytes()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_signature"))
    );
    let (status, _) = hook(api, "push", &payload, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let other = json!({"repository": {"clone_url": "https://github.com/acme/unknown.git"}});
    let (status, body) = hook(
        api,
        "push",
        &other,
        &sign(b"s3cret", other.to_string().as_bytes()),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("ignored"))
    );
    let (status, body) = hook(api, "issues", &payload, &signature).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("ignored"))
    );
    assert_eq!(syncs().await, 1, "nothing refused or ignored queued a sync");
    server.release("hook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_refresh_syncs_and_the_repos_topic_shows_branch_sync_at() {
    let remote = pushed_remote();
    let server = TestServer::start_git_with(None, |config| {
        config.engine.refresh_interval = Some(Duration::from_millis(400));
    })
    .await;
    let api = &server.api;
    let repo = repo_with(api, "refresh", &remote.url(), None).await;
    server.wait_projected().await;
    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let mut repos = TopicMirror::from_snapshot(&ws.subscribe("repos", None).await);
    let first = repos.rows[&repo]["branch_sync_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut seen = vec![first];
    while seen.len() < 3 {
        repos.apply(&ws.next().await);
        let row = &repos.rows[&repo];
        if row["branch_sync_status"] == "synced" {
            let at = row["branch_sync_at"].as_str().unwrap().to_owned();
            if seen.last() != Some(&at) {
                seen.push(at);
            }
        }
    }
    // Compared as times: RFC 3339 text omits a zero fraction, so it does not sort as text.
    let parse = |at: &String| chrono::DateTime::parse_from_rfc3339(at).expect("an RFC 3339 time");
    assert!(
        seen.windows(2).all(|w| parse(&w[0]) < parse(&w[1])),
        "{seen:?}"
    );
    let (_, jobs) = api.get(&format!("/v1/repos/{repo}/jobs?limit=1000")).await;
    let syncs = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "sync_repo")
        .count();
    assert!(syncs >= 3, "the refreshes are jobs: {syncs}");
}
