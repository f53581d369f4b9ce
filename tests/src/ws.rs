//! A real WebSocket client for tests (tokio-tungstenite over loopback), with helpers that check
//! the protocol's promises as frames arrive.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::DEADLINE;

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// What ended a connection, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(Option<u16>),
    Dropped,
}

impl WsClient {
    pub async fn connect(base: &str, token: &str) -> WsClient {
        let url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("ws request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connect");
        WsClient { socket, next_id: 1 }
    }

    /// Attempts an upgrade with the given token (header, if any) and `Origin` (if any): the
    /// client, or the HTTP status the server refused with.
    pub async fn try_connect(
        base: &str,
        token: Option<&str>,
        origin: Option<&str>,
    ) -> Result<WsClient, u16> {
        let url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("ws request");
        if let Some(token) = token {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("origin header"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(WsClient { socket, next_id: 1 }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(other) => panic!("ws connect failed: {other}"),
        }
    }

    /// A client whose socket receive buffer is tiny, so that it cannot hide a slow reader.
    pub async fn connect_with_small_buffer(base: &str, token: &str) -> WsClient {
        let url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
        let mut request = url.clone().into_client_request().expect("ws request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let host = base.trim_start_matches("http://");
        let addr: std::net::SocketAddr = host.parse().expect("loopback address");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let stream = socket.connect(addr).await.expect("connect");
        let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
            .await
            .expect("ws handshake");
        WsClient { socket, next_id: 1 }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("ws send");
    }

    /// The next JSON frame, failing the test after the deadline.
    pub async fn next(&mut self) -> Value {
        self.next_within(DEADLINE)
            .await
            .expect("a frame before the deadline")
    }

    /// The next JSON frame within `wait`, or None.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??;
            match frame.expect("ws frame") {
                Message::Text(text) => {
                    return Some(serde_json::from_str(&text).expect("json frame"));
                }
                Message::Close(close) => panic!("connection closed: {close:?}"),
                _ => continue,
            }
        }
    }

    /// Reads until the server closes, returning the close code.
    pub async fn until_closed(&mut self) -> Ended {
        loop {
            match tokio::time::timeout(DEADLINE, self.socket.next())
                .await
                .expect("closed before the deadline")
            {
                Some(Ok(Message::Close(close))) => {
                    return Ended::Closed(close.map(|c| u16::from(c.code)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ended::Dropped,
            }
        }
    }

    /// Subscribes and returns the first answer (snapshot, resumed or error).
    pub async fn subscribe(&mut self, topic: &str, since: Option<Value>) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"type": "subscribe", "id": id, "topic": topic, "since": since}))
            .await;
        self.next().await
    }
}

/// A client-side copy of one topic, kept as a real client would: from a snapshot, then diffs,
/// checking that every `prev` continues the chain.
#[derive(Debug, Default, Clone)]
pub struct TopicMirror {
    pub epoch: String,
    pub position: i64,
    pub rows: BTreeMap<String, Value>,
    pub diffs: Vec<Value>,
}

impl TopicMirror {
    pub fn from_snapshot(snapshot: &Value) -> TopicMirror {
        assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
        let mut mirror = TopicMirror {
            epoch: snapshot["epoch"].as_str().expect("epoch").to_owned(),
            position: snapshot["position"].as_i64().expect("position"),
            ..TopicMirror::default()
        };
        for row in snapshot["rows"].as_array().expect("rows") {
            mirror.rows.insert(row_key(row), row.clone());
        }
        mirror
    }

    /// Applies a diff, asserting it continues the `prev` chain.
    pub fn apply(&mut self, diff: &Value) {
        assert_eq!(diff["type"], "diff", "{diff}");
        assert_eq!(
            diff["prev"].as_i64(),
            Some(self.position),
            "gap in the prev chain: {diff}"
        );
        let position = diff["position"].as_i64().expect("position");
        assert!(position > self.position, "positions must increase: {diff}");
        self.position = position;
        for op in diff["ops"].as_array().expect("ops") {
            let key = op["key"].as_str().expect("key").to_owned();
            match op["op"].as_str() {
                Some("upsert") => {
                    self.rows.insert(key, op["row"].clone());
                }
                Some("remove") => {
                    self.rows.remove(&key);
                }
                other => panic!("unknown op {other:?}"),
            }
        }
        self.diffs.push(diff.clone());
    }

    pub fn cursor(&self) -> Value {
        json!({"epoch": self.epoch, "position": self.position})
    }
}

/// The key a row has in its topic: a job/repo/task id, a branch name, or a progress line's key.
pub fn row_key(row: &Value) -> String {
    if let Some(seq) = row.get("seq").and_then(Value::as_u64) {
        return format!(
            "{}/lines/{seq:08}",
            row["job_id"].as_str().unwrap_or_default()
        );
    }
    if row.get("head_sha").is_some() && row.get("ahead").is_some() {
        return row["name"].as_str().unwrap_or_default().to_owned();
    }
    row["id"].as_str().unwrap_or_default().to_owned()
}

/// Applies diffs from `ws` to the mirrors of their topics (each checked to continue its topic's
/// `prev` chain) until `done` holds for them.
pub async fn follow(
    ws: &mut WsClient,
    mirrors: &mut std::collections::HashMap<String, TopicMirror>,
    done: impl Fn(&std::collections::HashMap<String, TopicMirror>) -> bool,
) {
    while !done(mirrors) {
        let frame = ws.next().await;
        let topic = frame["topic"].as_str().expect("topic").to_owned();
        mirrors
            .get_mut(&topic)
            .unwrap_or_else(|| panic!("frame for unsubscribed {topic}"))
            .apply(&frame);
    }
}
