//! Faults below the API: a database locked by another process, a full disk, a git that is missing
//! or fails. Each time the request path answers at once with a clear error (503, nothing written),
//! the server stays up, and it recovers when the fault goes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gantry_tests::gitrepo::Remote;
use gantry_tests::{Api, BinaryServer, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

fn terminal(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "error" | "cancelled")
    )
}

async fn job_ids(api: &Api, repo: &str) -> Vec<String> {
    let (status, body) = api.get(&format!("/v1/repos/{repo}/jobs?limit=1000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Another process holds SQLite's write lock: accepts answer 503 `storage_unavailable` with
/// `Retry-After` after the configured busy timeout, write nothing, and succeed once it lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_answers_503_and_recovers() {
    let server = TestServer::start_with(
        gantry_server::engine::HandlerRegistry::uniform(std::sync::Arc::new(
            gantry_server::engine::test_handlers::TestHandler,
        )),
        |config| config.sqlite_busy_timeout = Duration::from_millis(200),
    )
    .await;
    let api = &server.api;
    let repo = api
        .create_repo("locked", "https://example.invalid/l.git")
        .await;
    let before = job_ids(api, &repo).await;

    let url = format!("sqlite://{}", server.data_dir.join("gantry.db").display());
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let lock = other.begin_with("BEGIN EXCLUSIVE").await.unwrap();

    let path = format!("/v1/repos/{repo}/actions");
    let response = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .json(&json!({"kind": "rebase_branch", "branch": "while-locked"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was written")
    );
    // Reads go on beside the lock (WAL).
    assert_eq!(api.get("/v1/repos").await.0, StatusCode::OK);
    assert_eq!(api.get("/healthz").await.0, StatusCode::OK);

    lock.rollback().await.unwrap();
    other.close().await.unwrap();
    assert_eq!(
        job_ids(api, &repo).await,
        before,
        "nothing was half-written"
    );
    let job = eventually("accepts to succeed again", || async {
        let (status, body) = api
            .post(&path, &json!({"kind": "rebase_branch", "branch": "after"}))
            .await;
        (status == StatusCode::ACCEPTED).then_some(body["job"].clone())
    })
    .await;
    api.wait_status(job["id"].as_str().unwrap(), "completed")
        .await;
}

/// A small tmpfs mounted for one test, unmounted (lazily, so it cannot fail) when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`8m`); falls back to a loop device with ext4. `None` when the
    /// process may not mount (not root): the caller says so and skips.
    fn mount(size_mib: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("disk");
        std::fs::create_dir_all(&path).ok()?;
        let tmpfs = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if tmpfs {
            return Some(SmallDisk { path, _dir: dir });
        }
        let image = dir.path().join("disk.img");
        let made = Command::new("truncate")
            .args(["-s", &format!("{size_mib}M")])
            .arg(&image)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&image)
                .status()
                .is_ok_and(|s| s.success())
            && Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&path)
                .status()
                .is_ok_and(|s| s.success());
        made.then_some(SmallDisk { path, _dir: dir })
    }

    /// Fills the disk to the last byte with a file; returns it.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // Then the last partial blocks.
        loop {
            match file.write(&block[..512]) {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The data dir's disk fills up: accepts answer 503 (never 500, never a half-written job), the
/// server stays up, and once space returns accepts succeed and every accepted job runs; after a
/// restart the database is intact and holds exactly the accepted jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_writes_nothing_half_and_recovers() {
    let Some(disk) = SmallDisk::mount(16) else {
        eprintln!("SKIPPED: cannot mount a small tmpfs or loop device here (needs root)");
        return;
    };
    let data = disk.path.join("data");
    let handlers = || {
        gantry_server::engine::HandlerRegistry::uniform(std::sync::Arc::new(
            gantry_server::engine::test_handlers::TestHandler,
        ))
    };
    let mut server = TestServer::start_in(&data, handlers(), |config| {
        config.sqlite_busy_timeout = Duration::from_millis(200);
    })
    .await;
    let api = server.api.clone();
    let repo = api
        .create_repo("full", "https://example.invalid/f.git")
        .await;
    let mut accepted: Vec<String> = job_ids(&api, &repo).await;

    let filler = disk.fill();
    let path = format!("/v1/repos/{repo}/actions");
    let mut refused = 0;
    for i in 0..3000 {
        let (status, body) = api
            .post(
                &path,
                &json!({"kind": "rebase_branch", "branch": format!("full-{i}")}),
            )
            .await;
        match status {
            StatusCode::ACCEPTED => accepted.push(body["job"]["id"].as_str().unwrap().to_owned()),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
                refused += 1;
                if refused >= 5 {
                    break;
                }
            }
            other => panic!("a full disk must answer 202 or 503, not {other}: {body}"),
        }
    }
    assert!(refused >= 5, "the disk never filled up");
    assert_eq!(api.get("/healthz").await.0, StatusCode::OK, "still up");
    assert_eq!(api.get("/v1/repos").await.0, StatusCode::OK, "still reads");

    std::fs::remove_file(&filler).unwrap();
    let recovered = eventually("accepts to succeed once space returns", || async {
        let (status, body) = api
            .post(
                &path,
                &json!({"kind": "rebase_branch", "branch": "after-full"}),
            )
            .await;
        (status == StatusCode::ACCEPTED).then(|| body["job"]["id"].as_str().unwrap().to_owned())
    })
    .await;
    accepted.push(recovered);
    for id in &accepted {
        api.wait_status(id, "completed").await;
    }
    let mut stored = job_ids(&api, &repo).await;
    stored.sort();
    accepted.sort();
    assert_eq!(stored, accepted, "exactly the accepted jobs exist");

    server.stop().await;
    let url = format!("sqlite://{}", data.join("gantry.db").display());
    let mut check = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut check)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    check.close().await.unwrap();
    let server = TestServer::start_in(&data, handlers(), |_| {}).await;
    let mut after = job_ids(&server.api, &repo).await;
    after.sort();
    assert_eq!(after, accepted, "and they survive a restart");
    drop(server);
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let status = Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    assert!(status.success());
    path
}

/// No git at all: every job ends `error` saying so, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_git_fails_jobs_with_the_reason_and_the_server_stays_up() {
    let remote = Remote::new();
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn_with(
        &dir.path().join("data"),
        &["--git", "/nonexistent/git", "--max-attempts", "1"],
        false,
    )
    .await;
    let api = &server.api;
    let (status, body) = api
        .post(
            "/v1/repos",
            &json!({"name": "nogit", "remote_url": remote.url()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let job = api
        .wait_status(body["job"]["id"].as_str().unwrap(), "error")
        .await;
    let message = job["message"].as_str().unwrap();
    assert!(
        message.contains("git is not usable") && message.contains("/nonexistent/git"),
        "{message}"
    );
    assert_eq!(api.get("/healthz").await.0, StatusCode::OK);
    let repo = body["repo"]["id"].as_str().unwrap();
    let again = api.act(repo, "sync_repo", None, None).await;
    api.wait_status(again["id"].as_str().unwrap(), "error")
        .await;
    assert!(server.terminate().await.success());
}

/// A git that fails (a network error on fetch) or dies by a signal mid-job: the job ends `error`
/// with git's reason, after its retries for a transient failure; the server stays up and the next
/// job with a working git succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_crashing_git_fails_the_job_with_the_reason() {
    let remote = Remote::new();
    let dir = tempfile::tempdir().unwrap();
    let mode = dir.path().join("mode");
    let git = script(
        dir.path(),
        "git-flaky",
        &format!(
            "mode=$(cat '{mode}' 2>/dev/null)\n\
             for a in \"$@\"; do\n\
               if [ \"$a\" = fetch ] || [ \"$a\" = clone ]; then\n\
                 case \"$mode\" in\n\
                   fail) echo 'fatal: unable to access: simulated outage' >&2; exit 128;;\n\
                   crash) kill -SEGV $$;;\n\
                 esac\n\
               fi\n\
             done\n\
             exec git \"$@\"",
            mode = mode.display()
        ),
    );
    let data = dir.path().join("data");
    let args = [
        "--git",
        git.to_str().unwrap(),
        "--max-attempts",
        "2",
        "--retry-base-ms",
        "10",
    ];
    let server = BinaryServer::spawn_with(&data, &args, false).await;
    let api = &server.api;
    std::fs::write(&mode, "fail").unwrap();
    let (status, body) = api
        .post(
            "/v1/repos",
            &json!({"name": "flaky", "remote_url": remote.url()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let repo = body["repo"]["id"].as_str().unwrap().to_owned();
    let failed = api
        .wait_job(body["job"]["id"].as_str().unwrap(), "finished", terminal)
        .await;
    assert_eq!(failed["status"], "error", "{failed}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("simulated outage"),
        "{failed}"
    );

    std::fs::write(&mode, "crash").unwrap();
    let crashed = api.act(&repo, "sync_repo", None, None).await;
    let crashed = api
        .wait_job(crashed["id"].as_str().unwrap(), "finished", terminal)
        .await;
    assert_eq!(crashed["status"], "error", "{crashed}");
    assert!(
        crashed["message"].as_str().unwrap().contains("signal"),
        "{crashed}"
    );
    assert_eq!(api.get("/healthz").await.0, StatusCode::OK);

    std::fs::write(&mode, "ok").unwrap();
    let healed = api.act(&repo, "sync_repo", None, None).await;
    api.wait_status(healed["id"].as_str().unwrap(), "completed")
        .await;
    assert!(server.terminate().await.success());
}
