//! The help overlay, generated from the key map so it always tells the truth.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;

use super::theme;
use super::widgets::{fit, hint, lines_in, overlay_area, pane, plain, styled};
use crate::app::keys::HELP;

pub fn draw(frame: &mut Frame, area: Rect) {
    let key_width = HELP
        .iter()
        .map(|(k, _, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<Line<'static>> = HELP
        .iter()
        .map(|(keys, what, _)| {
            Line::from(vec![
                plain(" "),
                styled(
                    fit(keys, key_width),
                    ratatui::style::Style::new().fg(ratatui::style::Color::Cyan),
                ),
                plain("  "),
                plain(*what),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::from(vec![
        plain(" badges: "),
        theme::job_status(gantry_types::JobStatus::Queued).span(),
        plain(" "),
        theme::job_status(gantry_types::JobStatus::Running).span(),
        plain(" "),
        theme::job_status(gantry_types::JobStatus::Completed).span(),
        plain(" "),
        theme::job_status(gantry_types::JobStatus::Error).span(),
        plain(" "),
        theme::job_status(gantry_types::JobStatus::Cancelled).span(),
    ]));
    lines.push(Line::from(vec![
        plain(" branches: "),
        theme::NEEDS_RESTACK.span(),
        plain(" "),
        theme::CONFLICT.span(),
        plain(" "),
        theme::UNTRACKED.span(),
        plain("  ↑ahead ↓behind"),
    ]));
    lines.push(hint(" any key closes this help"));
    let width = 72;
    let height = lines.len() as u16 + 2;
    let rect = overlay_area(frame, area, width, height);
    lines_in(frame, rect, pane(" Keys ", true), lines);
}
