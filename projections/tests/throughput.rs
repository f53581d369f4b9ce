//! A rough fan-out measurement (ignored by default; the real benchmark lives in `bench/`):
//! `cargo test -p gantry-projections --release --test throughput -- --ignored --nocapture`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn fan_out_to_10k_connections() {
    const CONNECTIONS: usize = 10_000;
    const DIFFS: i64 = 100;
    let hub = hub();
    let mut readers = Vec::new();
    for _ in 0..CONNECTIONS {
        let outbox = hub.connect();
        hub.subscribe(&outbox, None, "repo/r/jobs", None).unwrap();
        readers.push(tokio::spawn(async move {
            let mut got = 0;
            let mut batch = Vec::new();
            while got < DIFFS as usize + 1 {
                let Some(_first) = outbox.recv().await else {
                    break;
                };
                outbox.try_recv_many(64, &mut batch);
                got += 1 + batch.len();
                batch.clear();
            }
            got
        }));
    }
    tokio::task::yield_now().await;
    let start = Instant::now();
    let projector = {
        let hub = Arc::clone(&hub);
        std::thread::spawn(move || {
            let t = Instant::now();
            for p in 1..=DIFFS {
                hub.apply([change(
                    p,
                    "repo/r/jobs",
                    vec![upsert(&format!("j{}", p % 50), p)],
                )]);
            }
            t.elapsed()
        })
    };
    let apply_time = projector.join().unwrap();
    for r in readers {
        assert_eq!(r.await.unwrap(), DIFFS as usize + 1);
    }
    let total = start.elapsed();
    let deliveries = CONNECTIONS as f64 * DIFFS as f64;
    eprintln!(
        "{deliveries} deliveries: apply {:?} ({:.0}/s into outboxes), end to end {:?} ({:.0}/s)",
        apply_time,
        deliveries / apply_time.as_secs_f64(),
        total,
        deliveries / total.as_secs_f64()
    );
    assert_eq!(hub.stats().slow_consumer_closes, 0);
}
