//! Small pieces the panes share: a bordered pane, a scrolled window over a long list (only the
//! visible rows are ever built), centred overlay areas and text padding.

use std::ops::Range;

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::theme;
use crate::app::ui_state::follow;

/// A bordered pane with a title.
pub fn pane(title: impl Into<Line<'static>>, focused: bool) -> Block<'static> {
    Block::bordered()
        .title(title)
        .border_style(theme::border(focused))
}

/// The rows of a list of `len` that fit in `height`, keeping `selected` visible; updates the
/// scroll `offset`.
pub fn window(
    offset: &mut usize,
    selected: Option<usize>,
    len: usize,
    height: usize,
) -> Range<usize> {
    *offset = follow(*offset, selected, height, len);
    *offset..(*offset + height).min(len)
}

/// A row with the selection marker in front, highlighted when selected.
pub fn row(spans: Vec<Span<'static>>, selected: bool, focused: bool) -> Line<'static> {
    let marker = if selected {
        theme::SELECTED
    } else {
        theme::UNSELECTED
    };
    let mut all = Vec::with_capacity(spans.len() + 1);
    all.push(Span::raw(marker));
    all.extend(spans);
    let line = Line::from(all);
    if selected {
        line.style(theme::selected(focused))
    } else {
        line
    }
}

/// Renders lines inside a block.
pub fn lines_in(frame: &mut Frame, area: Rect, block: Block<'static>, lines: Vec<Line<'static>>) {
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// A placeholder line (loading, empty).
pub fn note(text: &str) -> Line<'static> {
    Line::from(Span::styled(format!("  {text}"), theme::dim()))
}

/// `text` cut or padded to exactly `width` characters.
pub fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        format!("{text}{}", " ".repeat(width - count))
    } else if width == 0 {
        String::new()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

/// A centred area of at most `width` x `height` inside `area`, cleared for an overlay.
pub fn overlay_area(frame: &mut Frame, area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [rect] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    frame.render_widget(Clear, rect);
    rect
}

/// A footer hint line.
pub fn hint(text: &str) -> Line<'static> {
    Line::from(Span::styled(text.to_owned(), theme::dim()))
}

/// A plain span.
pub fn plain(text: impl Into<String>) -> Span<'static> {
    Span::raw(text.into())
}

/// A span in a style.
pub fn styled(text: impl Into<String>, style: Style) -> Span<'static> {
    Span::styled(text.into(), style)
}
