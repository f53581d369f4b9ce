//! Footprint of idle connections: 50,000 outboxes subscribed to one topic, each having received
//! and drained a snapshot and a diff, measured as resident memory growth. The goal server-wide is
//! 20 KiB per idle connection; this crate's share should be a small fraction of it.
//!
//! Kept alone in its own test binary so no other test's allocations blur the measurement.

mod common;

use common::*;
use gantry_projections::Outbox;

fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn idle_connections_stay_small() {
    const N: usize = 50_000;
    let hub = hub();
    hub.apply([change(1, "repos", vec![upsert("a", 1)])]);
    // Warm up allocator arenas and the topic before measuring.
    let warm: Vec<_> = (0..1_000).map(|_| hub.connect()).collect();
    for o in &warm {
        hub.subscribe(o, None, "repos", None).unwrap();
    }
    for o in &warm {
        hub.disconnect(o);
    }
    drop(warm);

    let before = resident_bytes();
    let outboxes: Vec<_> = (0..N).map(|_| hub.connect()).collect();
    for o in &outboxes {
        hub.subscribe(o, Some(1), "repos", None).unwrap();
    }
    hub.apply([change(2, "repos", vec![upsert("b", 2)])]);
    let mut frames = Vec::new();
    for o in &outboxes {
        o.try_recv_many(usize::MAX, &mut frames);
        assert_eq!(frames.len(), 2);
        frames.clear();
    }
    let after = resident_bytes();
    assert_eq!(hub.stats().subscriptions, N);

    eprintln!(
        "size_of::<Outbox>() = {} bytes (plus the Arc header, queue and topic list buffers)",
        std::mem::size_of::<Outbox>()
    );
    if let (Some(before), Some(after)) = (before, after) {
        let per = after.saturating_sub(before) / N;
        eprintln!(
            "{N} idle subscribed connections: {} KiB resident, {per} bytes each",
            after.saturating_sub(before) / 1024
        );
        assert!(per < 2048, "{per} bytes per idle connection");
    }
    for o in &outboxes {
        hub.disconnect(o);
    }
    assert_eq!(hub.stats().subscriptions, 0);
}
