//! The hub's tunables: epoch, retention window, per-connection bounds and topic naming.
//!
//! Kept apart from the hub so the server can build it from its own configuration and tests can
//! shrink the bounds to exercise eviction and overflow quickly.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default number of diffs retained per topic for resume.
pub const DEFAULT_RETENTION_COUNT: usize = 10_000;
/// Default maximum age of a retained diff.
pub const DEFAULT_RETENTION_AGE: Duration = Duration::from_secs(3600);
/// Default per-connection send-queue bound, in bytes.
pub const DEFAULT_OUTBOX_MAX_BYTES: usize = 1 << 20;
/// Default maximum number of topics one connection may subscribe to.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 64;

/// Configuration of a [`crate::Hub`]. Build it with [`HubConfig::new`] and adjust fields.
#[derive(Clone)]
pub struct HubConfig {
    /// Identifies this log; changes when the database is recreated, so old cursors reset.
    pub epoch: String,
    /// Maximum number of diffs retained per topic for resume.
    pub retention_count: usize,
    /// Maximum age (by `committed_at`) of a retained diff.
    pub retention_age: Duration,
    /// Per-connection send-queue bound in bytes. Each queued frame counts its length plus
    /// [`crate::Outbox::SLOT_OVERHEAD`]. A frame pushed into an empty queue is always accepted,
    /// so a single large snapshot never locks a client out.
    pub outbox_max_bytes: usize,
    /// Maximum number of topics one connection may subscribe to at once.
    pub max_subscriptions_per_connection: usize,
    /// Maps an internal topic key to the topic name written in frames. Called once per topic.
    pub wire_topic: Arc<dyn Fn(&str) -> String + Send + Sync>,
}

impl HubConfig {
    /// A configuration with the given epoch, the default bounds, and wire names equal to the
    /// internal topic keys.
    pub fn new(epoch: impl Into<String>) -> Self {
        Self {
            epoch: epoch.into(),
            retention_count: DEFAULT_RETENTION_COUNT,
            retention_age: DEFAULT_RETENTION_AGE,
            outbox_max_bytes: DEFAULT_OUTBOX_MAX_BYTES,
            max_subscriptions_per_connection: DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            wire_topic: Arc::new(|key: &str| key.to_owned()),
        }
    }
}

impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("epoch", &self.epoch)
            .field("retention_count", &self.retention_count)
            .field("retention_age", &self.retention_age)
            .field("outbox_max_bytes", &self.outbox_max_bytes)
            .field(
                "max_subscriptions_per_connection",
                &self.max_subscriptions_per_connection,
            )
            .finish_non_exhaustive()
    }
}
