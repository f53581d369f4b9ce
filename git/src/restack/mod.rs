//! Restacking: moving branches onto their parents' current tips, parent first, then publishing
//! every moved ref at once. Used by `restack_repo`, `restack_subtree`, `rebase_branch` and
//! `reparent_branch` jobs.
//!
//! Steps: fetch; plan each branch's effective base from live refs and recorded metadata;
//! compute new tips without moving any ref; publish the moved refs in one local transaction
//! and one atomic push with leases ([`crate::publish`]). A conflict
//! blocks only the conflicting branch's subtree. Nothing reaches the remote unless the whole
//! push is accepted.

mod apply;
mod plan;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clone::RepoClone;
use crate::error::GitError;
use crate::live::{Live, fetch_live};
use crate::progress::{Progress, Steps};
use crate::publish::{RefMove, publish};
use crate::refname::validate_branch_name;
use crate::stack::{Stack, StackError, TrackedBranch};

use apply::{Applier, Fate};

/// Which tracked branches a restack covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every tracked branch (`restack_repo`).
    All,
    /// The branch and everything stacked above it (`restack_subtree`).
    Subtree(String),
    /// The branch alone, onto its parent's tip (`rebase_branch`). Branches above it are not
    /// moved and will show as needing a restack.
    Branch(String),
}

/// How new commits are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestackMethod {
    /// `git replay` without a worktree, falling back to `git rebase` in a worktree for the
    /// branches replay cannot do (conflicts, merge commits, commits already upstream).
    #[default]
    Auto,
    /// `git rebase` in a worktree for every branch (the reference procedure; slower).
    Rebase,
}

/// A callback run after the new tips are computed and before anything is published.
pub type BeforePublish = Arc<dyn Fn(&[RefMove]) + Send + Sync>;

/// Knobs for a restack.
#[derive(Clone, Default)]
pub struct RestackOptions {
    /// How new commits are computed.
    pub method: RestackMethod,
    /// A name for the job's worktree directory (helps a person reading the data dir).
    pub label: Option<String>,
    /// Test seam: called with the planned moves after they are computed and before the local
    /// ref transaction and the push, e.g. to simulate a person pushing in between. Not for
    /// production use.
    pub before_publish: Option<BeforePublish>,
}

impl fmt::Debug for RestackOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestackOptions")
            .field("method", &self.method)
            .field("label", &self.label)
            .field("before_publish", &self.before_publish.is_some())
            .finish()
    }
}

/// A branch whose restack stopped on a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The conflicting branch (left untouched, locally and on the remote).
    pub branch: String,
    /// The branch's own commit that did not apply.
    pub commit: String,
    /// The files with conflicts.
    pub files: Vec<String>,
    /// The branches stacked above it that were therefore not restacked.
    pub blocked: Vec<String>,
}

/// What a restack did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestackOutcome {
    /// Branches moved (and pushed), parent first.
    pub moved: Vec<RefMove>,
    /// Branches that stopped on a conflict, with the subtrees they block.
    pub conflicts: Vec<Conflict>,
    /// Selected branches not restacked because they, their parent or an ancestor no longer
    /// exist on the remote (a `sync` drops or re-points them).
    pub skipped: Vec<String>,
    /// The whole tracked stack with updated metadata: a restacked or already-stacked branch's
    /// `base_sha` is the parent tip it now sits on; other branches keep theirs (or get the
    /// repaired base if the recorded one was unusable).
    pub stack: Vec<TrackedBranch>,
}

