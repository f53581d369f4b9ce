//! The hub: topic views fed by the change log, fanned out to subscribed connections.
//!
//! One projector task calls [`Hub::apply`] with committed changes in position order; many
//! connection tasks call [`Hub::subscribe`] / [`Hub::unsubscribe`] / [`Hub::disconnect`]. Topic
//! state lives in a concurrent map of per-topic locks (see `topic.rs`), so the only hub-wide
//! serialisation is `apply` against itself.
//!
//! Lock order, to stay deadlock-free: a topic lock may be held while taking an outbox's lock or
//! the topic map's shard lock (to drop an idle topic); never the other way round, and no lock is
//! held across an `.await`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use gantry_types::ws::Cursor;
use parking_lot::Mutex;

use crate::error::{LoadError, SubscribeError};
use crate::frame;
use crate::outbox::HubShared;
use crate::stats::{Counters, HubStats};
use crate::topic::{Ctx, TopicCell, TopicState};
use crate::view::TopicView;
use crate::{Change, HubConfig, Outbox, TopicSeed};

/// What [`Hub::subscribe`] queued for the subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// A `snapshot` frame.
    Snapshot {
        /// The snapshot's position (the topic's last change, 0 if none).
        position: i64,
        /// Number of rows in it.
        rows: usize,
        /// Whether it answers a resume that could not be honoured.
        reset: bool,
    },
    /// A `resumed` frame and the retained diffs the client missed.
    Resumed {
        /// The `resumed` frame's position: the first replayed diff's `prev`, or the topic's
        /// last position when nothing was missed.
        position: i64,
        /// Number of diffs replayed.
        replayed: usize,
    },
}

/// Change log -> topic views -> subscribers. Create it with [`Hub::new`]; see the crate docs.
pub struct Hub {
    config: HubConfig,
    epoch_json: Box<str>,
    shared: Arc<HubShared>,
    topics: DashMap<Box<str>, Arc<TopicCell>>,
    /// Position of the last applied (or loaded) change.
    position: AtomicI64,
    /// Serialises `apply` and `load` against themselves.
    apply_lock: Mutex<()>,
    loaded: AtomicBool,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with no topics at position 0. Call [`Hub::load`] before serving if the log is not
    /// empty.
    pub fn new(config: HubConfig) -> Arc<Hub> {
        let shared = Arc::new(HubShared {
            outbox_max_bytes: config.outbox_max_bytes,
            max_subscriptions: config.max_subscriptions_per_connection,
            counters: Counters::default(),
        });
        Arc::new(Hub {
            epoch_json: frame::json_str(&config.epoch),
            config,
            shared,
            topics: DashMap::new(),
            position: AtomicI64::new(0),
            apply_lock: Mutex::new(()),
            loaded: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        })
    }

    /// Set the start state, read by the server in one consistent database read:
    /// - `position`: the log position the read saw;
    /// - `views`: every topic that has changes at or before it, with its rows and last change
    ///   position (see [`TopicSeed`]);
    /// - `retained`: the tail of the log (changes at or before `position`, any order) so that
    ///   clients can resume across a restart.
    ///
    /// A retained diff's `prev` is the position of the topic's change before it, so the first
    /// retained change of each topic (whose predecessor is unknown) only marks that topic's
    /// resume floor; the ones after it are replayable. Retention bounds apply at once.
    ///
    /// Call once, before any [`Hub::apply`]. Connections subscribed before `load` to a topic
    /// it seeds are closed with [`crate::CloseReason::GoingAway`], so they resume on the right
    /// state.
    pub fn load(
        &self,
        position: i64,
        views: Vec<TopicSeed>,
        retained: Vec<Change>,
    ) -> Result<(), LoadError> {
        let _serial = self.apply_lock.lock();
        if self.loaded.swap(true, Ordering::AcqRel) || self.position() != 0 {
            return Err(LoadError::AlreadyStarted);
        }
        let position = position.max(0);
        let mut chains: HashMap<String, Vec<Change>> = HashMap::new();
        let mut ignored = 0usize;
        for change in retained {
            if change.position > position || change.position <= 0 {
                ignored += 1;
                continue;
            }
            chains.entry(change.topic.clone()).or_default().push(change);
        }
        if ignored > 0 {
            tracing::warn!(
                ignored,
                position,
                "load: ignored retained changes outside (0, position]"
            );
        }
        let ctx = self.ctx(self.oldest_retained());
        for seed in views {
            let chain = chains.remove(&seed.topic).unwrap_or_default();
            let mut view = TopicView::default();
            for (key, row) in &seed.rows {
                view.upsert(key, frame::to_json_string(row));
            }
            let seed_position = seed.position.clamp(0, position);
            self.seed_topic(&seed.topic, Some(seed_position), view, chain, &ctx);
        }
        for (topic, chain) in chains {
            self.seed_topic(&topic, None, TopicView::default(), chain, &ctx);
        }
        self.position.store(position, Ordering::Release);
        Ok(())
    }

