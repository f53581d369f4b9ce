//! Rendering: pure functions from the view model and the UI state to a ratatui frame.
//!
//! Nothing here changes data or talks to anything; the only state written is the scroll offset
//! of each list (to keep the selection visible). That is what lets the rendering tests draw into
//! a `TestBackend` and read the screen back.

mod detail;
mod help;
mod jobs;
mod picker;
mod prompt;
mod repos;
mod stack;
mod status;
mod tasks;
pub mod text;
pub mod theme;
pub mod widgets;

#[cfg(test)]
mod tests;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};

use crate::app::{Flash, Focus, Overlay, UiState};
use crate::net::ConnectionStatus;
use crate::state::ViewModel;
pub use text::buffer_text;

/// Everything a frame shows.
pub struct Screen<'a> {
    pub model: &'a ViewModel,
    pub ui: &'a mut UiState,
    pub connection: &'a ConnectionStatus,
    pub server: &'a str,
    pub flash: Option<&'a Flash>,
}

/// Draws the main screen (repos, stack, jobs, tasks, status line) and the open overlay.
pub fn draw(frame: &mut Frame, screen: Screen) {
    let area = frame.area();
    let [main, status_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(main);
    let [repos_area, stack_area] =
        Layout::horizontal([Constraint::Percentage(25), Constraint::Percentage(75)]).areas(top);
    let [jobs_area, tasks_area] =
        Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(bottom);

    let Screen {
        model,
        ui,
        connection,
        server,
        flash,
    } = screen;
    let focus = ui.focus;
    repos::draw(frame, repos_area, model, ui, focus == Focus::Repos);
    stack::draw(frame, stack_area, model, ui, focus == Focus::Stack);
    jobs::draw(frame, jobs_area, model, ui, focus == Focus::Jobs);
    tasks::draw(frame, tasks_area, model, ui, focus == Focus::Tasks);
    status::draw(frame, status_area, model, connection, server, flash);

    match &ui.overlay {
        None => {}
        Some(Overlay::Help) => help::draw(frame, main),
        Some(Overlay::Reparent(picker)) => picker::draw(frame, main, picker),
        Some(Overlay::TaskTitle(prompt)) => prompt::draw(frame, main, prompt),
        Some(Overlay::JobDetail { job_id, scroll }) => {
            detail::draw(frame, main, model, job_id, *scroll)
        }
    }
}
