//! Retention by count and by age per topic; evicting raises the resume floor.

mod common;

use chrono::{Duration, Utc};
use common::*;
use gantry_projections::Subscribed;
use gantry_types::ws::Cursor;

fn since(position: i64) -> Cursor {
    Cursor {
        epoch: EPOCH.into(),
        position,
    }
}

fn resumes(hub: &gantry_projections::Hub, topic: &str, position: i64) -> bool {
    let outbox = hub.connect();
    let outcome = hub
        .subscribe(&outbox, None, topic, Some(&since(position)))
        .unwrap();
    hub.disconnect(&outbox);
    matches!(outcome, Subscribed::Resumed { .. })
}

#[test]
fn count_eviction_is_per_topic_and_raises_the_floor() {
    let hub = hub_with(|c| c.retention_count = 3);
    // "a" at 1..=5, "b" at 6 only.
    hub.apply((1..=5).map(|p| change(p, "a", vec![upsert("k", p)])));
    hub.apply([change(6, "b", vec![upsert("k", 6)])]);
    assert_eq!(hub.stats().retained_diffs, 3 + 1);
    // "a" keeps 3, 4, 5: evicted 1 and 2, floor 2.
    assert!(!resumes(&hub, "a", 1));
    assert!(resumes(&hub, "a", 2));
    assert!(resumes(&hub, "a", 6));
    // "b" evicted nothing.
    assert!(resumes(&hub, "b", 0));
    let stats = hub.stats();
    assert!(stats.retained_bytes > 0);
    assert_eq!((stats.connections, stats.subscriptions), (0, 0));
}

#[test]
fn age_eviction_raises_the_floor() {
    let hub = hub_with(|c| c.retention_age = std::time::Duration::from_secs(600));
    let old = Utc::now() - Duration::hours(1);
    hub.apply([
        change_at(1, "a", old, vec![upsert("k", 1)]),
        change_at(2, "a", old, vec![upsert("k", 2)]),
        change(3, "a", vec![upsert("k", 3)]),
    ]);
    assert_eq!(hub.stats().retained_diffs, 1);
    assert!(!resumes(&hub, "a", 1));
    assert!(resumes(&hub, "a", 2));
}

#[test]
fn expire_sweeps_quiet_topics() {
    let hub = hub_with(|c| c.retention_age = std::time::Duration::from_millis(30));
    hub.apply([
        change(1, "a", vec![upsert("k", 1)]),
        change(2, "b", vec![upsert("k", 2)]),
    ]);
    assert_eq!(hub.stats().retained_diffs, 2);
    std::thread::sleep(std::time::Duration::from_millis(60));
    assert_eq!(hub.expire(), 2);
    let stats = hub.stats();
    assert_eq!((stats.retained_diffs, stats.retained_bytes), (0, 0));
    assert!(!resumes(&hub, "a", 0));
    assert!(
        resumes(&hub, "a", 1),
        "a cursor at the topic's position missed nothing"
    );
}

#[test]
fn zero_retention_still_resumes_a_client_that_missed_nothing() {
    let hub = hub_with(|c| c.retention_count = 0);
    hub.apply([
        change(1, "a", vec![upsert("k", 1)]),
        change(2, "a", vec![upsert("k", 2)]),
    ]);
    assert_eq!(hub.stats().retained_diffs, 0);
    assert!(!resumes(&hub, "a", 1));
    assert!(resumes(&hub, "a", 2));
}
