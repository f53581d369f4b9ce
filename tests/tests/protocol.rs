//! The WebSocket protocol against a real server and a real client: order, gapless `prev` chains,
//! snapshot consistency under load, resume (in and beyond the window, across a restart), slow
//! consumers, and answers to bad input.

use std::collections::HashMap;
use std::time::Duration;

use gantry_server::engine::HandlerRegistry;
use gantry_tests::ws::{Ended, TopicMirror, WsClient, follow};
use gantry_tests::{TestServer, eventually};
use gantry_types::ws::close_code;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const REMOTE: &str = "https://example.invalid/r.git";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_is_seen_queued_then_running_then_completed_with_gapless_prev_chains() {
    let server = TestServer::start().await;
    let api = server.api.clone();
    let mut repos = Vec::new();
    for i in 0..4 {
        repos.push(api.create_synced_repo(&format!("order-{i}"), REMOTE).await);
    }
    // Every first sync projected: the diffs that follow are the writers' jobs only.
    server.wait_projected().await;
    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let mut mirrors = HashMap::new();
    for repo in &repos {
        let topic = format!("repo/{repo}/jobs");
        let snapshot = ws.subscribe(&topic, None).await;
        mirrors.insert(topic, TopicMirror::from_snapshot(&snapshot));
    }

    // 200 jobs on 4 repos, from 4 concurrent writers.
    let writers: Vec<_> = repos
        .iter()
        .cloned()
        .map(|repo| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..50 {
                    let job = api
                        .act(&repo, "rebase_branch", Some(&format!("quick-{i}")), None)
                        .await;
                    ids.push(job["id"].as_str().unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for writer in writers {
        ids.extend(writer.await.unwrap());
    }
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

    for mirror in mirrors.values() {
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        for diff in &mirror.diffs {
            for op in diff["ops"].as_array().unwrap() {
                let status = op["row"]["status"].as_str().unwrap().to_owned();
                let statuses = seen
                    .entry(op["key"].as_str().unwrap().to_owned())
                    .or_default();
                if statuses.last() != Some(&status) {
                    statuses.push(status);
                }
            }
        }
        for (job, statuses) in seen {
            assert_eq!(statuses, ["queued", "running", "completed"], "job {job}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_while_writers_commit_plus_its_diffs_equals_the_final_table() {
    let server = TestServer::start().await;
    let api = server.api.clone();
    let repo = api.create_synced_repo("load", REMOTE).await;
    let topic = format!("repo/{repo}/jobs");

    let writer = {
        let (api, repo) = (api.clone(), repo.clone());
        tokio::spawn(async move {
            for i in 0..150 {
                api.act(&repo, "rebase_branch", Some(&format!("quick-{i}")), None)
                    .await;
            }
        })
    };
    // Subscribe at several moments while the writer and the worker commit.
    let mut clients = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let mut ws = WsClient::connect(&api.base, &api.token).await;
        let snapshot = ws.subscribe(&topic, None).await;
        clients.push((ws, TopicMirror::from_snapshot(&snapshot)));
    }
    writer.await.unwrap();
    let final_rows = eventually("all jobs finished", || async {
        let (_, body) = api.get(&format!("/v1/repos/{repo}/jobs?limit=1000")).await;
        let jobs = body["jobs"].as_array().unwrap().clone();
        jobs.iter()
            .all(|j| j["status"] == "completed")
            .then_some(jobs)
    })
    .await;
    let expected: HashMap<String, Value> = final_rows
        .into_iter()
        .map(|row| (row["id"].as_str().unwrap().to_owned(), row))
        .collect();
    for (mut ws, mut mirror) in clients {
        while mirror.rows.len() != expected.len()
            || mirror.rows.values().any(|r| r["status"] != "completed")
        {
            let diff = ws.next().await;
            mirror.apply(&diff);
        }
        for (key, row) in &expected {
            assert_eq!(mirror.rows.get(key), Some(row), "row {key} differs");
        }
        assert!(
            ws.next_within(Duration::from_millis(100)).await.is_none(),
            "no duplicate after the final state"
        );
    }
}

/// A repo whose running job blocks, so that each further action adds exactly one change to the
/// repo's job list.
async fn blocked_repo(server: &TestServer, name: &str) -> String {
    let repo = server.api.create_synced_repo(name, REMOTE).await;
    let blocker = server
        .api
        .act(&repo, "rebase_branch", Some(&format!("block-{name}")), None)
        .await;
    // Settled once its one progress report ("blocked until released") is written: that update
    // commits after the `running` transition, and on a slower database it could otherwise land
    // after the test's snapshot.
    server
        .api
        .wait_job(blocker["id"].as_str().unwrap(), "blocked", |job| {
            job["status"] == "running" && job["progress"]["step"] == 1
        })
        .await;
    // And projected, so that a snapshot taken next already shows all of it.
    server.wait_projected().await;
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_exactly_the_missed_diffs_and_past_the_window_gets_a_reset_snapshot() {
    let server = TestServer::start_with(
        HandlerRegistry::uniform(std::sync::Arc::new(
            gantry_server::engine::test_handlers::TestHandler,
        )),
        |config| config.projections.retention_count = 60,
    )
    .await;
    let api = server.api.clone();
    let repo = blocked_repo(&server, "resume").await;
    let topic = format!("repo/{repo}/jobs");

    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let mirror = TopicMirror::from_snapshot(&ws.subscribe(&topic, None).await);
    drop(ws);
    for i in 0..50 {
        api.act(&repo, "rebase_branch", Some(&format!("missed-{i}")), None)
            .await;
    }
    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let resumed = ws.subscribe(&topic, Some(mirror.cursor())).await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    assert_eq!(resumed["position"], mirror.position);
    let mut replay = mirror.clone();
    for i in 0..50 {
        let diff = ws.next().await;
        replay.apply(&diff);
        let op = &diff["ops"][0];
        assert_eq!(op["row"]["branch"], format!("missed-{i}"), "in order");
    }
    assert!(
        ws.next_within(Duration::from_millis(200)).await.is_none(),
        "exactly the 50 missed diffs"
    );

    // 70 more changes: the 60-diff window no longer reaches back to the old cursor.
    for i in 0..70 {
        api.act(&repo, "rebase_branch", Some(&format!("later-{i}")), None)
            .await;
    }
    server.wait_projected().await;
    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let fresh = ws.subscribe(&topic, Some(mirror.cursor())).await;
    assert_eq!(fresh["type"], "snapshot", "{fresh}");
    assert_eq!(fresh["reset"], true);
    assert_eq!(fresh["rows"].as_array().unwrap().len(), 1 + 1 + 50 + 70);

    let other_epoch = json!({"epoch": "another-epoch", "position": replay.position});
    let fresh = ws
        .subscribe(&format!("repo/{repo}/branches"), Some(other_epoch))
        .await;
    assert_eq!(
        (fresh["type"].as_str(), fresh["reset"].as_bool()),
        (Some("snapshot"), Some(true))
    );
    server.release("resume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_resume_from_the_persisted_log_after_a_server_restart() {
    let mut server = TestServer::start().await;
    let api = server.api.clone();
    let repo = blocked_repo(&server, "restart").await;
    let topic = format!("repo/{repo}/jobs");
    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let mirror = TopicMirror::from_snapshot(&ws.subscribe(&topic, None).await);
    let epoch = mirror.epoch.clone();
    for i in 0..20 {
        api.act(
            &repo,
            "rebase_branch",
            Some(&format!("before-restart-{i}")),
            None,
        )
        .await;
    }
    server.stop().await;
    assert_eq!(
        ws.until_closed().await,
        Ended::Closed(Some(close_code::GOING_AWAY))
    );

    let data_dir = server.data_dir.clone();
    let handlers = HandlerRegistry::uniform(std::sync::Arc::new(
        gantry_server::engine::test_handlers::TestHandler,
    ));
    let restarted = TestServer::start_in(&data_dir, handlers, |_| {}).await;
    let api = restarted.api.clone();
    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let resumed = ws.subscribe(&topic, Some(mirror.cursor())).await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    assert_eq!(resumed["epoch"], epoch, "the epoch survives a restart");
    let mut replay = mirror.clone();
    // Settled: the 20 ran, and the handed-back blocker runs again and blocks. (A state with 20
    // queued is only a passing moment: the blocker was requeued after them.)
    let expected = eventually("the queue to settle", || async {
        let (_, body) = api.get(&format!("/v1/repos/{repo}/jobs?limit=1000")).await;
        let jobs = body["jobs"].as_array().unwrap().clone();
        let settled = jobs.len() == 22
            && jobs.iter().all(|j| {
                if j["branch"] == "block-restart" {
                    j["status"] == "running" && j["progress"]["step"] == 1
                } else {
                    j["status"] == "completed"
                }
            });
        settled.then_some(jobs)
    })
    .await;
    while expected
        .iter()
        .any(|row| replay.rows.get(row["id"].as_str().unwrap()) != Some(row))
    {
        let diff = ws.next().await;
        replay.apply(&diff);
    }
    assert_eq!(replay.rows.len(), expected.len());
    release_dir(&data_dir, "restart");
}

fn release_dir(dir: &std::path::Path, tag: &str) {
    gantry_tests::release(dir, tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_resumably_while_100_others_keep_receiving() {
    let server = TestServer::start_with(
        HandlerRegistry::uniform(std::sync::Arc::new(
            gantry_server::engine::test_handlers::TestHandler,
        )),
        |config| {
            config.projections.outbox_max_bytes = 256 * 1024;
            // Pings queued behind the backlog are answered as the slow client drains it, after
            // the server's close frame was written: the close must survive those answers.
            config.ws.ping_interval = Duration::from_millis(500);
        },
    )
    .await;
    let api = server.api.clone();
    let repo = api.create_synced_repo("slow", REMOTE).await;
    let topic = format!("repo/{repo}/jobs");

    let mut slow = WsClient::connect_with_small_buffer(&api.base, &api.token).await;
    slow.subscribe(&topic, None).await;
    let mut readers = Vec::new();
    for _ in 0..100 {
        let mut ws = WsClient::connect(&api.base, &api.token).await;
        let mirror = TopicMirror::from_snapshot(&ws.subscribe(&topic, None).await);
        readers.push((ws, mirror));
    }
    // The slow client also follows the job itself: ~6 MiB in all, more than the kernel's socket
    // buffers (the server's send buffer grows to 4 MiB) plus its 256 KiB outbox.
    let job = api
        .act(&repo, "rebase_branch", Some("spam-2500"), None)
        .await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    slow.subscribe(&format!("job/{job_id}"), None).await;
    let readers: Vec<_> = readers
        .into_iter()
        .map(|(mut ws, mut mirror)| {
            let job_id = job_id.clone();
            tokio::spawn(async move {
                while mirror
                    .rows
                    .get(&job_id)
                    .is_none_or(|row| row["status"] != "completed")
                {
                    let diff = ws.next().await;
                    mirror.apply(&diff);
                }
                // Only the job's diffs: a reader that subscribed before the hub applied the
                // repo's first sync saw one more diff, which is not the point here.
                let of_job = mirror
                    .diffs
                    .iter()
                    .filter(|d| {
                        d["ops"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|op| op["key"] == job_id)
                    })
                    .count();
                (of_job, ws)
            })
        })
        .collect();
    // The slow client reads only once the server has decided to close it: the close frame waits
    // behind what the socket already holds, and the server gives a peer that never reads only a
    // few seconds to take it (however long the readers take).
    let slow_closed = {
        let hub = server.server().app().hub.clone();
        tokio::spawn(async move {
            // No deadline of its own: the readers bound the test, and the close is asserted
            // after them.
            while hub.stats().slow_consumer_closes == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            slow.until_closed().await
        })
    };
    let mut counts = Vec::new();
    let mut open = Vec::new();
    for reader in readers {
        let (count, ws) = reader.await.expect("reader kept receiving");
        counts.push(count);
        open.push(ws);
    }
    assert!(
        counts.iter().all(|&c| c == counts[0] && c > 2500),
        "every reader got every diff: {counts:?}"
    );

    let stats = server.server().app().hub.stats();
    assert_eq!(stats.slow_consumer_closes, 1, "{stats:?}");
    let slow_ended = tokio::time::timeout(gantry_tests::DEADLINE, slow_closed)
        .await
        .expect("the slow client ends")
        .expect("slow client");
    assert_eq!(slow_ended, Ended::Closed(Some(close_code::SLOW_CONSUMER)));
    eventually("the slow connection to be released", || async {
        (server.server().app().connections.count() == 100).then_some(())
    })
    .await;
    assert_eq!(server.server().app().hub.stats().connections, 100);
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_error_frames_and_the_connection_survives() {
    let server = TestServer::start_with(
        HandlerRegistry::uniform(std::sync::Arc::new(
            gantry_server::engine::test_handlers::TestHandler,
        )),
        |config| config.projections.max_subscriptions_per_connection = 3,
    )
    .await;
    let api = server.api.clone();
    let repo = api.create_synced_repo("bad", REMOTE).await;
    let store = &server.server().app().store;
    let other_org = store.create_org("other").await.unwrap();
    let other_token = "other-org-ws-token";
    store
        .insert_token(
            &other_org,
            &gantry_server::auth::hash_token(other_token),
            gantry_server::auth::Scope::Read,
            "t",
        )
        .await
        .unwrap();

    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let expect_error = async |ws: &mut WsClient, raw: Message, code: &str| {
        ws.send_raw(raw).await;
        let frame = ws.next().await;
        assert_eq!(
            (frame["type"].as_str(), frame["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame}"
        );
    };
    expect_error(&mut ws, Message::Text("{not json".into()), "invalid_json").await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"explode","id":7}"#.into()),
        "unknown_type",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"subscribe","id":8}"#.into()),
        "invalid_message",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"subscribe","id":9,"topic":"nope/x"}"#.into()),
        "unknown_topic",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Binary(vec![1, 2, 3].into()),
        "binary_not_supported",
    )
    .await;
    let frame = ws.subscribe("repo/does-not-exist/jobs", None).await;
    assert_eq!(frame["code"], "topic_not_found");

    let mut subscribed = 0;
    for topic in [
        "repos",
        &format!("repo/{repo}/jobs"),
        &format!("repo/{repo}/branches"),
    ] {
        assert_eq!(ws.subscribe(topic, None).await["type"], "snapshot");
        subscribed += 1;
    }
    assert_eq!(
        ws.subscribe("repos", None).await["code"],
        "already_subscribed"
    );
    let frame = ws.subscribe(&format!("repo/{repo}/tasks"), None).await;
    assert_eq!(frame["code"], "too_many_subscriptions", "{frame}");
    assert_eq!(subscribed, 3);
    ws.send(json!({"type": "unsubscribe", "id": 20, "topic": "repos"}))
        .await;
    assert_eq!(ws.next().await["type"], "unsubscribed");
    ws.send(json!({"type": "ping", "id": 21})).await;
    assert_eq!(
        ws.next().await,
        json!({"type": "pong", "id": 21}),
        "the connection survived every error"
    );

    // Another organisation's topics look exactly like missing ones.
    let mut foreign = WsClient::connect(&api.base, other_token).await;
    let frame = foreign.subscribe(&format!("repo/{repo}/jobs"), None).await;
    assert_eq!(frame["code"], "topic_not_found");
    let repos = foreign.subscribe("repos", None).await;
    assert_eq!(
        repos["rows"],
        json!([]),
        "the repo list is per organisation"
    );

    // A job's topic too, also once its organisation is cached by an authorised subscribe.
    let (_, jobs) = api.get(&format!("/v1/repos/{repo}/jobs")).await;
    let job = jobs["jobs"][0]["id"]
        .as_str()
        .expect("the repo's first sync job")
        .to_owned();
    let mut own = WsClient::connect(&api.base, &api.token).await;
    let frame = own.subscribe(&format!("job/{job}"), None).await;
    assert_eq!(frame["type"], "snapshot", "{frame}");
    for _ in 0..2 {
        let frame = foreign.subscribe(&format!("job/{job}"), None).await;
        assert_eq!(frame["code"], "topic_not_found", "{frame}");
    }

    // An oversized frame closes the connection with the documented code.
    let mut big = WsClient::connect(&api.base, &api.token).await;
    big.send_raw(Message::Text("x".repeat(200 * 1024).into()))
        .await;
    assert_eq!(
        big.until_closed().await,
        Ended::Closed(Some(close_code::PROTOCOL_VIOLATION))
    );

    // A bad token never gets a socket.
    let url = format!("{}/v1/ws", api.base.replacen("http", "ws", 1));
    let refused = tokio_tungstenite::connect_async(url).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
        panic!("upgrade without a token was not refused");
    };
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_appear_on_the_job_topic_as_they_are_reported() {
    let server = TestServer::start().await;
    let api = server.api.clone();
    let repo = api.create_synced_repo("lines", REMOTE).await;
    let job = api
        .act(&repo, "rebase_branch", Some("block-lines"), None)
        .await;
    let id = job["id"].as_str().unwrap();
    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let mut mirror = TopicMirror::from_snapshot(&ws.subscribe(&format!("job/{id}"), None).await);
    let line_key = |seq: u32| format!("{id}/lines/{seq:08}");
    while !mirror.rows.contains_key(&line_key(1)) {
        mirror.apply(&ws.next().await);
    }
    assert_eq!(mirror.rows[&line_key(1)]["text"], "blocked until released");
    server.release("lines");
    while mirror
        .rows
        .get(id)
        .is_none_or(|job| job["status"] != "completed")
    {
        mirror.apply(&ws.next().await);
    }
    assert_eq!(mirror.rows[&line_key(2)]["text"], "released");
    let line_position = |seq| {
        mirror.diffs.iter().position(|d| {
            d["ops"]
                .as_array()
                .unwrap()
                .iter()
                .any(|op| op["key"] == line_key(seq))
        })
    };
    let done_position = mirror
        .diffs
        .iter()
        .position(|d| d["ops"][0]["row"]["status"] == "completed");
    assert!(
        line_position(2) < done_position,
        "lines are committed before the final state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_jobs_progress_lines_are_coalesced_yet_all_delivered_in_order() {
    let server = TestServer::start_with(
        HandlerRegistry::uniform(std::sync::Arc::new(
            gantry_server::engine::test_handlers::TestHandler,
        )),
        |config| config.engine.progress_interval = Duration::from_millis(200),
    )
    .await;
    let api = server.api.clone();
    let repo = api.create_synced_repo("chatty", REMOTE).await;
    let mut ws = WsClient::connect(&api.base, &api.token).await;
    let mut jobs =
        TopicMirror::from_snapshot(&ws.subscribe(&format!("repo/{repo}/jobs"), None).await);
    // 50 lines, one every 2 ms: with a 200 ms interval, a handful of transactions.
    let job = api.act(&repo, "rebase_branch", Some("spam-50"), None).await;
    let id = job["id"].as_str().unwrap().to_owned();
    while jobs
        .rows
        .get(&id)
        .is_none_or(|job| job["status"] != "completed")
    {
        jobs.apply(&ws.next().await);
    }
    let mut lines = TopicMirror::from_snapshot(&ws.subscribe(&format!("job/{id}"), None).await);
    let seqs: Vec<u64> = lines
        .rows
        .values()
        .filter_map(|row| row.get("seq").and_then(Value::as_u64))
        .collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>(), "every line, in order");
    let last = lines.rows.remove(&id).expect("the job row");
    assert_eq!(
        last["progress"]["step"], 50,
        "the job row shows the last line"
    );
    let progress_diffs = jobs
        .diffs
        .iter()
        .filter(|d| d["ops"][0]["row"]["status"] == "running")
        .count();
    assert!(
        (2..25).contains(&progress_diffs),
        "one diff for the claim, then a few for 50 lines: {progress_diffs}"
    );
}
