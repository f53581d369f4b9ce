//! The job engine through the public API of a real server: accept before work, one running job
//! per repo, retries, cancel, idempotent accept.

use gantry_tests::{Api, TestServer, eventually, time};
use reqwest::StatusCode;
use serde_json::json;

const REMOTE: &str = "https://example.invalid/repo.git";

async fn repo(api: &Api, name: &str) -> String {
    let id = api.create_repo(name, REMOTE).await;
    // The first sync runs the test handler and completes at once; wait so it does not interleave.
    let (_, jobs) = api.get(&format!("/v1/repos/{id}/jobs")).await;
    let first = jobs["jobs"][0]["id"]
        .as_str()
        .expect("first sync job")
        .to_owned();
    api.wait_status(&first, "completed").await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_answers_queued_while_a_handler_of_the_same_repo_blocks() {
    let server = TestServer::start().await;
    let api = &server.api;
    let repo = repo(api, "r1").await;

    let blocker = api
        .act(&repo, "rebase_branch", Some("block-accept"), None)
        .await;
    api.wait_status(blocker["id"].as_str().unwrap(), "running")
        .await;

    let accepted = api.act(&repo, "restack_subtree", Some("quick"), None).await;
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["attempt"], 0);
    let id = accepted["id"].as_str().unwrap();
    // Readable as queued at once, and it stays queued while the repo's running job blocks.
    assert_eq!(api.job(id).await["status"], "queued");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        api.job(id).await["status"],
        "queued",
        "a second job ran beside a running one"
    );

    server.release("accept");
    api.wait_status(blocker["id"].as_str().unwrap(), "completed")
        .await;
    let done = api.wait_status(id, "completed").await;
    assert_eq!(done["attempt"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_one_repo_never_overlap_and_jobs_of_two_repos_do() {
    let server = TestServer::start().await;
    let api = &server.api;
    let a = repo(api, "a").await;
    let b = repo(api, "b").await;
    let c = repo(api, "c").await;

    let mut ids = Vec::new();
    for i in 0..4 {
        let job = api
            .act(&a, "rebase_branch", Some(&format!("sleep-60-{i}")), None)
            .await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    let mut intervals = Vec::new();
    for id in &ids {
        let job = api.wait_status(id, "completed").await;
        intervals.push((time(&job, "started_at"), time(&job, "completed_at")));
    }
    intervals.sort();
    for pair in intervals.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "jobs of one repo overlapped: {pair:?}"
        );
    }

    let on_b = api.act(&b, "rebase_branch", Some("block-b"), None).await;
    let on_c = api.act(&c, "rebase_branch", Some("block-c"), None).await;
    let (b_id, c_id) = (on_b["id"].as_str().unwrap(), on_c["id"].as_str().unwrap());
    eventually("jobs on two repos running at the same time", || async {
        let both = api.job(b_id).await["status"] == "running"
            && api.job(c_id).await["status"] == "running";
        both.then_some(())
    })
    .await;
    server.release("b");
    server.release("c");
    api.wait_status(b_id, "completed").await;
    api.wait_status(c_id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_retry_with_backoff_and_permanent_ones_do_not() {
    let server = TestServer::start().await;
    let api = &server.api;
    let repo = repo(api, "retry").await;

    let recovers = api
        .act(&repo, "rebase_branch", Some("transient-2"), None)
        .await;
    let done = api
        .wait_status(recovers["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(
        done["attempt"], 3,
        "two transient failures then success: {done}"
    );

    let exhausts = api
        .act(&repo, "rebase_branch", Some("transient-9"), None)
        .await;
    let failed = api
        .wait_status(exhausts["id"].as_str().unwrap(), "error")
        .await;
    assert_eq!(failed["attempt"], 3);
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("failed after 3 attempts"),
        "{failed}"
    );

    let fails = api
        .act(&repo, "rebase_branch", Some("fail-now"), None)
        .await;
    let failed = api
        .wait_status(fails["id"].as_str().unwrap(), "error")
        .await;
    assert_eq!(failed["attempt"], 1, "a permanent failure is not retried");
    assert_eq!(failed["message"], "test failure now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_steps_are_recorded_on_the_job() {
    let server = TestServer::start().await;
    let api = &server.api;
    let repo = repo(api, "progress").await;
    let job = api
        .act(&repo, "rebase_branch", Some("block-progress"), None)
        .await;
    let id = job["id"].as_str().unwrap();
    let running = api
        .wait_job(id, "showing progress", |j| {
            j["progress"]["text"] == "blocked until released"
        })
        .await;
    assert_eq!(running["progress"]["step"], 1);
    assert_eq!(running["progress"]["total"], 2);
    server.release("progress");
    let done = api.wait_status(id, "completed").await;
    assert_eq!(done["progress"]["text"], "released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_queued_job_and_a_running_job() {
    let server = TestServer::start().await;
    let api = &server.api;
    let repo = repo(api, "cancel").await;

    let running = api
        .act(&repo, "rebase_branch", Some("block-never"), None)
        .await;
    let running_id = running["id"].as_str().unwrap();
    api.wait_status(running_id, "running").await;
    let queued = api.act(&repo, "rebase_branch", Some("quick"), None).await;
    let queued_id = queued["id"].as_str().unwrap();

    let (status, body) = api
        .post(&format!("/v1/jobs/{queued_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        body["job"]["status"], "cancelled",
        "a queued job is cancelled at once"
    );

    let (status, body) = api
        .post(&format!("/v1/jobs/{running_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["job"]["status"], "running");
    assert_eq!(body["job"]["cancel_requested"], true);
    let cancelled = api.wait_status(running_id, "cancelled").await;
    assert!(cancelled["completed_at"].is_string());

    let (status, body) = api
        .post(&format!("/v1/jobs/{running_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "job_finished");
    // The cancelled queued job never ran.
    assert_eq!(api.job(queued_id).await["attempt"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_is_idempotent_by_target_and_by_key() {
    let server = TestServer::start().await;
    let api = &server.api;
    let repo = repo(api, "idem").await;
    let blocker = api
        .act(&repo, "rebase_branch", Some("block-idem"), None)
        .await;
    api.wait_status(blocker["id"].as_str().unwrap(), "running")
        .await;

    // Same kind and target while queued: the same job.
    let first = api
        .act(&repo, "restack_subtree", Some("feature/x"), None)
        .await;
    let again = api
        .act(&repo, "restack_subtree", Some("feature/x"), None)
        .await;
    assert_eq!(first["id"], again["id"]);
    let other = api
        .act(&repo, "rebase_branch", Some("feature/x"), None)
        .await;
    assert_ne!(first["id"], other["id"], "another kind is another job");

    // Idempotency-Key: the job it created before, even after that job finished.
    let path = format!("/v1/repos/{repo}/actions");
    let body = json!({"kind": "rebase_branch", "branch": "keyed"});
    let (s1, k1) = api
        .post_with(&path, &body, &[("Idempotency-Key", "key-1")])
        .await;
    assert_eq!(s1, StatusCode::ACCEPTED);
    server.release("idem");
    let keyed_id = k1["job"]["id"].as_str().unwrap();
    api.wait_status(keyed_id, "completed").await;
    let (s2, k2) = api
        .post_with(&path, &body, &[("Idempotency-Key", "key-1")])
        .await;
    assert_eq!(s2, StatusCode::ACCEPTED);
    assert_eq!(k2["job"]["id"], keyed_id);
    assert_eq!(k2["job"]["status"], "completed");

    let different = json!({"kind": "rebase_branch", "branch": "other"});
    let (s3, k3) = api
        .post_with(&path, &different, &[("Idempotency-Key", "key-1")])
        .await;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY, "{k3}");
    assert_eq!(k3["error"]["code"], "idempotency_key_reused");
}
