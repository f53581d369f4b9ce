//! A connection that does not read is closed as a slow consumer once over its byte bound, while
//! the others keep receiving everything; the hub stops holding frames for it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use gantry_projections::CloseReason;
use gantry_types::ws::close_code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_outbox_is_closed_while_a_reader_gets_everything() {
    let hub = hub_with(|c| c.outbox_max_bytes = 16 * 1024);
    let stalled = hub.connect();
    let reader = hub.connect();
    hub.subscribe(&stalled, None, "repos", None).unwrap();
    hub.subscribe(&stalled, None, "other", None).unwrap();
    hub.subscribe(&reader, None, "repos", None).unwrap();

    let total = 2_000i64;
    let reading = {
        let reader = Arc::clone(&reader);
        tokio::spawn(async move {
            let mut model = Model::default();
            while model.position != Some(total) {
                let frame = tokio::time::timeout(Duration::from_secs(10), reader.recv())
                    .await
                    .expect("reader stalled")
                    .expect("reader closed");
                model.feed(&parse(&frame));
            }
            model
        })
    };
    let applier = {
        let hub = Arc::clone(&hub);
        let reader = Arc::clone(&reader);
        std::thread::spawn(move || {
            for p in 1..=total {
                hub.apply([change(p, "repos", vec![upsert(&format!("k{}", p % 10), p)])]);
                // Bursts of 20, then let the reader catch up (it is the fast one here).
                while p % 20 == 0 && reader.queued_frames() > 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        })
    };
    applier.join().unwrap();
    let model = reading.await.unwrap();
    assert_eq!(
        model.diffs.len(),
        total as usize,
        "the reader got every diff"
    );

    assert_eq!(stalled.close_reason(), Some(CloseReason::SlowConsumer));
    assert_eq!(CloseReason::SlowConsumer.code(), close_code::SLOW_CONSUMER);
    assert_eq!(stalled.queued_bytes(), 0, "its queue was freed");
    assert_eq!(stalled.queued_frames(), 0);
    assert!(stalled.recv().await.is_none());
    assert!(stalled.push(Bytes::from_static(b"{}")).is_err());
    let stats = hub.stats();
    assert_eq!(stats.slow_consumer_closes, 1);
    // Dropped from "repos" at once; "other" still lists it until disconnect or its next diff.
    assert_eq!(stats.subscriptions, 2);
    hub.apply([change(total + 1, "other", vec![upsert("x", 1)])]);
    assert_eq!(hub.stats().subscriptions, 1);
    assert!(hub.subscribe(&stalled, None, "third", None).is_err());
    hub.disconnect(&stalled);
    hub.disconnect(&reader);
    let stats = hub.stats();
    assert_eq!((stats.connections, stats.subscriptions), (0, 0));
}

#[test]
fn pushes_count_against_the_same_bound_and_a_large_first_frame_is_accepted() {
    let hub = hub_with(|c| c.outbox_max_bytes = 1_000);
    let outbox = hub.connect();
    // An empty queue takes a frame of any size (a large snapshot must never lock a client out).
    outbox.push(Bytes::from(vec![b'x'; 5_000])).unwrap();
    assert_eq!(
        outbox.queued_bytes(),
        5_000 + gantry_projections::Outbox::SLOT_OVERHEAD
    );
    // But nothing more until it drains.
    let err = outbox
        .push(Bytes::from_static(b"{\"type\":\"pong\"}"))
        .unwrap_err();
    assert_eq!(err.reason, Some(CloseReason::SlowConsumer));
    assert_eq!(hub.stats().slow_consumer_closes, 1);

    let outbox = hub.connect();
    for _ in 0..9 {
        outbox.push(Bytes::from(vec![b'y'; 84])).unwrap();
    }
    assert_eq!(outbox.queued_bytes(), 900);
    drain(&outbox);
    for _ in 0..10 {
        outbox.push(Bytes::from(vec![b'y'; 84])).unwrap();
    }
    assert!(outbox.push(Bytes::from(vec![b'y'; 84])).is_err());
}

#[tokio::test]
async fn close_wakes_a_waiting_reader_and_drops_queued_frames() {
    let hub = hub();
    let outbox = hub.connect();
    let waiting = {
        let outbox = Arc::clone(&outbox);
        tokio::spawn(async move { outbox.recv().await })
    };
    tokio::task::yield_now().await;
    outbox.close(CloseReason::HeartbeatTimeout);
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(got.is_none());
    assert_eq!(outbox.close_reason(), Some(CloseReason::HeartbeatTimeout));

    let outbox = hub.connect();
    outbox.push(Bytes::from_static(b"1")).unwrap();
    outbox.close(CloseReason::GoingAway);
    outbox.close(CloseReason::TokenRevoked);
    assert_eq!(
        outbox.close_reason(),
        Some(CloseReason::GoingAway),
        "first reason sticks"
    );
    assert!(outbox.recv().await.is_none());
    assert_eq!(outbox.queued_frames(), 0);
}
