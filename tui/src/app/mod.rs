//! The application: the view model, what the user is looking at, and the translation of keys
//! and network events into state changes and commands for the network.
//!
//! [`App`] does no I/O itself. Keys ([`App::handle_key`]) and network events
//! ([`App::handle_net`]) change it and queue [`NetCommand`]s that the event loop hands to the
//! network task; [`App::draw`] renders it. That makes the whole client drivable from tests: inject
//! keys, feed events, render into a `TestBackend`.

mod actions;
pub mod event_loop;
pub mod keys;
mod net_events;
pub mod subscriptions;
pub mod ui_state;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyEvent, KeyEventKind};
use gantry_types::Topic;
use ratatui::backend::Backend;
use ratatui::{Frame, Terminal};

use crate::net::{ConnectionStatus, NetCommand};
use crate::state::ViewModel;
use crate::state::stack::stack_rows;
use subscriptions::Subscriptions;
pub use ui_state::{Focus, Overlay, UiState};

/// How long an informational message stays on the status line.
const FLASH_FOR: Duration = Duration::from_secs(10);

/// A message on the status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    /// When it was set; `None` until the event loop's clock first sees it.
    pub since: Option<Instant>,
}

pub struct App {
    model: ViewModel,
    ui: UiState,
    subscriptions: Subscriptions,
    connection: ConnectionStatus,
    server: String,
    flash: Option<Flash>,
    commands: Vec<NetCommand>,
    quit: bool,
    dirty: bool,
}

impl App {
    /// A client for `server` (shown on the status line), wanting the repo list.
    pub fn new(server: impl Into<String>) -> App {
        let mut app = App {
            model: ViewModel::new(),
            ui: UiState::default(),
            subscriptions: Subscriptions::default(),
            connection: ConnectionStatus::Connecting,
            server: server.into(),
            flash: None,
            commands: Vec::new(),
            quit: false,
            dirty: true,
        };
        app.sync_subscriptions();
        app
    }

    pub fn model(&self) -> &ViewModel {
        &self.model
    }

    pub fn ui(&self) -> &UiState {
        &self.ui
    }

    pub fn connection(&self) -> &ConnectionStatus {
        &self.connection
    }

    pub fn flash(&self) -> Option<&Flash> {
        self.flash.as_ref()
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// Whether something changed since the last draw.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Commands for the network queued since the last call.
    pub fn take_commands(&mut self) -> Vec<NetCommand> {
        std::mem::take(&mut self.commands)
    }

    /// Handles a terminal event: keys, and resizes (which only need a redraw).
    pub fn handle_event(&mut self, event: &Event) {
        match event {
            Event::Key(key) => self.handle_key(*key),
            Event::Resize(..) | Event::FocusGained => self.dirty = true,
            _ => {}
        }
    }

    /// Handles one key press.
    pub fn handle_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        self.dirty = true;
        self.on_key(key);
        self.sync_subscriptions();
    }

    /// The clock: expires old messages.
    pub fn tick(&mut self, now: Instant) {
        if let Some(flash) = &mut self.flash {
            match flash.since {
                None => flash.since = Some(now),
                Some(since) if !flash.error && now.duration_since(since) >= FLASH_FOR => {
                    self.flash = None;
                    self.dirty = true;
                }
                Some(_) => {}
            }
        }
    }

    /// Draws the whole screen.
    pub fn draw(&mut self, frame: &mut Frame) {
        let screen = crate::ui::Screen {
            model: &self.model,
            ui: &mut self.ui,
            connection: &self.connection,
            server: &self.server,
            flash: self.flash.as_ref(),
        };
        crate::ui::draw(frame, screen);
        self.dirty = false;
    }

    /// Draws into a terminal (a real one, or a `TestBackend` in tests).
    pub fn render<B: Backend>(&mut self, terminal: &mut Terminal<B>) -> Result<(), B::Error> {
        terminal.draw(|frame| self.draw(frame))?;
        Ok(())
    }

    fn set_flash(&mut self, text: impl Into<String>, error: bool) {
        self.flash = Some(Flash {
            text: text.into(),
            error,
            since: None,
        });
        self.dirty = true;
    }

    /// The topics the screen needs right now.
    fn wanted_topics(&self) -> BTreeSet<Topic> {
        let mut wanted = BTreeSet::from([Topic::Repos]);
        if let Some(repo) = &self.ui.repo {
            wanted.insert(Topic::RepoJobs(repo.clone()));
            wanted.insert(Topic::RepoBranches(repo.clone()));
            wanted.insert(Topic::RepoTasks(repo.clone()));
        }
        if let Some(Overlay::JobDetail { job_id, .. }) = &self.ui.overlay {
            wanted.insert(Topic::Job(job_id.clone()));
        }
        wanted
    }

    /// Keeps selections pointing at things that exist, then (un)subscribes to follow the screen.
    fn sync_subscriptions(&mut self) {
        self.fix_selections();
        let wanted = self.wanted_topics();
        let commands = self.subscriptions.want(wanted, &mut self.model);
        self.commands.extend(commands);
    }

    fn fix_selections(&mut self) {
        let repos = self.model.repos();
        if !self
            .ui
            .repo
            .as_ref()
            .is_some_and(|id| repos.iter().any(|r| &r.id == id))
        {
            let first = repos.first().map(|r| r.id.clone());
            if first != self.ui.repo {
                self.ui.repo = first;
                self.ui.branch = None;
                self.ui.job = None;
                self.ui.task = None;
                self.ui.scroll = ui_state::Scroll::default();
            }
        }
        let Some(repo) = self.ui.repo.clone() else {
            return;
        };
        let trunk = self
            .model
            .repo(&repo)
            .map(|r| r.trunk.clone())
            .unwrap_or_default();
        if let Some(branches) = self.model.branches(&repo)
            && !self
                .ui
                .branch
                .as_ref()
                .is_some_and(|b| branches.contains_key(b) && *b != trunk)
        {
            self.ui.branch = stack_rows(&trunk, branches)
                .first()
                .map(|row| row.branch.name.clone());
        }
        if let Some(jobs) = self.model.jobs(&repo)
            && self
                .ui
                .job
                .as_ref()
                .is_some_and(|id| jobs.get(id).is_none())
        {
            self.ui.job = jobs.nth(0).map(|j| j.id.clone());
        }
    }
}
