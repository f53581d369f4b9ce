//! One WebSocket connection: a reader that answers client messages, and a writer that drains the
//! connection's outbox into the socket, batching ready frames into one flush, and pings.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use gantry_projections::{CloseReason, Outbox, frame};
use gantry_types::Topic;
use gantry_types::ws::{ClientMessage, ServerMessage};
use tracing::{Instrument, debug, info_span};

use crate::app::App;
use crate::auth::Principal;
use crate::clock::now_ms;
use crate::storage::TopicKey;

const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn serve(app: Arc<App>, principal: Principal, socket: WebSocket) {
    let outbox = app.hub.connect();
    let span = info_span!("ws", conn = outbox.id(), org = %principal.org_id);
    app.connections.add(&principal.token_id, &outbox);
    // A revocation that landed between the upgrade's authentication and `add` found nothing to
    // close: close now.
    if app.is_revoked(&principal.token_id) {
        outbox.close(CloseReason::TokenRevoked);
    }
    let last_heard = Arc::new(AtomicI64::new(now_ms()));
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(
        write(app.clone(), outbox.clone(), sink, last_heard.clone()).instrument(span.clone()),
    );
    // The writer ends when the outbox closes (slow consumer, shutdown, heartbeat, revocation);
    // the reader must not then keep the connection alive waiting for a client that may never
    // answer.
    tokio::select! {
        () = read(&app, &principal, &outbox, &mut stream, &last_heard).instrument(span) => {
            if !outbox.is_closed() {
                outbox.close(CloseReason::GoingAway);
            }
            let _ = writer.await;
        }
        _ = &mut writer => {}
    }
    // The closing handshake: our close frame may still be queued behind frames the peer has not
    // read, and the peer answers pings and the close as it reads them. Dropping the socket while
    // those answers arrive would reset the connection and discard what the peer had yet to read,
    // the close frame included, so it would see a drop instead of the close code. Read until its
    // close (or the end), for a bounded time.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    app.hub.disconnect(&outbox);
    app.connections.remove(&outbox);
}

fn error_frame(id: Option<u64>, code: &str, message: impl Into<String>) -> bytes::Bytes {
    frame::encode(&ServerMessage::Error {
        id,
        code: code.to_owned(),
        message: message.into(),
    })
}

async fn read(
    app: &App,
    principal: &Principal,
    outbox: &Arc<Outbox>,
    stream: &mut futures::stream::SplitStream<WebSocket>,
    last_heard: &AtomicI64,
) {
    while let Some(message) = stream.next().await {
        last_heard.store(now_ms(), Ordering::Relaxed);
        let reply = match message {
            Ok(Message::Text(text)) => handle(app, principal, outbox, text.as_str()).await,
            Ok(Message::Binary(_)) => Some(error_frame(
                None,
                "binary_not_supported",
                "send JSON text frames",
            )),
            Ok(Message::Ping(_) | Message::Pong(_)) => None,
            Ok(Message::Close(_)) => return,
            Err(error) => {
                debug!(%error, "websocket read failed");
                // Oversized frames and protocol errors leave the stream unusable.
                outbox.close(CloseReason::ProtocolViolation);
                return;
            }
        };
        if let Some(reply) = reply
            && outbox.push(reply).is_err()
        {
            return;
        }
        if outbox.is_closed() {
            return;
        }
    }
}

/// Why a client's text frame is not a message: answered with an `error` frame carrying the
/// request's `id` when one could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub id: Option<u64>,
    /// `invalid_json`, `unknown_type` or `invalid_message`.
    pub code: &'static str,
    pub message: String,
}

/// Decodes one client text frame. Pure and total: any input gives a message or a precise error.
pub fn decode(text: &str) -> Result<ClientMessage, DecodeError> {
    // serde would also take a tagged enum from a sequence (`["ping"]`); the protocol is objects.
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError {
            id: None,
            code: "invalid_json",
            message: "not a JSON object: a message is one object with a \"type\"".to_owned(),
        });
    }
    let error = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => return Ok(message),
        Err(error) => error,
    };
    let value: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let (code, message) = match value
        .as_ref()
        .and_then(|v| v.get("type"))
        .and_then(|t| t.as_str())
    {
        Some(kind) if !["subscribe", "unsubscribe", "ping"].contains(&kind) => (
            "unknown_type",
            format!(
                "unknown message type {:?}; expected subscribe, unsubscribe or ping",
                kind.chars().take(64).collect::<String>()
            ),
        ),
        _ if value.is_none() => ("invalid_json", format!("not a JSON object: {error}")),
        _ => (
            "invalid_message",
            format!("the message does not fit: {error}"),
        ),
    };
    let id = value
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(|i| i.as_u64());
    Err(DecodeError { id, code, message })
}

