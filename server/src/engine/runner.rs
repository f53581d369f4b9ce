//! Running one claimed job: its span, heartbeat, progress writer, handler, and the transition
//! that records how it ended.

use std::sync::Arc;
use std::time::Instant;

use gantry_types::Progress;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use super::handler::{JobContext, JobError};
use super::state::{StopReason, Transition, decide};
use super::{Engine, RunningJob};
use crate::storage::{ClaimedJob, FinishJob, JobEnd, StorageError};

impl Engine {
    pub(super) fn spawn_job(self: &Arc<Self>, claimed: ClaimedJob) {
        let running = Arc::new(RunningJob {
            cancel: CancellationToken::new(),
            stop: std::sync::Mutex::new(None),
        });
        self.running.insert(claimed.job.id.clone(), running.clone());
        let span = info_span!(
            "job",
            id = %claimed.job.id,
            kind = %claimed.job.kind,
            repo = %claimed.repo.id,
            attempt = claimed.job.attempt,
        );
        let engine = self.clone();
        self.tasks.spawn(
            async move {
                let job_id = claimed.job.id.clone();
                engine.run_job(claimed, running).await;
                engine.running.remove(&job_id);
                engine.wake();
            }
            .instrument(span),
        );
    }

    async fn run_job(self: &Arc<Self>, claimed: ClaimedJob, running: Arc<RunningJob>) {
        let started = Instant::now();
        let job_id = claimed.job.id.clone();
        let attempt = claimed.job.attempt;
        let max_attempts = claimed.job.max_attempts;
        info!("job started");

        let (progress_tx, progress_rx) = mpsc::unbounded_channel();
        let progress_writer = tokio::spawn(
            write_progress(
                self.clone(),
                job_id.clone(),
                attempt,
                progress_rx,
                running.clone(),
            )
            .in_current_span(),
        );
        let heartbeat = tokio::spawn(
            heartbeat(self.clone(), job_id.clone(), attempt, running.clone()).in_current_span(),
        );
        if claimed.job.cancel_requested {
            running.stop(StopReason::Cancelled);
        }

        let ctx = JobContext {
            job: claimed.job,
            repo: claimed.repo,
            org_id: claimed.org_id,
            data_dir: self.data_dir.clone(),
            store: self.store.clone(),
            cancel: running.cancel.clone(),
            progress: progress_tx,
        };
        let outcome = match self.handlers.get(ctx.job.kind) {
            Some(handler) => {
                let work = handler.run(&ctx);
                // A handler that ignores its cancel token is dropped after the grace period;
                // dropping kills its git children (they are spawned with kill_on_drop).
                let grace = self.config.shutdown_grace;
                tokio::select! {
                    outcome = work => outcome,
                    () = async {
                        ctx.cancel.cancelled().await;
                        tokio::time::sleep(grace).await;
                    } => Err(JobError::Cancelled),
                }
            }
            None => Err(JobError::failed(format!(
                "no handler for job kind {}",
                ctx.job.kind
            ))),
        };
        drop(ctx);
        // Every progress line commits before the final state, so clients see them in order. The
        // lease is kept while they drain: a handler may report faster than the database commits.
        let _ = progress_writer.await;
        heartbeat.abort();

        let transition = decide(
            outcome,
            running.stop_reason(),
            attempt,
            max_attempts,
            &self.config.retry,
        );
        if matches!(transition, Transition::Abandon) {
            warn!("lease lost; this worker's result is discarded");
            return;
        }
        let written = self.record_end(&job_id, attempt, &transition).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match written {
            Ok(job) => info!(status = %job.status, elapsed_ms, "job finished"),
            Err(StorageError::Fenced { .. }) => {
                warn!(
                    elapsed_ms,
                    "lease lost before the result was written; discarded"
                );
            }
            Err(error) => error!(%error, elapsed_ms, "recording the job's end failed"),
        }
    }

