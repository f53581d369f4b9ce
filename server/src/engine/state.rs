//! The job state machine.
//!
//! ```text
//!              enqueue_job                claim_next_job
//!   (request) ───────────> queued ─────────────────────────> running
//!                           │  ^                               │
//!             cancel_job    │  │ retry_job (transient,         │ finish_job: completed | error
//!                           v  │ attempts left)                │              | cancelled
//!                       cancelled  release_job (shutdown)      v
//!                              expire_leases (worker lost)   (terminal)
//! ```
//!
//! Each arrow is one storage function that writes the row and its change-log rows in one
//! transaction. Worker writes are fenced by (job id, attempt): `claim_next_job` increments the
//! attempt, so a worker whose lease was taken over writes nothing.
//!
//! This module decides which arrow a finished run takes; `runner` applies it.

use std::time::Duration;

use crate::storage::JobEffects;

use super::backoff::RetryPolicy;
use super::handler::JobError;

/// Why the engine asked a running job to stop, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A user cancelled the job.
    Cancelled,
    /// This node is shutting down.
    Shutdown,
    /// The lease was taken over (or the job was finished elsewhere): this worker must not write.
    LeaseLost,
}

/// The transition a finished run takes.
#[derive(Debug)]
pub enum Transition {
    Complete(JobEffects),
    Fail(JobEffects),
    Retry {
        delay: Duration,
        message: String,
    },
    Cancel,
    /// Hand the job back to the queue without spending an attempt.
    Release,
    /// Write nothing: this worker no longer owns the job.
    Abandon,
}

/// Decides the transition from the handler's answer and any stop the engine requested.
pub fn decide(
    outcome: Result<JobEffects, JobError>,
    stop: Option<StopReason>,
    attempt: u32,
    max_attempts: u32,
    retry: &RetryPolicy,
) -> Transition {
    if stop == Some(StopReason::LeaseLost) {
        return Transition::Abandon;
    }
    match outcome {
        // Work that completed is kept even if a stop arrived meanwhile: its refs are published.
        Ok(effects) => Transition::Complete(effects),
        Err(JobError::Failed { message, effects }) => {
            let mut effects = *effects;
            effects.message = Some(message);
            Transition::Fail(effects)
        }
        Err(JobError::Cancelled) => match stop {
            Some(StopReason::Shutdown) => Transition::Release,
            Some(StopReason::Cancelled) => Transition::Cancel,
            // A handler that gives up on its own without being asked has failed.
            _ => Transition::Fail(JobEffects {
                message: Some("the job stopped without being cancelled".to_owned()),
                ..JobEffects::default()
            }),
        },
        Err(JobError::Transient(message)) => match stop {
            Some(StopReason::Shutdown) => Transition::Release,
            Some(StopReason::Cancelled) => Transition::Cancel,
            _ if attempt < max_attempts => {
                let delay = retry.delay(attempt);
                Transition::Retry {
                    delay,
                    message: format!(
                        "attempt {attempt} of {max_attempts} failed: {message}; retrying in {:.1}s",
                        delay.as_secs_f64()
                    ),
                }
            }
            _ => Transition::Fail(JobEffects {
                message: Some(format!("failed after {attempt} attempts: {message}")),
                ..JobEffects::default()
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(100),
    };

    #[test]
    fn a_worker_that_lost_its_lease_writes_nothing_even_on_success() {
        let t = decide(
            Ok(JobEffects::default()),
            Some(StopReason::LeaseLost),
            1,
            3,
            &RETRY,
        );
        assert!(matches!(t, Transition::Abandon));
    }

    #[test]
    fn transient_failures_retry_while_attempts_remain_then_fail() {
        let t = decide(Err(JobError::Transient("net".into())), None, 1, 3, &RETRY);
        assert!(matches!(t, Transition::Retry { .. }));
        let t = decide(Err(JobError::Transient("net".into())), None, 3, 3, &RETRY);
        let Transition::Fail(effects) = t else {
            panic!("expected Fail, got {t:?}")
        };
        assert!(
            effects
                .message
                .unwrap()
                .contains("failed after 3 attempts: net")
        );
    }

    #[test]
    fn permanent_failures_do_not_retry() {
        let t = decide(Err(JobError::failed("conflict")), None, 1, 3, &RETRY);
        let Transition::Fail(effects) = t else {
            panic!("expected Fail, got {t:?}")
        };
        assert_eq!(effects.message.as_deref(), Some("conflict"));
    }

    #[test]
    fn stops_map_to_cancel_or_release() {
        let t = decide(
            Err(JobError::Cancelled),
            Some(StopReason::Cancelled),
            1,
            3,
            &RETRY,
        );
        assert!(matches!(t, Transition::Cancel));
        let t = decide(
            Err(JobError::Cancelled),
            Some(StopReason::Shutdown),
            1,
            3,
            &RETRY,
        );
        assert!(matches!(t, Transition::Release));
        let t = decide(
            Ok(JobEffects::default()),
            Some(StopReason::Cancelled),
            1,
            3,
            &RETRY,
        );
        assert!(matches!(t, Transition::Complete(_)));
    }
}
