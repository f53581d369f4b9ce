//! `gantry serve --demo`: a local demo remote with a real stack, registered and synced, so a
//! newcomer can watch a restack happen (and one conflict) without a repository of their own.

use std::path::Path;

use gantry_git::Git;
use gantry_types::JobKind;
use tracing::info;

use crate::app::App;
use crate::auth::Principal;
use crate::storage::NewJob;

pub const DEMO_REPO: &str = "demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("creating the demo remote: {0}")]
    Git(#[from] gantry_git::GitError),
    #[error("registering the demo repo: {0}")]
    Api(String),
}

/// Creates the demo remote under the data dir and registers it with its stack, unless a repo
/// named `demo` exists already. The first sync and the branch registrations are queued jobs.
pub async fn ensure_demo(
    app: &App,
    git: &Git,
    data_dir: &Path,
    principal: &Principal,
) -> Result<(), DemoError> {
    let existing = app
        .store
        .find_repo_by_name(&principal.org_id, DEMO_REPO)
        .await
        .map_err(|e| DemoError::Api(e.to_string()))?;
    if existing.is_some() {
        return Ok(());
    }
    let dir = data_dir.join("demo");
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let demo = gantry_git::create_demo_remote(git, &dir).await?;
    let remote = demo.remote_path.to_string_lossy().into_owned();
    let first_sync = NewJob {
        repo_id: uuid::Uuid::now_v7().to_string(),
        kind: JobKind::SyncRepo,
        branch: None,
        parent: None,
        max_attempts: app.config.max_attempts,
        idempotency_key: None,
    };
    let (repo, _) = app
        .store
        .create_repo(
            &principal.org_id,
            DEMO_REPO,
            &remote,
            &demo.trunk,
            first_sync,
        )
        .await
        .map_err(|e| DemoError::Api(e.to_string()))?;
    for branch in &demo.branches {
        app.store
            .enqueue_job(NewJob {
                repo_id: repo.id.clone(),
                kind: JobKind::RegisterExistingBranch,
                branch: Some(branch.name.clone()),
                parent: Some(branch.parent.clone()),
                max_attempts: app.config.max_attempts,
                idempotency_key: None,
            })
            .await
            .map_err(|e| DemoError::Api(e.to_string()))?;
    }
    app.engine.wake();
    info!(repo = %repo.id, branches = demo.branches.len(), conflict = %demo.conflict_branch, "demo repo registered");
    Ok(())
}
