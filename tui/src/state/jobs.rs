//! A repo's jobs, newest first, indexed so that a thousand of them stay cheap to update, scroll
//! and count: an update touches one entry of an ordered index instead of re-sorting the list, and
//! the few unfinished jobs are indexed apart for the branch badges.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use gantry_types::{Job, JobStatus, Timestamp};

type OrderKey = (Reverse<Timestamp>, Reverse<String>);

#[derive(Clone, Debug, Default)]
pub struct JobsView {
    by_id: HashMap<String, Job>,
    /// Newest first; the id breaks ties so the order is total and stable.
    order: BTreeSet<OrderKey>,
    /// Jobs that are queued or running.
    unfinished: BTreeSet<OrderKey>,
}

fn order_key(job: &Job) -> OrderKey {
    (Reverse(job.created_at), Reverse(job.id.clone()))
}

impl JobsView {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Job> {
        self.by_id.get(id)
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
        self.order.clear();
        self.unfinished.clear();
    }

    pub fn upsert(&mut self, job: Job) {
        if let Some(old) = self.by_id.get(&job.id) {
            let key = order_key(old);
            self.order.remove(&key);
            self.unfinished.remove(&key);
        }
        let key = order_key(&job);
        if !job.status.is_terminal() {
            self.unfinished.insert(key.clone());
        }
        self.order.insert(key);
        self.by_id.insert(job.id.clone(), job);
    }

    /// Applies a job row unless the view already holds a newer state of it (a REST answer can
    /// arrive after the pushed diffs that followed it).
    pub fn upsert_if_newer(&mut self, job: Job) -> bool {
        if let Some(old) = self.by_id.get(&job.id)
            && old.updated_at > job.updated_at
        {
            return false;
        }
        self.upsert(job);
        true
    }

    pub fn remove(&mut self, id: &str) {
        if let Some(old) = self.by_id.remove(id) {
            let key = order_key(&old);
            self.order.remove(&key);
            self.unfinished.remove(&key);
        }
    }

    /// Jobs newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Job> {
        self.order
            .iter()
            .filter_map(|(_, Reverse(id))| self.by_id.get(id))
    }

    /// The job at `index` in newest-first order.
    pub fn nth(&self, index: usize) -> Option<&Job> {
        self.newest_first().nth(index)
    }

    /// The index of a job in newest-first order.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        let job = self.by_id.get(id)?;
        Some(self.order.range(..order_key(job)).count())
    }

    /// Queued and running jobs, newest first.
    pub fn unfinished(&self) -> impl Iterator<Item = &Job> {
        self.unfinished
            .iter()
            .filter_map(|(_, Reverse(id))| self.by_id.get(id))
    }

    /// How many jobs have this status.
    pub fn count(&self, status: JobStatus) -> usize {
        if status.is_terminal() {
            self.by_id.values().filter(|j| j.status == status).count()
        } else {
            self.unfinished().filter(|j| j.status == status).count()
        }
    }
}
