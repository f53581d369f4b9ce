//! The event loop: terminal input, network events and a clock feed the [`App`]; the screen is
//! redrawn only when something changed, and at most once per frame interval, so a burst of a
//! thousand diffs costs a handful of frames instead of a thousand.
//!
//! Nothing here awaits the network: commands go out through a non-blocking channel send, and
//! events are taken from a channel when they are there. The input stream and the shutdown signal
//! are parameters, so tests drive the very same loop with injected keys and a `TestBackend`.

use std::time::Duration;

use crossterm::event::Event;
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::time::{Instant, MissedTickBehavior};

use super::App;
use crate::error::TuiError;
use crate::net::NetHandle;

/// Timing of the loop.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// Shortest time between two frames (33 ms is 30 frames a second). Zero draws after every
    /// event that changed something, which tests use to see every intermediate state.
    pub frame_interval: Duration,
    /// The clock that expires status messages.
    pub tick: Duration,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            frame_interval: Duration::from_millis(33),
            tick: Duration::from_secs(1),
        }
    }
}

/// Runs until the user quits or `shutdown` completes. `on_frame` sees the terminal after each
/// draw (tests read the `TestBackend` buffer there).
pub async fn run_loop<B, I, S, F>(
    app: &mut App,
    terminal: &mut Terminal<B>,
    net: &mut NetHandle,
    mut input: I,
    shutdown: S,
    config: &LoopConfig,
    mut on_frame: F,
) -> Result<(), TuiError>
where
    B: Backend,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: Stream<Item = std::io::Result<Event>> + Unpin,
    S: Future<Output = ()>,
    F: FnMut(&Terminal<B>),
{
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(config.tick);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut input_open = true;
    let mut net_open = true;
    let mut last_draw: Option<Instant> = None;
    loop {
        for command in app.take_commands() {
            net.send(command);
        }
        if app.should_quit() {
            return Ok(());
        }
        let now = Instant::now();
        let next_frame = app
            .is_dirty()
            .then(|| last_draw.map_or(now, |at| at + config.frame_interval));
        if next_frame.is_some_and(|at| at <= now) {
            app.render(terminal)
                .map_err(|e| TuiError::Terminal(std::io::Error::other(e)))?;
            on_frame(terminal);
            last_draw = Some(now);
            continue;
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            event = input.next(), if input_open => match event {
                Some(Ok(event)) => app.handle_event(&event),
                Some(Err(error)) => return Err(TuiError::Terminal(error)),
                None => input_open = false,
            },
            event = net.next_event(), if net_open => match event {
                Some(event) => app.handle_net(event),
                None => {
                    net_open = false;
                    app.network_stopped();
                }
            },
            () = tokio::time::sleep_until(next_frame.unwrap_or(now)), if next_frame.is_some() => {}
            _ = tick.tick() => app.tick(Instant::now().into_std()),
        }
    }
}
