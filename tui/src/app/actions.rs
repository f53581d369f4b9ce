//! Keys to state changes and requests: moving selections, opening overlays, and the repo
//! actions, each of which becomes one REST request for the network task.

use crossterm::event::{KeyCode, KeyEvent};
use gantry_types::{JobKind, JobStatus};

use super::App;
use super::keys::{Action, action_for, is_interrupt};
use super::ui_state::{Focus, Overlay, Picker, Prompt, step};
use crate::net::{NetCommand, RestRequest};
use crate::state::stack::{stack_rows, valid_parents};

/// Longest task title accepted by the prompt.
const MAX_TITLE: usize = 200;

impl App {
    pub(super) fn on_key(&mut self, key: KeyEvent) {
        if is_interrupt(&key) {
            self.quit = true;
            return;
        }
        match self.ui.overlay.take() {
            None => {
                if let Some(action) = action_for(&key) {
                    self.on_action(action);
                }
            }
            Some(Overlay::Help) => {}
            Some(Overlay::Reparent(picker)) => self.on_picker_key(key, picker),
            Some(Overlay::TaskTitle(prompt)) => self.on_prompt_key(key, prompt),
            Some(Overlay::JobDetail { job_id, scroll }) => self.on_detail_key(key, job_id, scroll),
        }
    }

