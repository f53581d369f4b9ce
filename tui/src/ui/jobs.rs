//! The jobs pane: the selected repo's jobs, newest first, each with a status badge; running jobs
//! show their progress step. Only the rows in view are built, so a thousand jobs scroll as
//! cheaply as ten.

use gantry_types::{Job, JobStatus};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Span;

use super::theme;
use super::widgets::{fit, lines_in, note, pane, plain, row, styled, window};
use crate::app::UiState;
use crate::net::short_id;
use crate::state::ViewModel;

/// Width of the widest badge, "✓ completed".
const BADGE: usize = 11;
/// Width of the widest short kind, "restack subtree".
const KIND: usize = 15;
const BRANCH: usize = 20;

pub fn draw(frame: &mut Frame, area: Rect, model: &ViewModel, ui: &mut UiState, focused: bool) {
    let Some(repo) = ui.repo.clone() else {
        lines_in(
            frame,
            area,
            pane(" Jobs ", focused),
            vec![note("no repo selected")],
        );
        return;
    };
    let topic = format!("repo/{repo}/jobs");
    let Some(jobs) = model.jobs(&repo).filter(|_| model.is_loaded(&topic)) else {
        lines_in(frame, area, pane(" Jobs ", focused), vec![note("loading…")]);
        return;
    };
    let title = format!(
        " Jobs · {} · {} running · {} queued ",
        jobs.len(),
        jobs.count(JobStatus::Running),
        jobs.count(JobStatus::Queued)
    );
    let block = pane(title, focused);
    let height = block.inner(area).height as usize;
    ui.page = height.max(1);
    if jobs.is_empty() {
        lines_in(frame, area, block, vec![note("no jobs yet")]);
        return;
    }
    let selected = ui.job.as_deref().and_then(|id| jobs.index_of(id));
    let range = window(&mut ui.scroll.jobs, selected, jobs.len(), height);
    let lines = jobs
        .newest_first()
        .enumerate()
        .skip(range.start)
        .take(range.len())
        .map(|(i, job)| row(job_spans(job), Some(i) == selected, focused))
        .collect();
    lines_in(frame, area, block, lines);
}

/// One job as a row: badge, kind, branch, then what it is doing or did.
pub fn job_spans(job: &Job) -> Vec<Span<'static>> {
    let badge = theme::job_status(job.status);
    vec![
        Span::styled(
            fit(&format!("{} {}", badge.symbol, badge.label), BADGE),
            ratatui::style::Style::new().fg(badge.color),
        ),
        plain(" "),
        plain(fit(theme::kind_label(job.kind), KIND)),
        plain(" "),
        plain(fit(job.branch.as_deref().unwrap_or("—"), BRANCH)),
        plain(" "),
        plain(detail(job)),
        styled(format!("  #{}", short_id(&job.id)), theme::dim()),
    ]
}

/// What a job is doing (running: its step) or what it ended with.
pub fn detail(job: &Job) -> String {
    match job.status {
        JobStatus::Running => {
            let mut text = match &job.progress {
                Some(p) => format!("{}/{} {}", p.step, p.total, p.text),
                None => "starting".to_owned(),
            };
            if job.cancel_requested {
                text.push_str(" (cancelling)");
            }
            text
        }
        JobStatus::Queued if job.attempt > 0 => format!(
            "retry {} of {}{}",
            job.attempt + 1,
            job.max_attempts,
            job.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        JobStatus::Queued => "waiting for a worker".to_owned(),
        _ => job.message.clone().unwrap_or_default(),
    }
}
