//! The retained tail of one topic's diffs, which lets a client resume instead of re-snapshotting.
//!
//! Bounded by count and by age. The *floor* is the highest position whose diff is no longer
//! here (evicted, or unknown since a restart): every change of the topic after the floor is
//! retained, so a cursor at or above the floor can be resumed exactly.

use std::collections::VecDeque;

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// One serialised diff kept for resume (the same `Bytes` that subscribers got).
#[derive(Clone, Debug)]
pub(crate) struct RetainedDiff {
    pub position: i64,
    pub prev: i64,
    pub committed_at: DateTime<Utc>,
    pub frame: Bytes,
}

/// What an eviction freed, for the hub's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Evicted {
    pub diffs: usize,
    pub bytes: usize,
}

/// The retained diffs of one topic, oldest first, and the resume floor.
#[derive(Debug, Default)]
pub(crate) struct RetainedLog {
    diffs: VecDeque<RetainedDiff>,
    floor: i64,
    bytes: usize,
}

impl RetainedLog {
    /// An empty log whose changes up to `floor` are unknown.
    pub(crate) fn with_floor(floor: i64) -> Self {
        Self {
            floor,
            ..Self::default()
        }
    }

    /// Append a diff (positions must increase; the hub guarantees it).
    pub(crate) fn push(&mut self, diff: RetainedDiff) {
        self.bytes += diff.frame.len();
        self.diffs.push_back(diff);
    }

    /// Drop the oldest diffs beyond `max_count`, and those committed before `oldest` (if any),
    /// raising the floor to the highest dropped position.
    pub(crate) fn evict(&mut self, max_count: usize, oldest: Option<DateTime<Utc>>) -> Evicted {
        let mut out = Evicted::default();
        while let Some(front) = self.diffs.front() {
            let too_many = self.diffs.len() > max_count;
            let too_old = oldest.is_some_and(|oldest| front.committed_at < oldest);
            if !(too_many || too_old) {
                break;
            }
            if let Some(gone) = self.diffs.pop_front() {
                self.floor = self.floor.max(gone.position);
                self.bytes -= gone.frame.len();
                out.diffs += 1;
                out.bytes += gone.frame.len();
            }
        }
        if self.diffs.is_empty() && self.diffs.capacity() > 16 {
            self.diffs.shrink_to_fit();
        }
        out
    }

    /// Whether every change after `position` is still here.
    pub(crate) fn can_resume_from(&self, position: i64) -> bool {
        position >= self.floor
    }

    /// The retained diffs with a position above `position`, oldest first.
    pub(crate) fn after(
        &self,
        position: i64,
    ) -> std::collections::vec_deque::Iter<'_, RetainedDiff> {
        let start = self.diffs.partition_point(|d| d.position <= position);
        self.diffs.range(start..)
    }

    /// The resume floor.
    pub(crate) fn floor(&self) -> i64 {
        self.floor
    }

    /// Number of retained diffs.
    pub(crate) fn len(&self) -> usize {
        self.diffs.len()
    }

    /// Total bytes of retained frames.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(position: i64, prev: i64, age_s: i64) -> RetainedDiff {
        RetainedDiff {
            position,
            prev,
            committed_at: Utc::now() - chrono::Duration::seconds(age_s),
            frame: Bytes::from(vec![b'x'; 10]),
        }
    }

    #[test]
    fn count_and_age_eviction_raise_the_floor() {
        let mut log = RetainedLog::default();
        log.push(d(3, 0, 100));
        log.push(d(5, 3, 50));
        log.push(d(9, 5, 0));
        assert!(log.can_resume_from(0));
        assert_eq!(log.after(4).map(|d| d.position).collect::<Vec<_>>(), [5, 9]);
        assert_eq!(
            log.evict(2, None),
            Evicted {
                diffs: 1,
                bytes: 10
            }
        );
        assert_eq!(log.floor(), 3);
        assert!(!log.can_resume_from(2));
        assert!(log.can_resume_from(3));
        let cutoff = Utc::now() - chrono::Duration::seconds(10);
        assert_eq!(log.evict(10, Some(cutoff)).diffs, 1);
        assert_eq!(log.floor(), 5);
        assert_eq!(log.len(), 1);
        assert_eq!(log.bytes(), 10);
        assert_eq!(log.after(9).len(), 0);
    }
}