    fn on_action(&mut self, action: Action) {
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.ui.overlay = Some(Overlay::Help),
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(self.ui.page.max(1) as isize)),
            Action::PageDown => self.move_selection(self.ui.page.max(1) as isize),
            Action::Top => self.move_selection(isize::MIN / 2),
            Action::Bottom => self.move_selection(isize::MAX / 2),
            Action::NextPane => self.ui.focus = self.ui.focus.next(),
            Action::PrevPane => self.ui.focus = self.ui.focus.prev(),
            Action::Sync => self.repo_action(JobKind::SyncRepo),
            Action::RestackRepo => self.repo_action(JobKind::RestackRepo),
            Action::RestackSubtree => self.branch_action(JobKind::RestackSubtree),
            Action::Rebase => self.branch_action(JobKind::RebaseBranch),
            Action::Reparent => self.open_reparent(),
            Action::CreateTask => self.open_task_prompt(),
            Action::Cancel => self.cancel_selected(),
            Action::Open => self.open(),
        }
    }

    fn move_selection(&mut self, delta: isize) {
        let Some(repo) = self.ui.repo.clone() else {
            return;
        };
        match self.ui.focus {
            Focus::Repos => {
                let ids: Vec<String> = self.model.repos().iter().map(|r| r.id.clone()).collect();
                let index = ids.iter().position(|id| *id == repo);
                if let Some(next) = step(index, delta, ids.len()).and_then(|i| ids.get(i))
                    && *next != repo
                {
                    self.ui.repo = Some(next.clone());
                    self.ui.branch = None;
                    self.ui.job = None;
                    self.ui.task = None;
                    self.ui.scroll = Default::default();
                }
            }
            Focus::Stack => {
                let names = self.stack_names(&repo);
                let index = self
                    .ui
                    .branch
                    .as_ref()
                    .and_then(|b| names.iter().position(|n| n == b));
                if let Some(next) = step(index, delta, names.len()).and_then(|i| names.get(i)) {
                    self.ui.branch = Some(next.clone());
                }
            }
            Focus::Jobs => {
                let Some(jobs) = self.model.jobs(&repo) else {
                    return;
                };
                let index = self.ui.job.as_deref().and_then(|id| jobs.index_of(id));
                if let Some(job) = step(index, delta, jobs.len()).and_then(|i| jobs.nth(i)) {
                    self.ui.job = Some(job.id.clone());
                }
            }
            Focus::Tasks => {
                let tasks = self.model.tasks(&repo);
                let index = self
                    .ui
                    .task
                    .as_ref()
                    .and_then(|id| tasks.iter().position(|t| t.id == *id));
                if let Some(task) = step(index, delta, tasks.len()).and_then(|i| tasks.get(i)) {
                    self.ui.task = Some(task.id.clone());
                }
            }
        }
    }

    /// Branch names in tree order.
    fn stack_names(&self, repo: &str) -> Vec<String> {
        let trunk = self
            .model
            .repo(repo)
            .map(|r| r.trunk.as_str())
            .unwrap_or("");
        self.model
            .branches(repo)
            .map(|branches| {
                stack_rows(trunk, branches)
                    .into_iter()
                    .map(|row| row.branch.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn request(&mut self, request: RestRequest) {
        self.set_flash(format!("{}: sending…", request.describe()), false);
        self.commands.push(NetCommand::Rest(request));
    }

    fn repo_action(&mut self, kind: JobKind) {
        let Some(repo_id) = self.ui.repo.clone() else {
            self.set_flash("no repo selected", true);
            return;
        };
        self.request(RestRequest::Action {
            repo_id,
            kind,
            branch: None,
            parent: None,
        });
    }

    /// The selected repo and branch, or a message saying what is missing.
    fn selected_branch(&mut self) -> Option<(String, String)> {
        let selected = self.ui.repo.clone().zip(self.ui.branch.clone());
        if selected.is_none() {
            self.set_flash("select a branch in the stack first", true);
        }
        selected
    }

    fn branch_action(&mut self, kind: JobKind) {
        let Some((repo_id, branch)) = self.selected_branch() else {
            return;
        };
        self.request(RestRequest::Action {
            repo_id,
            kind,
            branch: Some(branch),
            parent: None,
        });
    }

    fn open_reparent(&mut self) {
        let Some((repo_id, branch)) = self.selected_branch() else {
            return;
        };
        let trunk = self.model.repo(&repo_id).map(|r| r.trunk.clone());
        let (Some(trunk), Some(branches)) = (trunk, self.model.branches(&repo_id)) else {
            self.set_flash("the stack is still loading", true);
            return;
        };
        let current_parent = branches.get(&branch).and_then(|b| b.parent.clone());
        let options = valid_parents(&trunk, &branch, branches);
        let selected = current_parent
            .as_ref()
            .and_then(|p| options.iter().position(|o| o == p))
            .unwrap_or(0);
        self.ui.overlay = Some(Overlay::Reparent(Picker {
            branch,
            current_parent,
            options,
            selected,
        }));
    }

    fn on_picker_key(&mut self, key: KeyEvent, mut picker: Picker) {
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') => return,
            KeyCode::Up | KeyCode::Char('k') => {
                picker.selected = step(Some(picker.selected), -1, picker.options.len()).unwrap_or(0)
            }
            KeyCode::Down | KeyCode::Char('j') => {
                picker.selected = step(Some(picker.selected), 1, picker.options.len()).unwrap_or(0)
            }
            KeyCode::Enter => {
                if let (Some(repo_id), Some(parent)) =
                    (self.ui.repo.clone(), picker.options.get(picker.selected))
                {
                    self.request(RestRequest::Action {
                        repo_id,
                        kind: JobKind::ReparentBranch,
                        branch: Some(picker.branch.clone()),
                        parent: Some(parent.clone()),
                    });
                }
                return;
            }
            _ => {}
        }
        self.ui.overlay = Some(Overlay::Reparent(picker));
    }

    fn open_task_prompt(&mut self) {
        let Some((_, branch)) = self.selected_branch() else {
            return;
        };
        self.ui.overlay = Some(Overlay::TaskTitle(Prompt {
            branch,
            text: String::new(),
        }));
    }

    fn on_prompt_key(&mut self, key: KeyEvent, mut prompt: Prompt) {
        match key.code {
            KeyCode::Esc => return,
            KeyCode::Enter => {
                let title = prompt.text.trim().to_owned();
                if title.is_empty() {
                    self.set_flash("a task needs a title", true);
                } else if let Some(repo_id) = self.ui.repo.clone() {
                    self.request(RestRequest::CreateTask {
                        repo_id,
                        title,
                        branch: prompt.branch,
                    });
                    return;
                }
            }
            KeyCode::Backspace => {
                prompt.text.pop();
            }
            KeyCode::Char(c) if !c.is_control() && prompt.text.chars().count() < MAX_TITLE => {
                prompt.text.push(c);
            }
            _ => {}
        }
        self.ui.overlay = Some(Overlay::TaskTitle(prompt));
    }

    /// The job that `c` and `enter` mean: on the stack, the selected branch's current job;
    /// elsewhere, the selected job.
    fn target_job(&self) -> Option<String> {
        let repo = self.ui.repo.as_deref()?;
        match self.ui.focus {
            Focus::Stack => {
                let branch = self.ui.branch.as_deref()?;
                let jobs = self.model.jobs(repo);
                self.model
                    .branches(repo)
                    .and_then(|b| b.get(branch))
                    .and_then(|b| b.active_job_id.clone())
                    .or_else(|| {
                        jobs?
                            .unfinished()
                            .find(|j| j.branch.as_deref() == Some(branch))
                            .map(|j| j.id.clone())
                    })
                    .or_else(|| {
                        jobs?
                            .newest_first()
                            .find(|j| j.branch.as_deref() == Some(branch))
                            .map(|j| j.id.clone())
                    })
            }
            Focus::Tasks => {
                let task = self.ui.task.as_deref()?;
                self.model
                    .tasks(repo)
                    .into_iter()
                    .find(|t| t.id == task)
                    .and_then(|t| t.attach_job_id.clone())
            }
            Focus::Jobs | Focus::Repos => self.ui.job.clone(),
        }
    }

    fn cancel_selected(&mut self) {
        match self.target_job() {
            Some(job_id) => self.cancel(job_id),
            None => self.set_flash("select a job to cancel", true),
        }
    }

    fn cancel(&mut self, job_id: String) {
        let repo = self.ui.repo.as_deref().unwrap_or_default();
        let finished = self
            .model
            .jobs(repo)
            .and_then(|jobs| jobs.get(&job_id))
            .map(|j| j.status)
            .filter(|s| s.is_terminal());
        match finished {
            Some(status) => self.set_flash(format!("that job is already {status}"), true),
            None => self.request(RestRequest::Cancel { job_id }),
        }
    }

    fn open(&mut self) {
        if self.ui.focus == Focus::Repos {
            self.ui.focus = Focus::Stack;
            return;
        }
        match self.target_job() {
            Some(job_id) => {
                self.ui.overlay = Some(Overlay::JobDetail {
                    job_id,
                    scroll: None,
                })
            }
            None => self.set_flash("no job to show here", true),
        }
    }

    fn on_detail_key(&mut self, key: KeyEvent, job_id: String, scroll: Option<usize>) {
        let lines = self
            .model
            .job_detail(&job_id)
            .map(|d| d.lines.len())
            .unwrap_or(0);
        let last = lines.saturating_sub(1);
        let scroll = match key.code {
            KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') => return,
            KeyCode::Char('c') => {
                let running = self
                    .model
                    .job_detail(&job_id)
                    .and_then(|d| d.job.as_ref())
                    .is_none_or(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running));
                if running {
                    self.request(RestRequest::Cancel {
                        job_id: job_id.clone(),
                    });
                } else {
                    self.set_flash("that job has already finished", true);
                }
                scroll
            }
            KeyCode::Up | KeyCode::Char('k') => Some(scroll.unwrap_or(last).saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => match scroll {
                Some(s) if s + 1 < last => Some(s + 1),
                _ => None,
            },
            KeyCode::Home | KeyCode::Char('g') => Some(0),
            KeyCode::End | KeyCode::Char('G') => None,
            _ => scroll,
        };
        self.ui.overlay = Some(Overlay::JobDetail { job_id, scroll });
    }
}
