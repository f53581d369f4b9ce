//! Errors the hub and outboxes report to the server.
//!
//! Each subscribe error has a stable snake_case [`SubscribeError::code`] that the server puts in
//! its `error` frame, so clients can branch on it.

use crate::CloseReason;

/// Why a subscribe was refused. The connection stays usable unless it is [`Self::Closed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The connection is already subscribed to this topic.
    #[error("already subscribed to this topic")]
    AlreadySubscribed,
    /// The connection has as many subscriptions as it may have.
    #[error("too many subscriptions on this connection (limit {limit})")]
    TooManySubscriptions {
        /// The configured limit.
        limit: usize,
    },
    /// The connection's outbox is closed or disconnected (for example it overflowed while the
    /// snapshot was queued).
    #[error("the connection is closed")]
    Closed,
}

impl SubscribeError {
    /// Stable snake_case code for the `error` frame.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadySubscribed => "already_subscribed",
            Self::TooManySubscriptions { .. } => "too_many_subscriptions",
            Self::Closed => "connection_closed",
        }
    }
}

/// A frame could not be queued because the outbox is closed (possibly by this very push, when it
/// overflowed the byte bound: then the reason is [`CloseReason::SlowConsumer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("outbox closed: {}", .reason.map_or("disconnected", CloseReason::message))]
pub struct OutboxClosed {
    /// Why the outbox is closed; `None` when it was disconnected without a reason.
    pub reason: Option<CloseReason>,
}

/// Why [`crate::Hub::load`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The hub was already loaded or has already applied changes; load happens once, first.
    #[error("the hub was already loaded or has applied changes")]
    AlreadyStarted,
}
