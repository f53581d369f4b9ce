//! `gantry act ... --follow`: follows the accepted job on `job/{id}` until it ends, showing its
//! progress lines and status changes on stderr, then prints the final job on stdout.

use anyhow::{Context, bail};
use gantry_types::ws::{Op, ServerMessage};
use gantry_types::{Job, JobStatus, ProgressLine, Topic};
use serde_json::Value;

use super::ClientArgs;
use super::subscription::{Endpoint, Interrupt, Subscription};

/// What the follower knows of the job: its latest row and the last progress line shown.
struct JobView {
    job: Job,
    last_seq: u32,
}

impl JobView {
    /// Replace local state with a snapshot's rows (the job and its progress lines so far).
    fn snapshot(&mut self, position: i64, rows: Vec<Value>) -> anyhow::Result<()> {
        let mut job = None;
        let mut lines = Vec::new();
        for row in rows {
            if row.get("seq").is_some() {
                lines.push(line(row)?);
            } else if row.get("id").and_then(Value::as_str) == Some(self.job.id.as_str()) {
                job = Some(parse_job(row)?);
            }
        }
        if job.is_none() && position > 0 {
            // The topic changed, yet holds no job: it was removed.
            bail!("job {} no longer exists on the server", self.job.id);
        }
        // At position 0 the server has not projected the job's creation yet (the subscribe can
        // overtake it right after the 202): its row comes in the next diff.
        self.show(lines, job);
        Ok(())
    }

    /// Apply one diff's ops.
    fn diff(&mut self, ops: Vec<Op>) -> anyhow::Result<()> {
        let mut job = None;
        let mut lines = Vec::new();
        for op in ops {
            match op {
                Op::Upsert { key, row } if key == self.job.id => job = Some(parse_job(row)?),
                Op::Upsert { row, .. } if row.get("seq").is_some() => lines.push(line(row)?),
                Op::Remove { key } if key == self.job.id => {
                    bail!(
                        "job {} was removed from the server before it ended",
                        self.job.id
                    );
                }
                Op::Upsert { .. } | Op::Remove { .. } => {}
            }
        }
        self.show(lines, job);
        Ok(())
    }

    /// Print the progress lines not shown yet, then the status change, if any.
    fn show(&mut self, mut lines: Vec<ProgressLine>, job: Option<Job>) {
        lines.sort_by_key(|line| line.seq);
        lines.retain(|line| line.seq > self.last_seq);
        for line in lines {
            let retry = if line.attempt > 1 {
                format!(" (attempt {})", line.attempt)
            } else {
                String::new()
            };
            eprintln!("[{}/{}] {}{retry}", line.step, line.total, line.text);
            self.last_seq = line.seq;
        }
        let Some(job) = job else { return };
        if job.status != self.job.status {
            let mut note = format!("{} -> {}", self.job.status, job.status);
            if job.attempt > 1 && job.attempt != self.job.attempt {
                note.push_str(&format!(
                    " (attempt {} of {})",
                    job.attempt, job.max_attempts
                ));
            }
            // Only a new message: a requeued job keeps its old one while it runs again.
            if let Some(message) = job
                .message
                .as_deref()
                .filter(|m| !m.is_empty() && job.message != self.job.message)
            {
                note.push_str(&format!(": {message}"));
            }
            eprintln!("{note}");
        }
        self.job = job;
    }
}

fn parse_job(row: Value) -> anyhow::Result<Job> {
    serde_json::from_value(row).context("the server sent a job row this client cannot read")
}

fn line(row: Value) -> anyhow::Result<ProgressLine> {
    serde_json::from_value(row).context("the server sent a progress line this client cannot read")
}

/// Follows `accepted` to its end. Ok only if it completed.
pub async fn follow(args: &ClientArgs, accepted: Job) -> anyhow::Result<()> {
    let endpoint = Endpoint::new(args)?;
    let mut interrupt = Interrupt::new()?;
    let topic = Topic::Job(accepted.id.clone()).to_string();
    let mut subscription = Subscription::new(endpoint, topic, None, "follow");
    let mut view = JobView {
        job: accepted,
        last_seq: 0,
    };
    while !view.job.status.is_terminal() {
        let frame = tokio::select! {
            () = interrupt.recv() => {
                subscription.close().await;
                bail!(
                    "interrupted: job {id} goes on ({status}); `gantry watch job/{id}` follows it",
                    id = view.job.id,
                    status = view.job.status
                );
            }
            frame = subscription.next() => frame?,
        };
        match frame.message {
            ServerMessage::Snapshot { position, rows, .. } => view.snapshot(position, rows)?,
            ServerMessage::Diff { ops, .. } => view.diff(ops)?,
            ServerMessage::Error { code, message, .. } => {
                eprintln!("server error ({code}): {message}");
            }
            _ => {}
        }
    }
    subscription.close().await;
    let job = view.job;
    println!("{}", serde_json::to_string_pretty(&job)?);
    match job.status {
        JobStatus::Completed => Ok(()),
        status => bail!(
            "job {} ended {status}: {}",
            job.id,
            job.message.as_deref().unwrap_or("no message")
        ),
    }
}