/// Restacks every tracked branch, parent first.
pub async fn restack_repo(
    clone: &RepoClone,
    stack: &Stack,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<RestackOutcome, GitError> {
    restack(
        clone,
        stack,
        &Selection::All,
        &RestackOptions::default(),
        progress,
        cancel,
    )
    .await
}

/// Restacks `branch` and everything above it.
pub async fn restack_subtree(
    clone: &RepoClone,
    stack: &Stack,
    branch: &str,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<RestackOutcome, GitError> {
    let selection = Selection::Subtree(branch.to_string());
    restack(
        clone,
        stack,
        &selection,
        &RestackOptions::default(),
        progress,
        cancel,
    )
    .await
}

/// Rebases `branch` alone onto its parent's tip.
pub async fn rebase_branch(
    clone: &RepoClone,
    stack: &Stack,
    branch: &str,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<RestackOutcome, GitError> {
    let selection = Selection::Branch(branch.to_string());
    restack(
        clone,
        stack,
        &selection,
        &RestackOptions::default(),
        progress,
        cancel,
    )
    .await
}

/// Restacks `selection` and publishes the result. A conflict is not an error: it is reported
/// in the outcome (even if every selected branch conflicts). Errors: the selected branch is
/// not tracked or not on the remote, the push was rejected because someone pushed meanwhile
/// ([`GitError::PushRejected`]), cancellation, git failures.
pub async fn restack(
    clone: &RepoClone,
    stack: &Stack,
    selection: &Selection,
    options: &RestackOptions,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<RestackOutcome, GitError> {
    let names: Vec<String> = match selection {
        Selection::All => stack.branches().iter().map(|b| b.name.clone()).collect(),
        Selection::Subtree(branch) => {
            require_tracked(stack, branch)?;
            stack
                .subtree(branch)
                .iter()
                .map(|b| b.name.clone())
                .collect()
        }
        Selection::Branch(branch) => {
            require_tracked(stack, branch)?;
            vec![branch.clone()]
        }
    };
    let target = match selection {
        Selection::All => None,
        Selection::Subtree(b) | Selection::Branch(b) => Some(b.as_str()),
    };
    let mut steps = Steps::new(progress, 3 + names.len() as u32);
    let live = fetch_live(clone, Some(stack), &mut steps, cancel).await?;
    if let Some(branch) = target {
        require_on_remote(stack, &live, branch)?;
    }
    run(
        clone,
        stack,
        &names,
        &HashMap::new(),
        &live,
        options,
        &mut steps,
        cancel,
    )
    .await
}

/// Moves `branch` onto `new_parent` and restacks its subtree there, then publishes. Refuses,
/// before any git runs: an untracked branch, the branch itself as parent, a parent that is
/// neither trunk nor tracked, a parent inside the branch's own subtree. The returned stack
/// records the new parent even if the move conflicted (the branch then shows as needing a
/// restack; its `base_sha` still marks where its own commits start).
pub async fn reparent(
    clone: &RepoClone,
    stack: &Stack,
    branch: &str,
    new_parent: &str,
    options: &RestackOptions,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<RestackOutcome, GitError> {
    validate_branch_name(branch)?;
    validate_branch_name(new_parent)?;
    let old_parent =
        stack
            .get(branch)
            .map(|b| b.parent.clone())
            .ok_or_else(|| StackError::NotTracked {
                branch: branch.to_string(),
            })?;
    let moved = stack.reparent(branch, new_parent)?;
    let names: Vec<String> = moved
        .subtree(branch)
        .iter()
        .map(|b| b.name.clone())
        .collect();
    let mut steps = Steps::new(progress, 3 + names.len() as u32);
    let live = fetch_live(clone, Some(&moved), &mut steps, cancel).await?;
    require_on_remote(&moved, &live, branch)?;
    let base_parent = HashMap::from([(branch.to_string(), old_parent)]);
    run(
        clone,
        &moved,
        &names,
        &base_parent,
        &live,
        options,
        &mut steps,
        cancel,
    )
    .await
}

fn require_tracked(stack: &Stack, branch: &str) -> Result<(), GitError> {
    validate_branch_name(branch)?;
    if branch == stack.trunk() {
        return Err(GitError::IsTrunk {
            branch: branch.to_string(),
        });
    }
    if !stack.is_tracked(branch) {
        return Err(StackError::NotTracked {
            branch: branch.to_string(),
        }
        .into());
    }
    Ok(())
}

/// A targeted restack needs the branch and its parent on the remote (a whole-repo restack
/// skips what is missing instead).
fn require_on_remote(stack: &Stack, live: &Live, branch: &str) -> Result<(), GitError> {
    if live.tip(branch).is_none() {
        return Err(GitError::BranchNotFound {
            branch: branch.to_string(),
        });
    }
    if let Some(parent) = stack.get(branch).map(|b| b.parent.as_str())
        && live.tip(parent).is_none()
    {
        return Err(GitError::BranchNotFound {
            branch: parent.to_string(),
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run(
    clone: &RepoClone,
    stack: &Stack,
    names: &[String],
    base_parent: &HashMap<String, String>,
    live: &Live,
    options: &RestackOptions,
    steps: &mut Steps<'_>,
    cancel: &CancellationToken,
) -> Result<RestackOutcome, GitError> {
    steps.next("planning");
    let plan = plan::plan(clone, stack, names, base_parent, live, cancel).await?;
    steps.set_total(3 + plan.branches.len() as u32);

    let label = options
        .label
        .clone()
        .unwrap_or_else(|| "restack".to_string());
    let mut applier = Applier::new(
        clone,
        stack,
        live,
        &plan.branches,
        options.method,
        &label,
        cancel,
    );
    let applied = applier.run(steps).await;
    if let Some(wt) = applier.worktree.take()
        && let Err(e) = wt.cleanup().await
    {
        tracing::warn!(error = %e, "removing the job worktree");
    }
    let applied = applied?;

    let mut moved = Vec::new();
    let mut bases: HashMap<&str, String> = HashMap::new();
    for p in &plan.branches {
        match applied.fates.get(&p.name) {
            Some(Fate::Moved { new, .. }) => {
                if *new != p.old {
                    moved.push(RefMove {
                        branch: p.name.clone(),
                        from: p.old.clone(),
                        to: new.clone(),
                    });
                }
                if let Some(onto) = applied.onto.get(&p.name) {
                    bases.insert(&p.name, onto.clone());
                }
            }
            Some(Fate::InPlace) => {
                if let Some(onto) = applied.onto.get(&p.name) {
                    bases.insert(&p.name, onto.clone());
                }
            }
            Some(Fate::Conflict | Fate::Blocked) | None => {
                bases.insert(&p.name, p.base.clone());
            }
        }
    }

    if cancel.is_cancelled() {
        return Err(GitError::Cancelled);
    }
    steps.next(&format!("publishing {} refs", moved.len()));
    if let Some(hook) = &options.before_publish {
        hook(&moved);
    }
    publish(clone, &moved, cancel).await?;

    let stack_out = stack
        .branches()
        .iter()
        .map(|b| {
            let mut b = b.clone();
            if let Some(base) = bases.get(b.name.as_str()) {
                b.base_sha = Some(base.clone());
            }
            b
        })
        .collect();
    Ok(RestackOutcome {
        moved,
        conflicts: applied.conflicts,
        skipped: plan.skipped,
        stack: stack_out,
    })
}
