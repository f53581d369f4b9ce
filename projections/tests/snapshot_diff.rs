//! Snapshot then diffs: rows, prev chain, one diff per change, shared frames, wire names.

mod common;

use std::sync::Arc;

use common::*;
use gantry_projections::{HubConfig, Subscribed, TopicSeed};
use gantry_types::ws::ServerMessage;

#[test]
fn snapshot_then_diffs_rebuilds_the_view_with_a_gapless_prev_chain() {
    let hub = hub();
    hub.apply([
        change(1, "repos", vec![upsert("a", 1), upsert("b", 1)]),
        change(2, "other", vec![upsert("x", 1)]),
        change(3, "repos", vec![upsert("c", 1), remove("a")]),
    ]);
    let outbox = hub.connect();
    let outcome = hub.subscribe(&outbox, Some(7), "repos", None).unwrap();
    assert_eq!(
        outcome,
        Subscribed::Snapshot {
            position: 3,
            rows: 2,
            reset: false
        }
    );
    let msgs = drain_parsed(&outbox);
    assert_eq!(msgs.len(), 1);
    let ServerMessage::Snapshot {
        id,
        topic,
        position,
        rows,
        reset,
        ..
    } = &msgs[0]
    else {
        panic!("{msgs:?}")
    };
    assert_eq!(
        (*id, topic.as_str(), *position, *reset),
        (Some(7), "repos", 3, false)
    );
    assert_eq!(rows, &vec![row("b", 1), row("c", 1)], "rows ordered by key");

    let mut model = Model::default();
    model.feed(&msgs[0]);
    // Two ops in one change on the same key, a change on another topic, an empty change.
    hub.apply([
        change(
            4,
            "repos",
            vec![upsert("a", 2), upsert("a", 3), remove("b")],
        ),
        change(5, "other", vec![remove("x")]),
        change(6, "repos", vec![]),
        change(8, "repos", vec![upsert("b", 9)]),
    ]);
    let frames = drain(&outbox);
    assert_eq!(frames.len(), 3, "one diff per change of this topic");
    model.feed_all(&frames);
    assert_eq!(model.diffs, [4, 6, 8]);
    let prevs: Vec<i64> = frames
        .iter()
        .map(|f| match parse(f) {
            ServerMessage::Diff { prev, .. } => prev,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(prevs, [3, 4, 6]);
    assert_eq!(
        model.rows.values().cloned().collect::<Vec<_>>(),
        vec![row("a", 3), row("b", 9), row("c", 1)]
    );

    // A fresh snapshot agrees with the model (and the cache was invalidated).
    let late = hub.connect();
    hub.subscribe(&late, None, "repos", None).unwrap();
    let mut fresh = Model::default();
    fresh.feed_all(&drain(&late));
    assert_eq!(fresh.rows, model.rows);
    assert_eq!(fresh.position, Some(8));
}

#[test]
fn re_applied_changes_are_ignored() {
    let hub = hub();
    let outbox = hub.connect();
    hub.subscribe(&outbox, None, "repos", None).unwrap();
    hub.apply([
        change(1, "repos", vec![upsert("a", 1)]),
        change(2, "repos", vec![upsert("a", 2)]),
    ]);
    hub.apply([
        change(1, "repos", vec![upsert("a", 100)]),
        change(2, "repos", vec![upsert("a", 200)]),
    ]);
    hub.apply([
        change(3, "repos", vec![upsert("a", 3)]),
        change(3, "repos", vec![upsert("a", 300)]),
    ]);
    let mut model = Model::default();
    model.feed_all(&drain(&outbox));
    assert_eq!(model.diffs, [1, 2, 3]);
    assert_eq!(model.rows["a"], row("a", 3));
    assert_eq!(hub.position(), 3);
}

#[test]
fn the_same_bytes_are_delivered_to_every_subscriber() {
    let hub = hub();
    let a = hub.connect();
    let b = hub.connect();
    hub.subscribe(&a, None, "repos", None).unwrap();
    hub.subscribe(&b, None, "repos", None).unwrap();
    drain(&a);
    drain(&b);
    hub.apply([change(1, "repos", vec![upsert("a", 1)])]);
    let fa = drain(&a);
    let fb = drain(&b);
    assert_eq!(fa.len(), 1);
    assert_eq!(fa[0].as_ptr(), fb[0].as_ptr(), "serialised once, shared");
    assert_eq!(fa[0], fb[0]);
}

#[test]
fn an_unknown_topic_gets_an_empty_snapshot_at_position_zero() {
    let hub = hub();
    hub.apply([change(5, "repos", vec![upsert("a", 1)])]);
    let outbox = hub.connect();
    hub.subscribe(&outbox, Some(1), "job/nope", None).unwrap();
    match &drain_parsed(&outbox)[..] {
        [
            ServerMessage::Snapshot {
                position: 0,
                rows,
                reset: false,
                ..
            },
        ] => {
            assert!(rows.is_empty())
        }
        other => panic!("{other:?}"),
    }
    // Its first diff chains from 0.
    hub.apply([change(6, "job/nope", vec![upsert("j", 1)])]);
    let mut model = Model {
        position: Some(0),
        ..Model::default()
    };
    model.feed_all(&drain(&outbox));
    assert_eq!(model.diffs, [6]);
}

#[test]
fn frames_carry_the_wire_topic_name() {
    let mut config = HubConfig::new(EPOCH);
    config.wire_topic = Arc::new(|key: &str| key.trim_start_matches("org1:").to_owned());
    let hub = gantry_projections::Hub::new(config);
    hub.load(
        2,
        vec![TopicSeed {
            topic: "org1:repos".into(),
            position: 2,
            rows: vec![("a".into(), row("a", 1))],
        }],
        vec![],
    )
    .unwrap();
    let outbox = hub.connect();
    hub.subscribe(&outbox, None, "org1:repos", None).unwrap();
    hub.apply([change(3, "org1:repos", vec![upsert("b", 1)])]);
    let msgs = drain_parsed(&outbox);
    assert_eq!(msgs.len(), 2);
    for msg in &msgs {
        match msg {
            ServerMessage::Snapshot { topic, .. } | ServerMessage::Diff { topic, .. } => {
                assert_eq!(topic, "repos")
            }
            other => panic!("{other:?}"),
        }
    }
    // Unsubscribe/resume use the internal key too.
    let cursor = gantry_types::ws::Cursor {
        epoch: EPOCH.into(),
        position: 3,
    };
    assert!(hub.unsubscribe(&outbox, "org1:repos"));
    hub.subscribe(&outbox, Some(2), "org1:repos", Some(&cursor))
        .unwrap();
    match &drain_parsed(&outbox)[..] {
        [
            ServerMessage::Resumed {
                topic, position: 3, ..
            },
        ] => assert_eq!(topic, "repos"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn recv_wakes_on_a_diff_and_try_recv_many_batches() {
    let hub = hub();
    let outbox = hub.connect();
    hub.subscribe(&outbox, None, "repos", None).unwrap();
    assert!(matches!(
        parse(&outbox.recv().await.unwrap()),
        ServerMessage::Snapshot { .. }
    ));
    let reader = {
        let outbox = Arc::clone(&outbox);
        tokio::spawn(async move { outbox.recv().await })
    };
    tokio::task::yield_now().await;
    let h = Arc::clone(&hub);
    std::thread::spawn(move || h.apply([change(1, "repos", vec![upsert("a", 1)])]))
        .join()
        .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(
        parse(&got),
        ServerMessage::Diff { position: 1, .. }
    ));

    hub.apply((2..=6).map(|p| change(p, "repos", vec![upsert("a", p)])));
    let mut batch = Vec::new();
    outbox.try_recv_many(3, &mut batch);
    assert_eq!(batch.len(), 3);
    outbox.try_recv_many(10, &mut batch);
    assert_eq!(batch.len(), 5);
    assert_eq!(outbox.queued_bytes(), 0);
}
