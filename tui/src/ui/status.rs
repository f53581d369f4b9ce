//! The status line: connection state (live / reconnecting / offline), the server, and the last
//! message (an accepted action, or an error from the server).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::theme;
use super::widgets::{plain, styled};
use crate::app::Flash;
use crate::net::ConnectionStatus;
use crate::state::ViewModel;

const HINT: &str = "? help  q quit ";

pub fn draw(
    frame: &mut Frame,
    area: Rect,
    model: &ViewModel,
    connection: &ConnectionStatus,
    server: &str,
    flash: Option<&Flash>,
) {
    // Most important first, since a narrow terminal cuts the end: the state, the last message,
    // then the details (why the connection is down, and where it goes).
    let mut spans = vec![plain(" "), theme::connection(connection).span()];
    let reason = match connection {
        ConnectionStatus::Reconnecting { attempt, reason } => {
            spans.push(plain(format!(" (attempt {attempt})")));
            Some(reason.as_str())
        }
        ConnectionStatus::Offline { reason, retrying } => {
            spans.push(plain(if *retrying {
                " (retrying)"
            } else {
                " (not retrying)"
            }));
            Some(reason.as_str())
        }
        ConnectionStatus::Connecting | ConnectionStatus::Live { .. } => None,
    };
    if let Some(flash) = flash {
        let style = if flash.error {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        let symbol = if flash.error { "✗ " } else { "" };
        spans.push(plain("  │ "));
        spans.push(styled(format!("{symbol}{}", flash.text), style));
    }
    if model.skipped_rows() > 0 {
        spans.push(styled(
            format!("  │ {} rows not understood", model.skipped_rows()),
            Style::new().fg(Color::Yellow),
        ));
    }
    let details = match reason {
        Some(reason) => format!("  │ {reason} · {server}"),
        None => format!("  │ {server}"),
    };
    spans.push(styled(details, theme::dim()));
    let [left, right] = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(HINT.chars().count() as u16),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    frame.render_widget(
        Paragraph::new(Line::from(styled(HINT, theme::dim()))),
        right,
    );
}