    /// Writes how the run ended. A database that is briefly unreachable (a restart, a cut
    /// connection) is waited for up to one lease: past that the job is requeued by lease expiry
    /// anyway, and the fence refuses this write.
    async fn record_end(
        &self,
        job_id: &str,
        attempt: u32,
        transition: &Transition,
    ) -> Result<gantry_types::Job, StorageError> {
        let deadline = Instant::now() + self.config.lease;
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let written = self.write_end(job_id, attempt, transition).await;
            match written {
                Err(error) if error.is_unavailable() && Instant::now() + pause < deadline => {
                    warn!(%error, "recording the job's end failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    async fn write_end(
        &self,
        job_id: &str,
        attempt: u32,
        transition: &Transition,
    ) -> Result<gantry_types::Job, StorageError> {
        let store = &self.store;
        let end = |end, effects| FinishJob {
            job_id: job_id.to_owned(),
            attempt,
            end,
            effects,
        };
        match transition {
            Transition::Complete(effects) => {
                self.finisher
                    .finish(end(JobEnd::Completed, effects.clone()))
                    .await
            }
            Transition::Fail(effects) => {
                self.finisher
                    .finish(end(JobEnd::Failed, effects.clone()))
                    .await
            }
            Transition::Cancel => {
                let effects = crate::storage::JobEffects {
                    message: Some("cancelled while running".to_owned()),
                    ..Default::default()
                };
                self.finisher.finish(end(JobEnd::Cancelled, effects)).await
            }
            Transition::Retry { delay, message } => {
                store.retry_job(job_id, attempt, *delay, message).await
            }
            Transition::Release => store.release_job(job_id, attempt).await,
            Transition::Abandon => Err(StorageError::Fenced {
                job_id: job_id.to_owned(),
                attempt,
            }),
        }
    }
}

/// Lines written in one progress transaction at most.
const PROGRESS_BATCH: usize = 100;

/// Writes progress lines in report order, fenced by the attempt: the first line at once, then
/// at most one transaction per `progress_interval`, holding every line reported meanwhile.
async fn write_progress(
    engine: Arc<Engine>,
    job_id: String,
    attempt: u32,
    mut lines: mpsc::UnboundedReceiver<Progress>,
    running: Arc<RunningJob>,
) {
    let interval = engine.config.progress_interval;
    let mut next_write = tokio::time::Instant::now();
    while let Some(first) = lines.recv().await {
        let mut batch = vec![first];
        if !interval.is_zero() {
            let slot = tokio::time::sleep_until(next_write);
            tokio::pin!(slot);
            while batch.len() < PROGRESS_BATCH {
                tokio::select! {
                    biased;
                    line = lines.recv() => match line {
                        Some(line) => batch.push(line),
                        // The job ended: write what is left now.
                        None => break,
                    },
                    () = &mut slot => break,
                }
            }
        }
        match engine
            .store
            .report_progress_lines(&job_id, attempt, &batch)
            .await
        {
            Ok(()) => {}
            Err(StorageError::Fenced { .. }) => {
                running.stop(StopReason::LeaseLost);
                return;
            }
            Err(error) => warn!(%error, "recording progress failed"),
        }
        next_write = tokio::time::Instant::now() + interval;
    }
}

/// Renews the lease until the job ends; stops the job if the lease is lost or cancel is asked.
async fn heartbeat(engine: Arc<Engine>, job_id: String, attempt: u32, running: Arc<RunningJob>) {
    let mut last_renewed = Instant::now();
    loop {
        tokio::time::sleep(engine.config.heartbeat).await;
        match engine
            .store
            .heartbeat_job(&job_id, attempt, engine.config.lease)
            .await
        {
            Ok(renewed) => {
                last_renewed = Instant::now();
                if renewed.cancel_requested {
                    running.stop(StopReason::Cancelled);
                }
            }
            Err(StorageError::Fenced { .. }) => {
                running.stop(StopReason::LeaseLost);
                return;
            }
            Err(error) => {
                warn!(%error, "heartbeat failed");
                if last_renewed.elapsed() >= engine.config.lease {
                    running.stop(StopReason::LeaseLost);
                    return;
                }
            }
        }
    }
}
