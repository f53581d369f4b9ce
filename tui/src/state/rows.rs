//! The rows of each kind of topic, decoded into the shared wire types.
//!
//! A snapshot carries bare rows while a diff names each row's key, so the key rule lives here,
//! next to the decoding: repo, job and task rows are keyed by id, branches by name, and a job's
//! progress lines by `{job_id}/lines/{seq:08}` (zero-padded, so key order is report order).
//! A row that does not decode is skipped and counted, never a crash.

use std::collections::BTreeMap;

use gantry_types::{Branch, Job, ProgressLine, Repo, Task, Topic};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::jobs::JobsView;

/// One job and its progress lines (topic `job/{id}`).
#[derive(Clone, Debug, Default)]
pub struct JobDetail {
    pub job: Option<Job>,
    /// Keyed by the line's row key, so iteration is in report order.
    pub lines: BTreeMap<String, ProgressLine>,
}

/// The data of one topic.
#[derive(Clone, Debug)]
pub enum TopicData {
    Repos(BTreeMap<String, Repo>),
    Jobs(JobsView),
    Branches(BTreeMap<String, Branch>),
    Tasks(BTreeMap<String, Task>),
    /// Boxed: one job row with its lines is much larger than the other variants.
    Job(Box<JobDetail>),
}

/// The key a progress line has on its job's topic.
pub fn line_key(job_id: &str, seq: u32) -> String {
    format!("{job_id}/lines/{seq:08}")
}

fn decode<T: DeserializeOwned>(row: Value) -> Option<T> {
    serde_json::from_value(row).ok()
}

fn insert<T: DeserializeOwned>(rows: &mut BTreeMap<String, T>, key: String, row: Value) -> bool {
    match decode::<T>(row) {
        Some(value) => {
            rows.insert(key, value);
            true
        }
        None => false,
    }
}

impl TopicData {
    /// Empty data of the right kind for a topic.
    pub fn for_topic(topic: &Topic) -> TopicData {
        match topic {
            Topic::Repos => TopicData::Repos(BTreeMap::new()),
            Topic::RepoJobs(_) => TopicData::Jobs(JobsView::default()),
            Topic::RepoBranches(_) => TopicData::Branches(BTreeMap::new()),
            Topic::RepoTasks(_) => TopicData::Tasks(BTreeMap::new()),
            Topic::Job(_) => TopicData::Job(Box::default()),
        }
    }

    pub fn clear(&mut self) {
        match self {
            TopicData::Repos(rows) => rows.clear(),
            TopicData::Jobs(jobs) => jobs.clear(),
            TopicData::Branches(rows) => rows.clear(),
            TopicData::Tasks(rows) => rows.clear(),
            TopicData::Job(detail) => **detail = JobDetail::default(),
        }
    }

    /// Inserts a snapshot row, deriving its key. Returns false when the row did not decode.
    pub fn insert_snapshot_row(&mut self, row: Value) -> bool {
        let key = match self {
            TopicData::Repos(_) | TopicData::Jobs(_) | TopicData::Tasks(_) => {
                row.get("id").and_then(Value::as_str).map(str::to_owned)
            }
            TopicData::Branches(_) => row.get("name").and_then(Value::as_str).map(str::to_owned),
            TopicData::Job(_) => match row.get("seq").and_then(Value::as_u64) {
                Some(seq) => row
                    .get("job_id")
                    .and_then(Value::as_str)
                    .zip(u32::try_from(seq).ok())
                    .map(|(job_id, seq)| line_key(job_id, seq)),
                None => row.get("id").and_then(Value::as_str).map(str::to_owned),
            },
        };
        match key {
            Some(key) => self.upsert(key, row),
            None => false,
        }
    }

    /// Applies an upsert under its key. Returns false when the row did not decode.
    pub fn upsert(&mut self, key: String, row: Value) -> bool {
        match self {
            TopicData::Repos(rows) => insert(rows, key, row),
            TopicData::Branches(rows) => insert(rows, key, row),
            TopicData::Tasks(rows) => insert(rows, key, row),
            TopicData::Jobs(jobs) => match decode::<Job>(row) {
                Some(job) => {
                    jobs.upsert(job);
                    true
                }
                None => false,
            },
            TopicData::Job(detail) if key.contains("/lines/") => {
                insert(&mut detail.lines, key, row)
            }
            TopicData::Job(detail) => match decode::<Job>(row) {
                Some(job) => {
                    detail.job = Some(job);
                    true
                }
                None => false,
            },
        }
    }

    pub fn remove(&mut self, key: &str) {
        match self {
            TopicData::Repos(rows) => {
                rows.remove(key);
            }
            TopicData::Jobs(jobs) => jobs.remove(key),
            TopicData::Branches(rows) => {
                rows.remove(key);
            }
            TopicData::Tasks(rows) => {
                rows.remove(key);
            }
            TopicData::Job(detail) => {
                if key.contains("/lines/") {
                    detail.lines.remove(key);
                } else if detail.job.as_ref().is_some_and(|j| j.id == key) {
                    detail.job = None;
                }
            }
        }
    }
}
