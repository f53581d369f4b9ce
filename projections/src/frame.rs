//! Server-to-client frames, serialised once into [`Bytes`].
//!
//! Diffs are written by hand (not through [`ServerMessage`]'s serde impl) so that a row is
//! serialised exactly once for both the frame and the view, and snapshot frames are assembled
//! from a cached body instead of re-serialising every row per subscriber. The output is byte for
//! byte what serde produces for the matching [`ServerMessage`] (the tests check it), so clients
//! can parse every frame as a `ServerMessage`.
//!
//! [`encode`] serialises any other message (pong, error, unsubscribed) for [`crate::Outbox::push`].

use std::io::Write as _;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gantry_types::ws::{Op, ServerMessage};
use serde::Serialize;

/// Serialise any server message into one text frame.
pub fn encode(msg: &ServerMessage) -> Bytes {
    let mut buf = Vec::with_capacity(64);
    write_json(&mut buf, msg);
    Bytes::from(buf)
}

/// Append `value` as JSON. Serialising into a `Vec` cannot fail for the types used here (strings,
/// integers, timestamps, `serde_json::Value`); should it ever, `null` is written and logged rather
/// than panicking.
pub(crate) fn write_json<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    let start = buf.len();
    if let Err(err) = serde_json::to_writer(&mut *buf, value) {
        tracing::error!(%err, "serialising a frame field failed; writing null");
        buf.truncate(start);
        buf.extend_from_slice(b"null");
    }
}

/// `value` as a JSON string (used to serialise a row once, for both the frame and the view).
pub(crate) fn to_json_string<T: Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_string(value) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(%err, "serialising a row failed; storing null");
            "null".to_owned()
        }
    }
}

/// A JSON string literal (with quotes), for topic names and epochs that go into many frames.
pub(crate) fn json_str(s: &str) -> Box<str> {
    to_json_string(s).into_boxed_str()
}

fn write_i64(buf: &mut Vec<u8>, n: i64) {
    // Writing to a Vec never fails.
    let _ = write!(buf, "{n}");
}

fn write_id(buf: &mut Vec<u8>, id: Option<u64>) {
    match id {
        // Writing to a Vec never fails.
        Some(id) => {
            let _ = write!(buf, "{id}");
        }
        None => buf.extend_from_slice(b"null"),
    }
}

/// The fixed parts of a diff frame.
pub(crate) struct DiffHeader<'a> {
    /// Wire topic as a JSON string literal.
    pub topic_json: &'a str,
    /// Epoch as a JSON string literal.
    pub epoch_json: &'a str,
    pub position: i64,
    pub prev: i64,
    pub committed_at: &'a DateTime<Utc>,
}

/// Write a `diff` frame for `ops`. `on_op` sees each op with its row serialised (for an upsert),
/// so the caller can store that same text in the view without serialising the row twice.
pub(crate) fn diff(
    header: &DiffHeader<'_>,
    ops: &[Op],
    mut on_op: impl FnMut(&Op, Option<String>),
) -> Bytes {
    let mut buf = Vec::with_capacity(160 + ops.len() * 96);
    buf.extend_from_slice(b"{\"type\":\"diff\",\"topic\":");
    buf.extend_from_slice(header.topic_json.as_bytes());
    buf.extend_from_slice(b",\"epoch\":");
    buf.extend_from_slice(header.epoch_json.as_bytes());
    buf.extend_from_slice(b",\"position\":");
    write_i64(&mut buf, header.position);
    buf.extend_from_slice(b",\"prev\":");
    write_i64(&mut buf, header.prev);
    buf.extend_from_slice(b",\"committed_at\":");
    write_json(&mut buf, header.committed_at);
    buf.extend_from_slice(b",\"ops\":[");
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        match op {
            Op::Upsert { key, row } => {
                let row = to_json_string(row);
                buf.extend_from_slice(b"{\"op\":\"upsert\",\"key\":");
                write_json(&mut buf, key.as_str());
                buf.extend_from_slice(b",\"row\":");
                buf.extend_from_slice(row.as_bytes());
                buf.push(b'}');
                on_op(op, Some(row));
            }
            Op::Remove { key } => {
                buf.extend_from_slice(b"{\"op\":\"remove\",\"key\":");
                write_json(&mut buf, key.as_str());
                buf.push(b'}');
                on_op(op, None);
            }
        }
    }
    buf.extend_from_slice(b"]}");
    into_bytes(buf)
}

/// The part of a snapshot frame shared by every subscriber of a topic at one position:
/// `,"topic":..,"epoch":..,"position":..,"rows":[..]`.
pub(crate) fn snapshot_body<'r>(
    topic_json: &str,
    epoch_json: &str,
    position: i64,
    rows: impl ExactSizeIterator<Item = &'r str>,
    rows_bytes: usize,
) -> Bytes {
    let mut buf =
        Vec::with_capacity(64 + topic_json.len() + epoch_json.len() + rows_bytes + rows.len());
    buf.extend_from_slice(b",\"topic\":");
    buf.extend_from_slice(topic_json.as_bytes());
    buf.extend_from_slice(b",\"epoch\":");
    buf.extend_from_slice(epoch_json.as_bytes());
    buf.extend_from_slice(b",\"position\":");
    write_i64(&mut buf, position);
    buf.extend_from_slice(b",\"rows\":[");
    for (i, row) in rows.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(row.as_bytes());
    }
    buf.push(b']');
    into_bytes(buf)
}

