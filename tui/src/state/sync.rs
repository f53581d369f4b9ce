//! Where the client stands on one topic, and the `prev` chain check that detects a gap.
//!
//! The protocol promises that each diff's `prev` is the position of the previous message the
//! client got for that topic. This module is the one place that checks it: a diff that does not
//! continue the chain means something was missed, and the answer is "subscribe again since the
//! last position we applied". Kept apart from the row data so the rule can be tested on its own.

use gantry_types::ws::Cursor;

/// Where a topic's subscription stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A subscribe was sent; diffs are ignored until its snapshot or `resumed` arrives.
    Awaiting,
    /// Diffs continue the chain from `cursor`.
    Live,
    /// A gap was seen; a resubscribe is on its way and diffs are ignored until it is answered.
    Resyncing,
}

/// What to do with one diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It continues the chain: apply its ops.
    Apply,
    /// Not for now (a duplicate, or the topic is waiting for an answer): drop it.
    Ignore,
    /// Something was missed: subscribe again with `since` this cursor.
    Gap(Cursor),
}

/// The sync state of one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSync {
    phase: Phase,
    /// The last position applied, kept across reconnects so the topic can resume.
    cursor: Option<Cursor>,
}

impl Default for TopicSync {
    fn default() -> Self {
        TopicSync {
            phase: Phase::Awaiting,
            cursor: None,
        }
    }
}

impl TopicSync {
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The cursor to resume from, if anything was ever applied.
    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    /// A subscribe (or resubscribe) was sent.
    pub fn awaiting(&mut self) {
        self.phase = Phase::Awaiting;
    }

    /// A snapshot or `resumed` arrived: the chain starts again at this position.
    pub fn restart(&mut self, epoch: &str, position: i64) {
        self.cursor = Some(Cursor {
            epoch: epoch.to_owned(),
            position,
        });
        self.phase = Phase::Live;
    }

    /// Checks a diff against the chain, advancing the cursor when it applies.
    pub fn check(&mut self, epoch: &str, position: i64, prev: i64) -> Verdict {
        if self.phase != Phase::Live {
            return Verdict::Ignore;
        }
        let Some(cursor) = self.cursor.as_mut() else {
            return Verdict::Ignore;
        };
        if cursor.epoch != epoch {
            // The log was reset: resuming with the old cursor gets a fresh snapshot.
            self.phase = Phase::Resyncing;
            return Verdict::Gap(cursor.clone());
        }
        if position <= cursor.position {
            return Verdict::Ignore;
        }
        if prev != cursor.position {
            self.phase = Phase::Resyncing;
            return Verdict::Gap(cursor.clone());
        }
        cursor.position = position;
        Verdict::Apply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_at(position: i64) -> TopicSync {
        let mut sync = TopicSync::default();
        sync.restart("e1", position);
        sync
    }

    #[test]
    fn a_diff_continuing_the_chain_applies_and_advances() {
        let mut sync = live_at(5);
        assert_eq!(sync.check("e1", 7, 5), Verdict::Apply);
        assert_eq!(sync.check("e1", 9, 7), Verdict::Apply);
        assert_eq!(sync.cursor().map(|c| c.position), Some(9));
    }

    #[test]
    fn a_prev_that_skips_is_a_gap_resuming_from_the_last_applied_position() {
        let mut sync = live_at(5);
        assert_eq!(sync.check("e1", 7, 5), Verdict::Apply);
        let verdict = sync.check("e1", 12, 10);
        assert_eq!(
            verdict,
            Verdict::Gap(Cursor {
                epoch: "e1".into(),
                position: 7
            })
        );
        assert_eq!(sync.phase(), &Phase::Resyncing);
        // Until the resubscribe is answered, later diffs are dropped, not applied.
        assert_eq!(sync.check("e1", 13, 12), Verdict::Ignore);
        sync.restart("e1", 7);
        assert_eq!(sync.check("e1", 10, 7), Verdict::Apply);
    }

    #[test]
    fn duplicates_are_ignored() {
        let mut sync = live_at(5);
        assert_eq!(sync.check("e1", 5, 3), Verdict::Ignore);
        assert_eq!(sync.check("e1", 4, 2), Verdict::Ignore);
        assert_eq!(sync.cursor().map(|c| c.position), Some(5));
    }

    #[test]
    fn another_epoch_is_a_gap() {
        let mut sync = live_at(5);
        assert!(matches!(sync.check("e2", 1, 0), Verdict::Gap(c) if c.epoch == "e1"));
    }

    #[test]
    fn diffs_before_the_first_answer_are_ignored() {
        let mut sync = TopicSync::default();
        assert_eq!(sync.check("e1", 3, 2), Verdict::Ignore);
        assert!(sync.cursor().is_none());
    }

    #[test]
    fn the_cursor_survives_a_new_subscribe_so_it_can_resume() {
        let mut sync = live_at(5);
        sync.awaiting();
        assert_eq!(sync.phase(), &Phase::Awaiting);
        assert_eq!(sync.cursor().map(|c| c.position), Some(5));
    }
}
