//! Handlers for the engine's own tests, compiled only with the `test-handlers` feature and active
//! only when `GANTRY_TEST_HANDLERS=1`. Release builds never contain them.
//!
//! The behaviour is chosen by the job's branch name, so end-to-end tests can steer a real server
//! binary through the public API:
//! - `sleep-<ms>[-tag]`: reports a step every 10 ms and completes after `ms`.
//! - `block-<tag>`: waits until the file `<data_dir>/test-release/<tag>` exists, then completes.
//! - `fail-<tag>`: fails permanently.
//! - `transient-<n>[-tag]`: fails transiently on attempts 1..=n, then completes.
//! - `hang-<tag>`: never finishes and ignores cancellation.
//! - `spam-<n>[-tag]`: reports `n` steps of 200 bytes of text each, one every 2 ms.
//! - anything else (or no branch): completes at once.

use std::time::Duration;

use futures::future::BoxFuture;
use gantry_types::JobResult;

use super::handler::{JobContext, JobError, JobHandler};
use crate::storage::JobEffects;

pub struct TestHandler;

impl TestHandler {
    /// Whether the environment asks for test handlers.
    pub fn enabled() -> bool {
        std::env::var("GANTRY_TEST_HANDLERS").is_ok_and(|v| v == "1")
    }
}

fn done(text: &str) -> Result<JobEffects, JobError> {
    Ok(JobEffects {
        message: Some(text.to_owned()),
        result: Some(JobResult::default()),
        branches: None,
    })
}

impl JobHandler for TestHandler {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<JobEffects, JobError>> {
        Box::pin(async move {
            let branch = ctx.job.branch.clone().unwrap_or_default();
            let mut parts = branch.splitn(3, '-');
            let verb = parts.next().unwrap_or_default();
            let arg = parts.next().unwrap_or_default();
            match verb {
                "sleep" => {
                    let total_ms: u64 = arg.parse().unwrap_or(100);
                    let steps = (total_ms / 10).max(1);
                    for step in 1..=steps {
                        ctx.progress(
                            step as u32,
                            steps as u32,
                            format!("sleeping {step}/{steps}"),
                        );
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(10)) => {}
                            () = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
                        }
                    }
                    done("slept")
                }
                "block" => {
                    ctx.progress(1, 2, "blocked until released");
                    let release = ctx.data_dir.join("test-release").join(arg);
                    loop {
                        if release.exists() {
                            ctx.progress(2, 2, "released");
                            return done("released");
                        }
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(10)) => {}
                            () = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
                        }
                    }
                }
                "fail" => Err(JobError::failed(format!("test failure {arg}"))),
                "transient" => {
                    let failures: u32 = arg.parse().unwrap_or(1);
                    if ctx.job.attempt <= failures {
                        Err(JobError::Transient(format!(
                            "transient test failure {}",
                            ctx.job.attempt
                        )))
                    } else {
                        done("recovered")
                    }
                }
                "spam" => {
                    let steps: u32 = arg.parse().unwrap_or(100);
                    let filler = "x".repeat(200);
                    for step in 1..=steps {
                        ctx.progress(step, steps, format!("{step:06} {filler}"));
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    done("spammed")
                }
                "hang" => {
                    ctx.progress(1, 1, "hanging");
                    std::future::pending::<()>().await;
                    done("unreachable")
                }
                _ => {
                    ctx.progress(1, 1, "nothing to do");
                    done("done")
                }
            }
        })
    }
}
