//! Deciding, from live refs and recorded metadata, where each branch's own commits start (its
//! effective base). Getting this right is what makes restacking idempotent: a branch that
//! already sits on its parent's tip gets that tip as base, so re-running is a no-op.

use std::collections::{HashMap, HashSet};

use tokio_util::sync::CancellationToken;

use crate::clone::RepoClone;
use crate::error::GitError;
use crate::graph::CommitGraph;
use crate::live::Live;
use crate::stack::Stack;

/// One branch the restack will look at, with its effective base.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub name: String,
    pub parent: String,
    /// The branch's tip as fetched.
    pub old: String,
    /// The commit after which the branch's own commits start.
    pub base: String,
}

/// The branches to restack, parent first, and those left alone because they or an ancestor
/// are gone from the remote.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub branches: Vec<Planned>,
    pub skipped: Vec<String>,
}

/// Plans `selection` (names in parent-first order). `base_parent` overrides, per branch, the
/// parent whose tip bounds its own commits (a reparented branch's old parent).
///
/// The base is the first of: the base parent's tip if it is in the branch's history (the
/// branch is stacked on it as it is now); the recorded base if it is in the branch's history;
/// `merge-base --fork-point` against the base parent; plain `merge-base`. Then, for a branch
/// on the trunk, a base below the point where the branch meets the trunk moves up to it.
pub(crate) async fn plan(
    clone: &RepoClone,
    stack: &Stack,
    selection: &[String],
    base_parent: &HashMap<String, String>,
    live: &Live,
    cancel: &CancellationToken,
) -> Result<Plan, GitError> {
    let mut plan = Plan::default();
    let mut skipped: HashSet<&str> = HashSet::new();
    let mut candidates: Vec<(String, String, String, Option<String>)> = Vec::new();
    for name in selection {
        let Some(tracked) = stack.get(name) else {
            continue;
        };
        let parent = tracked.parent.as_str();
        let gone =
            live.tip(name).is_none() || live.tip(parent).is_none() || skipped.contains(parent);
        if gone {
            skipped.insert(name.as_str());
            plan.skipped.push(name.clone());
            continue;
        }
        let bp = base_parent
            .get(name)
            .cloned()
            .unwrap_or_else(|| parent.to_string());
        let old = live.tip(name).unwrap_or_default().to_string();
        candidates.push((name.clone(), bp, old, tracked.base_sha.clone()));
    }
    if candidates.is_empty() {
        return Ok(plan);
    }

    let mut tips: Vec<String> = candidates.iter().map(|c| c.2.clone()).collect();
    for (_, bp, _, _) in &candidates {
        if let Some(t) = live.tip(bp)
            && bp != clone.trunk()
        {
            tips.push(t.to_string());
        }
    }
    tips.sort();
    tips.dedup();
    let graph =
        CommitGraph::load(clone, &tips, std::slice::from_ref(&live.trunk_sha), cancel).await?;

    for (name, bp, old, recorded) in candidates {
        let parent = stack
            .get(&name)
            .map(|b| b.parent.clone())
            .unwrap_or_default();
        let bp_tip = live.tip(&bp).map(str::to_string);
        let mut base = None;
        if let Some(t) = &bp_tip
            && is_ancestor(clone, &graph, t, &old, cancel).await?
        {
            base = Some(t.clone());
        }
        if base.is_none()
            && let Some(r) = &recorded
            && is_ancestor(clone, &graph, r, &old, cancel).await?
        {
            base = Some(r.clone());
        }
        if base.is_none() {
            base = repair_base(clone, &bp, bp_tip.as_deref(), &old, live, cancel).await?;
        }
        let Some(mut base) = base else {
            return Err(GitError::NoMergeBase {
                branch: name,
                parent: bp,
            });
        };
        // A branch on the trunk whose base is older than where it meets the trunk (someone
        // rebased it by hand onto a newer trunk commit): the commits in between are the
        // trunk's, already in the new parent, and must not be replayed as the branch's own.
        if parent == clone.trunk()
            && base != live.trunk_sha
            && let Some(meets) = graph.boundary(&old)
            && let [meets] = meets.as_slice()
            && *meets != base
            && is_ancestor(clone, &graph, &base, meets, cancel).await?
        {
            base = meets.clone();
        }
        if recorded.as_deref() != Some(base.as_str()) {
            tracing::debug!(branch = %name, ?recorded, %base, "effective base differs from recorded");
        }
        plan.branches.push(Planned {
            name,
            parent,
            old,
            base,
        });
    }
    Ok(plan)
}

async fn is_ancestor(
    clone: &RepoClone,
    graph: &CommitGraph,
    ancestor: &str,
    descendant: &str,
    cancel: &CancellationToken,
) -> Result<bool, GitError> {
    if let Some(answer) = graph.is_ancestor(ancestor, descendant) {
        return Ok(answer);
    }
    // 1 = no; 128 = not a commit we have (e.g. a recorded base lost to a force push): no.
    let out = clone
        .cmd()
        .args(["merge-base", "--is-ancestor", ancestor, descendant])
        .allow_exit_codes(&[1, 128])
        .output(cancel)
        .await?;
    Ok(out.code == 0)
}

/// The last resorts for a branch whose recorded base is gone: the fork point from the base
/// parent's reflog, then the merge base with it (or with the trunk if it is gone too).
async fn repair_base(
    clone: &RepoClone,
    base_parent: &str,
    base_parent_tip: Option<&str>,
    old: &str,
    live: &Live,
    cancel: &CancellationToken,
) -> Result<Option<String>, GitError> {
    if base_parent_tip.is_some() {
        let out = clone
            .cmd()
            .args(["merge-base", "--fork-point"])
            .arg(format!("refs/heads/{base_parent}"))
            .arg(old)
            .allow_exit_codes(&[1, 128])
            .output(cancel)
            .await?;
        let sha = out.text().trim().to_string();
        if out.code == 0 && !sha.is_empty() {
            return Ok(Some(sha));
        }
    }
    let against = base_parent_tip.unwrap_or(&live.trunk_sha);
    let out = clone
        .cmd()
        .args(["merge-base", against, old])
        .allow_exit_codes(&[1])
        .output(cancel)
        .await?;
    let sha = out.text().trim().to_string();
    Ok((out.code == 0 && !sha.is_empty()).then_some(sha))
}
