//! Snapshot consistency while `apply` runs on another thread: every subscriber's snapshot plus
//! diffs rebuilds exactly the final view, with a gapless `prev` chain.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use gantry_projections::Subscribed;

const CHANGES: i64 = 5_000;
const SUBSCRIBERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_joining_during_apply_see_no_gap_and_no_duplicate() {
    let hub = hub_with(|c| c.outbox_max_bytes = 64 << 20);
    let topic = "repo/r1/jobs";
    // Some history before anyone subscribes, on this topic and another.
    hub.apply((1..=50).map(|p| change(p, topic, vec![upsert(&format!("k{}", p % 7), p)])));

    let projector = {
        let hub = Arc::clone(&hub);
        std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(7);
            let mut position = 50;
            while position < CHANGES {
                // Batches of 1..=8 changes, interleaved with another topic.
                let n = rng.i64(1..=8).min(CHANGES - position);
                let batch: Vec<_> = (0..n)
                    .map(|_| {
                        position += 1;
                        let key = format!("k{}", rng.usize(0..40));
                        let t = if position % 5 == 0 { "repos" } else { topic };
                        let op = if rng.u8(0..4) == 0 {
                            remove(&key)
                        } else {
                            upsert(&key, position)
                        };
                        change(position, t, vec![op, upsert("last", position)])
                    })
                    .collect();
                hub.apply(batch);
                // Pace the run so subscribers can join all along it.
                std::thread::sleep(Duration::from_micros(rng.u64(0..40)));
            }
        })
    };

    let mut tasks = Vec::new();
    for i in 0..SUBSCRIBERS {
        let hub = Arc::clone(&hub);
        tasks.push(tokio::spawn(async move {
            // Join at spread-out moments of the projector's run.
            let target = 50 + (CHANGES - 100) * i as i64 / SUBSCRIBERS as i64;
            while hub.position() < target {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let outbox = hub.connect();
            let outcome = hub.subscribe(&outbox, Some(i as u64), topic, None).unwrap();
            let Subscribed::Snapshot {
                position: start, ..
            } = outcome
            else {
                panic!("{outcome:?}")
            };
            let mut model = Model::default();
            while model.position.is_none_or(|p| p < hub_last_topic_position()) {
                let frame = tokio::time::timeout(Duration::from_secs(10), outbox.recv())
                    .await
                    .expect("stalled")
                    .expect("closed");
                model.feed(&parse(&frame));
            }
            hub.disconnect(&outbox);
            (start, model)
        }));
    }
    projector.join().unwrap();

    // The final view, from a fresh snapshot.
    let reference = hub.connect();
    hub.subscribe(&reference, None, topic, None).unwrap();
    let mut expected = Model::default();
    expected.feed_all(&drain(&reference));
    assert_eq!(expected.position, Some(hub_last_topic_position()));

    let mut starts = Vec::new();
    for task in tasks {
        let (start, model) = task.await.unwrap();
        assert_eq!(
            model.rows, expected.rows,
            "subscriber that started at {start}"
        );
        assert_eq!(model.snapshots, 1);
        starts.push(start);
    }
    starts.sort_unstable();
    starts.dedup();
    eprintln!("snapshot positions: {starts:?}");
    assert!(
        starts.len() > 1,
        "subscribers all joined at one moment: {starts:?}"
    );
    hub.disconnect(&reference);
    assert_eq!(hub.stats().connections, 0);
    assert_eq!(hub.stats().subscriptions, 0);
}

/// The last position written to "repo/r1/jobs" by the projector above (multiples of 5 go to
/// another topic).
fn hub_last_topic_position() -> i64 {
    let mut p = CHANGES;
    while p % 5 == 0 {
        p -= 1;
    }
    p
}
