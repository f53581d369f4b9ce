//! The branch projection: one row per branch of the clone (tracked or not) with the numbers a
//! dashboard shows. Computed with a handful of batched git calls whatever the branch count.

use std::collections::{HashMap, HashSet};

use tokio_util::sync::CancellationToken;

use crate::batch::{DiffStat, ahead_behind, diff_stats, merge_previews, resolve};
use crate::clone::RepoClone;
use crate::error::GitError;
use crate::live::fetch_live;
use crate::progress::{Progress, Steps};
use crate::stack::Stack;

/// One branch as the dashboard shows it. The trunk itself is not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchState {
    /// Branch name.
    pub name: String,
    /// Its tip.
    pub head_sha: String,
    /// Its tracked parent; `None` when untracked.
    pub parent: Option<String>,
    /// Its recorded base; `None` when untracked or unknown.
    pub base_sha: Option<String>,
    /// Whether the stack tracks it.
    pub tracked: bool,
    /// Commits in the branch that its parent lacks (untracked branches, and tracked branches
    /// whose parent is gone: against the trunk).
    pub ahead: u32,
    /// Commits of its parent that it lacks.
    pub behind: u32,
    /// Tracked: its recorded base is not its parent's tip, or it lacks parent commits.
    /// Untracked: it lacks trunk commits.
    pub needs_restack: bool,
    /// Merging it into the trunk would conflict (`merge-tree --write-tree`).
    pub conflicts_with_trunk: bool,
    /// Size of its own changes: from its recorded base when that is in its history, else from
    /// the commit `ahead` first-parent steps below its tip.
    pub diff_stat: DiffStat,
}

/// Fetches, then computes [`BranchState`] for every branch of the clone but the trunk. Like
/// every operation that fetches, run it serialised with the repository's other jobs; use
/// [`local_branch_states`] for a read-only refresh.
pub async fn branch_states(
    clone: &RepoClone,
    stack: &Stack,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Vec<BranchState>, GitError> {
    let mut steps = Steps::new(progress, 2);
    fetch_live(clone, Some(stack), &mut steps, cancel).await?;
    steps.next("computing branch states");
    local_branch_states(clone, stack, cancel).await
}

/// Computes [`BranchState`] for every branch as the clone has it now, without fetching (for
/// right after another operation, which fetched and published). Read-only: safe to run beside
/// a job. Sorted by name.
pub async fn local_branch_states(
    clone: &RepoClone,
    stack: &Stack,
    cancel: &CancellationToken,
) -> Result<Vec<BranchState>, GitError> {
    let heads = clone.heads(cancel).await?;
    let trunk = stack.trunk();
    let trunk_sha = heads
        .get(trunk)
        .cloned()
        .ok_or_else(|| GitError::BranchNotFound {
            branch: trunk.to_string(),
        })?;
    let branches: Vec<(&String, &String)> = heads.iter().filter(|(n, _)| *n != trunk).collect();

    // What each branch is measured against: its tracked parent if that still exists, else trunk.
    let measure: HashMap<&str, &str> = branches
        .iter()
        .map(|(name, _)| {
            let against = stack
                .get(name)
                .map(|b| b.parent.as_str())
                .filter(|p| heads.contains_key(*p))
                .unwrap_or(trunk);
            (
                name.as_str(),
                heads
                    .get(against)
                    .map_or(trunk_sha.as_str(), String::as_str),
            )
        })
        .collect();

    let recorded: Vec<(&str, &str)> = branches
        .iter()
        .filter_map(|(name, _)| {
            stack
                .get(name)
                .and_then(|b| b.base_sha.as_deref())
                .map(|base| (name.as_str(), base))
        })
        .collect();
    let base_checks: Vec<String> = recorded
        .iter()
        .map(|(_, b)| format!("{b}^{{commit}}"))
        .collect();
    let existing: HashSet<(&str, &str)> = recorded
        .iter()
        .zip(resolve(clone, &base_checks, cancel).await?)
        .filter(|(_, found)| found.is_some())
        .map(|(&(n, b), _)| (n, b))
        .collect();

    let mut queries: Vec<(String, String)> = branches
        .iter()
        .map(|(name, _)| (name.to_string(), measure[name.as_str()].to_string()))
        .collect();
    queries.extend(existing.iter().map(|(n, b)| (n.to_string(), b.to_string())));
    let counts = ahead_behind(clone, &queries, cancel).await?;

    let pairs: Vec<(String, String)> = branches
        .iter()
        .map(|(_, sha)| (trunk_sha.clone(), sha.to_string()))
        .collect();
    let previews = merge_previews(clone, &pairs, cancel).await?;

    let mut rows = Vec::with_capacity(branches.len());
    let mut diff_from: Vec<Option<String>> = Vec::with_capacity(branches.len());
    let mut walk_back: Vec<(usize, String)> = Vec::new();
    for (i, ((name, head), preview)) in branches.iter().zip(&previews).enumerate() {
        let tracked = stack.get(name);
        let target = measure[name.as_str()];
        let (ahead, behind) = counts
            .get(&(name.to_string(), target.to_string()))
            .copied()
            .unwrap_or((0, 0));
        let base = tracked.and_then(|b| b.base_sha.clone());
        let base_in_history = base.as_deref().is_some_and(|b| {
            existing.contains(&(name.as_str(), b))
                && counts
                    .get(&(name.to_string(), b.to_string()))
                    .is_some_and(|&(_, behind)| behind == 0)
        });
        let needs_restack = match tracked {
            Some(t) => {
                let parent_tip = heads.get(&t.parent);
                behind > 0 || parent_tip.is_none() || base.as_ref() != parent_tip
            }
            None => behind > 0,
        };
        if base_in_history {
            diff_from.push(base.clone());
        } else {
            diff_from.push(None);
            if ahead > 0 {
                walk_back.push((i, format!("{head}~{ahead}")));
            }
        }
        rows.push(BranchState {
            name: name.to_string(),
            head_sha: head.to_string(),
            parent: tracked.map(|t| t.parent.clone()),
            base_sha: base,
            tracked: tracked.is_some(),
            ahead,
            behind,
            needs_restack,
            conflicts_with_trunk: !preview.clean,
            diff_stat: DiffStat::default(),
        });
    }

    let revs: Vec<String> = walk_back.iter().map(|(_, r)| r.clone()).collect();
    for ((i, _), found) in walk_back.iter().zip(resolve(clone, &revs, cancel).await?) {
        diff_from[*i] = found;
    }
    let mut diff_pairs = Vec::new();
    let mut diff_rows = Vec::new();
    for (i, from) in diff_from.iter().enumerate() {
        if let Some(from) = from
            && *from != rows[i].head_sha
        {
            diff_pairs.push((from.clone(), rows[i].head_sha.clone()));
            diff_rows.push(i);
        }
    }
    for (i, stat) in diff_rows
        .into_iter()
        .zip(diff_stats(clone, &diff_pairs, cancel).await?)
    {
        rows[i].diff_stat = stat;
    }
    Ok(rows)
}
