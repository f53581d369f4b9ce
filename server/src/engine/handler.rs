//! The interface between the engine and the work a job does.
//!
//! The engine owns the job's life (claim, lease, retries, cancel); a [`JobHandler`] owns only the
//! work. It gets a [`JobContext`] and answers with the effects to commit or a [`JobError`] that
//! says whether trying again could help.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use gantry_types::{Job, JobKind, Progress, Repo};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::storage::{JobEffects, Store};

/// Why a job's work did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Trying again later may succeed (network, lock contention). Retried with backoff while
    /// attempts remain.
    #[error("{0}")]
    Transient(String),
    /// Trying again will not help. The job ends `error`, still committing `effects` (for example
    /// the branch projection after a conflict, or the conflicting files in the result).
    #[error("{message}")]
    Failed {
        message: String,
        effects: Box<JobEffects>,
    },
    /// The work stopped because the context's cancel token fired.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn failed(message: impl Into<String>) -> JobError {
        JobError::Failed {
            message: message.into(),
            effects: Box::default(),
        }
    }
}

/// Everything a handler may use while it works.
pub struct JobContext {
    pub job: Job,
    pub repo: Repo,
    pub org_id: String,
    /// The server's data directory; handlers keep their files below it.
    pub data_dir: PathBuf,
    pub store: Store,
    /// Fires when the job must stop: a user cancelled it, the server is shutting down, or the
    /// lease was lost. Handlers stop at the next safe point and return [`JobError::Cancelled`].
    pub cancel: CancellationToken,
    pub(crate) progress: mpsc::UnboundedSender<Progress>,
}

impl JobContext {
    /// Reports a step. It never blocks the work: lines are written in order by the engine, and
    /// all of them are committed before the job's final state.
    pub fn progress(&self, step: u32, total: u32, text: impl Into<String>) {
        // The receiver lives until the job ends, so a failed send only means the job is over.
        let _ = self.progress.send(Progress {
            step,
            total,
            text: text.into(),
        });
    }
}

/// The work of one job kind.
pub trait JobHandler: Send + Sync + 'static {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<JobEffects, JobError>>;
}

/// Which handler runs which kind.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: HashMap<JobKind, Arc<dyn JobHandler>>,
}

impl HandlerRegistry {
    pub fn new() -> HandlerRegistry {
        HandlerRegistry::default()
    }

    pub fn with(mut self, kind: JobKind, handler: Arc<dyn JobHandler>) -> HandlerRegistry {
        self.handlers.insert(kind, handler);
        self
    }

    /// The same handler for every kind.
    pub fn uniform(handler: Arc<dyn JobHandler>) -> HandlerRegistry {
        JobKind::ALL
            .into_iter()
            .fold(HandlerRegistry::new(), |registry, kind| {
                registry.with(kind, handler.clone())
            })
    }

    pub fn get(&self, kind: JobKind) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(&kind).cloned()
    }
}
