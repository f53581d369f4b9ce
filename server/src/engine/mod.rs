//! The job engine: a pool of workers that claim queued jobs from the database, run their handlers
//! under a heartbeated lease, and record each transition.
//!
//! Everything that must hold across crashes and nodes (one running job per repo, lease fencing,
//! dedupe) is enforced by the database; the engine's memory only holds what is running here.

pub mod backoff;
mod finisher;
pub mod handler;
mod runner;
pub mod state;
#[cfg(feature = "test-handlers")]
pub mod test_handlers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::storage::{PrunePolicy, Store};

pub use backoff::RetryPolicy;
pub use handler::{HandlerRegistry, JobContext, JobError, JobHandler};
use state::StopReason;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Jobs that may run at once on this node (on different repos).
    pub workers: usize,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// How often a running job renews its lease.
    pub heartbeat: Duration,
    /// The fallback wake-up when no enqueue notified the dispatcher (due retries, other nodes).
    pub poll_interval: Duration,
    pub max_attempts: u32,
    pub retry: RetryPolicy,
    /// How long running jobs get to reach a safe point at shutdown before they are dropped.
    pub shutdown_grace: Duration,
    pub prune: PrunePolicy,
    pub prune_interval: Duration,
    /// Queue a `sync_repo` for repos not synced for this long (`None`: never).
    pub refresh_interval: Option<Duration>,
    /// The least time between two progress transactions of one job. A job's first line is
    /// written at once; lines it reports within this interval after a write are written
    /// together, in one transaction (one diff per topic), so a chatty job cannot flood the
    /// single database writer. Zero: one transaction per line.
    pub progress_interval: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 4,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            max_attempts: 3,
            retry: RetryPolicy {
                base: Duration::from_secs(2),
                cap: Duration::from_secs(60),
            },
            shutdown_grace: Duration::from_secs(10),
            prune: PrunePolicy {
                finished_job_max_age: Duration::from_secs(7 * 24 * 3600),
                finished_jobs_per_repo: 1000,
                change_log_max_age: Duration::from_secs(24 * 3600),
                change_log_max_rows: 100_000,
            },
            prune_interval: Duration::from_secs(300),
            refresh_interval: Some(Duration::from_secs(600)),
            progress_interval: Duration::from_millis(50),
        }
    }
}

/// A job running on this node, and how to stop it.
struct RunningJob {
    cancel: CancellationToken,
    stop: std::sync::Mutex<Option<StopReason>>,
}

impl RunningJob {
    fn stop(&self, reason: StopReason) {
        if let Ok(mut stop) = self.stop.lock() {
            // The first reason wins: a lost lease must not turn into a cancel that writes.
            stop.get_or_insert(reason);
        }
        self.cancel.cancel();
    }

    fn stop_reason(&self) -> Option<StopReason> {
        self.stop.lock().ok().and_then(|stop| *stop)
    }
}

pub struct Engine {
    store: Store,
    handlers: HandlerRegistry,
    config: EngineConfig,
    data_dir: PathBuf,
    node_id: String,
    wake: Notify,
    running: DashMap<String, Arc<RunningJob>>,
    finisher: finisher::Finisher,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Engine {
    /// Needs a Tokio runtime: the job-end writer starts here.
    pub fn new(
        store: Store,
        handlers: HandlerRegistry,
        config: EngineConfig,
        data_dir: PathBuf,
    ) -> Arc<Engine> {
        Arc::new(Engine {
            finisher: finisher::Finisher::start(store.clone()),
            store,
            handlers,
            config,
            data_dir,
            node_id: format!("node-{}", uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
            running: DashMap::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Recovers what a previous process left behind, then starts the dispatcher and maintenance.
    pub async fn start(self: &Arc<Self>) -> Result<(), crate::storage::StorageError> {
        let recovered = self
            .store
            .expire_leases(self.store.is_single_process())
            .await?;
        for job in &recovered {
            info!(job_id = %job.id, status = %job.status, attempt = job.attempt, "recovered job");
        }
        let engine = self.clone();
        self.tasks.spawn(async move { engine.dispatch().await });
        let engine = self.clone();
        self.tasks.spawn(async move { engine.maintain().await });
        Ok(())
    }

    /// Tells the dispatcher there may be a job to claim.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops a job running on this node because a user cancelled it. Other nodes learn of the
    /// request through their heartbeat.
    pub fn cancel_local(&self, job_id: &str) {
        if let Some(job) = self.running.get(job_id) {
            job.stop(StopReason::Cancelled);
        }
    }

    pub fn running_jobs(&self) -> usize {
        self.running.len()
    }

    /// Stops claiming, asks running jobs to reach a safe point, hands them back to the queue, and
    /// waits (up to the grace period) for all of that to be written.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        for job in self.running.iter() {
            job.stop(StopReason::Shutdown);
        }
        self.tasks.close();
        if tokio::time::timeout(self.config.shutdown_grace, self.tasks.wait())
            .await
            .is_err()
        {
            warn!("running jobs did not stop within the shutdown grace period");
        }
    }

    async fn dispatch(self: Arc<Self>) {
        loop {
            // Every free worker's job is claimed in one transaction.
            while self.running.len() < self.config.workers && !self.shutdown.is_cancelled() {
                let free = self.config.workers - self.running.len();
                match self
                    .store
                    .claim_jobs(&self.node_id, self.config.lease, free)
                    .await
                {
                    Ok(claimed) if claimed.is_empty() => break,
                    Ok(claimed) => claimed.into_iter().for_each(|job| self.spawn_job(job)),
                    Err(error) => {
                        warn!(%error, "claiming jobs failed");
                        break;
                    }
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Lease expiry (workers lost on other nodes, or hung) and pruning.
    async fn maintain(self: Arc<Self>) {
        let mut lease_check = tokio::time::interval(self.config.lease / 2);
        let mut prune = tokio::time::interval(self.config.prune_interval);
        let refresh_every = self
            .config
            .refresh_interval
            .map(|i| (i / 4).clamp(Duration::from_millis(50), Duration::from_secs(30)));
        let mut refresh = tokio::time::interval(refresh_every.unwrap_or(Duration::from_secs(3600)));
        loop {
            tokio::select! {
                _ = lease_check.tick() => {
                    match self.store.expire_leases(false).await {
                        Ok(jobs) if !jobs.is_empty() => {
                            info!(count = jobs.len(), "requeued jobs whose lease expired");
                            self.wake();
                        }
                        Ok(_) => {}
                        Err(error) => warn!(%error, "lease expiry check failed"),
                    }
                }
                _ = prune.tick() => {
                    match self.store.prune(self.config.prune).await {
                        Ok((jobs, changes)) if jobs + changes > 0 => {
                            info!(jobs, changes, "pruned finished jobs and old changes");
                        }
                        Ok(_) => {}
                        Err(error) => warn!(%error, "pruning failed"),
                    }
                }
                _ = refresh.tick(), if self.config.refresh_interval.is_some() => {
                    let interval = self.config.refresh_interval.unwrap_or_default();
                    match self.store.enqueue_due_syncs(interval, self.config.max_attempts).await {
                        Ok(jobs) if !jobs.is_empty() => {
                            info!(count = jobs.len(), "queued periodic branch refreshes");
                            self.wake();
                        }
                        Ok(_) => {}
                        Err(error) => warn!(%error, "queueing periodic refreshes failed"),
                    }
                }
                () = self.shutdown.cancelled() => return,
            }
        }
    }
}
