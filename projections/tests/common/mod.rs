//! Helpers shared by the integration tests: changes, hubs, and a client model that rebuilds a
//! topic from frames and checks the `prev` chain like a real client would.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gantry_projections::{Change, Hub, HubConfig, Outbox};
use gantry_types::ws::{Op, ServerMessage};
use serde_json::{Value, json};

pub const EPOCH: &str = "epoch-1";

pub fn hub() -> Arc<Hub> {
    Hub::new(HubConfig::new(EPOCH))
}

pub fn hub_with(f: impl FnOnce(&mut HubConfig)) -> Arc<Hub> {
    let mut config = HubConfig::new(EPOCH);
    f(&mut config);
    Hub::new(config)
}

pub fn row(key: &str, value: i64) -> Value {
    json!({"id": key, "value": value})
}

pub fn upsert(key: &str, value: i64) -> Op {
    Op::Upsert {
        key: key.to_owned(),
        row: row(key, value),
    }
}

pub fn remove(key: &str) -> Op {
    Op::Remove {
        key: key.to_owned(),
    }
}

pub fn change(position: i64, topic: &str, ops: Vec<Op>) -> Change {
    change_at(position, topic, Utc::now(), ops)
}

pub fn change_at(position: i64, topic: &str, at: DateTime<Utc>, ops: Vec<Op>) -> Change {
    Change {
        position,
        topic: topic.to_owned(),
        committed_at: at,
        ops,
    }
}

pub fn parse(frame: &Bytes) -> ServerMessage {
    serde_json::from_slice(frame).unwrap_or_else(|e| {
        panic!(
            "frame is not a ServerMessage ({e}): {}",
            String::from_utf8_lossy(frame)
        )
    })
}

/// All frames queued right now.
pub fn drain(outbox: &Outbox) -> Vec<Bytes> {
    let mut out = Vec::new();
    outbox.try_recv_many(usize::MAX, &mut out);
    out
}

pub fn drain_parsed(outbox: &Outbox) -> Vec<ServerMessage> {
    drain(outbox).iter().map(parse).collect()
}

/// What a client knows about one topic, rebuilt from frames.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Model {
    pub rows: BTreeMap<String, Value>,
    /// Position of the last message applied (None before the snapshot/resumed).
    pub position: Option<i64>,
    pub diffs: Vec<i64>,
    pub snapshots: usize,
    pub resets: usize,
    pub resumes: usize,
}

impl Model {
    /// Apply one frame, asserting the contract (prev chain, topic, epoch).
    pub fn feed(&mut self, msg: &ServerMessage) {
        match msg {
            ServerMessage::Snapshot {
                rows,
                position,
                reset,
                epoch,
                ..
            } => {
                assert_eq!(epoch, EPOCH);
                self.rows = rows
                    .iter()
                    .map(|r| (r["id"].as_str().unwrap().to_owned(), r.clone()))
                    .collect();
                self.position = Some(*position);
                self.snapshots += 1;
                self.resets += usize::from(*reset);
            }
            ServerMessage::Resumed { position, .. } => {
                self.position = Some(*position);
                self.resumes += 1;
            }
            ServerMessage::Diff {
                position,
                prev,
                ops,
                ..
            } => {
                assert_eq!(
                    Some(*prev),
                    self.position,
                    "gap or duplicate: diff {position} has prev {prev}"
                );
                assert!(position > prev);
                for op in ops {
                    match op {
                        Op::Upsert { key, row } => {
                            self.rows.insert(key.clone(), row.clone());
                        }
                        Op::Remove { key } => {
                            self.rows.remove(key);
                        }
                    }
                }
                self.position = Some(*position);
                self.diffs.push(*position);
            }
            other => panic!("unexpected message {other:?}"),
        }
    }

    pub fn feed_all(&mut self, frames: &[Bytes]) {
        for f in frames {
            self.feed(&parse(f));
        }
    }
}
