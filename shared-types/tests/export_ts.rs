//! Writes the TypeScript types of the wire contract into `web-client/types/`, where the dashboard's
//! JavaScript imports them for `tsc --checkJs`. Run by `web-client/check-types`:
//!
//! ```sh
//! cargo test -p gantry-types --features ts --test export_ts
//! ```
//!
//! The files are checked in; CI regenerates them and fails when they differ, so the dashboard can
//! never drift from the Rust types.

#![cfg(feature = "ts")]

use std::path::{Path, PathBuf};

use gantry_types::rest::{
    ActionRequest, BranchesResponse, CreateRepoRequest, CreateRepoResponse, CreateTaskRequest,
    ErrorBody, JobResponse, JobsResponse, RepoResponse, ReposResponse, TaskResponse, TasksResponse,
    WebhookResponse,
};
use gantry_types::ws::{ClientMessage, ServerMessage};
use gantry_types::{Branch, Job, ProgressLine, Repo, Task};
use ts_rs::{Config, TS};

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-client/types")
}

/// Removes the previously generated `.ts` files, so a type deleted in Rust disappears here too.
fn clear(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            clear(&path);
            let _ = std::fs::remove_dir(&path);
        } else if path.extension().is_some_and(|e| e == "ts") {
            std::fs::remove_file(&path).expect("remove a stale binding");
        }
    }
}

#[test]
fn export_typescript_bindings() {
    let dir = out_dir();
    clear(&dir);
    // Positions and message ids are i64/u64 in Rust but plain JSON numbers on the wire.
    let cfg = Config::new().with_out_dir(&dir).with_large_int("number");
    macro_rules! export {
        ($($ty:ty),* $(,)?) => {$(
            <$ty as TS>::export_all(&cfg).expect(concat!("export ", stringify!($ty)));
        )*};
    }
    export!(
        Repo,
        Job,
        Branch,
        Task,
        ProgressLine,
        ClientMessage,
        ServerMessage,
        CreateRepoRequest,
        CreateRepoResponse,
        ActionRequest,
        CreateTaskRequest,
        RepoResponse,
        ReposResponse,
        JobResponse,
        JobsResponse,
        BranchesResponse,
        TaskResponse,
        TasksResponse,
        WebhookResponse,
        ErrorBody,
    );
    assert!(dir.join("Job.ts").exists());
}
