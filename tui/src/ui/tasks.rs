//! The tasks pane: the selected repo's tasks with their attach state.

use ratatui::Frame;
use ratatui::layout::Rect;

use super::theme;
use super::widgets::{lines_in, note, pane, plain, row, styled, window};
use crate::app::UiState;
use crate::state::ViewModel;

pub fn draw(frame: &mut Frame, area: Rect, model: &ViewModel, ui: &mut UiState, focused: bool) {
    let Some(repo) = ui.repo.clone() else {
        lines_in(
            frame,
            area,
            pane(" Tasks ", focused),
            vec![note("no repo selected")],
        );
        return;
    };
    let tasks = model.tasks(&repo);
    let block = pane(format!(" Tasks · {} ", tasks.len()), focused);
    let height = block.inner(area).height as usize;
    let lines = if !model.is_loaded(&format!("repo/{repo}/tasks")) {
        vec![note("loading…")]
    } else if tasks.is_empty() {
        vec![note("no tasks (t creates one)")]
    } else {
        let selected = ui
            .task
            .as_ref()
            .and_then(|id| tasks.iter().position(|t| &t.id == id));
        window(&mut ui.scroll.tasks, selected, tasks.len(), height)
            .filter_map(|i| tasks.get(i).map(|task| (i, task)))
            .map(|(i, task)| {
                row(
                    vec![
                        theme::task_status(task.status).span(),
                        plain(format!(" {}", task.title)),
                        styled(format!(" · {}", task.branch), theme::dim()),
                    ],
                    Some(i) == selected,
                    focused,
                )
            })
            .collect()
    };
    lines_in(frame, area, block, lines);
}
