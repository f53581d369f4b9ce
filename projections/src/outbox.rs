//! A connection's send queue: byte-bounded, shared frames, woken by a cheap notify.
//!
//! The hub pushes into it while holding a topic lock, so a push never waits on the network: when
//! a push would exceed the byte bound the outbox closes itself with
//! [`CloseReason::SlowConsumer`], frees its queue, and the hub drops it from its topics. The
//! client then reconnects and resumes; nothing is dropped silently and memory stays bounded.
//!
//! An idle outbox is small: the queue releases its buffer once drained, and the list of its
//! topics is a vector of pointers.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::CloseReason;
use crate::error::{OutboxClosed, SubscribeError};
use crate::stats::Counters;
use crate::topic::TopicCell;

/// Limits and counters shared by a hub and all its outboxes.
#[derive(Debug)]
pub(crate) struct HubShared {
    pub outbox_max_bytes: usize,
    pub max_subscriptions: usize,
    pub counters: Counters,
}

/// A queue that has drained keeps at most this many slots of capacity.
const IDLE_QUEUE_CAPACITY: usize = 32;

/// One connection's handle on the hub: an id, its subscriptions and its queue of frames.
///
/// The connection's writer task drains it with [`Outbox::recv`] / [`Outbox::try_recv_many`]
/// (one consumer at a time); any task may [`Outbox::push`] or [`Outbox::close`].
pub struct Outbox {
    id: u64,
    shared: Arc<HubShared>,
    inner: Mutex<Inner>,
    notify: Notify,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Bytes>,
    /// Sum of the queued frames' costs (length + [`Outbox::SLOT_OVERHEAD`]).
    queued_bytes: usize,
    closed: Option<CloseReason>,
    /// Set by [`crate::Hub::disconnect`]: the outbox is finished and takes no subscription.
    detached: bool,
    /// The topics this connection is subscribed to.
    topics: Vec<Arc<TopicCell>>,
}

impl Inner {
    fn is_open(&self) -> bool {
        self.closed.is_none() && !self.detached
    }

    fn closed_error(&self) -> OutboxClosed {
        OutboxClosed {
            reason: self.closed,
        }
    }

    fn clear_queue(&mut self) {
        self.queue = VecDeque::new();
        self.queued_bytes = 0;
    }

    fn after_pop(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > IDLE_QUEUE_CAPACITY {
            self.queue.shrink_to(IDLE_QUEUE_CAPACITY / 4);
        }
    }
}

/// What an enqueue attempt did.
enum Enqueued {
    /// Queued; `true` when the queue was empty before (the reader may be asleep).
    Yes { wake: bool },
    /// Not queued: the outbox was already closed.
    Closed(OutboxClosed),
    /// Not queued: it would have overflowed, and the outbox is now closed as a slow consumer.
    Overflowed,
}

impl Outbox {
    /// Bytes each queued frame counts beyond its length (its queue slot), so that many tiny
    /// frames are bounded too.
    pub const SLOT_OVERHEAD: usize = 16;

    pub(crate) fn new(id: u64, shared: Arc<HubShared>) -> Self {
        Self {
            id,
            shared,
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
        }
    }

    /// This connection's id, unique within its hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queue a frame the connection produces itself (pong, error, unsubscribed), under the same
    /// byte bound as diffs. On overflow the outbox closes with [`CloseReason::SlowConsumer`].
    pub fn push(&self, frame: Bytes) -> Result<(), OutboxClosed> {
        let cost = frame.len() + Self::SLOT_OVERHEAD;
        let result = {
            let mut inner = self.inner.lock();
            self.enqueue(&mut inner, cost, std::iter::once(frame))
        };
        self.finish(result)
    }

    /// Wait for the next frame. Returns `None` as soon as the outbox is closed (queued frames
    /// are discarded then: the client resumes), or disconnected; [`Outbox::close_reason`] says
    /// why.
    pub async fn recv(&self) -> Option<Bytes> {
        loop {
            {
                let mut inner = self.inner.lock();
                if !inner.is_open() {
                    return None;
                }
                if let Some(frame) = inner.queue.pop_front() {
                    inner.queued_bytes -= frame.len() + Self::SLOT_OVERHEAD;
                    inner.after_pop();
                    return Some(frame);
                }
            }
            // A push into the now-empty queue calls `notify_one`, which stores a permit if we
            // are not waiting yet, so no wake-up is lost between the check and the await.
            self.notify.notified().await;
        }
    }

