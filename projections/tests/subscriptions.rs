//! Subscription bookkeeping: limits, double subscribe, unsubscribe, disconnect, stats.

mod common;

use std::sync::Arc;

use common::*;
use gantry_projections::SubscribeError;
use gantry_types::ws::ServerMessage;

#[test]
fn too_many_and_double_subscriptions_are_refused() {
    let hub = hub_with(|c| c.max_subscriptions_per_connection = 3);
    let outbox = hub.connect();
    for t in ["a", "b", "c"] {
        hub.subscribe(&outbox, None, t, None).unwrap();
    }
    let err = hub.subscribe(&outbox, None, "d", None).unwrap_err();
    assert_eq!(err, SubscribeError::TooManySubscriptions { limit: 3 });
    assert_eq!(err.code(), "too_many_subscriptions");
    let err = hub.subscribe(&outbox, None, "a", None).unwrap_err();
    assert_eq!(err, SubscribeError::AlreadySubscribed);
    assert_eq!(err.code(), "already_subscribed");
    assert_eq!(outbox.subscription_count(), 3);
    assert_eq!(drain(&outbox).len(), 3, "refusals queue nothing");
    // A refused subscribe to an unknown topic leaves no topic behind.
    assert_eq!(hub.stats().topics, 3);

    hub.disconnect(&outbox);
    let err = hub.subscribe(&outbox, None, "a", None).unwrap_err();
    assert_eq!(err, SubscribeError::Closed);
    assert_eq!(err.code(), "connection_closed");
}

#[test]
fn unsubscribe_stops_delivery_and_later_frames_follow_queued_ones() {
    let hub = hub();
    let outbox = hub.connect();
    hub.subscribe(&outbox, None, "a", None).unwrap();
    hub.subscribe(&outbox, None, "b", None).unwrap();
    hub.apply([change(1, "a", vec![upsert("k", 1)])]);
    assert!(hub.unsubscribe(&outbox, "a"));
    assert!(!hub.unsubscribe(&outbox, "a"));
    assert!(!hub.unsubscribe(&outbox, "never"));
    outbox
        .push(gantry_projections::frame::encode(
            &ServerMessage::Unsubscribed {
                id: Some(4),
                topic: "a".into(),
            },
        ))
        .unwrap();
    hub.apply([
        change(2, "a", vec![upsert("k", 2)]),
        change(3, "b", vec![upsert("k", 3)]),
    ]);
    let kinds: Vec<String> = drain_parsed(&outbox)
        .into_iter()
        .map(|m| match m {
            ServerMessage::Snapshot { topic, .. } => format!("snapshot {topic}"),
            ServerMessage::Diff {
                topic, position, ..
            } => format!("diff {topic} {position}"),
            ServerMessage::Unsubscribed { topic, .. } => format!("unsubscribed {topic}"),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "snapshot a",
            "snapshot b",
            "diff a 1",
            "unsubscribed a",
            "diff b 3"
        ]
    );
    assert_eq!(outbox.subscription_count(), 1);
    assert_eq!(hub.stats().subscriptions, 1);
    // Resubscribing works and starts from the current state.
    hub.subscribe(&outbox, None, "a", None).unwrap();
    assert!(matches!(
        drain_parsed(&outbox)[..],
        [ServerMessage::Snapshot { position: 2, .. }]
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_cleans_up_and_stats_return_to_zero() {
    let hub = hub();
    hub.apply([change(1, "kept", vec![upsert("k", 1)])]);
    let outboxes: Vec<_> = (0..50).map(|_| hub.connect()).collect();
    let mut tasks = Vec::new();
    for (i, outbox) in outboxes.iter().enumerate() {
        let hub = Arc::clone(&hub);
        let outbox = Arc::clone(outbox);
        tasks.push(tokio::spawn(async move {
            for t in 0..5 {
                // Shared and private topics; private ones never change and are dropped again.
                let topic = if t % 2 == 0 {
                    format!("shared{t}")
                } else {
                    format!("job/{i}-{t}")
                };
                hub.subscribe(&outbox, Some(t), &topic, None).unwrap();
            }
            hub.subscribe(&outbox, None, "kept", None).unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = hub.stats();
    assert_eq!((stats.connections, stats.subscriptions), (50, 300));
    assert_eq!(stats.topics, 1 + 3 + 100);
    let waiting = {
        let outbox = Arc::clone(&outboxes[0]);
        tokio::spawn(async move {
            while outbox.recv().await.is_some() {}
            outbox.close_reason()
        })
    };
    for outbox in &outboxes {
        hub.disconnect(outbox);
        hub.disconnect(outbox); // idempotent
        assert_eq!(outbox.subscription_count(), 0);
        assert_eq!(outbox.queued_frames(), 0);
    }
    assert_eq!(
        waiting.await.unwrap(),
        None,
        "recv ends on disconnect, with no close reason"
    );
    let stats = hub.stats();
    assert_eq!((stats.connections, stats.subscriptions), (0, 0));
    // Topics that never changed are gone; the one with rows stays.
    assert_eq!(stats.topics, 1);
    hub.apply([change(2, "kept", vec![upsert("k", 2)])]);
    assert_eq!(hub.stats().subscriptions, 0);
}

#[test]
fn a_dropped_outbox_is_released_without_disconnect() {
    let hub = hub();
    let outbox = hub.connect();
    hub.subscribe(&outbox, None, "a", None).unwrap();
    drop(outbox);
    assert_eq!(hub.stats().connections, 0);
    // The topic forgets it at its next diff.
    assert_eq!(hub.stats().subscriptions, 1);
    hub.apply([change(1, "a", vec![upsert("k", 1)])]);
    assert_eq!(hub.stats().subscriptions, 0);
}
