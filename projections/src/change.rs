//! The inputs of the hub: committed changes read from the change log, and the start state.
//!
//! These mirror the server's storage (one change-log row = one [`Change`]) without depending on
//! it, so the hub can be fed by any backend and by tests alike.

use chrono::{DateTime, Utc};
use gantry_types::ws::Op;

/// One committed transaction's ops on one topic: one change-log row, and exactly one `diff`.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Position in the log: strictly increasing in commit order, across all topics.
    pub position: i64,
    /// Internal topic key (mapped to its wire name by [`crate::HubConfig::wire_topic`]).
    pub topic: String,
    /// When the transaction committed; carried in the diff and used for age-based retention.
    pub committed_at: DateTime<Utc>,
    /// The row changes, applied in order.
    pub ops: Vec<Op>,
}

/// One topic's rows as of the position given to [`crate::Hub::load`].
///
/// The server must include every topic that has at least one change in its log, even one whose
/// rows were all removed (then `rows` is empty): a topic the hub does not know is taken to have
/// never changed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TopicSeed {
    /// Internal topic key.
    pub topic: String,
    /// Position of the topic's last change at or before the load position (0 if none).
    pub position: i64,
    /// The current rows: (row key, row JSON). Order does not matter; a repeated key keeps the
    /// last value.
    pub rows: Vec<(String, serde_json::Value)>,
}
