//! A subscription to one topic that survives reconnects: the client half of the WebSocket
//! protocol (`docs/protocol.md`), shared by `gantry watch` and `gantry act --follow`.
//!
//! It keeps a cursor (the epoch and the last position applied from a `snapshot`, `resumed` or
//! `diff`) and checks each diff's `prev` against it. When the connection drops, goes silent, or
//! closes with a resumable code, it reconnects with capped exponential backoff and jitter and
//! subscribes again with `since` = the cursor, so the consumer sees `resumed` and exactly the
//! missed diffs (or a `snapshot` with `reset: true` when the server can no longer resume). When a
//! diff does not continue the chain (a gap), it unsubscribes and subscribes again with `since` on
//! the same connection. Terminal close codes (4100 and up), a refused token and refused
//! subscriptions end it with an error.
//!
//! The frames it hands out are the ones to apply, in order, each as the server sent it. Status
//! notes (reconnecting, resumed, gaps) go to stderr, never stdout.

use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::{SinkExt, StreamExt};
use gantry_types::rest::ErrorBody;
use gantry_types::ws::{ClientMessage, Cursor, ServerMessage, close_code};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::ClientArgs;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The server pings every ~25 s; this long without any frame means the connection is dead.
const SILENCE: Duration = Duration::from_secs(75);
/// How long one connection attempt (TCP + upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a clean close may take before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest frame accepted from the server. A snapshot carries every row of a topic, so this
/// is generous; a frame above it ends the subscription (resubscribing would only fetch it again).
const MAX_FRAME_BYTES: usize = 1 << 30;

/// Where to connect and with which token.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The server as the user gave it (for messages).
    server: String,
    /// `ws://HOST/v1/ws` (or `wss://`).
    url: String,
    token: String,
}

impl Endpoint {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Endpoint> {
        let Some(token) = args.token.clone() else {
            anyhow::bail!(
                "no token: pass --token or set GANTRY_TOKEN (the server prints one at first start)"
            );
        };
        Ok(Endpoint {
            server: args.server.clone(),
            url: ws_url(&args.server)?,
            token,
        })
    }
}

/// The WebSocket URL of a server given as `http://HOST[:PORT][/PREFIX]` (or https, ws, wss).
fn ws_url(server: &str) -> anyhow::Result<String> {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        anyhow::bail!("--server must be an http:// or https:// URL, not {server:?}");
    };
    Ok(format!("{ws}/v1/ws"))
}

/// One frame for the consumer: its text exactly as the server sent it (one line of JSON), and
/// its parsed form.
#[derive(Debug)]
pub struct Frame {
    pub text: String,
    pub message: ServerMessage,
}

/// Where the subscription stands on the current connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the answer (snapshot, resumed or error) to the subscribe with this id.
    Subscribing(u64),
    /// Subscribed: diffs continue the cursor's chain.
    Live,
    /// A gap was seen: waiting for the answer to the unsubscribe with this id, ignoring the
    /// diffs queued before it, then subscribing again with `since`.
    Resyncing(u64),
}

/// Capped exponential backoff with jitter: attempt n waits a random time in [d/2, d] with
/// d = min(base * 2^n, cap).
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(10))
    }
}

/// Why a connection attempt failed.
enum ConnectError {
    /// Worth retrying (the server may be restarting).
    Retry(anyhow::Error),
    /// Retrying would fail the same way (bad token, bad URL, ...).
    Fatal(anyhow::Error),
}

/// A resilient subscription to one topic (see the module docs).
pub struct Subscription {
    endpoint: Endpoint,
    topic: String,
    /// Prefix of status lines on stderr (`gantry watch: ...`).
    label: &'static str,
    cursor: Option<Cursor>,
    socket: Option<Socket>,
    phase: Phase,
    next_id: u64,
    backoff: Backoff,
    /// Whether a connection ever succeeded: until then a failure to connect is an error, not
    /// something to wait out.
    connected_once: bool,
    /// Why the last connection was lost (set while `socket` is `None`).
    lost: Option<String>,
    /// Set when a frame handed out was the last one (a refused subscription): the next call
    /// returns this error.
    fatal: Option<anyhow::Error>,
}

