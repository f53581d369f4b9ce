//! The task title prompt.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;

use super::widgets::{hint, lines_in, overlay_area, pane, plain};
use crate::app::ui_state::Prompt;

pub fn draw(frame: &mut Frame, area: Rect, prompt: &Prompt) {
    let rect = overlay_area(frame, area, 60, 5);
    let lines = vec![
        Line::from(vec![
            plain(" title: "),
            plain(prompt.text.clone()),
            plain("█"),
        ]),
        Line::default(),
        hint(" enter create · esc cancel"),
    ];
    lines_in(
        frame,
        rect,
        pane(format!(" New task on {} ", prompt.branch), true),
        lines,
    );
}
