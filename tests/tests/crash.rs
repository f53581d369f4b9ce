//! The real binary killed and restarted on the same data dir: nothing accepted is lost.

use gantry_tests::{BinaryServer, release};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_at_sigkill_is_retried_as_attempt_2_and_queued_jobs_survive() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(dir.path(), &["--lease-secs", "2"]).await;
    let api = server.api.clone();
    let repo = api
        .create_repo("crash", "https://example.invalid/c.git")
        .await;
    let running = api
        .act(&repo, "rebase_branch", Some("block-crash"), None)
        .await;
    let running_id = running["id"].as_str().unwrap().to_owned();
    api.wait_status(&running_id, "running").await;
    let mut queued = Vec::new();
    for i in 0..5 {
        let job = api
            .act(&repo, "rebase_branch", Some(&format!("after-{i}")), None)
            .await;
        queued.push(job["id"].as_str().unwrap().to_owned());
    }
    server.kill9().await;

    let server = BinaryServer::spawn(dir.path(), &["--lease-secs", "2"]).await;
    let api = server.api.clone();
    let recovered = api
        .wait_job(&running_id, "running as attempt 2", |j| {
            j["status"] == "running" && j["attempt"] == 2
        })
        .await;
    assert!(
        recovered["message"]
            .as_str()
            .unwrap_or_default()
            .contains("lost its worker"),
        "{recovered}"
    );
    release(dir.path(), "crash");
    api.wait_status(&running_id, "completed").await;
    for id in &queued {
        let job = api.wait_status(id, "completed").await;
        assert_eq!(
            job["attempt"], 1,
            "queued jobs were never started before the crash: {job}"
        );
    }
    let status = server.terminate().await;
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_on_its_last_attempt_ends_in_error() {
    let dir = tempfile::tempdir().unwrap();
    // A short lease: on PostgreSQL, where other nodes may share the database, a restarted node
    // cannot tell a dead worker from a live one elsewhere and waits for the lease to expire.
    let args = ["--max-attempts", "1", "--lease-secs", "2"];
    let server = BinaryServer::spawn(dir.path(), &args).await;
    let api = server.api.clone();
    let repo = api
        .create_repo("last", "https://example.invalid/l.git")
        .await;
    let job = api
        .act(&repo, "rebase_branch", Some("block-last"), None)
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    api.wait_status(&id, "running").await;
    server.kill9().await;

    let server = BinaryServer::spawn(dir.path(), &args).await;
    let failed = server.api.wait_status(&id, "error").await;
    assert!(
        failed["message"].as_str().unwrap().contains("giving up"),
        "{failed}"
    );
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_a_running_job_back_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(dir.path(), &[]).await;
    let api = server.api.clone();
    let repo = api
        .create_repo("term", "https://example.invalid/t.git")
        .await;
    let job = api
        .act(&repo, "rebase_branch", Some("block-term"), None)
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    api.wait_status(&id, "running").await;
    let log_before = server.log();
    let status = server.terminate().await;
    assert!(
        status.success(),
        "SIGTERM exits 0: {status:?}\n{log_before}"
    );

    let server = BinaryServer::spawn(dir.path(), &[]).await;
    let api = server.api.clone();
    // Handed back without spending an attempt: it runs again as attempt 2 of 4.
    let again = api
        .wait_job(&id, "running again", |j| j["status"] == "running")
        .await;
    assert_eq!(again["attempt"], 2);
    assert_eq!(
        again["max_attempts"], 4,
        "a shutdown does not count against the retry budget: {again}"
    );
    release(dir.path(), "term");
    api.wait_status(&id, "completed").await;
    let (status, _) = api.get("/v1/repos").await;
    assert_eq!(status, StatusCode::OK);
    server.terminate().await;
}
