//! The job handlers a bench server runs instead of git (in the server child only). The job's
//! branch name steers what a job does, so load generators drive it through the public API:
//!
//! - `sleep-<ms>[-tag]`: a progress step every 10 ms, completes after `ms` (a long job).
//! - `tick-<per_s>-<count>[-tag]`: `count` progress steps at `per_s` a second on an absolute
//!   schedule: a steady stream of state changes for the push benchmarks.
//! - `gate-<tag>`: waits until the gate opens (the child's `release` command).
//! - `lat-<unix_us>[-tag]`: records `now - unix_us` (enqueue -> start latency, the branch name
//!   carrying the enqueue time the way the peers' payloads do) and completes at once.
//! - anything else: completes at once without a progress write (the no-op job).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use gantry_server::engine::{HandlerRegistry, JobContext, JobError, JobHandler};
use gantry_server::storage::JobEffects;
use tokio::sync::watch;

/// State shared between the handlers and the child's control loop.
pub struct Shared {
    gate: watch::Sender<bool>,
    latencies_us: Mutex<Vec<u64>>,
}

impl Shared {
    pub fn get() -> &'static Shared {
        static SHARED: OnceLock<Shared> = OnceLock::new();
        SHARED.get_or_init(|| Shared {
            gate: watch::channel(false).0,
            latencies_us: Mutex::new(Vec::new()),
        })
    }

    /// Lets every `gate-*` job (waiting or future) complete.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// The enqueue -> start latencies recorded so far, emptying the record.
    pub fn take_latencies(&self) -> Vec<u64> {
        self.latencies_us
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// Microseconds since the Unix epoch.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

pub struct BenchHandler;

impl BenchHandler {
    pub fn registry() -> HandlerRegistry {
        HandlerRegistry::uniform(Arc::new(BenchHandler))
    }
}

fn done() -> Result<JobEffects, JobError> {
    Ok(JobEffects::default())
}

async fn sleep_or_cancel(ctx: &JobContext, d: Duration) -> Result<(), JobError> {
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(()),
        () = ctx.cancel.cancelled() => Err(JobError::Cancelled),
    }
}

impl JobHandler for BenchHandler {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<JobEffects, JobError>> {
        Box::pin(async move {
            let started_us = unix_us();
            let branch = ctx.job.branch.clone().unwrap_or_default();
            let parts: Vec<&str> = branch.split('-').collect();
            let num = |i: usize, default: u64| {
                parts
                    .get(i)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(default)
            };
            match parts.first().copied().unwrap_or_default() {
                "sleep" => {
                    let steps = (num(1, 100) / 10).max(1);
                    for step in 1..=steps {
                        ctx.progress(
                            step as u32,
                            steps as u32,
                            format!("sleeping {step}/{steps}"),
                        );
                        sleep_or_cancel(ctx, Duration::from_millis(10)).await?;
                    }
                    done()
                }
                "tick" => {
                    let per_s = num(1, 100).max(1);
                    let count = num(2, 100);
                    let start = tokio::time::Instant::now();
                    for step in 1..=count {
                        let at = start + Duration::from_micros(step * 1_000_000 / per_s);
                        tokio::select! {
                            () = tokio::time::sleep_until(at) => {}
                            () = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
                        }
                        ctx.progress(step as u32, count as u32, format!("tick {step}/{count}"));
                    }
                    done()
                }
                "gate" => {
                    let mut gate = Shared::get().gate.subscribe();
                    tokio::select! {
                        r = gate.wait_for(|open| *open) => { let _ = r; }
                        () = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
                    }
                    done()
                }
                "lat" => {
                    let enqueued_us = num(1, started_us);
                    if let Ok(mut l) = Shared::get().latencies_us.lock() {
                        l.push(started_us.saturating_sub(enqueued_us));
                    }
                    done()
                }
                _ => done(),
            }
        })
    }
}
