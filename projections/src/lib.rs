//! The change log -> topic views -> subscribers layer of gantry.
//!
//! The server owns a durable change log: one row per committed transaction and topic, with a
//! strictly increasing `position`. Its projector task feeds those rows, in position order, to
//! [`Hub::apply`]. The hub keeps, per topic, the current rows (the *view*), a bounded tail of
//! already-serialised diffs (for resume), and the connections subscribed to it. Every change
//! becomes exactly one `diff` frame, serialised once and shared (as [`bytes::Bytes`]) by every
//! subscriber's [`Outbox`], a byte-bounded per-connection queue that the connection's writer
//! task drains into its WebSocket.
//!
//! The crate knows nothing of HTTP, WebSocket framing, SQL or git: it speaks in [`Change`]s in,
//! and pre-serialised JSON text frames (see [`frame`]) out.
//!
//! Guarantees, per topic and subscriber: a `snapshot` (or `resumed` plus the retained diffs the
//! client missed) followed by every later diff, with no gap and no duplicate, even while `apply`
//! runs concurrently. A client that reads too slowly is disconnected with a resumable close code
//! ([`CloseReason::SlowConsumer`]) instead of slowing the others or growing memory without bound.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod change;
mod close;
mod config;
mod error;
pub mod frame;
mod hub;
mod outbox;
mod retained;
mod stats;
mod topic;
mod view;

pub use change::{Change, TopicSeed};
pub use close::CloseReason;
pub use config::{
    DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION, DEFAULT_OUTBOX_MAX_BYTES, DEFAULT_RETENTION_AGE,
    DEFAULT_RETENTION_COUNT, HubConfig,
};
pub use error::{LoadError, OutboxClosed, SubscribeError};
pub use hub::{Hub, Subscribed};
pub use outbox::Outbox;
pub use stats::HubStats;
