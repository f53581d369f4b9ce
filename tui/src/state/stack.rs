//! A repo's branches as the stack tree people think in: trunk, then each branch under its parent,
//! children in name order. Also the one rule the reparent picker needs: a branch may move under
//! the trunk or any tracked branch outside its own subtree (anything else would make a cycle).
//!
//! The rows come from the server and are never trusted to be a tree: a cycle or a parent that is
//! missing cannot hang or hide a branch; such branches are shown as roots.

use std::collections::{BTreeMap, BTreeSet};

use gantry_types::Branch;

/// One line of the tree.
#[derive(Clone, Debug)]
pub struct StackRow<'a> {
    pub branch: &'a Branch,
    /// 0 for a branch stacked on the trunk (or shown as a root).
    pub depth: usize,
    /// For each ancestor level above this row, whether that ancestor was its parent's last
    /// child (then no vertical line continues at that level).
    pub ancestors_last: Vec<bool>,
    /// Whether this row is the last child of its parent.
    pub last: bool,
}

/// The branches in tree order. `branches` maps branch name to row.
pub fn stack_rows<'a>(trunk: &str, branches: &'a BTreeMap<String, Branch>) -> Vec<StackRow<'a>> {
    let mut children: BTreeMap<&str, Vec<&'a Branch>> = BTreeMap::new();
    let mut roots: Vec<&'a Branch> = Vec::new();
    for branch in branches.values().filter(|b| b.name != trunk) {
        match branch.parent.as_deref() {
            Some(parent)
                if parent != trunk && parent != branch.name && branches.contains_key(parent) =>
            {
                children.entry(parent).or_default().push(branch);
            }
            // Stacked on the trunk, untracked, or its parent is unknown: a root.
            _ => roots.push(branch),
        }
    }
    // Tracked roots first, then untracked ones; each group in name order (already, by BTreeMap).
    roots.sort_by_key(|b| !b.tracked);

    let mut rows = Vec::with_capacity(branches.len());
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let count = roots.len();
    for (i, root) in roots.into_iter().enumerate() {
        walk(
            root,
            &children,
            &mut seen,
            &mut rows,
            Vec::new(),
            i + 1 == count,
        );
    }
    // Branches only reachable through a cycle were never visited: show them as roots.
    let left: Vec<&'a Branch> = branches
        .values()
        .filter(|b| b.name != trunk && !seen.contains(b.name.as_str()))
        .collect();
    let count = left.len();
    for (i, branch) in left.into_iter().enumerate() {
        if !seen.contains(branch.name.as_str()) {
            walk(
                branch,
                &children,
                &mut seen,
                &mut rows,
                Vec::new(),
                i + 1 == count,
            );
        }
    }
    rows
}

fn walk<'a>(
    branch: &'a Branch,
    children: &BTreeMap<&str, Vec<&'a Branch>>,
    seen: &mut BTreeSet<&'a str>,
    rows: &mut Vec<StackRow<'a>>,
    ancestors_last: Vec<bool>,
    last: bool,
) {
    if !seen.insert(branch.name.as_str()) {
        return;
    }
    rows.push(StackRow {
        branch,
        depth: ancestors_last.len(),
        ancestors_last: ancestors_last.clone(),
        last,
    });
    let kids: Vec<&'a Branch> = children
        .get(branch.name.as_str())
        .map(|kids| {
            kids.iter()
                .copied()
                .filter(|k| !seen.contains(k.name.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let count = kids.len();
    for (i, kid) in kids.into_iter().enumerate() {
        let mut below = ancestors_last.clone();
        below.push(last);
        walk(kid, children, seen, rows, below, i + 1 == count);
    }
}

/// The branch and everything stacked on it, directly or not.
pub fn subtree(name: &str, branches: &BTreeMap<String, Branch>) -> BTreeSet<String> {
    let mut found = BTreeSet::from([name.to_owned()]);
    let mut frontier = vec![name.to_owned()];
    while let Some(parent) = frontier.pop() {
        for branch in branches.values() {
            if branch.parent.as_deref() == Some(parent.as_str())
                && found.insert(branch.name.clone())
            {
                frontier.push(branch.name.clone());
            }
        }
    }
    found
}

/// Where `name` may be reparented: the trunk, then tracked branches outside its subtree, in tree
/// order.
pub fn valid_parents(trunk: &str, name: &str, branches: &BTreeMap<String, Branch>) -> Vec<String> {
    let excluded = subtree(name, branches);
    std::iter::once(trunk.to_owned())
        .chain(
            stack_rows(trunk, branches)
                .into_iter()
                .filter(|row| row.branch.tracked && !excluded.contains(&row.branch.name))
                .map(|row| row.branch.name.clone()),
        )
        .collect()
}
