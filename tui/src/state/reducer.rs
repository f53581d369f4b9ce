//! The reducer: applies server messages and REST answers to the [`ViewModel`].
//!
//! Snapshot replaces a topic's rows, `resumed` keeps them and restarts the chain, a diff is
//! checked against the chain ([`super::sync`]) and applied op by op. A gap is not handled here
//! (that needs the network): the reducer answers "resubscribe this topic since that cursor" and
//! the app sends it. Messages for topics that are not tracked are ignored.

use gantry_types::ws::{Cursor, Op, ServerMessage};
use gantry_types::{Job, Task, Topic};

use super::ViewModel;
use super::rows::TopicData;
use super::sync::Verdict;

/// Ask the server for a topic again, since the last position applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resubscribe {
    pub topic: String,
    pub since: Cursor,
}

/// What applying one message did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Whether anything visible may have changed.
    pub changed: bool,
    /// A gap was detected: resubscribe.
    pub resubscribe: Option<Resubscribe>,
}

impl Applied {
    fn changed() -> Applied {
        Applied {
            changed: true,
            resubscribe: None,
        }
    }
}

impl ViewModel {
    /// Applies one server message.
    pub fn apply(&mut self, message: ServerMessage) -> Applied {
        match message {
            ServerMessage::Snapshot {
                topic,
                epoch,
                position,
                rows,
                ..
            } => {
                let Some(entry) = self.topics.get_mut(&topic) else {
                    return Applied::default();
                };
                entry.data.clear();
                let mut skipped = 0;
                for row in rows {
                    if !entry.data.insert_snapshot_row(row) {
                        skipped += 1;
                    }
                }
                entry.sync.restart(&epoch, position);
                self.skipped_rows += skipped;
                Applied::changed()
            }
            ServerMessage::Resumed {
                topic,
                epoch,
                position,
                ..
            } => {
                if let Some(entry) = self.topics.get_mut(&topic) {
                    entry.sync.restart(&epoch, position);
                }
                Applied::default()
            }
            ServerMessage::Diff {
                topic,
                epoch,
                position,
                prev,
                ops,
                ..
            } => {
                let Some(entry) = self.topics.get_mut(&topic) else {
                    return Applied::default();
                };
                match entry.sync.check(&epoch, position, prev) {
                    Verdict::Ignore => Applied::default(),
                    Verdict::Gap(since) => Applied {
                        changed: false,
                        resubscribe: Some(Resubscribe { topic, since }),
                    },
                    Verdict::Apply => {
                        let mut skipped = 0;
                        for op in ops {
                            match op {
                                Op::Upsert { key, row } => {
                                    if !entry.data.upsert(key, row) {
                                        skipped += 1;
                                    }
                                }
                                Op::Remove { key } => entry.data.remove(&key),
                            }
                        }
                        self.skipped_rows += skipped;
                        Applied::changed()
                    }
                }
            }
            ServerMessage::Unsubscribed { .. }
            | ServerMessage::Error { .. }
            | ServerMessage::Pong { .. } => Applied::default(),
        }
    }

    /// A job as a REST answer carried it (202 of an action or a cancel): shown at once, unless
    /// the pushed diffs already brought a newer state of it.
    pub fn accept_job(&mut self, job: Job) -> bool {
        let mut changed = false;
        let detail_topic = Topic::Job(job.id.clone()).to_string();
        if let Some(TopicData::Job(detail)) =
            self.topics.get_mut(&detail_topic).map(|e| &mut e.data)
            && detail
                .job
                .as_ref()
                .is_none_or(|old| old.updated_at <= job.updated_at)
        {
            detail.job = Some(job.clone());
            changed = true;
        }
        let jobs_topic = Topic::RepoJobs(job.repo_id.clone()).to_string();
        if let Some(TopicData::Jobs(jobs)) = self.topics.get_mut(&jobs_topic).map(|e| &mut e.data) {
            changed |= jobs.upsert_if_newer(job);
        }
        changed
    }

    /// A task as a REST answer carried it (201 of a create).
    pub fn accept_task(&mut self, task: Task) -> bool {
        let topic = Topic::RepoTasks(task.repo_id.clone()).to_string();
        match self.topics.get_mut(&topic).map(|e| &mut e.data) {
            Some(TopicData::Tasks(rows)) => {
                if rows
                    .get(&task.id)
                    .is_some_and(|old| old.updated_at > task.updated_at)
                {
                    return false;
                }
                rows.insert(task.id.clone(), task);
                true
            }
            _ => false,
        }
    }
}
