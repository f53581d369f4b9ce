//! `gantry tui`: the terminal client of gantry.
//!
//! It shows the repos, the selected repo's branch stack, its jobs (live) and tasks, and runs
//! actions on them, through the same WebSocket protocol and REST API every client uses.
//!
//! The crate is layered so that each layer can be tested alone:
//! - [`state`]: the pure view model and the reducer that applies server messages (with gap
//!   detection), unit-tested from messages alone;
//! - [`net`]: the network task (WebSocket with reconnect and resume, REST calls), talking to
//!   the UI through channels only;
//! - [`ui`]: rendering, pure functions of the view model drawn into any ratatui backend;
//! - [`app`]: keys and network events to state and commands, and the event loop.
//!
//! [`run`] puts them together on a real terminal; tests drive [`App`] and
//! [`app::event_loop::run_loop`] with injected keys and a `TestBackend`.

#![forbid(unsafe_code)]

pub mod app;
pub mod error;
pub mod net;
pub mod options;
pub mod state;
pub mod terminal;
pub mod ui;

#[cfg(test)]
mod fixtures;

pub use app::App;
pub use app::event_loop::{LoopConfig, run_loop};
pub use error::{RestError, TuiError};
pub use options::TuiOptions;

/// Runs the TUI on this terminal until the user quits (or SIGTERM / SIGHUP), then restores the
/// terminal. Must be called inside a tokio runtime.
pub async fn run(options: TuiOptions) -> Result<(), TuiError> {
    let mut net = net::spawn(&options, net::WsConfig::default())?;
    let mut app = App::new(options.base_url());
    let result = {
        let (_guard, mut terminal) = terminal::TerminalGuard::enter()?;
        let input = crossterm::event::EventStream::new();
        run_loop(
            &mut app,
            &mut terminal,
            &mut net,
            input,
            terminal::termination(),
            &LoopConfig::default(),
            |_| {},
        )
        .await
    };
    net.shutdown();
    result
}
