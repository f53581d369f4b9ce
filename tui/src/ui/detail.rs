//! The job detail overlay: the job row and its progress lines, live (topic `job/{id}`).

use gantry_types::Job;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;

use super::theme;
use super::widgets::{hint, lines_in, note, pane, plain, styled};
use crate::net::short_id;
use crate::state::ViewModel;

pub fn draw(frame: &mut Frame, area: Rect, model: &ViewModel, job_id: &str, scroll: Option<usize>) {
    let [rect] = Layout::vertical([Constraint::Percentage(90)])
        .flex(ratatui::layout::Flex::Center)
        .areas(area);
    let [rect] = Layout::horizontal([Constraint::Percentage(90)])
        .flex(ratatui::layout::Flex::Center)
        .areas(rect);
    frame.render_widget(ratatui::widgets::Clear, rect);
    let detail = model.job_detail(job_id);
    let job = detail.and_then(|d| d.job.as_ref());
    let title = match job {
        Some(job) => format!(
            " Job {} · {} {} ",
            short_id(&job.id),
            job.kind,
            job.branch.as_deref().unwrap_or("")
        ),
        None => format!(" Job {} ", short_id(job_id)),
    };
    let block = pane(title, true);
    let inner_height = block.inner(rect).height as usize;
    let mut lines = match job {
        Some(job) => header(job),
        None => vec![note("loading…")],
    };
    lines.push(Line::default());
    lines.push(Line::from(styled(" progress", theme::dim())));
    let progress: Vec<_> = detail
        .map(|d| d.lines.values().collect())
        .unwrap_or_default();
    let room = inner_height.saturating_sub(lines.len() + 1);
    let first = match scroll {
        Some(first) => first.min(progress.len().saturating_sub(1)),
        None => progress.len().saturating_sub(room),
    };
    if progress.is_empty() {
        lines.push(note("no progress reported yet"));
    }
    for line in progress.iter().skip(first).take(room) {
        lines.push(Line::from(vec![
            styled(format!(" {:>4}/{:<4}", line.step, line.total), theme::dim()),
            plain(format!(" {}", line.text)),
        ]));
    }
    while lines.len() < inner_height.saturating_sub(1) {
        lines.push(Line::default());
    }
    let follow = if scroll.is_none() { " (following)" } else { "" };
    lines.push(hint(&format!(
        " esc close · c cancel · ↑↓ scroll · End follow{follow}"
    )));
    lines_in(frame, rect, block, lines);
}

fn header(job: &Job) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        plain(" status    "),
        theme::job_status(job.status).span(),
        styled(
            format!("  attempt {}/{}", job.attempt, job.max_attempts),
            theme::dim(),
        ),
    ])];
    if let Some(progress) = job.progress.as_ref().filter(|_| !job.status.is_terminal()) {
        lines.push(Line::from(plain(format!(
            " step      {}/{} {}",
            progress.step, progress.total, progress.text
        ))));
    }
    if let Some(message) = &job.message {
        lines.push(Line::from(plain(format!(" message   {message}"))));
    }
    if let Some(parent) = &job.parent {
        lines.push(Line::from(plain(format!(" parent    {parent}"))));
    }
    let time = |t: &gantry_types::Timestamp| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut times = format!(" created   {}", time(&job.created_at));
    if let Some(started) = &job.started_at {
        times.push_str(&format!(" · started {}", time(started)));
    }
    if let Some(completed) = &job.completed_at {
        times.push_str(&format!(" · finished {}", time(completed)));
    }
    lines.push(Line::from(plain(times)));
    if let Some(result) = &job.result {
        for moved in &result.moved {
            lines.push(Line::from(plain(format!(
                " moved     {} {} → {}",
                moved.branch,
                short_sha(&moved.from),
                short_sha(&moved.to)
            ))));
        }
        for conflict in &result.conflicts {
            lines.push(Line::from(styled(
                format!(
                    " conflict  {} at {}: {}",
                    conflict.branch,
                    short_sha(&conflict.commit),
                    conflict.files.join(", ")
                ),
                ratatui::style::Style::new().fg(theme::CONFLICT.color),
            )));
        }
    }
    lines
}

/// The first 8 characters of a commit id, as git abbreviates them.
fn short_sha(sha: &str) -> &str {
    sha.get(..8).unwrap_or(sha)
}