/// A `snapshot` frame for one subscriber, from a cached [`snapshot_body`].
pub(crate) fn snapshot(id: Option<u64>, body: &[u8], reset: bool) -> Bytes {
    let mut buf = Vec::with_capacity(48 + body.len());
    buf.extend_from_slice(b"{\"type\":\"snapshot\",\"id\":");
    write_id(&mut buf, id);
    buf.extend_from_slice(body);
    buf.extend_from_slice(if reset {
        b",\"reset\":true}".as_slice()
    } else {
        b",\"reset\":false}".as_slice()
    });
    Bytes::from(buf)
}

/// A `resumed` frame.
pub(crate) fn resumed(id: Option<u64>, topic_json: &str, epoch_json: &str, position: i64) -> Bytes {
    let mut buf = Vec::with_capacity(80 + topic_json.len() + epoch_json.len());
    buf.extend_from_slice(b"{\"type\":\"resumed\",\"id\":");
    write_id(&mut buf, id);
    buf.extend_from_slice(b",\"topic\":");
    buf.extend_from_slice(topic_json.as_bytes());
    buf.extend_from_slice(b",\"epoch\":");
    buf.extend_from_slice(epoch_json.as_bytes());
    buf.extend_from_slice(b",\"position\":");
    write_i64(&mut buf, position);
    buf.push(b'}');
    Bytes::from(buf)
}

/// Frames are retained and shared, so do not keep a growth buffer's slack alive with them.
fn into_bytes(mut buf: Vec<u8>) -> Bytes {
    if buf.capacity() - buf.len() > 64 {
        buf.shrink_to_fit();
    }
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops() -> Vec<Op> {
        vec![
            Op::Upsert {
                key: "j\"1".into(),
                row: json!({"id": "j\"1", "status": "queued", "n": 1.5, "nested": {"a": [1, null]}}),
            },
            Op::Remove { key: "j2\n".into() },
        ]
    }

    #[test]
    fn diff_is_byte_identical_to_serde() {
        let at = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123456Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap();
        let topic_json = json_str("repo/r\u{e9}/jobs");
        let epoch_json = json_str("ep\"och");
        let mut seen = Vec::new();
        let got = diff(
            &DiffHeader {
                topic_json: &topic_json,
                epoch_json: &epoch_json,
                position: 42,
                prev: -1,
                committed_at: &at,
            },
            &ops(),
            |op, row| seen.push((op.key().to_owned(), row)),
        );
        let want = serde_json::to_vec(&ServerMessage::Diff {
            topic: "repo/r\u{e9}/jobs".into(),
            epoch: "ep\"och".into(),
            position: 42,
            prev: -1,
            committed_at: at,
            ops: ops(),
        })
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&got).unwrap(),
            std::str::from_utf8(&want).unwrap()
        );
        assert_eq!(seen.len(), 2);
        assert!(seen[1].1.is_none());
    }

    #[test]
    fn snapshot_and_resumed_are_byte_identical_to_serde() {
        let rows = [json!({"id": "a"}), json!({"id": "b", "x": [1, 2]})];
        let texts: Vec<String> = rows.iter().map(to_json_string).collect();
        let body = snapshot_body(
            &json_str("repos"),
            &json_str("e1"),
            7,
            texts.iter().map(String::as_str),
            texts.iter().map(String::len).sum(),
        );
        for (id, reset) in [(None, false), (Some(3), true), (Some(u64::MAX), false)] {
            let got = snapshot(id, &body, reset);
            let want = serde_json::to_vec(&ServerMessage::Snapshot {
                id,
                topic: "repos".into(),
                epoch: "e1".into(),
                position: 7,
                rows: rows.to_vec(),
                reset,
            })
            .unwrap();
            assert_eq!(got.as_ref(), want.as_slice());
        }
        let empty = snapshot_body(
            &json_str("repos"),
            &json_str("e1"),
            0,
            std::iter::empty(),
            0,
        );
        let got = snapshot(Some(1), &empty, false);
        let parsed: ServerMessage = serde_json::from_slice(&got).unwrap();
        assert!(
            matches!(parsed, ServerMessage::Snapshot { rows, position: 0, .. } if rows.is_empty())
        );

        let got = resumed(Some(9), &json_str("job/j"), &json_str("e1"), 5);
        let want = serde_json::to_vec(&ServerMessage::Resumed {
            id: Some(9),
            topic: "job/j".into(),
            epoch: "e1".into(),
            position: 5,
        })
        .unwrap();
        assert_eq!(got.as_ref(), want.as_slice());
    }

    #[test]
    fn encode_writes_any_message() {
        let got = encode(&ServerMessage::Pong { id: Some(3) });
        assert_eq!(got.as_ref(), br#"{"type":"pong","id":3}"#);
    }
}
