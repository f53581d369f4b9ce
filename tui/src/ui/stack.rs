//! The selected repo's branch stack as a tree: the trunk, then every branch under its parent,
//! indented, with what needs attention on each (ahead/behind, needs restack, conflict) and the
//! badge of the job working on it.

use gantry_types::{Branch, Job, JobStatus};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Span;

use super::theme;
use super::widgets::{fit, lines_in, note, pane, plain, row, styled, window};
use crate::app::UiState;
use crate::net::short_id;
use crate::state::stack::{StackRow, stack_rows};
use crate::state::{JobsView, ViewModel};

pub fn draw(frame: &mut Frame, area: Rect, model: &ViewModel, ui: &mut UiState, focused: bool) {
    let repo = ui.repo.as_deref().and_then(|id| model.repo(id));
    let title = match repo {
        Some(repo) => format!(" Stack · {} ", repo.name),
        None => " Stack ".to_owned(),
    };
    let block = pane(title, focused);
    let height = (block.inner(area).height as usize).saturating_sub(1);
    let Some(repo) = repo else {
        lines_in(frame, area, block, vec![note("no repo selected")]);
        return;
    };
    let branches_topic = format!("repo/{}/branches", repo.id);
    let Some(branches) = model
        .branches(&repo.id)
        .filter(|_| model.is_loaded(&branches_topic))
    else {
        lines_in(frame, area, block, vec![note("loading…")]);
        return;
    };
    let jobs = model.jobs(&repo.id);
    let rows = stack_rows(&repo.trunk, branches);
    let mut lines = vec![row(
        vec![plain(repo.trunk.clone()), styled("  trunk", theme::dim())],
        false,
        focused,
    )];
    if rows.is_empty() {
        lines.push(note("no branches yet (sync the repo with s)"));
    }
    let selected = ui
        .branch
        .as_ref()
        .and_then(|name| rows.iter().position(|r| &r.branch.name == name));
    let name_width = rows
        .iter()
        .map(|r| prefix(r).chars().count() + r.branch.name.chars().count())
        .max()
        .unwrap_or(0);
    for i in window(&mut ui.scroll.stack, selected, rows.len(), height) {
        let Some(stack_row) = rows.get(i) else {
            continue;
        };
        let mut spans = vec![
            styled(prefix(stack_row), theme::dim()),
            plain(fit(
                &stack_row.branch.name,
                name_width - prefix(stack_row).chars().count(),
            )),
        ];
        spans.extend(flags(stack_row.branch, jobs));
        lines.push(row(spans, Some(i) == selected, focused));
    }
    lines_in(frame, area, block, lines);
}

/// The tree drawing in front of a branch name: a vertical line for each ancestor that has
/// siblings below it, then the branch's own connector.
pub fn prefix(row: &StackRow) -> String {
    let mut text: String = row
        .ancestors_last
        .iter()
        .map(|last| if *last { "   " } else { "│  " })
        .collect();
    text.push_str(if row.last { "└─ " } else { "├─ " });
    text
}

/// The job working on a branch: the one the server marked active, else a queued or running
/// job that targets it (the REST answer shows it before the server marks the branch).
fn active_job<'a>(branch: &Branch, jobs: Option<&'a JobsView>) -> Option<&'a Job> {
    let jobs = jobs?;
    branch
        .active_job_id
        .as_deref()
        .and_then(|id| jobs.get(id))
        .filter(|job| !job.status.is_terminal())
        .or_else(|| {
            let mut mine = jobs
                .unfinished()
                .filter(|job| job.branch.as_deref() == Some(branch.name.as_str()));
            // A running job first; otherwise the oldest queued one, which runs next.
            let (running, queued): (Vec<&Job>, Vec<&Job>) = mine
                .by_ref()
                .partition(|job| job.status == JobStatus::Running);
            running.first().or(queued.last()).copied()
        })
}

fn flags(branch: &Branch, jobs: Option<&JobsView>) -> Vec<Span<'static>> {
    let mut spans = vec![styled(
        format!("  ↑{} ↓{}", branch.ahead, branch.behind),
        theme::dim(),
    )];
    if !branch.tracked {
        spans.push(plain("  "));
        spans.push(theme::UNTRACKED.span());
    }
    if branch.needs_restack {
        spans.push(plain("  "));
        spans.push(theme::NEEDS_RESTACK.span());
    }
    if branch.conflicts_with_trunk || branch.conflict.is_some() {
        spans.push(plain("  "));
        spans.push(theme::CONFLICT.span());
    }
    match active_job(branch, jobs) {
        Some(job) => {
            spans.push(plain("  "));
            spans.push(theme::job_status(job.status).span());
            if let Some(progress) = job.progress.as_ref().filter(|_| !job.status.is_terminal()) {
                spans.push(plain(format!(" {}/{}", progress.step, progress.total)));
            }
        }
        None => {
            if let Some(id) = branch.active_job_id.as_deref() {
                spans.push(plain("  "));
                spans.push(theme::job_status(JobStatus::Running).symbol_span());
                spans.push(plain(format!(" job {}", short_id(id))));
            }
        }
    }
    spans
}
