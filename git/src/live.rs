//! The common start of every operation: clear abandoned locks, fetch, and read the remote's
//! branches as they are now. Operations plan only from this snapshot plus the recorded stack
//! metadata, which is what makes a re-run after a crash converge on the same refs.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use crate::clone::RepoClone;
use crate::error::GitError;
use crate::progress::Steps;
use crate::stack::Stack;
use crate::worktree::{STALE_LOCK_AGE, remove_stale_locks};

/// The branches of the remote right after a fetch.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    /// Branch name -> tip.
    pub heads: BTreeMap<String, String>,
    /// The trunk's tip.
    pub trunk_sha: String,
}

impl Live {
    /// The tip of `branch`, if it exists on the remote.
    pub(crate) fn tip(&self, branch: &str) -> Option<&str> {
        self.heads.get(branch).map(String::as_str)
    }
}

/// Fetches and snapshots the remote's branches; fails if the trunk is missing or the stack
/// was built for another trunk.
pub(crate) async fn fetch_live(
    clone: &RepoClone,
    stack: Option<&Stack>,
    steps: &mut Steps<'_>,
    cancel: &CancellationToken,
) -> Result<Live, GitError> {
    if let Some(stack) = stack
        && stack.trunk() != clone.trunk()
    {
        return Err(GitError::unexpected(
            "stack",
            format!(
                "the stack's trunk is '{}' but the clone's is '{}'",
                stack.trunk(),
                clone.trunk()
            ),
        ));
    }
    let removed = remove_stale_locks(clone, STALE_LOCK_AGE).await?;
    if !removed.is_empty() {
        tracing::warn!(locks = ?removed, "removed abandoned git lock files");
    }
    steps.next("fetching");
    clone.fetch(cancel).await?;
    let heads = clone.heads(cancel).await?;
    let trunk_sha = heads
        .get(clone.trunk())
        .cloned()
        .ok_or_else(|| GitError::BranchNotFound {
            branch: clone.trunk().to_string(),
        })?;
    Ok(Live { heads, trunk_sha })
}