    /// Apply committed changes in position order. A change at or below the hub's position is
    /// ignored (so re-reading the log is harmless). Each change updates its topic's view, is
    /// serialised into one `diff` frame (`prev` = the topic's previous change position), retained
    /// for resume, and pushed (the same `Bytes`) to every subscriber of the topic. A subscriber
    /// whose queue would overflow is closed as a slow consumer and dropped from the topic;
    /// nothing here waits on a connection.
    pub fn apply(&self, changes: impl IntoIterator<Item = Change>) {
        let _serial = self.apply_lock.lock();
        let ctx = self.ctx(self.oldest_retained());
        for change in changes {
            let position = change.position;
            if position <= self.position() {
                tracing::trace!(position, "apply: skipping a change already applied");
                continue;
            }
            self.with_topic(&change.topic, |_, state| {
                let frame = state.apply(&change, &ctx);
                // Published before the frame leaves the lock, so a client that got this diff
                // never resumes "ahead of the hub".
                self.position.store(position, Ordering::Release);
                state.fan_out(&frame, &self.shared.counters);
            });
        }
    }

    /// Position of the last applied (or loaded) change.
    pub fn position(&self) -> i64 {
        self.position.load(Ordering::Acquire)
    }

    /// The epoch of the log this hub serves.
    pub fn epoch(&self) -> &str {
        &self.config.epoch
    }

