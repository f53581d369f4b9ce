//! The change log's write side: a transaction collects its row changes per topic in a
//! [`ChangeSet`], and the backend appends one change-log row per touched topic before it commits.
//!
//! Topic keys are internal names. They equal the wire names except for the repo list, which is
//! kept per organisation (`org/{id}/repos`) so that no organisation ever sees another's repos; the
//! wire name of that topic is plain `repos`.

use std::collections::BTreeMap;

use gantry_types::ws::Op;
use gantry_types::{Branch, Job, ProgressLine, Repo, Task, Timestamp};
use serde::Serialize;
use serde_json::Value;

/// Builds internal topic keys.
pub struct TopicKey;

impl TopicKey {
    pub fn org_repos(org_id: &str) -> String {
        format!("org/{org_id}/repos")
    }
    pub fn repo_jobs(repo_id: &str) -> String {
        format!("repo/{repo_id}/jobs")
    }
    pub fn repo_branches(repo_id: &str) -> String {
        format!("repo/{repo_id}/branches")
    }
    pub fn repo_tasks(repo_id: &str) -> String {
        format!("repo/{repo_id}/tasks")
    }
    pub fn job(job_id: &str) -> String {
        format!("job/{job_id}")
    }

    /// The topic name written in frames for an internal key.
    pub fn wire_name(key: &str) -> String {
        if key.starts_with("org/") && key.ends_with("/repos") {
            "repos".to_owned()
        } else {
            key.to_owned()
        }
    }

    /// The row key of a progress line on `job/{id}`; zero-padded so keys sort in report order.
    pub fn progress_line(job_id: &str, seq: u32) -> String {
        format!("{job_id}/lines/{seq:08}")
    }
}

/// A committed change-log row as read back from the database.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredChange {
    pub position: i64,
    pub topic: String,
    pub committed_at: Timestamp,
    pub ops: Vec<Op>,
}

/// The row changes of one transaction, grouped by topic.
#[derive(Debug, Default)]
pub struct ChangeSet {
    topics: BTreeMap<String, Vec<Op>>,
}

fn to_value(row: &impl Serialize) -> Value {
    // Serialising our own plain structs to a Value cannot fail; Null is a safe fallback.
    serde_json::to_value(row).unwrap_or(Value::Null)
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// (topic, ops as JSON) in a stable order.
    pub fn into_rows(self) -> impl Iterator<Item = (String, String)> {
        self.topics.into_iter().map(|(topic, ops)| {
            let ops = serde_json::to_string(&ops).unwrap_or_else(|_| "[]".to_owned());
            (topic, ops)
        })
    }

    fn push(&mut self, topic: String, op: Op) {
        let ops = self.topics.entry(topic).or_default();
        // A later write to the same row in one transaction supersedes the earlier one.
        ops.retain(|existing| existing.key() != op.key());
        ops.push(op);
    }

    pub fn repo(&mut self, org_id: &str, repo: &Repo) {
        self.push(
            TopicKey::org_repos(org_id),
            Op::Upsert {
                key: repo.id.clone(),
                row: to_value(repo),
            },
        );
    }

    /// A job row appears on its repo's job list and on its own topic.
    pub fn job(&mut self, job: &Job) {
        let row = to_value(job);
        self.push(
            TopicKey::repo_jobs(&job.repo_id),
            Op::Upsert {
                key: job.id.clone(),
                row: row.clone(),
            },
        );
        self.push(
            TopicKey::job(&job.id),
            Op::Upsert {
                key: job.id.clone(),
                row,
            },
        );
    }

    pub fn job_removed(&mut self, repo_id: &str, job_id: &str) {
        self.push(
            TopicKey::repo_jobs(repo_id),
            Op::Remove {
                key: job_id.to_owned(),
            },
        );
        self.push(
            TopicKey::job(job_id),
            Op::Remove {
                key: job_id.to_owned(),
            },
        );
    }

    pub fn progress_line(&mut self, line: &ProgressLine) {
        self.push(
            TopicKey::job(&line.job_id),
            Op::Upsert {
                key: TopicKey::progress_line(&line.job_id, line.seq),
                row: to_value(line),
            },
        );
    }

    pub fn branch(&mut self, branch: &Branch) {
        self.push(
            TopicKey::repo_branches(&branch.repo_id),
            Op::Upsert {
                key: branch.name.clone(),
                row: to_value(branch),
            },
        );
    }

    pub fn branch_removed(&mut self, repo_id: &str, name: &str) {
        self.push(
            TopicKey::repo_branches(repo_id),
            Op::Remove {
                key: name.to_owned(),
            },
        );
    }

    pub fn task(&mut self, task: &Task) {
        self.push(
            TopicKey::repo_tasks(&task.repo_id),
            Op::Upsert {
                key: task.id.clone(),
                row: to_value(task),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_list_topics_are_per_org_inside_and_plain_on_the_wire() {
        let key = TopicKey::org_repos("o1");
        assert_eq!(key, "org/o1/repos");
        assert_eq!(TopicKey::wire_name(&key), "repos");
        assert_eq!(TopicKey::wire_name("repo/r/jobs"), "repo/r/jobs");
    }

    #[test]
    fn a_later_write_to_a_row_supersedes_the_earlier_one_in_a_transaction() {
        let mut set = ChangeSet::default();
        set.branch_removed("r", "a");
        set.branch_removed("r", "b");
        set.branch_removed("r", "a");
        let rows: Vec<_> = set.into_rows().collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].1,
            r#"[{"op":"remove","key":"b"},{"op":"remove","key":"a"}]"#
        );
    }
}
