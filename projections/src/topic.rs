//! One topic's state: its view, its retained diffs, and who is subscribed, behind one lock.
//!
//! Everything that must be atomic per topic happens under that lock: applying a change and
//! fanning its frame out, and a subscriber's snapshot (or resume) plus its registration. That is
//! what makes "snapshot, then every later diff, no gap, no duplicate" hold while the projector and
//! many connections run at once. Topics never share a lock, so busy topics do not contend.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gantry_types::ws::Op;
use parking_lot::Mutex;

use crate::frame::{self, DiffHeader};
use crate::hub::Subscribed;
use crate::retained::{RetainedDiff, RetainedLog};
use crate::stats::Counters;
use crate::view::TopicView;
use crate::{Change, Outbox};

/// A topic's lock and its key. Shared by the hub's topic map and the outboxes subscribed to it.
pub(crate) struct TopicCell {
    key: Box<str>,
    pub(crate) state: Mutex<TopicState>,
}

impl TopicCell {
    pub(crate) fn new(key: &str, state: TopicState) -> Self {
        Self {
            key: key.into(),
            state: Mutex::new(state),
        }
    }

    /// The internal topic key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for TopicCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicCell")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Hub-wide settings a topic needs while it works.
pub(crate) struct Ctx<'a> {
    pub epoch_json: &'a str,
    pub counters: &'a Counters,
    pub retention_count: usize,
    /// Diffs committed before this are evicted (`None`: no age limit).
    pub oldest: Option<DateTime<Utc>>,
}

/// The state of one topic (see the module docs).
pub(crate) struct TopicState {
    /// Set when the topic was dropped from the hub's map (idle and empty); whoever locked it
    /// must look the key up again.
    pub(crate) removed: bool,
    /// Wire topic name as a JSON string literal.
    topic_json: Box<str>,
    /// Position of the last change applied to this topic (0 if none).
    last_position: i64,
    view: TopicView,
    /// Cached `,"topic":..,"position":..,"rows":[..]` for the current position.
    snapshot_body: Option<Bytes>,
    retained: RetainedLog,
    /// Subscribed connections, by outbox id. Weak, so an outbox the server forgot to disconnect
    /// is still freed; dead entries go at the next fan-out.
    subscribers: HashMap<u64, Weak<Outbox>>,
}

impl TopicState {
    /// An empty topic that never changed.
    pub(crate) fn new(topic_json: Box<str>) -> Self {
        Self {
            removed: false,
            topic_json,
            last_position: 0,
            view: TopicView::default(),
            snapshot_body: None,
            retained: RetainedLog::default(),
            subscribers: HashMap::new(),
        }
    }

    /// Whether the topic holds nothing worth keeping (it can be dropped and recreated lazily
    /// with the same meaning).
    pub(crate) fn is_idle(&self) -> bool {
        self.subscribers.is_empty()
            && self.last_position == 0
            && self.view.is_empty()
            && self.retained.len() == 0
            && self.retained.floor() <= 0
    }

    /// Apply one change to the view and serialise its diff (prev = this topic's last position).
    /// Returns the frame; the caller retains and fans it out.
    pub(crate) fn apply(&mut self, change: &Change, ctx: &Ctx<'_>) -> Bytes {
        let prev = self.last_position;
        let header = DiffHeader {
            topic_json: &self.topic_json,
            epoch_json: ctx.epoch_json,
            position: change.position,
            prev,
            committed_at: &change.committed_at,
        };
        let view = &mut self.view;
        let frame = frame::diff(&header, &change.ops, |op, row| match (op, row) {
            (Op::Upsert { key, .. }, Some(row)) => view.upsert(key, row),
            (op, _) => view.remove(op.key()),
        });
        self.last_position = change.position;
        self.snapshot_body = None;
        self.retain(
            RetainedDiff {
                position: change.position,
                prev,
                committed_at: change.committed_at,
                frame: frame.clone(),
            },
            ctx,
        );
        frame
    }

    /// Keep a diff for resume, then enforce the retention bounds.
    pub(crate) fn retain(&mut self, diff: RetainedDiff, ctx: &Ctx<'_>) {
        Counters::add(&ctx.counters.retained_diffs, 1);
        Counters::add(&ctx.counters.retained_bytes, diff.frame.len());
        self.retained.push(diff);
        self.evict(ctx);
    }

    /// Enforce the retention bounds (count and age).
    pub(crate) fn evict(&mut self, ctx: &Ctx<'_>) -> usize {
        let gone = self.retained.evict(ctx.retention_count, ctx.oldest);
        Counters::sub(&ctx.counters.retained_diffs, gone.diffs);
        Counters::sub(&ctx.counters.retained_bytes, gone.bytes);
        gone.diffs
    }