    /// The hub's configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// A new connection's handle: an id and an empty outbox. Call [`Hub::disconnect`] when the
    /// connection ends.
    pub fn connect(&self) -> Arc<Outbox> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Counters::add(&self.shared.counters.connections, 1);
        Arc::new(Outbox::new(id, Arc::clone(&self.shared)))
    }

    /// Subscribe a connection to a topic (created lazily if unknown). Atomically with respect
    /// to `apply` on that topic, queues either:
    /// - with no `since`: a `snapshot` (`reset: false`);
    /// - with a `since` of this epoch, at or below the hub's position, from which every later
    ///   change of the topic is retained (and whose replay fits the outbox): `resumed`, then
    ///   exactly the retained diffs after `since.position`;
    /// - with any other `since`: a `snapshot` with `reset: true`;
    ///
    /// and then every later diff of the topic, with no gap and no duplicate.
    pub fn subscribe(
        &self,
        outbox: &Arc<Outbox>,
        request_id: Option<u64>,
        topic_key: &str,
        since: Option<&Cursor>,
    ) -> Result<Subscribed, SubscribeError> {
        outbox.precheck(topic_key)?;
        let ctx = self.ctx(self.oldest_retained());
        self.with_topic(topic_key, |cell, state| {
            state.evict(&ctx);
            let resumed = since
                .filter(|c| c.epoch == self.config.epoch && c.position <= self.position())
                .and_then(|c| {
                    state.resume(
                        request_id,
                        c.position,
                        &self.epoch_json,
                        self.config.outbox_max_bytes,
                    )
                });
            let (frames, outcome) = match resumed {
                Some(resumed) => resumed,
                None => {
                    let (frame, outcome) =
                        state.snapshot(request_id, since.is_some(), &self.epoch_json);
                    (vec![frame], outcome)
                }
            };
            match outbox.register(cell, frames) {
                Ok(()) => {
                    state.add_subscriber(outbox, &self.shared.counters);
                    Ok(outcome)
                }
                Err(err) => {
                    self.drop_if_idle(cell, state);
                    Err(err)
                }
            }
        })
    }

    /// Stop delivering a topic to a connection. Returns whether it was subscribed. Frames
    /// already queued stay queued, so an `unsubscribed` frame pushed after this call follows them.
    pub fn unsubscribe(&self, outbox: &Arc<Outbox>, topic_key: &str) -> bool {
        let Some(cell) = outbox.find_topic(topic_key) else {
            return false;
        };
        let mut state = cell.state.lock();
        let was_subscribed = outbox.remove_topic(&cell);
        state.remove_subscriber(outbox.id(), &self.shared.counters);
        self.drop_if_idle(&cell, &mut state);
        was_subscribed
    }

    /// End a connection: drop all its subscriptions, free its queue, and make its `recv` return
    /// `None`. Idempotent.
    pub fn disconnect(&self, outbox: &Arc<Outbox>) {
        for cell in outbox.detach() {
            let mut state = cell.state.lock();
            state.remove_subscriber(outbox.id(), &self.shared.counters);
            self.drop_if_idle(&cell, &mut state);
        }
    }

    /// Evict retained diffs past the age bound on every topic (`apply` and `subscribe` do it
    /// for the topics they touch; call this now and then so quiet topics free memory too).
    /// Returns the number of diffs evicted.
    pub fn expire(&self) -> usize {
        let ctx = self.ctx(self.oldest_retained());
        let cells: Vec<Arc<TopicCell>> =
            self.topics.iter().map(|e| Arc::clone(e.value())).collect();
        cells.iter().map(|cell| cell.state.lock().evict(&ctx)).sum()
    }

    /// Current sizes and counters.
    pub fn stats(&self) -> HubStats {
        let c = &self.shared.counters;
        HubStats {
            position: self.position(),
            connections: c.connections.load(Ordering::Relaxed),
            subscriptions: c.subscriptions.load(Ordering::Relaxed),
            topics: self.topics.len(),
            retained_diffs: c.retained_diffs.load(Ordering::Relaxed),
            retained_bytes: c.retained_bytes.load(Ordering::Relaxed),
            slow_consumer_closes: c.slow_consumer_closes.load(Ordering::Relaxed),
        }
    }

    fn ctx(&self, oldest: Option<DateTime<Utc>>) -> Ctx<'_> {
        Ctx {
            epoch_json: &self.epoch_json,
            counters: &self.shared.counters,
            retention_count: self.config.retention_count,
            oldest,
        }
    }

    /// Diffs committed before this instant are past the age bound (`None`: no bound).
    fn oldest_retained(&self) -> Option<DateTime<Utc>> {
        let age = chrono::Duration::from_std(self.config.retention_age).ok()?;
        Utc::now().checked_sub_signed(age)
    }

    fn new_state(&self, key: &str) -> TopicState {
        let wire = (self.config.wire_topic)(key);
        TopicState::new(frame::json_str(&wire))
    }

    /// The cell for `key`, created empty if absent. The map's guard is released before return.
    fn cell(&self, key: &str) -> Arc<TopicCell> {
        if let Some(cell) = self.topics.get(key) {
            return Arc::clone(cell.value());
        }
        let fresh = Arc::new(TopicCell::new(key, self.new_state(key)));
        Arc::clone(self.topics.entry(key.into()).or_insert(fresh).value())
    }

    /// Run `f` with the topic's lock held, retrying if the topic was dropped meanwhile.
    fn with_topic<R>(&self, key: &str, f: impl FnOnce(&Arc<TopicCell>, &mut TopicState) -> R) -> R {
        loop {
            let cell = self.cell(key);
            let mut state = cell.state.lock();
            if state.removed {
                continue;
            }
            return f(&cell, &mut state);
        }
    }

    /// Drop a topic that holds nothing (e.g. one a client subscribed to and left, that never
    /// changed), so unknown topic names cannot pile up. Called with the topic's lock held.
    fn drop_if_idle(&self, cell: &Arc<TopicCell>, state: &mut TopicState) {
        if state.is_idle()
            && self
                .topics
                .remove_if(cell.key(), |_, v| Arc::ptr_eq(v, cell))
                .is_some()
        {
            state.removed = true;
        }
    }

    /// Install one topic's start state (see [`Hub::load`]).
    fn seed_topic(
        &self,
        key: &str,
        seed_position: Option<i64>,
        view: TopicView,
        mut chain: Vec<Change>,
        ctx: &Ctx<'_>,
    ) {
        chain.sort_by_key(|c| c.position);
        chain.dedup_by_key(|c| c.position);
        let chain_last = chain.last().map(|c| c.position);
        let last_position = seed_position.or(chain_last).unwrap_or(0);
        let mut floor = last_position;
        let mut diffs = Vec::new();
        if chain_last == Some(last_position) {
            // A consistent tail: every change after its first one is replayable.
            let mut chain = chain.into_iter();
            if let Some(first) = chain.next() {
                floor = first.position;
                let mut prev = first.position;
                for change in chain {
                    let position = change.position;
                    diffs.push((change, prev));
                    prev = position;
                }
            }
        } else if let Some(tail) = chain_last {
            tracing::warn!(
                topic = key,
                seed_position = last_position,
                tail_position = tail,
                "load: retained tail does not end at the topic's position; not replayable"
            );
            floor = floor.max(tail);
        }
        self.with_topic(key, |_, state| {
            state.load(last_position, view, floor, diffs, ctx);
            for early in state.take_subscribers(ctx.counters) {
                if let Some(outbox) = early.upgrade() {
                    outbox.close(crate::CloseReason::GoingAway);
                }
            }
        });
    }
}
