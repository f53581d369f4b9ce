//! The repo list: name and branch sync state; the selected repo drives the other panes.

use ratatui::Frame;
use ratatui::layout::Rect;

use super::theme;
use super::widgets::{lines_in, note, pane, plain, row, window};
use crate::app::UiState;
use crate::state::ViewModel;

pub fn draw(frame: &mut Frame, area: Rect, model: &ViewModel, ui: &mut UiState, focused: bool) {
    let repos = model.repos();
    let block = pane(format!(" Repos · {} ", repos.len()), focused);
    let height = block.inner(area).height as usize;
    let lines = if !model.is_loaded("repos") {
        vec![note("loading…")]
    } else if repos.is_empty() {
        vec![note("no repos yet"), note("gantry repo add NAME URL")]
    } else {
        let selected = ui
            .repo
            .as_ref()
            .and_then(|id| repos.iter().position(|r| &r.id == id));
        window(&mut ui.scroll.repos, selected, repos.len(), height)
            .filter_map(|i| repos.get(i).map(|repo| (i, repo)))
            .map(|(i, repo)| {
                let badge = theme::repo_sync(repo.branch_sync_status);
                row(
                    vec![plain(format!("{} ", repo.name)), badge.span()],
                    Some(i) == selected,
                    focused,
                )
            })
            .collect()
    };
    lines_in(frame, area, block, lines);
}
