//! The reparent picker: the trunk and the tracked branches outside the branch's own subtree
//! (the only parents that cannot make a cycle).

use ratatui::Frame;
use ratatui::layout::Rect;

use super::theme;
use super::widgets::{hint, lines_in, overlay_area, pane, plain, row, styled, window};
use crate::app::ui_state::Picker;

pub fn draw(frame: &mut Frame, area: Rect, picker: &Picker) {
    let height = (picker.options.len() as u16 + 3).min(area.height);
    let rect = overlay_area(frame, area, 56, height);
    let block = pane(format!(" Reparent {} onto ", picker.branch), true);
    let rows = (block.inner(rect).height as usize).saturating_sub(1);
    let mut offset = 0;
    let mut lines: Vec<_> = window(
        &mut offset,
        Some(picker.selected),
        picker.options.len(),
        rows,
    )
    .filter_map(|i| picker.options.get(i).map(|option| (i, option)))
    .map(|(i, option)| {
        let mut spans = vec![plain(option.clone())];
        if picker.current_parent.as_ref() == Some(option) {
            spans.push(styled("  (current parent)", theme::dim()));
        }
        row(spans, i == picker.selected, true)
    })
    .collect();
    lines.push(hint(" ↑↓ choose · enter reparent · esc cancel"));
    lines_in(frame, rect, block, lines);
}
