//! The network side of the TUI: one task owns the WebSocket (connect, reconnect with backoff,
//! read, write, heartbeat) and starts the REST calls; the UI talks to it only through channels.
//!
//! The split is what keeps the UI alive while the network is not: the UI loop only ever does a
//! non-blocking send of a [`NetCommand`] and receives [`NetEvent`]s when they come, so a dead
//! server, a slow handshake or a hung request can never freeze a frame.
//!
//! Every connection gets a new generation number. WebSocket sends carry the generation the UI
//! meant them for and are dropped on any other one, so a subscribe written for a connection
//! that just died can never land on the next one (where the UI resubscribes everything itself).

pub mod backoff;
pub mod rest;
mod ws;

use gantry_types::ws::{ClientMessage, ServerMessage};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::TuiError;
use crate::options::TuiOptions;
pub use rest::{RestAnswer, RestClient, RestOutcome, RestRequest, short_id};
pub use ws::WsConfig;

/// How the WebSocket connection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// The first connection attempt is under way.
    Connecting,
    /// Connected; `generation` numbers this connection.
    Live { generation: u64 },
    /// The connection was lost (or an attempt failed); trying again.
    Reconnecting { attempt: u32, reason: String },
    /// Several attempts failed (`retrying`), or the server refused us for good (not retrying).
    Offline { reason: String, retrying: bool },
}

/// From the UI to the network task.
#[derive(Clone, Debug, PartialEq)]
pub enum NetCommand {
    /// Send a WebSocket message on connection `generation` (dropped on any other).
    Send {
        generation: u64,
        message: ClientMessage,
    },
    /// Start a REST request.
    Rest(RestRequest),
}

/// From the network task to the UI.
#[derive(Clone, Debug, PartialEq)]
pub enum NetEvent {
    Status(ConnectionStatus),
    Message(ServerMessage),
    /// Boxed: an outcome is much larger than the other events.
    Rest(Box<RestOutcome>),
}

/// How many events may wait for the UI before the network task waits for it. Waiting there
/// stops reading the socket, and the server then handles us as a slow consumer (close and
/// resume), which is the protocol's answer to a client that cannot keep up.
const EVENT_QUEUE: usize = 4096;

/// The UI's end of the network task.
pub struct NetHandle {
    commands: mpsc::UnboundedSender<NetCommand>,
    events: mpsc::Receiver<NetEvent>,
    task: JoinHandle<()>,
}

impl NetHandle {
    /// Queues a command. Never blocks; a command for a stopped network task is dropped.
    pub fn send(&self, command: NetCommand) {
        let _ = self.commands.send(command);
    }

    /// The next event; `None` once the network task has stopped.
    pub async fn next_event(&mut self) -> Option<NetEvent> {
        self.events.recv().await
    }

    /// Stops the network task (it closes the socket if it can do so at once).
    pub fn shutdown(self) {
        drop(self.commands);
        self.task.abort();
    }
}

/// Starts the network task. Must be called inside a tokio runtime.
pub fn spawn(options: &TuiOptions, config: WsConfig) -> Result<NetHandle, TuiError> {
    let url = options.ws_url()?;
    let rest = RestClient::new(options.base_url(), options.token.clone())?;
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let task = tokio::spawn(ws::run(
        url,
        options.token.clone(),
        config,
        rest,
        commands_rx,
        events_tx,
    ));
    Ok(NetHandle {
        commands: commands_tx,
        events: events_rx,
        task,
    })
}
