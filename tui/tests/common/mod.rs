//! Drives the real TUI event loop from a test: keys go in through a channel, every drawn frame
//! comes out as text, and `wait_for` waits (with a deadline, never a fixed sleep) until a frame
//! shows what the test expects.

#![allow(dead_code)]

use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures::channel::mpsc as key_channel;
use gantry_tui::net::{self, WsConfig};
use gantry_tui::ui::buffer_text;
use gantry_tui::{App, LoopConfig, TuiError, TuiOptions, run_loop};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long a test waits for a screen before failing.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct TuiDriver {
    keys: key_channel::UnboundedSender<std::io::Result<Event>>,
    frames: mpsc::UnboundedReceiver<String>,
    /// Every frame drawn so far, in order.
    pub history: Vec<String>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), TuiError>>,
}

impl TuiDriver {
    /// Starts the TUI against `server`, drawing every change (no frame cap) into a
    /// `width` x `height` test terminal.
    pub fn start(server: &str, token: &str, width: u16, height: u16) -> TuiDriver {
        let options = TuiOptions::new(server, token);
        let (keys, input) = key_channel::unbounded();
        let (frames_tx, frames) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut net = net::spawn(&options, WsConfig::default())?;
            let mut app = App::new(options.base_url());
            let mut terminal = Terminal::new(TestBackend::new(width, height))
                .map_err(|e| TuiError::Terminal(std::io::Error::other(e)))?;
            let config = LoopConfig {
                frame_interval: Duration::ZERO,
                ..LoopConfig::default()
            };
            let result = run_loop(
                &mut app,
                &mut terminal,
                &mut net,
                input,
                async {
                    let _ = stopped.await;
                },
                &config,
                |terminal| {
                    let _ = frames_tx.send(buffer_text(terminal.backend().buffer()));
                },
            )
            .await;
            net.shutdown();
            result
        });
        TuiDriver {
            keys,
            frames,
            history: Vec::new(),
            stop: Some(stop),
            task,
        }
    }

    pub fn press(&self, code: KeyCode) {
        let modifiers = match code {
            KeyCode::Char(c) if c.is_ascii_uppercase() => KeyModifiers::SHIFT,
            _ => KeyModifiers::NONE,
        };
        let _ = self
            .keys
            .unbounded_send(Ok(Event::Key(KeyEvent::new(code, modifiers))));
    }

    /// The last frame drawn.
    pub fn screen(&self) -> &str {
        self.history.last().map(String::as_str).unwrap_or("")
    }

    /// Waits for the next frame drawn.
    pub async fn next_frame(&mut self) -> String {
        match tokio::time::timeout(DEADLINE, self.frames.recv()).await {
            Ok(Some(frame)) => {
                self.history.push(frame.clone());
                frame
            }
            Ok(None) => panic!("the TUI stopped; last screen:\n{}", self.screen()),
            Err(_) => panic!("no new frame; last screen:\n{}", self.screen()),
        }
    }

    /// Waits until a drawn frame satisfies `check`, returning it.
    pub async fn wait_for(&mut self, what: &str, check: impl Fn(&str) -> bool) -> String {
        if let Some(frame) = self.history.last()
            && check(frame)
        {
            return frame.clone();
        }
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(frame)) => {
                    let matched = check(&frame);
                    self.history.push(frame.clone());
                    if matched {
                        return frame;
                    }
                }
                Ok(None) => panic!(
                    "the TUI stopped before showing {what}; last screen:\n{}",
                    self.screen()
                ),
                Err(_) => panic!(
                    "timed out waiting for {what}; last screen:\n{}",
                    self.screen()
                ),
            }
        }
    }

    /// Stops the loop and returns how it ended.
    pub async fn stop(mut self) -> Result<(), TuiError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(DEADLINE, self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => panic!("the TUI task failed: {join}"),
            Err(_) => panic!("the TUI did not stop"),
        }
    }

    /// Quits with the `q` key and waits for the loop to end on its own.
    pub async fn quit(self) -> Result<(), TuiError> {
        self.press(KeyCode::Char('q'));
        match tokio::time::timeout(DEADLINE, self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => panic!("the TUI task failed: {join}"),
            Err(_) => panic!("the TUI did not quit on q"),
        }
    }
}

/// The line of a screen containing `needle`, if any.
pub fn line_with<'a>(screen: &'a str, needle: &str) -> Option<&'a str> {
    screen.lines().find(|line| line.contains(needle))
}

/// The column (in characters) where branch `name` starts on its stack row.
pub fn column_of(screen: &str, name: &str) -> Option<usize> {
    let needle = format!("─ {name} ");
    screen.lines().find_map(|line| {
        let at = line.find(&needle)?;
        Some(line[..at].chars().count() + 2)
    })
}

/// The status badge (symbol and word) on the line containing `needle`, as its word.
pub fn status_on(screen: &str, needle: &str) -> Option<&'static str> {
    let line = line_with(screen, needle)?;
    [
        ("○ queued", "queued"),
        ("● running", "running"),
        ("✓ completed", "completed"),
        ("✗ error", "error"),
        ("⊘ cancelled", "cancelled"),
    ]
    .into_iter()
    .find(|(badge, _)| line.contains(badge))
    .map(|(_, status)| status)
}

/// The stack's branch rows (tree connectors), top to bottom.
fn stack_rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|l| l.contains("├─ ") || l.contains("└─ "))
        .collect()
}

/// Whether the stack row shows `branch`, and whether it is selected (the marker sits right
/// before the tree drawing; other panes on the same line are not looked at).
fn branch_row(row: &str, branch: &str) -> Option<bool> {
    let at = row.find(&format!("─ {branch} "))?;
    let before = row[..at].trim_end_matches(|c| "│├└─ ".contains(c));
    Some(before.ends_with('▸'))
}

/// The selected branch of the stack, if any.
pub fn selected_branch(screen: &str) -> Option<String> {
    stack_rows(screen).into_iter().find_map(|row| {
        let name = row
            .split(['├', '└'])
            .nth(1)?
            .trim_start_matches('─')
            .split_whitespace()
            .next()?;
        branch_row(row, name)?.then(|| name.to_owned())
    })
}

/// Moves the stack selection to `branch`: Home, then as many ↓ as rows above it. Waits on what
/// the screen shows, so frames drawn for other reasons in between cannot confuse it.
pub async fn select_branch(tui: &mut TuiDriver, branch: &str) {
    let screen = tui
        .wait_for(&format!("{branch} in the stack"), |s| {
            stack_rows(s)
                .iter()
                .any(|r| branch_row(r, branch).is_some())
        })
        .await;
    let rows = stack_rows(&screen);
    let index = rows
        .iter()
        .position(|r| branch_row(r, branch).is_some())
        .unwrap_or_default();
    tui.press(KeyCode::Home);
    tui.wait_for("the first branch selected", |s| {
        stack_rows(s)
            .first()
            .is_some_and(|first| selected_branch(first).is_some())
    })
    .await;
    for _ in 0..index {
        tui.press(KeyCode::Down);
    }
    tui.wait_for(&format!("{branch} selected"), |s| {
        selected_branch(s).as_deref() == Some(branch)
    })
    .await;
}
