//! The `gantry` client subcommands against the real binary: `act --follow` shows a job's progress
//! live and ends with its outcome; `watch` prints a topic's events as JSON lines and resumes
//! across a server restart with no gap and no duplicate.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gantry_tests::ws::TopicMirror;
use gantry_tests::{Api, BinaryServer, DEADLINE, gantry_binary, release};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

const REMOTE: &str = "https://example.invalid/r.git";

/// A `gantry` client subcommand running as a child process, its output collected line by line
/// as it is written.
struct CliRun {
    child: tokio::process::Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// How many stdout lines [`CliRun::next_json`] has handed out.
    read: usize,
}

fn collect(stream: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl CliRun {
    fn spawn(api: &Api, args: &[&str]) -> CliRun {
        let mut child = tokio::process::Command::new(gantry_binary())
            .args(args)
            .args(["--server", &api.base, "--token", &api.token])
            .env_remove("GANTRY_URL")
            .env_remove("GANTRY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gantry");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        CliRun {
            child,
            stdout,
            stderr,
            read: 0,
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout().join("\n"),
            self.stderr().join("\n")
        )
    }

    /// Whether the process has ended.
    fn ended(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `find` on the output until it returns Some, failing after the deadline or when the
    /// process ended without it.
    async fn until<T>(&mut self, what: &str, find: impl Fn(&CliRun) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut ended_at = None;
        loop {
            if let Some(found) = find(self) {
                return found;
            }
            let now = tokio::time::Instant::now();
            if self.ended() {
                // Give the readers a moment to take the last lines before judging.
                let since = *ended_at.get_or_insert(now);
                assert!(
                    now - since < Duration::from_millis(500),
                    "gantry ended without {what}:\n{}",
                    self.output()
                );
            }
            assert!(
                now < deadline,
                "timed out waiting for {what}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next stdout line, parsed as JSON, within the deadline.
    async fn next_json(&mut self) -> Value {
        let index = self.read;
        let line = self
            .until("the next line on stdout", |run| {
                run.stdout.lock().unwrap().get(index).cloned()
            })
            .await;
        self.read += 1;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Waits until a stderr line contains `text`; returns its index.
    async fn wait_stderr(&mut self, text: &str) -> usize {
        self.until(&format!("{text:?} on stderr"), |run| {
            run.stderr().iter().position(|line| line.contains(text))
        })
        .await
    }

    /// Waits for the process to end, and for its output to be read to the end.
    async fn wait(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("gantry did not end:\n{}", self.output()))
            .expect("wait");
        // The pipes close with the process; give the readers the last lines.
        let mut last = (0, 0);
        loop {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let now = (self.stdout().len(), self.stderr().len());
            if now == last {
                break;
            }
            last = now;
        }
        status
    }

    fn terminate(&self) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    listener.local_addr().expect("local addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn act_follow_shows_progress_live_and_exits_with_the_jobs_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(dir.path(), &[]).await;
    let api = server.api.clone();
    api.create_synced_repo("follow", REMOTE).await;

    // Completed: every progress line in order on stderr, the final job on stdout, exit 0.
    let mut run = CliRun::spawn(
        &api,
        &[
            "act",
            "follow",
            "rebase_branch",
            "--branch",
            "sleep-300",
            "--follow",
        ],
    );
    let status = run.wait().await;
    assert!(status.success(), "{status}:\n{}", run.output());
    let job: Value = serde_json::from_str(&run.stdout().join("\n"))
        .unwrap_or_else(|e| panic!("stdout is the final job ({e}):\n{}", run.output()));
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["branch"], "sleep-300");
    let stderr = run.stderr();
    let progress: Vec<String> = stderr
        .iter()
        .filter(|l| l.starts_with('['))
        .cloned()
        .collect();
    let expected: Vec<String> = (1..=30)
        .map(|step| format!("[{step}/30] sleeping {step}/30"))
        .collect();
    assert_eq!(
        progress,
        expected,
        "each progress line once, in order:\n{}",
        run.output()
    );
    let done = stderr
        .iter()
        .position(|l| l.ends_with("-> completed: slept"))
        .unwrap_or_else(|| panic!("no completed transition:\n{}", run.output()));
    let last_line = stderr.iter().position(|l| l == &expected[29]).unwrap();
    assert!(
        last_line < done,
        "lines come before the end:\n{}",
        run.output()
    );

    // Live: the first line shows while the job is still blocked, the rest once it is released.
    let mut run = CliRun::spawn(
        &api,
        &[
            "act",
            "follow",
            "rebase_branch",
            "--branch",
            "block-live",
            "--follow",
        ],
    );
    run.wait_stderr("[1/2] blocked until released").await;
    let running = run.wait_stderr("queued -> running").await;
    assert!(
        matches!(run.child.try_wait(), Ok(None)),
        "still following the blocked job"
    );
    assert!(run.stdout().is_empty(), "nothing on stdout before the end");
    release(&server.data_dir, "live");
    let status = run.wait().await;
    assert!(status.success(), "{status}:\n{}", run.output());
    let stderr = run.stderr();
    let released = stderr
        .iter()
        .position(|l| l == "[2/2] released")
        .unwrap_or_else(|| panic!("no second line:\n{}", run.output()));
    let completed = stderr
        .iter()
        .position(|l| l == "running -> completed: released")
        .unwrap_or_else(|| panic!("no completed transition:\n{}", run.output()));
    assert!(
        running < released && released < completed,
        "{}",
        run.output()
    );

    // Failed: the job on stdout, the message on stderr, a non-zero exit.
    let mut run = CliRun::spawn(
        &api,
        &[
            "act",
            "follow",
            "rebase_branch",
            "--branch",
            "fail-x",
            "--follow",
        ],
    );
    let status = run.wait().await;
    assert!(!status.success(), "a failed job fails the command");
    let job: Value = serde_json::from_str(&run.stdout().join("\n"))
        .unwrap_or_else(|e| panic!("stdout is the final job ({e}):\n{}", run.output()));
    assert_eq!(job["status"], "error", "{job}");
    let stderr = run.stderr().join("\n");
    assert!(
        stderr.contains("ended error: test failure x"),
        "the message is shown:\n{}",
        run.output()
    );
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_events_and_resumes_across_a_server_restart_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let server = BinaryServer::spawn_bound(data_dir, &bind, &[]).await;
    let api = server.api.clone();
    let repo = api.create_synced_repo("watched", REMOTE).await;
    let topic = format!("repo/{repo}/jobs");

    // Refusals end the command with a clear message.
    let bad_token = Api::new(api.base.clone(), "not-a-token");
    let mut run = CliRun::spawn(&bad_token, &["watch", &topic]);
    assert!(!run.wait().await.success());
    assert!(run.stderr().join("\n").contains("401"), "{}", run.output());
    let mut run = CliRun::spawn(&api, &["watch", "repo/no-such-repo/jobs"]);
    assert!(!run.wait().await.success());
    let error: Value = serde_json::from_str(&run.stdout().join("\n")).unwrap();
    assert_eq!(error["code"], "topic_not_found", "{}", run.output());

    // A snapshot, then the diffs of jobs enqueued afterwards.
    let mut watch = CliRun::spawn(&api, &["watch", &topic]);
    let snapshot = watch.next_json().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["reset"], false);
    let mut mirror = TopicMirror::from_snapshot(&snapshot);
    let before = enqueue(&api, &repo, "before").await;
    follow_until_completed(&mut watch, &mut mirror, &before).await;

    // Restart on the same data dir and port. While the watch cannot connect, another server
    // on the same data dir (and another port) runs more jobs: the watch must get them after
    // it reconnects, replayed after `resumed`.
    let cursor = mirror.position;
    assert!(server.terminate().await.success());
    watch.wait_stderr("reconnecting in").await;
    let meanwhile = {
        let other = BinaryServer::spawn(data_dir, &[]).await;
        let ids = enqueue(&other.api, &repo, "meanwhile").await;
        for id in &ids {
            other.api.wait_status(id, "completed").await;
        }
        assert!(other.terminate().await.success());
        ids
    };
    let restarted = BinaryServer::spawn_bound(data_dir, &bind, &[]).await;
    assert_eq!(restarted.api.base, api.base, "the same address");

    let resumed = watch.next_json().await;
    assert_eq!(resumed["type"], "resumed", "{resumed}\n{}", watch.output());
    assert_eq!(resumed["epoch"], mirror.epoch);
    assert_eq!(resumed["position"], cursor, "resumed where the watch stood");
    watch.wait_stderr("resumed").await;
    follow_until_completed(&mut watch, &mut mirror, &meanwhile).await;
    let replayed = mirror.diffs.len();

    // Live again after the replay.
    let after = enqueue(&restarted.api, &repo, "after").await;
    follow_until_completed(&mut watch, &mut mirror, &after).await;
    assert!(mirror.diffs.len() > replayed);

    // The watch's copy equals the server's table, and every job went queued, running,
    // completed, in that order (a duplicate or a gap would have failed the prev chain already).
    let (_, body) = restarted.api.get(&format!("/v1/repos/{repo}/jobs")).await;
    let table = body["jobs"].as_array().unwrap();
    assert_eq!(mirror.rows.len(), table.len());
    for row in table {
        assert_eq!(Some(row), mirror.rows.get(row["id"].as_str().unwrap()));
    }
    for id in before.iter().chain(&meanwhile).chain(&after) {
        let mut statuses: Vec<&str> = mirror
            .diffs
            .iter()
            .flat_map(|d| d["ops"].as_array().unwrap())
            .filter(|op| op["key"] == id.as_str())
            .map(|op| op["row"]["status"].as_str().unwrap())
            .collect();
        // A progress report updates the running row again.
        statuses.dedup();
        assert_eq!(statuses, ["queued", "running", "completed"], "job {id}");
    }
    assert!(
        watch
            .stdout()
            .iter()
            .filter(|l| l.contains(r#""type":"snapshot""#))
            .count()
            == 1,
        "one snapshot only: the restart was resumed, not reset:\n{}",
        watch.output()
    );
    assert!(
        watch.stderr().iter().all(|l| !l.contains("gap")),
        "{}",
        watch.output()
    );

    // SIGTERM ends the watch cleanly.
    watch.terminate();
    let status = watch.wait().await;
    assert!(status.success(), "{status}:\n{}", watch.output());
    restarted.terminate().await;
}

/// Enqueues three quick jobs and returns their ids.
async fn enqueue(api: &Api, repo: &str, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..3 {
        let job = api
            .act(repo, "rebase_branch", Some(&format!("{tag}-{i}")), None)
            .await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Applies the watch's diffs (checking the prev chain) until every job in `ids` is completed.
async fn follow_until_completed(watch: &mut CliRun, mirror: &mut TopicMirror, ids: &[String]) {
    while !ids.iter().all(|id| {
        mirror
            .rows
            .get(id)
            .is_some_and(|row| row["status"] == "completed")
    }) {
        let frame = watch.next_json().await;
        mirror.apply(&frame);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn act_follow_resumes_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path();
    let bind = format!("127.0.0.1:{}", free_port());
    let server = BinaryServer::spawn_bound(data_dir, &bind, &[]).await;
    let api = server.api.clone();
    api.create_synced_repo("restart", REMOTE).await;

    let mut run = CliRun::spawn(
        &api,
        &[
            "act",
            "restart",
            "rebase_branch",
            "--branch",
            "block-restart",
            "--follow",
        ],
    );
    run.wait_stderr("[1/2] blocked until released").await;
    // The shutdown hands the running job back to the queue; the restarted server runs it again.
    assert!(server.terminate().await.success());
    run.wait_stderr("reconnecting in").await;
    let restarted = BinaryServer::spawn_bound(data_dir, &bind, &[]).await;
    release(data_dir, "restart");
    let status = run.wait().await;
    assert!(status.success(), "{status}:\n{}", run.output());
    let job: Value = serde_json::from_str(&run.stdout().join("\n"))
        .unwrap_or_else(|e| panic!("stdout is the final job ({e}):\n{}", run.output()));
    assert_eq!(job["status"], "completed", "{job}");

    let stderr = run.stderr();
    let count = |text: &str| stderr.iter().filter(|l| l.starts_with(text)).count();
    assert_eq!(count("[1/2] blocked until released"), 2, "{}", run.output());
    assert_eq!(count("[2/2] released"), 1, "{}", run.output());
    assert_eq!(count("running -> queued"), 1, "{}", run.output());
    assert_eq!(count("queued -> running"), 2, "{}", run.output());
    assert_eq!(
        count("running -> completed: released"),
        1,
        "{}",
        run.output()
    );
    assert!(
        stderr.iter().any(|l| l.contains("resumed job/")),
        "{}",
        run.output()
    );
    restarted.terminate().await;
}

mod fake {
    //! A scripted WebSocket server, for the client rules a correct server never puts to the
    //! test: a diff that skips a position, a connection dropped without a close frame, and a
    //! terminal close code.

    use std::sync::{Arc, Mutex};

    use futures::{SinkExt, StreamExt};
    use gantry_tests::DEADLINE;
    use serde_json::{Value, json};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    pub const EPOCH: &str = "fake-epoch";

    pub struct Conn {
        pub ws: WebSocketStream<TcpStream>,
        pub authorization: Option<String>,
    }

    // The handshake callback's signature (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    pub async fn accept(listener: &TcpListener) -> Conn {
        let (stream, _) = tokio::time::timeout(DEADLINE, listener.accept())
            .await
            .expect("the client connects")
            .expect("accept");
        let seen = Arc::new(Mutex::new(None));
        let header = seen.clone();
        let ws =
            tokio_tungstenite::accept_hdr_async(stream, move |req: &Request, resp: Response| {
                *header.lock().unwrap() = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(resp)
            })
            .await
            .expect("handshake");
        let authorization = seen.lock().unwrap().take();
        Conn { ws, authorization }
    }

    impl Conn {
        pub async fn recv(&mut self) -> Value {
            loop {
                let message = tokio::time::timeout(DEADLINE, self.ws.next())
                    .await
                    .expect("a message from the client")
                    .expect("open")
                    .expect("frame");
                if let Message::Text(text) = message {
                    return serde_json::from_str(&text).expect("json");
                }
            }
        }

        pub async fn send(&mut self, value: Value) {
            self.ws
                .send(Message::Text(value.to_string().into()))
                .await
                .expect("send");
        }

        pub async fn diff(&mut self, position: i64, prev: i64) {
            self.send(json!({
                "type": "diff", "topic": "repos", "epoch": EPOCH, "position": position,
                "prev": prev, "committed_at": "2026-01-01T00:00:00Z",
                "ops": [{"op": "remove", "key": format!("r{position}")}],
            }))
            .await;
        }

        pub async fn resumed(&mut self, id: &Value, position: i64) {
            self.send(json!({
                "type": "resumed", "id": id, "topic": "repos", "epoch": EPOCH,
                "position": position,
            }))
            .await;
        }

        pub async fn close(mut self, code: u16, reason: &str) {
            let frame = CloseFrame {
                code: code.into(),
                reason: reason.to_owned().into(),
            };
            let _ = self.ws.close(Some(frame)).await;
            // Let the client's close reply arrive before the socket goes.
            let _ = tokio::time::timeout(DEADLINE, async {
                while let Some(Ok(_)) = self.ws.next().await {}
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resubscribes_on_a_gap_reconnects_on_drops_and_stops_on_a_terminal_close() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = Api::new(
        format!("http://{}", listener.local_addr().unwrap()),
        "fake-token",
    );
    let mut watch = CliRun::spawn(&api, &["watch", "repos"]);

    // 1: a snapshot, a diff, then a diff whose prev (9) skips the one the client never got.
    let mut conn = fake::accept(&listener).await;
    assert_eq!(conn.authorization.as_deref(), Some("Bearer fake-token"));
    let subscribe = conn.recv().await;
    assert_eq!(
        (&subscribe["type"], &subscribe["topic"], &subscribe["since"]),
        (&json!("subscribe"), &json!("repos"), &Value::Null)
    );
    conn.send(json!({
        "type": "snapshot", "id": subscribe["id"], "topic": "repos", "epoch": fake::EPOCH,
        "position": 5, "rows": [], "reset": false,
    }))
    .await;
    conn.diff(7, 5).await;
    conn.diff(12, 9).await;
    let unsubscribe = conn.recv().await;
    assert_eq!(unsubscribe["type"], "unsubscribe", "{unsubscribe}");
    assert_eq!(unsubscribe["topic"], "repos");
    // Queued before the server saw the unsubscribe: the client must not print it.
    conn.diff(14, 12).await;
    conn.send(json!({"type": "unsubscribed", "id": unsubscribe["id"], "topic": "repos"}))
        .await;
    let subscribe = conn.recv().await;
    assert_eq!(subscribe["type"], "subscribe");
    assert_eq!(
        subscribe["since"],
        json!({"epoch": fake::EPOCH, "position": 7}),
        "resubscribes from the last position applied"
    );
    conn.resumed(&subscribe["id"], 7).await;
    conn.diff(9, 7).await;
    conn.diff(12, 9).await;
    conn.diff(14, 12).await;
    conn.close(4001, "going away").await;

    // 2: after a resumable close, it resumes from 14; then the connection just drops.
    let mut conn = fake::accept(&listener).await;
    let subscribe = conn.recv().await;
    assert_eq!(
        subscribe["since"],
        json!({"epoch": fake::EPOCH, "position": 14})
    );
    conn.resumed(&subscribe["id"], 14).await;
    conn.diff(20, 14).await;
    drop(conn);

    // 3: after the drop, it resumes from 20; a terminal close ends it.
    let mut conn = fake::accept(&listener).await;
    let subscribe = conn.recv().await;
    assert_eq!(
        subscribe["since"],
        json!({"epoch": fake::EPOCH, "position": 20})
    );
    conn.resumed(&subscribe["id"], 20).await;
    watch.wait_stderr("resumed repos from fake-epoch:20").await;
    conn.close(4100, "token revoked").await;
    let status = watch.wait().await;
    assert!(!status.success(), "a terminal close fails the command");
    assert!(
        watch
            .stderr()
            .iter()
            .any(|l| l.contains("4100") && l.contains("token revoked")),
        "{}",
        watch.output()
    );

    let printed: Vec<(String, i64)> = watch
        .stdout()
        .iter()
        .map(|line| {
            let frame: Value = serde_json::from_str(line).unwrap();
            (
                frame["type"].as_str().unwrap().to_owned(),
                frame["position"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = [
        ("snapshot", 5),
        ("diff", 7),
        ("resumed", 7),
        ("diff", 9),
        ("diff", 12),
        ("diff", 14),
        ("resumed", 14),
        ("diff", 20),
        ("resumed", 20),
    ]
    .iter()
    .map(|(t, p)| ((*t).to_owned(), *p))
    .collect();
    assert_eq!(printed, expected, "{}", watch.output());
    assert!(
        watch.stderr().iter().any(|l| l.contains("gap on repos")),
        "{}",
        watch.output()
    );
}
