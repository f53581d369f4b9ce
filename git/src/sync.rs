//! `sync_repo`: bring the server's view in line with the remote. Fetches (the trunk is whatever
//! the remote has; the server never pushes it), finds tracked branches that were merged into
//! the trunk (plainly or squashed) or deleted on the remote, drops them, and re-points their
//! children to the nearest surviving ancestor. No ref is pushed.

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;

use crate::batch::{ahead_behind, merge_previews, resolve};
use crate::clone::RepoClone;
use crate::error::GitError;
use crate::live::fetch_live;
use crate::progress::{Progress, Steps};
use crate::stack::{Stack, TrackedBranch};

/// A tracked branch whose parent was dropped and that now sits on another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reparented {
    /// The branch.
    pub branch: String,
    /// Its dropped parent.
    pub old_parent: String,
    /// Its nearest surviving ancestor (or the trunk).
    pub new_parent: String,
}

/// What a sync found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The surviving tracked branches, parent first. Re-pointed branches keep their
    /// `base_sha`, so a later restack replays only their own commits.
    pub stack: Vec<TrackedBranch>,
    /// Tracked branches merged into the trunk (an ancestor of it, or squash-merged: merging
    /// them into the trunk changes nothing).
    pub merged: Vec<String>,
    /// Tracked branches that no longer exist on the remote.
    pub deleted: Vec<String>,
    /// Children of dropped branches, re-pointed.
    pub reparented: Vec<Reparented>,
    /// The trunk's tip after the fetch.
    pub trunk_sha: String,
}

/// Fetches and reconciles the tracked stack with the remote (see the module docs).
///
/// A branch counts as merged when it has commits of its own (its tip differs from its
/// recorded base) and either the trunk contains its tip, or `merge-tree --write-tree trunk B`
/// yields exactly the trunk's tree. A branch with no commits of its own is kept: it was just
/// created, not merged. A squash merge that the trunk has since edited over may go undetected
/// (the merge result then differs from the trunk's tree); the branch then stays tracked.
pub async fn sync(
    clone: &RepoClone,
    stack: &Stack,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<SyncOutcome, GitError> {
    let mut steps = Steps::new(progress, 3);
    let live = fetch_live(clone, Some(stack), &mut steps, cancel).await?;
    steps.next(&format!(
        "checking {} tracked branches against {}",
        stack.len(),
        clone.trunk()
    ));

    let mut deleted = Vec::new();
    let mut present: Vec<&TrackedBranch> = Vec::new();
    for b in stack.branches() {
        if live.tip(&b.name).is_some() {
            present.push(b);
        } else {
            deleted.push(b.name.clone());
        }
    }

    let queries: Vec<(String, String)> = present
        .iter()
        .map(|b| (b.name.clone(), live.trunk_sha.clone()))
        .collect();
    let counts = ahead_behind(clone, &queries, cancel).await?;
    let mut merged = Vec::new();
    let mut squash_candidates: Vec<&TrackedBranch> = Vec::new();
    for b in &present {
        let head = live.tip(&b.name).unwrap_or_default();
        let has_own_commits = b.base_sha.as_deref() != Some(head);
        let ahead = counts
            .get(&(b.name.clone(), live.trunk_sha.clone()))
            .map(|&(ahead, _)| ahead)
            .unwrap_or(u32::MAX);
        if ahead == 0 {
            if has_own_commits {
                merged.push(b.name.clone());
            }
        } else {
            squash_candidates.push(b);
        }
    }
    if !squash_candidates.is_empty() {
        let trunk_tree = resolve(clone, &[format!("{}^{{tree}}", live.trunk_sha)], cancel)
            .await?
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| GitError::unexpected("sync", "cannot read the trunk's tree"))?;
        let pairs: Vec<(String, String)> = squash_candidates
            .iter()
            .map(|b| {
                (
                    live.trunk_sha.clone(),
                    live.tip(&b.name).unwrap_or_default().to_string(),
                )
            })
            .collect();
        let previews = merge_previews(clone, &pairs, cancel).await?;
        for (b, preview) in squash_candidates.iter().zip(previews) {
            if preview.clean && preview.tree == trunk_tree {
                merged.push(b.name.clone());
            }
        }
    }

    let gone: HashSet<&str> = merged
        .iter()
        .chain(deleted.iter())
        .map(String::as_str)
        .collect();
    let mut reparented = Vec::new();
    let mut survivors = Vec::new();
    for b in stack.branches() {
        if gone.contains(b.name.as_str()) {
            continue;
        }
        let mut b = b.clone();
        if gone.contains(b.parent.as_str()) {
            let new_parent = stack
                .ancestors(&b.name)
                .into_iter()
                .find(|a| !gone.contains(a))
                .unwrap_or(stack.trunk())
                .to_string();
            reparented.push(Reparented {
                branch: b.name.clone(),
                old_parent: b.parent.clone(),
                new_parent: new_parent.clone(),
            });
            b.parent = new_parent;
        }
        survivors.push(b);
    }
    let new_stack = Stack::new(stack.trunk(), survivors)?;
    steps.next(&format!(
        "{} merged, {} deleted, {} re-pointed",
        merged.len(),
        deleted.len(),
        reparented.len()
    ));
    let order: Vec<&str> = stack.branches().iter().map(|b| b.name.as_str()).collect();
    merged.sort_by_key(|m| order.iter().position(|o| o == m));
    Ok(SyncOutcome {
        stack: new_stack.into_branches(),
        merged,
        deleted,
        reparented,
        trunk_sha: live.trunk_sha,
    })
}
