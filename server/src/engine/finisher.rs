//! Group commit of job ends. Workers hand how their job ended to one task, which writes every
//! end waiting at that moment in one transaction. A lone end is written at once; under load many
//! ends share a commit, one change-log append and one projector wake-up, which is what lets
//! short jobs finish faster than the database commits.

use gantry_types::Job;
use tokio::sync::{mpsc, oneshot};

use crate::storage::{FinishJob, StorageError, StorageResult, Store};

/// The most job ends one transaction writes.
const FINISH_BATCH: usize = 64;

struct Pending {
    end: FinishJob,
    answer: oneshot::Sender<StorageResult<Job>>,
}

pub(super) struct Finisher {
    queue: mpsc::UnboundedSender<Pending>,
    store: Store,
}

impl Finisher {
    /// Starts the writer task; it ends when the finisher is dropped. Needs a Tokio runtime.
    pub(super) fn start(store: Store) -> Finisher {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store.clone(), pending));
        Finisher { queue, store }
    }

    /// Records a job's end (fenced like [`Store::finish_job`]) and answers once it committed.
    pub(super) async fn finish(&self, end: FinishJob) -> StorageResult<Job> {
        let (answer, answered) = oneshot::channel();
        if let Err(mpsc::error::SendError(pending)) = self.queue.send(Pending { end, answer }) {
            // The writer task is gone (the runtime is shutting down): write it here.
            let end = pending.end;
            return self
                .store
                .finish_job(&end.job_id, end.attempt, end.end, end.effects)
                .await;
        }
        match answered.await {
            Ok(result) => result,
            // Dropped unanswered only when the writer task died under it; the lease expiry
            // requeues such a job.
            Err(_) => Err(StorageError::Database(sqlx::Error::WorkerCrashed)),
        }
    }
}

async fn write_batches(store: Store, mut pending: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = pending.recv().await {
        let mut batch = vec![first];
        // No waiting for company: whatever queued while the last batch committed goes now.
        while batch.len() < FINISH_BATCH {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (ends, answers): (Vec<FinishJob>, Vec<_>) =
            batch.into_iter().map(|p| (p.end, p.answer)).unzip();
        let results = store.finish_jobs(&ends).await;
        for (answer, result) in answers.into_iter().zip(results) {
            // A worker that stopped waiting (its task was aborted) needs no answer.
            let _ = answer.send(result);
        }
    }
}