    /// Push `frame` to every subscriber; drop those that are closed or just overflowed.
    pub(crate) fn fan_out(&mut self, frame: &Bytes, counters: &Counters) {
        let before = self.subscribers.len();
        self.subscribers.retain(|_, outbox| match outbox.upgrade() {
            Some(outbox) => outbox.deliver(frame),
            None => false,
        });
        Counters::sub(&counters.subscriptions, before - self.subscribers.len());
    }

    /// Add a subscriber (its first frames are already queued).
    pub(crate) fn add_subscriber(&mut self, outbox: &Arc<Outbox>, counters: &Counters) {
        if self
            .subscribers
            .insert(outbox.id(), Arc::downgrade(outbox))
            .is_none()
        {
            Counters::add(&counters.subscriptions, 1);
        }
    }

    /// Remove a subscriber; `true` if it was there.
    pub(crate) fn remove_subscriber(&mut self, id: u64, counters: &Counters) -> bool {
        let removed = self.subscribers.remove(&id).is_some();
        if removed {
            Counters::sub(&counters.subscriptions, 1);
            if self.subscribers.is_empty() {
                self.subscribers = HashMap::new();
            }
        }
        removed
    }

    /// Take all subscribers (used when `load` replaces a topic that early subscribers saw).
    pub(crate) fn take_subscribers(&mut self, counters: &Counters) -> Vec<Weak<Outbox>> {
        let taken: Vec<_> = std::mem::take(&mut self.subscribers)
            .into_values()
            .collect();
        Counters::sub(&counters.subscriptions, taken.len());
        taken
    }

    /// Replace the state with a loaded one: `view` as of `last_position`, resume floor `floor`,
    /// and the replayable changes with their `prev`, oldest first (for `load`).
    pub(crate) fn load(
        &mut self,
        last_position: i64,
        view: TopicView,
        floor: i64,
        diffs: Vec<(Change, i64)>,
        ctx: &Ctx<'_>,
    ) {
        Counters::sub(&ctx.counters.retained_diffs, self.retained.len());
        Counters::sub(&ctx.counters.retained_bytes, self.retained.bytes());
        self.last_position = last_position;
        self.view = view;
        self.snapshot_body = None;
        self.retained = RetainedLog::with_floor(floor);
        for (change, prev) in diffs {
            let header = DiffHeader {
                topic_json: &self.topic_json,
                epoch_json: ctx.epoch_json,
                position: change.position,
                prev,
                committed_at: &change.committed_at,
            };
            let frame = frame::diff(&header, &change.ops, |_, _| {});
            self.retain(
                RetainedDiff {
                    position: change.position,
                    prev,
                    committed_at: change.committed_at,
                    frame,
                },
                ctx,
            );
        }
    }

    /// A snapshot frame of the current rows, from the cached body (built at most once per
    /// position, however many subscribers ask).
    pub(crate) fn snapshot(
        &mut self,
        id: Option<u64>,
        reset: bool,
        epoch_json: &str,
    ) -> (Bytes, Subscribed) {
        let body = match &self.snapshot_body {
            Some(body) => body.clone(),
            None => {
                let body = frame::snapshot_body(
                    &self.topic_json,
                    epoch_json,
                    self.last_position,
                    self.view.rows(),
                    self.view.rows_bytes(),
                );
                self.snapshot_body = Some(body.clone());
                body
            }
        };
        let outcome = Subscribed::Snapshot {
            position: self.last_position,
            rows: self.view.len(),
            reset,
        };
        (frame::snapshot(id, &body, reset), outcome)
    }

    /// `resumed` plus the retained diffs after `since`, if every change after `since` is
    /// retained and the frames fit in `max_bytes` (a replay the outbox could never hold would
    /// close the client in a loop; a snapshot is the better answer then).
    pub(crate) fn resume(
        &self,
        id: Option<u64>,
        since: i64,
        epoch_json: &str,
        max_bytes: usize,
    ) -> Option<(Vec<Bytes>, Subscribed)> {
        if !self.retained.can_resume_from(since) {
            return None;
        }
        let replay = self.retained.after(since);
        let replay_bytes: usize = replay
            .clone()
            .map(|d| d.frame.len() + Outbox::SLOT_OVERHEAD)
            .sum();
        if replay_bytes > max_bytes {
            return None;
        }
        let position = replay
            .clone()
            .next()
            .map_or(self.last_position, |first| first.prev);
        let mut frames = Vec::with_capacity(1 + replay.len());
        frames.push(frame::resumed(id, &self.topic_json, epoch_json, position));
        frames.extend(replay.map(|d| d.frame.clone()));
        let outcome = Subscribed::Resumed {
            position,
            replayed: frames.len() - 1,
        };
        Some((frames, outcome))
    }
}
