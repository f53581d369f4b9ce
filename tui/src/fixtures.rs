//! Rows for unit tests, built from JSON the way the server sends them, so that fields added to
//! the wire types later (optional ones) do not break every test.

use gantry_types::{Branch, Job};
use serde_json::{Value, json};

pub const T0: &str = "2026-01-01T10:00:00Z";

/// `2026-01-01T10:MM:SSZ` for `n` seconds after T0.
pub fn at(n: u32) -> String {
    format!("2026-01-01T10:{:02}:{:02}Z", n / 60, n % 60)
}

pub fn repo_json(id: &str, name: &str) -> Value {
    json!({
        "id": id, "name": name, "remote_url": format!("https://example.test/{name}.git"),
        "trunk": "main", "branch_sync_status": "synced", "branch_sync_at": T0,
        "branch_sync_error": null, "created_at": T0, "updated_at": T0,
    })
}

pub fn job_json(
    id: &str,
    repo: &str,
    kind: &str,
    branch: Option<&str>,
    status: &str,
    n: u32,
) -> Value {
    json!({
        "id": id, "repo_id": repo, "kind": kind, "branch": branch, "parent": null,
        "status": status, "message": null, "progress": null, "attempt": 0, "max_attempts": 3,
        "cancel_requested": false, "created_at": at(n), "updated_at": at(n),
        "started_at": null, "completed_at": null, "result": null,
    })
}

pub fn job(id: &str, repo: &str, kind: &str, branch: Option<&str>, status: &str, n: u32) -> Job {
    serde_json::from_value(job_json(id, repo, kind, branch, status, n)).expect("job fixture")
}

pub fn branch_json(repo: &str, name: &str, parent: Option<&str>) -> Value {
    json!({
        "repo_id": repo, "name": name, "head_sha": format!("{:0>40}", name.len()),
        "parent": parent, "base_sha": null, "tracked": parent.is_some(), "ahead": 1,
        "behind": 0, "needs_restack": false, "conflicts_with_trunk": false,
        "diff_stat": {"files_changed": 1, "insertions": 2, "deletions": 0},
        "active_job_id": null, "first_seen_at": T0, "last_seen_at": T0, "updated_at": T0,
    })
}

pub fn branch(repo: &str, name: &str, parent: Option<&str>) -> Branch {
    serde_json::from_value(branch_json(repo, name, parent)).expect("branch fixture")
}

pub fn task_json(id: &str, repo: &str, title: &str, branch: &str, status: &str) -> Value {
    json!({
        "id": id, "repo_id": repo, "title": title, "branch": branch, "status": status,
        "status_message": null, "attach_job_id": null, "head_sha": null,
        "created_at": T0, "updated_at": T0,
    })
}
