//! `register_existing_branch`: start tracking a branch that already exists on the remote,
//! with a given or guessed parent and the base it forked from.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use crate::clone::RepoClone;
use crate::error::GitError;
use crate::live::fetch_live;
use crate::progress::{Progress, Steps};
use crate::refname::validate_branch_name;
use crate::stack::{Stack, StackError, TrackedBranch};

/// What registering found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// The new tracked entry: parent (given or guessed) and base = merge-base with it.
    pub tracked: TrackedBranch,
    /// Whether the branch is not on its parent's tip (base != parent tip).
    pub needs_restack: bool,
}

/// Registers `branch`, which must exist on the remote ([`GitError::BranchNotFound`]
/// otherwise). With `parent`, it must be the trunk or tracked, and exist. Without, the parent
/// is guessed: walking `rev-list --topo-order B --not <trunk>` from the branch's tip, the first
/// commit that is the tip of a tracked branch (the deepest one if several share it); else the
/// trunk. Re-registering a tracked branch replaces its entry; its own subtree is never
/// guessed as its parent.
pub async fn register(
    clone: &RepoClone,
    stack: &Stack,
    branch: &str,
    parent: Option<&str>,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<RegisterOutcome, GitError> {
    validate_branch_name(branch)?;
    if branch == stack.trunk() {
        return Err(GitError::IsTrunk {
            branch: branch.to_string(),
        });
    }
    if let Some(p) = parent {
        validate_branch_name(p)?;
        if p == branch {
            return Err(StackError::ParentIsSelf {
                branch: branch.to_string(),
            }
            .into());
        }
        if p != stack.trunk() && !stack.is_tracked(p) {
            return Err(StackError::MissingParent {
                branch: branch.to_string(),
                parent: p.to_string(),
            }
            .into());
        }
        if stack.is_tracked(branch) && stack.is_in_subtree(branch, p) {
            return Err(StackError::ParentInSubtree {
                branch: branch.to_string(),
                parent: p.to_string(),
            }
            .into());
        }
    }

    let mut steps = Steps::new(progress, 3);
    let live = fetch_live(clone, Some(stack), &mut steps, cancel).await?;
    let head = live
        .tip(branch)
        .ok_or_else(|| GitError::BranchNotFound {
            branch: branch.to_string(),
        })?
        .to_string();

    let parent = match parent {
        Some(p) => {
            steps.next(&format!("checking parent {p}"));
            if live.tip(p).is_none() {
                return Err(GitError::BranchNotFound {
                    branch: p.to_string(),
                });
            }
            p.to_string()
        }
        None => {
            steps.next(&format!("guessing the parent of {branch}"));
            guess_parent(clone, stack, branch, &live.heads, cancel).await?
        }
    };
    let parent_tip = live.tip(&parent).unwrap_or_default().to_string();

    steps.next(&format!("finding where {branch} forked from {parent}"));
    let out = clone
        .cmd()
        .args(["merge-base", &parent_tip, &head])
        .allow_exit_codes(&[1])
        .output(cancel)
        .await?;
    let base = out.text().trim().to_string();
    if out.code != 0 || base.is_empty() {
        return Err(GitError::NoMergeBase {
            branch: branch.to_string(),
            parent,
        });
    }
    let needs_restack = base != parent_tip;
    Ok(RegisterOutcome {
        tracked: TrackedBranch {
            name: branch.to_string(),
            parent,
            base_sha: Some(base),
        },
        needs_restack,
    })
}

async fn guess_parent(
    clone: &RepoClone,
    stack: &Stack,
    branch: &str,
    heads: &std::collections::BTreeMap<String, String>,
    cancel: &CancellationToken,
) -> Result<String, GitError> {
    let mut by_tip: HashMap<&str, Vec<&str>> = HashMap::new();
    for b in stack.branches() {
        if b.name == branch || stack.is_in_subtree(branch, &b.name) {
            continue;
        }
        if let Some(tip) = heads.get(&b.name) {
            by_tip
                .entry(tip.as_str())
                .or_default()
                .push(b.name.as_str());
        }
    }
    if by_tip.is_empty() {
        return Ok(stack.trunk().to_string());
    }
    let out = clone
        .cmd()
        .args(["rev-list", "--topo-order"])
        .arg(format!("refs/heads/{branch}"))
        .arg("--not")
        .arg(format!("refs/heads/{}", stack.trunk()))
        .arg("--")
        .run_text(cancel)
        .await?;
    for commit in out.lines() {
        if let Some(names) = by_tip.get(commit.trim()) {
            let best = names
                .iter()
                .max_by(|a, b| stack.depth(a).cmp(&stack.depth(b)).then_with(|| b.cmp(a)));
            if let Some(best) = best {
                return Ok(best.to_string());
            }
        }
    }
    Ok(stack.trunk().to_string())
}
