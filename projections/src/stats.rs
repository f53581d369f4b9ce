//! Counters the hub keeps for metrics and tests, and the snapshot of them it reports.
//!
//! They are plain atomics updated where the state changes, so reading them never takes a lock.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A point-in-time view of the hub's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// The hub's position (last applied or loaded change).
    pub position: i64,
    /// Outboxes handed out by `connect` and neither disconnected nor dropped.
    pub connections: usize,
    /// (connection, topic) pairs currently receiving diffs.
    pub subscriptions: usize,
    /// Topics with state in memory.
    pub topics: usize,
    /// Diffs retained for resume, all topics together.
    pub retained_diffs: usize,
    /// Bytes of retained diff frames, all topics together.
    pub retained_bytes: usize,
    /// Outboxes closed because they overflowed their byte bound.
    pub slow_consumer_closes: u64,
}

/// The counters behind [`HubStats`], shared by the hub and its outboxes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicUsize,
    pub subscriptions: AtomicUsize,
    pub retained_diffs: AtomicUsize,
    pub retained_bytes: AtomicUsize,
    pub slow_consumer_closes: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicUsize, n: usize) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn sub(counter: &AtomicUsize, n: usize) {
        if n > 0 {
            counter.fetch_sub(n, Ordering::Relaxed);
        }
    }
}
