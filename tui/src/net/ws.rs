//! The connection task: connect with the token, run a session (read frames, write the UI's
//! messages, heartbeat), and when it ends reconnect with backoff, forever, unless the server
//! refused us for good (a bad token, a terminal close code).
//!
//! REST requests are started from here too, whether the socket is up or not, so the UI has one
//! place to send everything and REST keeps working while the WebSocket is down.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use gantry_types::ws::{ClientMessage, ServerMessage, close_code};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::backoff::Backoff;
use super::rest::{RestClient, RestOutcome, RestRequest};
use super::{ConnectionStatus, NetCommand, NetEvent};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Timings of the connection task.
#[derive(Clone, Debug)]
pub struct WsConfig {
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// How often the client pings (the server answers `pong`, which proves it is alive).
    pub ping_every: Duration,
    /// Silence after which the connection counts as dead.
    pub silence_limit: Duration,
    /// Failed attempts in a row after which the status says offline rather than reconnecting.
    pub offline_after: u32,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            connect_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(10),
            ping_every: Duration::from_secs(15),
            silence_limit: Duration::from_secs(45),
            offline_after: 3,
        }
    }
}

enum ConnectError {
    /// Worth trying again.
    Retry(String),
    /// Trying again will not help.
    Refused(String),
}

enum SessionEnd {
    /// The UI is gone.
    Quit,
    /// Lost; reconnect and resume.
    Lost(String),
    /// The server closed for good.
    Terminal(String),
}

/// Sends an event; `false` when the UI has gone away.
async fn emit(events: &mpsc::Sender<NetEvent>, event: NetEvent) -> bool {
    events.send(event).await.is_ok()
}

fn spawn_rest(rest: &RestClient, request: RestRequest, events: &mpsc::Sender<NetEvent>) {
    let rest = rest.clone();
    let events = events.clone();
    tokio::spawn(async move {
        let result = rest.execute(&request).await;
        let _ = events
            .send(NetEvent::Rest(Box::new(RestOutcome { request, result })))
            .await;
    });
}

/// Handles a command while no connection is up: REST goes out, WebSocket sends are dropped (the
/// UI resubscribes everything once the next connection is live). `false` when the UI is gone.
fn handle_offline(
    command: Option<NetCommand>,
    rest: &RestClient,
    events: &mpsc::Sender<NetEvent>,
) -> bool {
    match command {
        None => false,
        Some(NetCommand::Rest(request)) => {
            spawn_rest(rest, request, events);
            true
        }
        Some(NetCommand::Send { .. }) => true,
    }
}

/// Waits for `future` while still serving commands. `None` when the UI went away meanwhile.
async fn serving<F: Future>(
    future: F,
    commands: &mut mpsc::UnboundedReceiver<NetCommand>,
    rest: &RestClient,
    events: &mpsc::Sender<NetEvent>,
) -> Option<F::Output> {
    tokio::pin!(future);
    loop {
        tokio::select! {
            output = &mut future => return Some(output),
            command = commands.recv() => {
                if !handle_offline(command, rest, events) {
                    return None;
                }
            }
        }
    }
}

pub(super) async fn run(
    url: String,
    token: String,
    config: WsConfig,
    rest: RestClient,
    mut commands: mpsc::UnboundedReceiver<NetCommand>,
    events: mpsc::Sender<NetEvent>,
) {
    let mut backoff = Backoff::new(config.backoff_base, config.backoff_cap);
    let mut generation = 0u64;
    if !emit(&events, NetEvent::Status(ConnectionStatus::Connecting)).await {
        return;
    }
    loop {
        let connected = serving(
            connect(&url, &token, config.connect_timeout),
            &mut commands,
            &rest,
            &events,
        )
        .await;
        let status = match connected {
            None => return,
            Some(Ok(socket)) => {
                generation += 1;
                backoff.reset();
                if !emit(
                    &events,
                    NetEvent::Status(ConnectionStatus::Live { generation }),
                )
                .await
                {
                    return;
                }
                match session(socket, generation, &config, &rest, &mut commands, &events).await {
                    SessionEnd::Quit => return,
                    SessionEnd::Lost(reason) => {
                        ConnectionStatus::Reconnecting { attempt: 1, reason }
                    }
                    SessionEnd::Terminal(reason) => ConnectionStatus::Offline {
                        reason,
                        retrying: false,
                    },
                }
            }
            Some(Err(ConnectError::Refused(reason))) => ConnectionStatus::Offline {
                reason,
                retrying: false,
            },
            Some(Err(ConnectError::Retry(reason))) => {
                let attempt = backoff.attempt() + 1;
                if attempt >= config.offline_after {
                    ConnectionStatus::Offline {
                        reason,
                        retrying: true,
                    }
                } else {
                    ConnectionStatus::Reconnecting {
                        attempt: attempt + 1,
                        reason,
                    }
                }
            }
        };
        let terminal = matches!(
            status,
            ConnectionStatus::Offline {
                retrying: false,
                ..
            }
        );
        if !emit(&events, NetEvent::Status(status)).await {
            return;
        }
        if terminal {
            // Keep serving REST (it shows its own errors) until the UI quits.
            while handle_offline(commands.recv().await, &rest, &events) {}
            return;
        }
        let delay = backoff.next_delay();
        if serving(tokio::time::sleep(delay), &mut commands, &rest, &events)
            .await
            .is_none()
        {
            return;
        }
    }
}

