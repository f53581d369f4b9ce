//! Decoding database rows into domain rows, shared by every query of a backend.

use gantry_types::{
    Branch, BranchSyncStatus, DiffStat, Job, JobKind, JobStatus, Progress, ProgressLine, Repo,
    Task, TaskStatus,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::{StorageError, StorageResult};
use crate::clock::{opt_ts, ts};

macro_rules! job_columns {
    () => {
        "id, repo_id, kind, branch, parent, status, message, \
    progress_step, progress_total, progress_text, attempt, max_attempts, cancel_requested, \
    created_at, updated_at, started_at, completed_at, result"
    };
}

macro_rules! repo_columns {
    () => {
        "id, org_id, name, remote_url, trunk, branch_sync_status, \
    branch_sync_at, branch_sync_error, created_at, updated_at"
    };
}

macro_rules! branch_columns {
    () => {
        "repo_id, name, head_sha, parent, base_sha, tracked, ahead, \
    behind, needs_restack, conflicts_with_trunk, files_changed, insertions, deletions, \
    active_job_id, conflict, first_seen_at, last_seen_at, updated_at"
    };
}

macro_rules! task_columns {
    () => {
        "id, repo_id, title, branch, status, status_message, \
    attach_job_id, head_sha, created_at, updated_at"
    };
}

/// The column reads the decoders need, over each backend's row type. The backends differ only in
/// how a flag is stored (SQLite: 0/1 integer, PostgreSQL: BOOLEAN); integers are 64-bit on both.
pub trait DbRow {
    fn text(&self, col: &str) -> StorageResult<String>;
    fn opt_text(&self, col: &str) -> StorageResult<Option<String>>;
    fn int(&self, col: &str) -> StorageResult<i64>;
    fn opt_int(&self, col: &str) -> StorageResult<Option<i64>>;
    fn flag(&self, col: &str) -> StorageResult<bool>;
}

/// The reads whose decoding is the same on both backends.
macro_rules! typed_reads {
    () => {
        fn text(&self, col: &str) -> StorageResult<String> {
            Ok(self.try_get(col)?)
        }
        fn opt_text(&self, col: &str) -> StorageResult<Option<String>> {
            Ok(self.try_get(col)?)
        }
        fn int(&self, col: &str) -> StorageResult<i64> {
            Ok(self.try_get(col)?)
        }
        fn opt_int(&self, col: &str) -> StorageResult<Option<i64>> {
            Ok(self.try_get(col)?)
        }
    };
}

impl DbRow for SqliteRow {
    typed_reads!();
    fn flag(&self, col: &str) -> StorageResult<bool> {
        Ok(self.try_get::<i64, _>(col)? != 0)
    }
}

impl DbRow for PgRow {
    typed_reads!();
    fn flag(&self, col: &str) -> StorageResult<bool> {
        Ok(self.try_get(col)?)
    }
}

/// A text with the credentials of any URL in it replaced by `***`.
pub fn redact(text: String) -> String {
    match gantry_git::redact_credentials(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(redacted) => redacted,
    }
}

fn corrupt(what: &str, value: &str) -> StorageError {
    StorageError::Corrupt(format!("unknown {what} {value:?}"))
}

fn u32_col(row: &impl DbRow, col: &str) -> StorageResult<u32> {
    let v = row.int(col)?;
    u32::try_from(v).map_err(|_| StorageError::Corrupt(format!("{col} out of range: {v}")))
}

pub fn job(row: &impl DbRow) -> StorageResult<Job> {
    let kind = row.text("kind")?;
    let status = row.text("status")?;
    let step = row.opt_int("progress_step")?;
    let total = row.opt_int("progress_total")?;
    let text = row.opt_text("progress_text")?;
    let progress = match (step, total) {
        (Some(step), Some(total)) => Some(Progress {
            step: u32::try_from(step).unwrap_or(0),
            total: u32::try_from(total).unwrap_or(0),
            text: text.unwrap_or_default(),
        }),
        _ => None,
    };
    let result = row.opt_text("result")?;
    let result = match result {
        Some(json) => Some(
            serde_json::from_str(&json)
                .map_err(|e| StorageError::Corrupt(format!("job result: {e}")))?,
        ),
        None => None,
    };
    Ok(Job {
        id: row.text("id")?,
        repo_id: row.text("repo_id")?,
        kind: kind
            .parse::<JobKind>()
            .map_err(|_| corrupt("job kind", &kind))?,
        branch: row.opt_text("branch")?,
        parent: row.opt_text("parent")?,
        status: JobStatus::parse(&status).ok_or_else(|| corrupt("job status", &status))?,
        message: row.opt_text("message")?.map(redact),
        progress,
        attempt: u32_col(row, "attempt")?,
        max_attempts: u32_col(row, "max_attempts")?,
        cancel_requested: row.flag("cancel_requested")?,
        created_at: ts(row.int("created_at")?),
        updated_at: ts(row.int("updated_at")?),
        started_at: opt_ts(row.opt_int("started_at")?),
        completed_at: opt_ts(row.opt_int("completed_at")?),
        result,
    })
}

pub fn repo(row: &impl DbRow) -> StorageResult<Repo> {
    let status = row.text("branch_sync_status")?;
    Ok(Repo {
        id: row.text("id")?,
        name: row.text("name")?,
        // The stored URL may carry credentials for git; no row shown to anyone does.
        remote_url: redact(row.text("remote_url")?),
        trunk: row.text("trunk")?,
        branch_sync_status: BranchSyncStatus::parse(&status)
            .ok_or_else(|| corrupt("branch sync status", &status))?,
        branch_sync_at: opt_ts(row.opt_int("branch_sync_at")?),
        branch_sync_error: row.opt_text("branch_sync_error")?.map(redact),
        created_at: ts(row.int("created_at")?),
        updated_at: ts(row.int("updated_at")?),
    })
}

pub fn branch(row: &impl DbRow) -> StorageResult<Branch> {
    Ok(Branch {
        repo_id: row.text("repo_id")?,
        name: row.text("name")?,
        head_sha: row.text("head_sha")?,
        parent: row.opt_text("parent")?,
        base_sha: row.opt_text("base_sha")?,
        tracked: row.flag("tracked")?,
        ahead: u32_col(row, "ahead")?,
        behind: u32_col(row, "behind")?,
        needs_restack: row.flag("needs_restack")?,
        conflicts_with_trunk: row.flag("conflicts_with_trunk")?,
        diff_stat: DiffStat {
            files_changed: u32_col(row, "files_changed")?,
            insertions: u32_col(row, "insertions")?,
            deletions: u32_col(row, "deletions")?,
        },
        active_job_id: row.opt_text("active_job_id")?,
        conflict: match row.opt_text("conflict")? {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|e| StorageError::Corrupt(format!("branch conflict: {e}")))?,
            ),
            None => None,
        },
        first_seen_at: ts(row.int("first_seen_at")?),
        last_seen_at: ts(row.int("last_seen_at")?),
        updated_at: ts(row.int("updated_at")?),
    })
}

pub fn task(row: &impl DbRow) -> StorageResult<Task> {
    let status = row.text("status")?;
    Ok(Task {
        id: row.text("id")?,
        repo_id: row.text("repo_id")?,
        title: row.text("title")?,
        branch: row.text("branch")?,
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("task status", &status))?,
        status_message: row.opt_text("status_message")?,
        attach_job_id: row.opt_text("attach_job_id")?,
        head_sha: row.opt_text("head_sha")?,
        created_at: ts(row.int("created_at")?),
        updated_at: ts(row.int("updated_at")?),
    })
}

pub fn progress_line(row: &impl DbRow) -> StorageResult<ProgressLine> {
    Ok(ProgressLine {
        job_id: row.text("job_id")?,
        attempt: u32_col(row, "attempt")?,
        seq: u32_col(row, "seq")?,
        step: u32_col(row, "step")?,
        total: u32_col(row, "total")?,
        text: row.text("text")?,
        at: ts(row.int("at")?),
    })
}