    /// Move up to `max` ready frames into `out` without waiting, so the writer can batch them
    /// into one flush. Moves nothing once closed.
    pub fn try_recv_many(&self, max: usize, out: &mut Vec<Bytes>) {
        let mut inner = self.inner.lock();
        if !inner.is_open() {
            return;
        }
        let n = max.min(inner.queue.len());
        let mut freed = 0;
        for frame in inner.queue.drain(..n) {
            freed += frame.len() + Self::SLOT_OVERHEAD;
            out.push(frame);
        }
        inner.queued_bytes -= freed;
        inner.after_pop();
    }

    /// Close the outbox: free its queue, make `recv` return `None`, and stop the hub delivering
    /// to it. The first reason sticks.
    pub fn close(&self, reason: CloseReason) {
        {
            let mut inner = self.inner.lock();
            if inner.closed.is_some() {
                return;
            }
            inner.closed = Some(reason);
            inner.clear_queue();
        }
        self.wake_all();
    }

    /// Why the outbox was closed, if it was (`None` while open, or after a plain disconnect).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.lock().closed
    }

    /// Whether the outbox is closed or disconnected.
    pub fn is_closed(&self) -> bool {
        !self.inner.lock().is_open()
    }

    /// Number of topics this connection is subscribed to.
    pub fn subscription_count(&self) -> usize {
        self.inner.lock().topics.len()
    }

    /// Bytes currently queued (each frame's length plus [`Outbox::SLOT_OVERHEAD`]).
    pub fn queued_bytes(&self) -> usize {
        self.inner.lock().queued_bytes
    }

    /// Number of frames currently queued.
    pub fn queued_frames(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Deliver a diff; `false` means the outbox is closed (now or before) and should be dropped
    /// from the topic.
    pub(crate) fn deliver(&self, frame: &Bytes) -> bool {
        let cost = frame.len() + Self::SLOT_OVERHEAD;
        let result = {
            let mut inner = self.inner.lock();
            self.enqueue(&mut inner, cost, std::iter::once(frame.clone()))
        };
        self.finish(result).is_ok()
    }

    /// Fail early (before any topic work) if a subscribe cannot succeed.
    pub(crate) fn precheck(&self, topic_key: &str) -> Result<(), SubscribeError> {
        let inner = self.inner.lock();
        self.check_subscribable(&inner, topic_key)
    }

    /// Record a subscription to `cell` and queue its first frames, atomically. Called with the
    /// topic's lock held.
    pub(crate) fn register(
        &self,
        cell: &Arc<TopicCell>,
        frames: Vec<Bytes>,
    ) -> Result<(), SubscribeError> {
        let cost: usize = frames.iter().map(|f| f.len() + Self::SLOT_OVERHEAD).sum();
        let result = {
            let mut inner = self.inner.lock();
            self.check_subscribable(&inner, cell.key())?;
            let result = self.enqueue(&mut inner, cost, frames);
            if matches!(result, Enqueued::Yes { .. }) {
                // Exact growth: most connections hold a handful of topics.
                inner.topics.reserve_exact(1);
                inner.topics.push(Arc::clone(cell));
            }
            result
        };
        self.finish(result).map_err(|_| SubscribeError::Closed)
    }

    /// The topic cell this connection is subscribed to under `topic_key`, if any.
    pub(crate) fn find_topic(&self, topic_key: &str) -> Option<Arc<TopicCell>> {
        let inner = self.inner.lock();
        inner.topics.iter().find(|c| c.key() == topic_key).cloned()
    }

    /// Forget the subscription to `cell`; `true` if there was one. Called with the topic's lock.
    pub(crate) fn remove_topic(&self, cell: &Arc<TopicCell>) -> bool {
        let mut inner = self.inner.lock();
        match inner.topics.iter().position(|c| Arc::ptr_eq(c, cell)) {
            Some(i) => {
                inner.topics.swap_remove(i);
                if inner.topics.is_empty() {
                    inner.topics = Vec::new();
                }
                true
            }
            None => false,
        }
    }

    /// Mark the outbox finished, free its queue and hand back its topics for the hub to leave.
    /// Idempotent: a second call returns nothing.
    pub(crate) fn detach(&self) -> Vec<Arc<TopicCell>> {
        let topics = {
            let mut inner = self.inner.lock();
            if inner.detached {
                return Vec::new();
            }
            inner.detached = true;
            inner.clear_queue();
            std::mem::take(&mut inner.topics)
        };
        Counters::sub(&self.shared.counters.connections, 1);
        self.wake_all();
        topics
    }

    fn check_subscribable(&self, inner: &Inner, topic_key: &str) -> Result<(), SubscribeError> {
        if !inner.is_open() {
            return Err(SubscribeError::Closed);
        }
        if inner.topics.iter().any(|c| c.key() == topic_key) {
            return Err(SubscribeError::AlreadySubscribed);
        }
        let limit = self.shared.max_subscriptions;
        if inner.topics.len() >= limit {
            return Err(SubscribeError::TooManySubscriptions { limit });
        }
        Ok(())
    }

    /// Queue `frames` (costing `cost` bytes together) unless closed or over the bound. A batch
    /// into an empty queue is always accepted, so one large snapshot cannot lock a client out.
    fn enqueue(
        &self,
        inner: &mut Inner,
        cost: usize,
        frames: impl IntoIterator<Item = Bytes>,
    ) -> Enqueued {
        if !inner.is_open() {
            return Enqueued::Closed(inner.closed_error());
        }
        let was_empty = inner.queue.is_empty();
        if !was_empty && inner.queued_bytes.saturating_add(cost) > self.shared.outbox_max_bytes {
            inner.closed = Some(CloseReason::SlowConsumer);
            inner.clear_queue();
            return Enqueued::Overflowed;
        }
        inner.queue.extend(frames);
        inner.queued_bytes += cost;
        Enqueued::Yes { wake: was_empty }
    }

    /// Side effects of an enqueue, done after the lock is released.
    fn finish(&self, result: Enqueued) -> Result<(), OutboxClosed> {
        match result {
            Enqueued::Yes { wake } => {
                if wake {
                    self.notify.notify_one();
                }
                Ok(())
            }
            Enqueued::Closed(closed) => Err(closed),
            Enqueued::Overflowed => {
                self.shared
                    .counters
                    .slow_consumer_closes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(connection = self.id, "closing slow consumer");
                self.wake_all();
                Err(OutboxClosed {
                    reason: Some(CloseReason::SlowConsumer),
                })
            }
        }
    }

    fn wake_all(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Outbox")
            .field("id", &self.id)
            .field("queued_frames", &inner.queue.len())
            .field("queued_bytes", &inner.queued_bytes)
            .field("closed", &inner.closed)
            .field("detached", &inner.detached)
            .field("subscriptions", &inner.topics.len())
            .finish()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // Only atomics here: the last reference may be dropped while a topic lock is held.
        if !self.inner.get_mut().detached {
            Counters::sub(&self.shared.counters.connections, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(max: usize) -> Outbox {
        Outbox::new(
            1,
            Arc::new(HubShared {
                outbox_max_bytes: max,
                max_subscriptions: 4,
                counters: Counters::default(),
            }),
        )
    }

    #[test]
    fn a_drained_queue_gives_its_buffer_back() {
        let o = outbox(1 << 20);
        for _ in 0..1_000 {
            o.push(Bytes::from_static(b"frame")).unwrap();
        }
        assert_eq!(o.queued_bytes(), 1_000 * (5 + Outbox::SLOT_OVERHEAD));
        let mut out = Vec::new();
        o.try_recv_many(usize::MAX, &mut out);
        assert_eq!(out.len(), 1_000);
        assert!(o.inner.lock().queue.capacity() <= IDLE_QUEUE_CAPACITY);
        assert!(format!("{o:?}").contains("queued_frames: 0"));
    }

    #[test]
    fn overflow_counts_a_slow_consumer_close_once() {
        let o = outbox(100);
        o.push(Bytes::from(vec![0; 50])).unwrap();
        assert!(o.push(Bytes::from(vec![0; 50])).is_err());
        assert!(o.push(Bytes::from(vec![0; 1])).is_err());
        assert_eq!(
            o.shared
                .counters
                .slow_consumer_closes
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(o.close_reason(), Some(CloseReason::SlowConsumer));
    }
}
