//! Decoding database rows into domain rows, shared by every query of a backend.

use gantry_types::{
    Branch, BranchSyncStatus, DiffStat, Job, JobKind, JobStatus, Progress, ProgressLine, Repo,
    Task, TaskStatus,
};
use sqlx::Row;
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

fn u32_col(row: &SqliteRow, col: &str) -> StorageResult<u32> {
    let v: i64 = row.try_get(col)?;
    u32::try_from(v).map_err(|_| StorageError::Corrupt(format!("{col} out of range: {v}")))
}

pub fn job(row: &SqliteRow) -> StorageResult<Job> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let step: Option<i64> = row.try_get("progress_step")?;
    let total: Option<i64> = row.try_get("progress_total")?;
    let text: Option<String> = row.try_get("progress_text")?;
    let progress = match (step, total) {
        (Some(step), Some(total)) => Some(Progress {
            step: u32::try_from(step).unwrap_or(0),
            total: u32::try_from(total).unwrap_or(0),
            text: text.unwrap_or_default(),
        }),
        _ => None,
    };
    let result: Option<String> = row.try_get("result")?;
    let result = match result {
        Some(json) => Some(
            serde_json::from_str(&json)
                .map_err(|e| StorageError::Corrupt(format!("job result: {e}")))?,
        ),
        None => None,
    };
    Ok(Job {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        kind: kind
            .parse::<JobKind>()
            .map_err(|_| corrupt("job kind", &kind))?,
        branch: row.try_get("branch")?,
        parent: row.try_get("parent")?,
        status: JobStatus::parse(&status).ok_or_else(|| corrupt("job status", &status))?,
        message: row.try_get::<Option<String>, _>("message")?.map(redact),
        progress,
        attempt: u32_col(row, "attempt")?,
        max_attempts: u32_col(row, "max_attempts")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
        started_at: opt_ts(row.try_get("started_at")?),
        completed_at: opt_ts(row.try_get("completed_at")?),
        result,
    })
}

pub fn repo(row: &SqliteRow) -> StorageResult<Repo> {
    let status: String = row.try_get("branch_sync_status")?;
    Ok(Repo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        // The stored URL may carry credentials for git; no row shown to anyone does.
        remote_url: redact(row.try_get("remote_url")?),
        trunk: row.try_get("trunk")?,
        branch_sync_status: BranchSyncStatus::parse(&status)
            .ok_or_else(|| corrupt("branch sync status", &status))?,
        branch_sync_at: opt_ts(row.try_get("branch_sync_at")?),
        branch_sync_error: row
            .try_get::<Option<String>, _>("branch_sync_error")?
            .map(redact),
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

pub fn branch(row: &SqliteRow) -> StorageResult<Branch> {
    Ok(Branch {
        repo_id: row.try_get("repo_id")?,
        name: row.try_get("name")?,
        head_sha: row.try_get("head_sha")?,
        parent: row.try_get("parent")?,
        base_sha: row.try_get("base_sha")?,
        tracked: row.try_get::<i64, _>("tracked")? != 0,
        ahead: u32_col(row, "ahead")?,
        behind: u32_col(row, "behind")?,
        needs_restack: row.try_get::<i64, _>("needs_restack")? != 0,
        conflicts_with_trunk: row.try_get::<i64, _>("conflicts_with_trunk")? != 0,
        diff_stat: DiffStat {
            files_changed: u32_col(row, "files_changed")?,
            insertions: u32_col(row, "insertions")?,
            deletions: u32_col(row, "deletions")?,
        },
        active_job_id: row.try_get("active_job_id")?,
        conflict: match row.try_get::<Option<String>, _>("conflict")? {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|e| StorageError::Corrupt(format!("branch conflict: {e}")))?,
            ),
            None => None,
        },
        first_seen_at: ts(row.try_get("first_seen_at")?),
        last_seen_at: ts(row.try_get("last_seen_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

pub fn task(row: &SqliteRow) -> StorageResult<Task> {
    let status: String = row.try_get("status")?;
    Ok(Task {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        title: row.try_get("title")?,
        branch: row.try_get("branch")?,
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("task status", &status))?,
        status_message: row.try_get("status_message")?,
        attach_job_id: row.try_get("attach_job_id")?,
        head_sha: row.try_get("head_sha")?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

pub fn progress_line(row: &SqliteRow) -> StorageResult<ProgressLine> {
    Ok(ProgressLine {
        job_id: row.try_get("job_id")?,
        attempt: u32_col(row, "attempt")?,
        seq: u32_col(row, "seq")?,
        step: u32_col(row, "step")?,
        total: u32_col(row, "total")?,
        text: row.try_get("text")?,
        at: ts(row.try_get("at")?),
    })
}
