//! The view model: everything the TUI knows about the server, as plain data.
//!
//! It is pure (no I/O, no clock, no channels) so that what the screen shows can be reasoned about
//! and unit-tested from messages alone. The network feeds it [`ServerMessage`]s and REST answers;
//! the renderer reads it. Each subscribed topic has its own sync state ([`sync`]) and rows
//! ([`rows`]); the reducer ([`reducer`]) applies messages to them.

pub mod jobs;
pub mod reducer;
pub mod rows;
pub mod stack;
pub mod sync;

use std::collections::BTreeMap;

use gantry_types::ws::Cursor;
use gantry_types::{Branch, Repo, Task, Topic};

pub use jobs::JobsView;
pub use reducer::{Applied, Resubscribe};
pub use rows::{JobDetail, TopicData};
pub use sync::{Phase, TopicSync, Verdict};

/// One tracked topic: its sync state and its rows.
#[derive(Clone, Debug)]
pub struct TopicEntry {
    pub sync: TopicSync,
    pub data: TopicData,
}

/// All the tracked topics, by wire name.
#[derive(Clone, Debug, Default)]
pub struct ViewModel {
    topics: BTreeMap<String, TopicEntry>,
    /// Rows that did not decode (a newer server, most likely). Shown, never fatal.
    skipped_rows: u64,
}

impl ViewModel {
    pub fn new() -> ViewModel {
        ViewModel::default()
    }

    /// Starts tracking a topic (awaiting its first answer). Tracking it again keeps its data.
    pub fn track(&mut self, topic: &Topic) {
        self.topics
            .entry(topic.to_string())
            .or_insert_with(|| TopicEntry {
                sync: TopicSync::default(),
                data: TopicData::for_topic(topic),
            });
    }

    /// Forgets a topic and its rows.
    pub fn untrack(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    pub fn is_tracked(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// Wire names of the tracked topics.
    pub fn tracked(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(String::as_str)
    }

    pub fn entry(&self, topic: &str) -> Option<&TopicEntry> {
        self.topics.get(topic)
    }

    /// A subscribe for this topic was sent: ignore diffs until it is answered.
    pub fn awaiting(&mut self, topic: &str) {
        if let Some(entry) = self.topics.get_mut(topic) {
            entry.sync.awaiting();
        }
    }

    /// The cursor to resume a topic from.
    pub fn cursor(&self, topic: &str) -> Option<Cursor> {
        self.topics.get(topic)?.sync.cursor().cloned()
    }

    /// Whether the topic has had its first snapshot (so an empty list really is empty).
    pub fn is_loaded(&self, topic: &str) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|e| e.sync.cursor().is_some())
    }

    pub fn skipped_rows(&self) -> u64 {
        self.skipped_rows
    }

    /// Repos by name.
    pub fn repos(&self) -> Vec<&Repo> {
        let mut repos: Vec<&Repo> = match self.data("repos") {
            Some(TopicData::Repos(rows)) => rows.values().collect(),
            _ => Vec::new(),
        };
        repos.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        repos
    }

    pub fn repo(&self, id: &str) -> Option<&Repo> {
        match self.data("repos") {
            Some(TopicData::Repos(rows)) => rows.get(id),
            _ => None,
        }
    }

    pub fn jobs(&self, repo_id: &str) -> Option<&JobsView> {
        match self.data(&Topic::RepoJobs(repo_id.to_owned()).to_string()) {
            Some(TopicData::Jobs(jobs)) => Some(jobs),
            _ => None,
        }
    }

    /// Branches by name.
    pub fn branches(&self, repo_id: &str) -> Option<&BTreeMap<String, Branch>> {
        match self.data(&Topic::RepoBranches(repo_id.to_owned()).to_string()) {
            Some(TopicData::Branches(rows)) => Some(rows),
            _ => None,
        }
    }

    /// Tasks, newest first.
    pub fn tasks(&self, repo_id: &str) -> Vec<&Task> {
        let mut tasks: Vec<&Task> =
            match self.data(&Topic::RepoTasks(repo_id.to_owned()).to_string()) {
                Some(TopicData::Tasks(rows)) => rows.values().collect(),
                _ => Vec::new(),
            };
        tasks.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        tasks
    }

    pub fn job_detail(&self, job_id: &str) -> Option<&JobDetail> {
        match self.data(&Topic::Job(job_id.to_owned()).to_string()) {
            Some(TopicData::Job(detail)) => Some(detail),
            _ => None,
        }
    }

    fn data(&self, topic: &str) -> Option<&TopicData> {
        self.topics.get(topic).map(|e| &e.data)
    }
}

#[cfg(test)]
mod tests;