impl Subscription {
    /// A subscription to `topic`, starting from `since` (a snapshot when `None`). Nothing happens
    /// until the first [`Subscription::next`].
    pub fn new(
        endpoint: Endpoint,
        topic: impl Into<String>,
        since: Option<Cursor>,
        label: &'static str,
    ) -> Subscription {
        Subscription {
            endpoint,
            topic: topic.into(),
            label,
            cursor: since,
            socket: None,
            phase: Phase::Live,
            next_id: 1,
            backoff: Backoff::default(),
            connected_once: false,
            lost: None,
            fatal: None,
        }
    }

    /// The next frame to apply: a `snapshot`, `resumed`, `diff` (continuing the chain) or
    /// `error`. Reconnects and resubscribes as needed; fails only when that cannot help.
    pub async fn next(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(error) = self.fatal.take() {
                return Err(error);
            }
            let Some(socket) = self.socket.as_mut() else {
                self.connect().await?;
                continue;
            };
            let message = match tokio::time::timeout(SILENCE, socket.next()).await {
                Err(_) => {
                    self.lose(format!(
                        "no frame from the server for {} s",
                        SILENCE.as_secs()
                    ));
                    continue;
                }
                Ok(None) => {
                    self.lose("the connection dropped".to_owned());
                    continue;
                }
                Ok(Some(Err(tungstenite::Error::Capacity(error)))) => {
                    return Err(anyhow!(
                        "the server sent a frame this client cannot take: {error}"
                    ));
                }
                Ok(Some(Err(error))) => {
                    self.lose(format!("the connection failed: {error}"));
                    continue;
                }
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    if let Some(frame) = self.on_text(text.as_str()).await {
                        return Ok(frame);
                    }
                }
                Message::Close(close) => {
                    // Send the close reply the library queued, completing the handshake.
                    if let Some(socket) = self.socket.as_mut() {
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.flush()).await;
                    }
                    self.on_close(close)?;
                }
                // Pings are answered by the library; binary frames are not part of the protocol.
                Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Closes the connection cleanly (best effort, bounded in time).
    pub async fn close(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(None)).await;
        }
    }

    fn status(&self, note: impl std::fmt::Display) {
        eprintln!("gantry {}: {note}", self.label);
    }

    /// Forget the connection; the next read reconnects.
    fn lose(&mut self, reason: String) {
        self.socket = None;
        self.lost = Some(reason);
    }

    /// Connect (after a backoff delay if this is a reconnect) and subscribe.
    async fn connect(&mut self) -> anyhow::Result<()> {
        let mut reason = self.lost.take();
        loop {
            if self.connected_once {
                let delay = self.backoff.next_delay();
                self.status(format!(
                    "{}; reconnecting in {:.1} s",
                    reason.as_deref().unwrap_or("not connected"),
                    delay.as_secs_f64()
                ));
                tokio::time::sleep(delay).await;
            }
            match self.open().await {
                Ok(socket) => {
                    self.socket = Some(socket);
                    self.connected_once = true;
                    if let Err(error) = self.subscribe().await {
                        reason = Some(format!("subscribing failed: {error}"));
                        self.socket = None;
                        continue;
                    }
                    return Ok(());
                }
                Err(ConnectError::Fatal(error)) => return Err(error),
                Err(ConnectError::Retry(error)) if self.connected_once => {
                    reason = Some(format!(
                        "cannot reach the gantry server at {}: {error:#}",
                        self.endpoint.server
                    ));
                }
                Err(ConnectError::Retry(error)) => {
                    return Err(error.context(format!(
                        "cannot reach the gantry server at {}",
                        self.endpoint.server
                    )));
                }
            }
        }
    }

    async fn open(&self) -> Result<Socket, ConnectError> {
        let fatal = |e: anyhow::Error| ConnectError::Fatal(e);
        let mut request = self
            .endpoint
            .url
            .as_str()
            .into_client_request()
            .with_context(|| format!("bad server URL {}", self.endpoint.url))
            .map_err(fatal)?;
        let auth = HeaderValue::from_str(&format!("Bearer {}", self.endpoint.token))
            .context("the token contains characters that cannot go in an HTTP header")
            .map_err(fatal)?;
        request.headers_mut().insert(header::AUTHORIZATION, auth);
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => Err(ConnectError::Retry(anyhow!(
                "no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status();
                let detail = response
                    .body()
                    .as_deref()
                    .and_then(|body| serde_json::from_slice::<ErrorBody>(body).ok())
                    .map(|body| format!(" ({}: {})", body.error.code, body.error.message))
                    .unwrap_or_default();
                let error = anyhow!("the server refused the WebSocket upgrade: {status}{detail}");
                if status == StatusCode::UNAUTHORIZED {
                    Err(fatal(error.context(
                        "the token was not accepted: check --token or GANTRY_TOKEN",
                    )))
                } else if status.is_client_error() {
                    Err(fatal(error))
                } else {
                    Err(ConnectError::Retry(error))
                }
            }
            // Formatted, not wrapped: tungstenite's messages already include their sources.
            Ok(Err(error @ tungstenite::Error::Url(_))) => Err(fatal(anyhow!(
                "cannot connect to {}: {error}",
                self.endpoint.url
            ))),
            Ok(Err(error)) => Err(ConnectError::Retry(anyhow!("{error}"))),
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn send(&mut self, message: &ClientMessage) -> anyhow::Result<()> {
        let text = serde_json::to_string(message).context("encoding a message")?;
        let socket = self.socket.as_mut().context("not connected")?;
        socket
            .send(Message::Text(text.into()))
            .await
            .context("sending to the server")
    }

    /// Subscribe on the current connection, from the cursor if there is one.
    async fn subscribe(&mut self) -> anyhow::Result<()> {
        let id = self.take_id();
        self.phase = Phase::Subscribing(id);
        let message = ClientMessage::Subscribe {
            id: Some(id),
            topic: self.topic.clone(),
            since: self.cursor.clone(),
        };
        self.send(&message).await
    }

    /// Handles one text frame; returns it if the consumer should see it.
    async fn on_text(&mut self, text: &str) -> Option<Frame> {
        let message: ServerMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                self.status(format!(
                    "ignoring a frame this client does not understand ({error}): {}",
                    text.chars().take(200).collect::<String>()
                ));
                return None;
            }
        };
        let show = match &message {
            ServerMessage::Snapshot {
                id,
                topic,
                epoch,
                position,
                reset,
                ..
            } if *topic == self.topic => {
                if !self.answers_subscribe(*id) {
                    return None;
                }
                if *reset {
                    let from = self
                        .cursor
                        .as_ref()
                        .map(|c| format!("{}:{}", c.epoch, c.position))
                        .unwrap_or_default();
                    self.status(format!(
                        "cannot resume {} from {from} (outside the server's retention window, or \
                         another epoch): starting again from a fresh snapshot at {epoch}:{position}",
                        self.topic
                    ));
                }
                self.subscribed(epoch, *position);
                true
            }
            ServerMessage::Resumed {
                id,
                topic,
                epoch,
                position,
            } if *topic == self.topic => {
                if !self.answers_subscribe(*id) {
                    return None;
                }
                self.status(format!("resumed {} from {epoch}:{position}", self.topic));
                self.subscribed(epoch, *position);
                true
            }
            ServerMessage::Diff {
                topic,
                epoch,
                position,
                prev,
                ..
            } if *topic == self.topic => self.on_diff(epoch, *position, *prev).await,
            ServerMessage::Unsubscribed { id, .. } => {
                if matches!(self.phase, Phase::Resyncing(want) if *id == Some(want)) {
                    self.resubscribe().await;
                }
                false
            }
            ServerMessage::Error {
                id, code, message, ..
            } => match self.phase {
                Phase::Resyncing(want) if *id == Some(want) => {
                    // Most likely `not_subscribed`: either way, subscribe again.
                    self.resubscribe().await;
                    false
                }
                Phase::Subscribing(want) if *id == Some(want) => {
                    match code.as_str() {
                        "unavailable" | "connection_closed" => self.lose(format!(
                            "the server could not subscribe to {} ({code}: {message})",
                            self.topic
                        )),
                        _ => {
                            self.fatal = Some(anyhow!(
                                "cannot subscribe to {}: {message} ({code})",
                                self.topic
                            ));
                        }
                    }
                    true
                }
                _ => true,
            },
            _ => false,
        };
        show.then(|| Frame {
            text: text.to_owned(),
            message,
        })
    }

    /// Whether a snapshot or resumed with this id answers the pending subscribe.
    fn answers_subscribe(&self, id: Option<u64>) -> bool {
        let answers = matches!(self.phase, Phase::Subscribing(want) if id == Some(want));
        if !answers {
            self.status(format!(
                "ignoring an answer (id {id:?}) to a subscribe this client is not waiting for"
            ));
        }
        answers
    }

    fn subscribed(&mut self, epoch: &str, position: i64) {
        self.cursor = Some(Cursor {
            epoch: epoch.to_owned(),
            position,
        });
        self.phase = Phase::Live;
        self.backoff.reset();
    }

    /// Checks a diff against the cursor; `true` if it continues the chain (and was applied to
    /// the cursor).
    async fn on_diff(&mut self, epoch: &str, position: i64, prev: i64) -> bool {
        if self.phase != Phase::Live {
            // Queued before our subscribe was answered, or before our unsubscribe: the resume
            // that follows replays whatever of it is missing.
            return false;
        }
        let Some(cursor) = self.cursor.as_mut() else {
            return false;
        };
        if cursor.epoch == epoch && prev == cursor.position {
            cursor.position = position;
            return true;
        }
        let cursor = cursor.clone();
        if cursor.epoch == epoch && position <= cursor.position {
            self.status(format!(
                "skipping a diff already applied (position {position}, cursor at {})",
                cursor.position
            ));
            return false;
        }
        self.status(format!(
            "gap on {}: a diff at {epoch}:{position} has prev {prev}, but the last position \
             applied is {}:{}; subscribing again from there",
            self.topic, cursor.epoch, cursor.position
        ));
        let id = self.take_id();
        self.phase = Phase::Resyncing(id);
        let unsubscribe = ClientMessage::Unsubscribe {
            id: Some(id),
            topic: self.topic.clone(),
        };
        if let Err(error) = self.send(&unsubscribe).await {
            self.lose(format!("{error:#}"));
        }
        false
    }

    async fn resubscribe(&mut self) {
        if let Err(error) = self.subscribe().await {
            self.lose(format!("{error:#}"));
        }
    }

    /// The server closed the connection: reconnect if the code says so, else end.
    fn on_close(&mut self, close: Option<CloseFrame>) -> anyhow::Result<()> {
        let (code, reason) = close.map_or((1005, String::new()), |frame| {
            (u16::from(frame.code), frame.reason.to_string())
        });
        let said = if reason.is_empty() {
            format!("code {code}")
        } else {
            format!("code {code}: {reason}")
        };
        if close_code::is_resumable(code) {
            self.lose(format!("the server closed the connection ({said})"));
            return Ok(());
        }
        self.socket = None;
        let hint = match code {
            close_code::TOKEN_REVOKED => "; the token was revoked or lost its rights: use another",
            close_code::PROTOCOL_VIOLATION => "; this client broke the protocol (a bug: report it)",
            _ => "",
        };
        Err(anyhow!(
            "the server closed the connection for good ({said}){hint}"
        ))
    }
}

/// Ctrl-C and SIGTERM, listened to for the whole run so that none is missed between polls.
pub struct Interrupt {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Interrupt {
    pub fn new() -> anyhow::Result<Interrupt> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Interrupt {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Interrupt {})
    }

    /// Resolves when either signal arrives.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_urls_follow_the_server_url() {
        assert_eq!(
            ws_url("http://127.0.0.1:7420").unwrap(),
            "ws://127.0.0.1:7420/v1/ws"
        );
        assert_eq!(
            ws_url("https://g.example/base/").unwrap(),
            "wss://g.example/base/v1/ws"
        );
        assert_eq!(ws_url("ws://h:1").unwrap(), "ws://h:1/v1/ws");
        assert!(ws_url("127.0.0.1:7420").is_err());
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        for (n, delay) in delays.iter().enumerate() {
            let full = (Duration::from_millis(100) * (1 << n)).min(Duration::from_secs(1));
            assert!(*delay >= full / 2 && *delay <= full, "{n}: {delay:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
