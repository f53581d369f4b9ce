//! WebSocket messages, both directions, and the documented close codes.
//!
//! Text frames carry one JSON object each, tagged by `type`. `docs/protocol.md` describes the
//! session rules (snapshot, diff, `prev` chains, resume) that these messages implement.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Where a client stands on a topic: the epoch of the log and the last position it has applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Cursor {
    pub epoch: String,
    pub position: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe {
        #[serde(default)]
        id: Option<u64>,
        topic: String,
        #[serde(default)]
        since: Option<Cursor>,
    },
    Unsubscribe {
        #[serde(default)]
        id: Option<u64>,
        topic: String,
    },
    Ping {
        #[serde(default)]
        id: Option<u64>,
    },
}

/// One change to one row of a topic view. `key` identifies the row within its topic: the repo id,
/// job id, branch name, task id, or `{job_id}/lines/{seq}` for a progress line on `job/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Upsert { key: String, row: serde_json::Value },
    Remove { key: String },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Upsert { key, .. } | Op::Remove { key } => key,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Snapshot {
        #[serde(default)]
        id: Option<u64>,
        topic: String,
        epoch: String,
        /// The position of the last change these rows include for this topic.
        position: i64,
        rows: Vec<serde_json::Value>,
        /// True when the client asked to resume but its cursor was outside the retention window or
        /// of another epoch: replace local state with these rows.
        #[serde(default)]
        reset: bool,
    },
    Resumed {
        #[serde(default)]
        id: Option<u64>,
        topic: String,
        epoch: String,
        /// The `prev` of the first replayed diff.
        position: i64,
    },
    Diff {
        topic: String,
        epoch: String,
        position: i64,
        /// The position of the previous diff on this topic; a different value means a gap.
        prev: i64,
        committed_at: Timestamp,
        ops: Vec<Op>,
    },
    Unsubscribed {
        #[serde(default)]
        id: Option<u64>,
        topic: String,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: String,
        message: String,
    },
    Pong {
        #[serde(default)]
        id: Option<u64>,
    },
}

/// WebSocket close codes. 4000-4099 mean "reconnect and resume"; 4100-4199 mean "do not retry
/// without changing something".
pub mod close_code {
    /// The connection's send queue overflowed: the client read too slowly. Resume with `since`.
    pub const SLOW_CONSUMER: u16 = 4000;
    /// The server is shutting down. Reconnect (to it or another node) and resume.
    pub const GOING_AWAY: u16 = 4001;
    /// The peer did not answer heartbeats in time. Reconnect and resume.
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    /// The token was revoked or lost its rights. Terminal.
    pub const TOKEN_REVOKED: u16 = 4100;
    /// The client broke the protocol beyond what an `error` frame can answer (e.g. a frame over
    /// the size limit, or binary frames). Terminal until the client is fixed.
    pub const PROTOCOL_VIOLATION: u16 = 4101;

    /// Whether a client should reconnect and resume after this close code.
    pub fn is_resumable(code: u16) -> bool {
        (4000..4100).contains(&code) || code == 1001 || code == 1006 || code == 1011
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_parses_the_contract_form() {
        let msg: ClientMessage = serde_json::from_str(
            r#"{"type":"subscribe","id":1,"topic":"repo/R/jobs","since":{"epoch":"e","position":41}}"#,
        )
        .unwrap();
        assert_eq!(
            msg,
            ClientMessage::Subscribe {
                id: Some(1),
                topic: "repo/R/jobs".into(),
                since: Some(Cursor {
                    epoch: "e".into(),
                    position: 41
                })
            }
        );
    }

    #[test]
    fn diff_serialises_with_type_and_op_tags() {
        let msg = ServerMessage::Diff {
            topic: "repos".into(),
            epoch: "e".into(),
            position: 2,
            prev: 1,
            committed_at: chrono::DateTime::UNIX_EPOCH,
            ops: vec![Op::Remove { key: "r1".into() }],
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["type"], "diff");
        assert_eq!(json["ops"][0]["op"], "remove");
        assert_eq!(json["committed_at"], "1970-01-01T00:00:00Z");
    }
}