async fn connect(url: &str, token: &str, timeout: Duration) -> Result<Socket, ConnectError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::Refused(format!("invalid server URL: {e}")))?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        ConnectError::Refused("the token has characters a header cannot carry".to_owned())
    })?;
    request.headers_mut().insert("authorization", auth);
    match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request)).await {
        Err(_) => Err(ConnectError::Retry(format!(
            "no answer within {} s",
            timeout.as_secs()
        ))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            if status == 401 || status == 403 {
                Err(ConnectError::Refused(format!(
                    "the server refused the token ({status})"
                )))
            } else {
                Err(ConnectError::Retry(format!("the server answered {status}")))
            }
        }
        Ok(Err(error)) => Err(ConnectError::Retry(error.to_string())),
    }
}

async fn session(
    socket: Socket,
    generation: u64,
    config: &WsConfig,
    rest: &RestClient,
    commands: &mut mpsc::UnboundedReceiver<NetCommand>,
    events: &mpsc::Sender<NetEvent>,
) -> SessionEnd {
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(config.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    None => return SessionEnd::Lost("the connection closed".to_owned()),
                    Some(Err(error)) => return SessionEnd::Lost(error.to_string()),
                    Some(Ok(Message::Text(text))) => {
                        // A frame this client does not know (a newer server) is skipped.
                        let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
                            continue;
                        };
                        if matches!(message, ServerMessage::Pong { .. }) {
                            continue;
                        }
                        if !emit(events, NetEvent::Message(message)).await {
                            return SessionEnd::Quit;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                            .unwrap_or((1005, String::new()));
                        let reason = if reason.is_empty() {
                            format!("closed by the server ({code})")
                        } else {
                            format!("closed by the server ({code}: {reason})")
                        };
                        // 4100-4199 mean "do not retry without changing something"; anything
                        // else (going away, slow consumer, heartbeat, a plain close) resumes.
                        return if (close_code::TOKEN_REVOKED..4200).contains(&code) {
                            SessionEnd::Terminal(reason)
                        } else {
                            SessionEnd::Lost(reason)
                        };
                    }
                    Some(Ok(_)) => {}
                }
            }
            command = commands.recv() => match command {
                None => {
                    let _ = tokio::time::timeout(config.send_timeout, sink.close()).await;
                    return SessionEnd::Quit;
                }
                Some(NetCommand::Rest(request)) => spawn_rest(rest, request, events),
                Some(NetCommand::Send { generation: meant_for, message }) => {
                    if meant_for != generation {
                        continue;
                    }
                    if let Err(reason) = send(&mut sink, &message, config.send_timeout).await {
                        return SessionEnd::Lost(reason);
                    }
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > config.silence_limit {
                    return SessionEnd::Lost(format!(
                        "no answer from the server for {} s",
                        config.silence_limit.as_secs()
                    ));
                }
                if let Err(reason) =
                    send(&mut sink, &ClientMessage::Ping { id: None }, config.send_timeout).await
                {
                    return SessionEnd::Lost(reason);
                }
            }
        }
    }
}

async fn send(
    sink: &mut futures::stream::SplitSink<Socket, Message>,
    message: &ClientMessage,
    timeout: Duration,
) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, sink.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the server stopped reading".to_owned()),
    }
}
