//! WebSocket clients for the load generators (tokio-tungstenite over loopback).
//!
//! Many clients on one machine: each connection can bind its own loopback source address
//! (127.0.0.1, .2, ...), since one source address has only ~28k ephemeral ports towards one
//! server port. Frames are inspected without a full JSON parse (the hot path of 200k+ frames/s):
//! `diff` frames start with a fixed prefix and carry `committed_at` and `position`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{BenchError, BenchResult};

pub type Ws = WebSocketStream<TcpStream>;

/// Connections per loopback source address before moving to the next one.
const PER_SOURCE_IP: usize = 25_000;

/// The loopback source address for the `i`th connection: 127.0.0.1, then .2, ...
pub fn source_ip(i: usize) -> Ipv4Addr {
    let n = u8::try_from(1 + i / PER_SOURCE_IP).unwrap_or(u8::MAX);
    Ipv4Addr::new(127, 0, 0, n)
}

fn server_addr(base: &str) -> BenchResult<SocketAddr> {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|_| BenchError::Protocol(format!("not a loopback address: {base}")))
}

/// Opens a WebSocket to `base` (`http://IP:PORT`) from `source`, authenticated with `token`.
pub async fn connect(base: &str, token: &str, source: Ipv4Addr) -> BenchResult<Ws> {
    let addr = server_addr(base)?;
    let url = format!("ws://{addr}/v1/ws");
    let mut request = url
        .into_client_request()
        .map_err(|e| BenchError::Protocol(format!("ws request: {e}")))?;
    let auth = format!("Bearer {token}")
        .parse()
        .map_err(|_| BenchError::Protocol("token is not a header value".into()))?;
    request.headers_mut().insert("authorization", auth);
    let socket = TcpSocket::new_v4().map_err(BenchError::io("socket"))?;
    // Closing with a reset leaves no TIME_WAIT behind: tens of thousands of client ports per
    // source address would otherwise stay taken for a minute after each scenario.
    socket
        .set_zero_linger()
        .map_err(BenchError::io("SO_LINGER"))?;
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
        .map_err(BenchError::io(format!("bind {source}")))?;
    let stream = socket
        .connect(addr)
        .await
        .map_err(BenchError::io(format!("connect {addr} from {source}")))?;
    stream
        .set_nodelay(true)
        .map_err(BenchError::io("nodelay"))?;
    // Small buffers: thousands of idle clients live in this process.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

/// Sends a subscribe (with an optional resume cursor).
pub async fn subscribe(
    ws: &mut Ws,
    id: u64,
    topic: &str,
    since: Option<&Cursor>,
) -> BenchResult<()> {
    let since = since.map(|c| json!({"epoch": c.epoch, "position": c.position}));
    let msg = json!({"type": "subscribe", "id": id, "topic": topic, "since": since});
    ws.send(Message::Text(msg.to_string().into())).await?;
    Ok(())
}

/// Where a client is in a topic.
#[derive(Clone, Debug, Default)]
pub struct Cursor {
    pub epoch: String,
    pub position: i64,
}

/// The next text frame (pings are answered by tungstenite while reading); `None` when closed.
/// A frame that takes longer than [`FRAME_TIMEOUT`] is an error, so a lost diff fails the run
/// instead of hanging it.
pub async fn next_text(ws: &mut Ws) -> BenchResult<Option<String>> {
    loop {
        let msg = tokio::time::timeout(FRAME_TIMEOUT, ws.next())
            .await
            .map_err(|_| BenchError::Timeout("a WebSocket frame".into()))?;
        let Some(msg) = msg else {
            return Ok(None);
        };
        match msg? {
            Message::Text(text) => return Ok(Some(text.as_str().to_owned())),
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
}

/// The longest wait for one frame while a client expects one.
pub const FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The first frame answering a subscribe, parsed (a snapshot, `resumed`, or an error).
pub async fn next_json(ws: &mut Ws) -> BenchResult<Value> {
    match next_text(ws).await? {
        Some(text) => Ok(serde_json::from_str(&text)?),
        None => Err(BenchError::Protocol(
            "closed while waiting for a frame".into(),
        )),
    }
}

/// The kind of a server frame, from its fixed prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Diff,
    Snapshot,
    Resumed,
    Other,
}

pub fn kind(frame: &str) -> Kind {
    if frame.starts_with(r#"{"type":"diff""#) {
        Kind::Diff
    } else if frame.starts_with(r#"{"type":"snapshot""#) {
        Kind::Snapshot
    } else if frame.starts_with(r#"{"type":"resumed""#) {
        Kind::Resumed
    } else {
        Kind::Other
    }
}

/// `"position":N` of a frame (the first one, which is the frame's own).
pub fn position(frame: &str) -> Option<i64> {
    let at = frame.find("\"position\":")? + "\"position\":".len();
    let digits: String = frame[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// `committed_at` of a diff frame, in microseconds since the Unix epoch.
pub fn committed_at_us(frame: &str) -> Option<i64> {
    let at = frame.find("\"committed_at\":\"")? + "\"committed_at\":\"".len();
    let end = at + frame[at..].find('"')?;
    chrono::DateTime::parse_from_rfc3339(&frame[at..end])
        .ok()
        .map(|t| t.timestamp_micros())
}

/// `epoch` of a frame.
pub fn epoch(frame: &Value) -> String {
    frame["epoch"].as_str().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_without_a_full_parse() {
        let f = r#"{"type":"diff","topic":"repo/r/jobs","epoch":"e","position":42,"prev":7,"committed_at":"2024-05-06T07:08:09.123Z","ops":[]}"#;
        assert_eq!(kind(f), Kind::Diff);
        assert_eq!(position(f), Some(42));
        assert_eq!(committed_at_us(f), Some(1_714_979_289_123_000));
        assert_eq!(kind(r#"{"type":"resumed","id":1}"#), Kind::Resumed);
        assert_eq!(source_ip(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_ip(25_000), Ipv4Addr::new(127, 0, 0, 2));
    }
}