/// Answers one client message; `None` when the answer was already queued (a subscription).
async fn handle(
    app: &App,
    principal: &Principal,
    outbox: &Arc<Outbox>,
    text: &str,
) -> Option<bytes::Bytes> {
    let message = match decode(text) {
        Ok(message) => message,
        Err(error) => return Some(error_frame(error.id, error.code, error.message)),
    };
    match message {
        ClientMessage::Ping { id } => Some(frame::encode(&ServerMessage::Pong { id })),
        ClientMessage::Subscribe { id, topic, since } => {
            let key = match authorise(app, principal, &topic).await {
                Ok(key) => key,
                Err((code, message)) => return Some(error_frame(id, code, message)),
            };
            match app.hub.subscribe(outbox, id, &key, since.as_ref()) {
                Ok(_) => None,
                Err(error) => Some(error_frame(id, error.code(), error.to_string())),
            }
        }
        ClientMessage::Unsubscribe { id, topic } => {
            let key = match authorise(app, principal, &topic).await {
                Ok(key) => key,
                Err((code, message)) => return Some(error_frame(id, code, message)),
            };
            if app.hub.unsubscribe(outbox, &key) {
                Some(frame::encode(&ServerMessage::Unsubscribed { id, topic }))
            } else {
                Some(error_frame(
                    id,
                    "not_subscribed",
                    format!("not subscribed to {topic}"),
                ))
            }
        }
    }
}

/// The internal topic key for a wire topic, if the principal's organisation may see it. A topic
/// of another organisation is answered exactly like one that does not exist.
async fn authorise(
    app: &App,
    principal: &Principal,
    wire: &str,
) -> Result<String, (&'static str, String)> {
    let topic: Topic = wire
        .parse()
        .map_err(|e: gantry_types::InvalidTopic| ("unknown_topic", e.to_string()))?;
    let not_found = || {
        (
            "topic_not_found",
            format!("no topic {wire} visible to this token"),
        )
    };
    let org = match &topic {
        Topic::Repos => return Ok(TopicKey::org_repos(&principal.org_id)),
        Topic::RepoJobs(repo) | Topic::RepoBranches(repo) | Topic::RepoTasks(repo) => {
            app.repo_org(repo).await
        }
        Topic::Job(job) => app.job_org(job).await,
    };
    match org {
        Ok(Some(org)) if org == principal.org_id => Ok(topic.to_string()),
        Ok(_) => Err(not_found()),
        Err(_) => Err((
            "unavailable",
            "the server could not check this topic; try again".to_owned(),
        )),
    }
}

async fn write(
    app: Arc<App>,
    outbox: Arc<Outbox>,
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    last_heard: Arc<AtomicI64>,
) {
    let config = &app.config.ws;
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.tick().await;
    let idle_ms = i64::try_from(config.idle_timeout.as_millis()).unwrap_or(i64::MAX);
    let mut batch = Vec::with_capacity(64);
    loop {
        tokio::select! {
            frame = outbox.recv() => {
                let Some(frame) = frame else { break };
                batch.push(frame);
                outbox.try_recv_many(63, &mut batch);
                let mut failed = false;
                for frame in batch.drain(..) {
                    let Ok(text) = Utf8Bytes::try_from(frame) else { continue };
                    if sink.feed(Message::Text(text)).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || sink.flush().await.is_err() {
                    outbox.close(CloseReason::GoingAway);
                    return;
                }
            }
            _ = ping.tick() => {
                if now_ms() - last_heard.load(Ordering::Relaxed) > idle_ms {
                    outbox.close(CloseReason::HeartbeatTimeout);
                } else if sink.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                    outbox.close(CloseReason::GoingAway);
                    return;
                }
            }
        }
    }
    let reason = outbox.close_reason().unwrap_or(CloseReason::GoingAway);
    let close = CloseFrame {
        code: reason.code(),
        reason: Utf8Bytes::from(reason.message()),
    };
    // A peer that stopped reading may never take the close frame: do not wait for it forever.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = sink.send(Message::Close(Some(close))).await;
        let _ = sink.close().await;
    })
    .await;
}
