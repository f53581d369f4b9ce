//! The stack model: which tracked branch sits on which, as recorded by the server. Pure data
//! and graph logic with no git in it, so every rule about parents, cycles and ordering is
//! decided (and unit-tested) in one place before any process runs.

use std::collections::{HashMap, HashSet};

use crate::refname::{InvalidBranchName, validate_branch_name};

/// One tracked branch as the server records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackedBranch {
    /// Branch name (without `refs/heads/`).
    pub name: String,
    /// The trunk's name or another tracked branch's name.
    pub parent: String,
    /// The parent tip this branch was last stacked on: the boundary between the parent's
    /// commits and the branch's own. `None` when unknown (it is then re-derived).
    pub base_sha: Option<String>,
}

impl TrackedBranch {
    /// Convenience constructor.
    pub fn new(
        name: impl Into<String>,
        parent: impl Into<String>,
        base_sha: Option<String>,
    ) -> TrackedBranch {
        TrackedBranch {
            name: name.into(),
            parent: parent.into(),
            base_sha,
        }
    }
}

/// Why a set of tracked branches is not a valid stack, or a change to it is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    /// Parent links loop; `branches` lists the loop in parent order.
    #[error("the stack has a cycle: {}", branches.join(" -> "))]
    Cycle {
        /// The branches on the loop.
        branches: Vec<String>,
    },
    /// A branch names a parent that is neither the trunk nor tracked.
    #[error("branch '{branch}' has parent '{parent}', which is neither the trunk nor tracked")]
    MissingParent {
        /// The branch.
        branch: String,
        /// Its unknown parent.
        parent: String,
    },
    /// The same branch is tracked twice.
    #[error("branch '{branch}' is tracked twice")]
    Duplicate {
        /// The duplicated name.
        branch: String,
    },
    /// The trunk appears as a tracked branch.
    #[error("the trunk '{trunk}' cannot be a tracked branch")]
    TrunkTracked {
        /// The trunk name.
        trunk: String,
    },
    /// A name in the stack is not a valid branch name.
    #[error(transparent)]
    InvalidName(#[from] InvalidBranchName),
    /// The branch an operation names is not tracked.
    #[error("branch '{branch}' is not tracked")]
    NotTracked {
        /// The untracked branch.
        branch: String,
    },
    /// A branch cannot be its own parent.
    #[error("branch '{branch}' cannot be its own parent")]
    ParentIsSelf {
        /// The branch.
        branch: String,
    },
    /// The new parent sits above the branch, so the change would make a cycle.
    #[error("'{parent}' is stacked on '{branch}', so it cannot become its parent")]
    ParentInSubtree {
        /// The branch being reparented.
        branch: String,
        /// The refused parent (a descendant of `branch`).
        parent: String,
    },
}

/// A validated stack: a forest of tracked branches rooted at the trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    trunk: String,
    /// Parent-first (depth-first pre-order, siblings by name), so every subtree is contiguous.
    order: Vec<TrackedBranch>,
    index: HashMap<String, usize>,
    children: HashMap<String, Vec<String>>,
}

impl Stack {
    /// Validates `branches` against `trunk`: valid names, no duplicates, every parent tracked
    /// or the trunk, no cycles.
    pub fn new(
        trunk: impl Into<String>,
        branches: Vec<TrackedBranch>,
    ) -> Result<Stack, StackError> {
        let trunk = trunk.into();
        validate_branch_name(&trunk)?;
        let mut names = HashSet::new();
        for b in &branches {
            validate_branch_name(&b.name)?;
            if b.name == trunk {
                return Err(StackError::TrunkTracked { trunk });
            }
            if !names.insert(b.name.as_str()) {
                return Err(StackError::Duplicate {
                    branch: b.name.clone(),
                });
            }
        }
        for b in &branches {
            if b.parent != trunk && !names.contains(b.parent.as_str()) {
                return Err(StackError::MissingParent {
                    branch: b.name.clone(),
                    parent: b.parent.clone(),
                });
            }
        }

        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        for b in &branches {
            children
                .entry(b.parent.clone())
                .or_default()
                .push(b.name.clone());
        }
        for list in children.values_mut() {
            list.sort();
        }

        let by_name: HashMap<&str, &TrackedBranch> =
            branches.iter().map(|b| (b.name.as_str(), b)).collect();
        let mut order = Vec::with_capacity(branches.len());
        let mut stack: Vec<&str> = children
            .get(&trunk)
            .map(|c| c.iter().rev().map(String::as_str).collect())
            .unwrap_or_default();
        while let Some(name) = stack.pop() {
            if let Some(b) = by_name.get(name) {
                order.push((*b).clone());
            }
            if let Some(kids) = children.get(name) {
                stack.extend(kids.iter().rev().map(String::as_str));
            }
        }

        if order.len() != branches.len() {
            // Every parent exists, so anything the walk from the trunk missed hangs off a loop.
            let reached: HashSet<&str> = order.iter().map(|b| b.name.as_str()).collect();
            let start = branches
                .iter()
                .map(|b| b.name.as_str())
                .filter(|n| !reached.contains(n))
                .min()
                .unwrap_or_default();
            return Err(StackError::Cycle {
                branches: find_cycle(start, &by_name),
            });
        }

        let index = order
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.clone(), i))
            .collect();
        Ok(Stack {
            trunk,
            order,
            index,
            children,
        })
    }

    /// The trunk's name.
    pub fn trunk(&self) -> &str {
        &self.trunk
    }

    /// All tracked branches, parent first (a subtree is always contiguous).
    pub fn branches(&self) -> &[TrackedBranch] {
        &self.order
    }

    /// Consumes the stack, returning its branches parent first.
    pub fn into_branches(self) -> Vec<TrackedBranch> {
        self.order
    }

    /// The tracked branch called `name`.
    pub fn get(&self, name: &str) -> Option<&TrackedBranch> {
        self.index.get(name).map(|&i| &self.order[i])
    }

    /// Whether `name` is tracked.
    pub fn is_tracked(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Number of tracked branches.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no branch is tracked.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The direct children of `name` (which may be the trunk), sorted by name.
    pub fn children(&self, name: &str) -> &[String] {
        self.children.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `branch` and every branch stacked above it, parent first. Empty if `branch` is not
    /// tracked.
    pub fn subtree(&self, branch: &str) -> Vec<&TrackedBranch> {
        let Some(&start) = self.index.get(branch) else {
            return Vec::new();
        };
        // Pre-order makes the subtree the run of entries after `start` that descend from it.
        let mut out = vec![&self.order[start]];
        for b in &self.order[start + 1..] {
            if self.is_in_subtree(branch, &b.name) {
                out.push(b);
            } else {
                break;
            }
        }
        out
    }

    /// Whether `candidate` is `root` or stacked (directly or not) on `root`.
    pub fn is_in_subtree(&self, root: &str, candidate: &str) -> bool {
        let mut current = candidate;
        let mut steps = 0;
        loop {
            if current == root {
                return true;
            }
            match self.get(current) {
                Some(b) if steps <= self.order.len() => {
                    current = &b.parent;
                    steps += 1;
                }
                _ => return false,
            }
        }
    }

    /// The chain of tracked parents of `branch`, nearest first, excluding the trunk.
    pub fn ancestors(&self, branch: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut current = self.get(branch);
        while let Some(b) = current {
            match self.get(&b.parent) {
                Some(p) => {
                    out.push(p.name.as_str());
                    current = Some(p);
                }
                None => break,
            }
        }
        out
    }

    /// How many tracked branches lie between `branch` and the trunk (a root has depth 0).
    pub fn depth(&self, branch: &str) -> usize {
        self.ancestors(branch).len()
    }

    /// A copy of the stack with `branch` moved onto `new_parent`, refusing a missing parent,
    /// the branch itself, or a parent inside the branch's own subtree. The branch keeps its
    /// `base_sha`: it still marks where the branch's own commits start.
    pub fn reparent(&self, branch: &str, new_parent: &str) -> Result<Stack, StackError> {
        if !self.is_tracked(branch) {
            return Err(StackError::NotTracked {
                branch: branch.to_string(),
            });
        }
        if branch == new_parent {
            return Err(StackError::ParentIsSelf {
                branch: branch.to_string(),
            });
        }
        if new_parent != self.trunk && !self.is_tracked(new_parent) {
            return Err(StackError::MissingParent {
                branch: branch.to_string(),
                parent: new_parent.to_string(),
            });
        }
        if self.is_in_subtree(branch, new_parent) {
            return Err(StackError::ParentInSubtree {
                branch: branch.to_string(),
                parent: new_parent.to_string(),
            });
        }
        let branches = self
            .order
            .iter()
            .map(|b| {
                let mut b = b.clone();
                if b.name == branch {
                    b.parent = new_parent.to_string();
                }
                b
            })
            .collect();
        Stack::new(self.trunk.clone(), branches)
    }

    /// A copy of the stack with `tracked` added, or replacing the entry of the same name.
    pub fn with_branch(&self, tracked: TrackedBranch) -> Result<Stack, StackError> {
        let mut branches: Vec<TrackedBranch> = self
            .order
            .iter()
            .filter(|b| b.name != tracked.name)
            .cloned()
            .collect();
        branches.push(tracked);
        Stack::new(self.trunk.clone(), branches)
    }
}

/// Follows parent links from `start` until a branch repeats, and returns the loop.
fn find_cycle(start: &str, by_name: &HashMap<&str, &TrackedBranch>) -> Vec<String> {
    let mut path: Vec<&str> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut current = start;
    loop {
        if let Some(&at) = seen.get(current) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
            // Start the report at the smallest name so it is the same whatever the input order.
            if let Some(min_at) = cycle
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i)
            {
                cycle.rotate_left(min_at);
            }
            return cycle;
        }
        seen.insert(current, path.len());
        path.push(current);
        match by_name.get(current) {
            Some(b) => current = b.parent.as_str(),
            None => return path.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tb(name: &str, parent: &str) -> TrackedBranch {
        TrackedBranch::new(name, parent, None)
    }

    fn names(v: &[&TrackedBranch]) -> Vec<String> {
        v.iter().map(|b| b.name.clone()).collect()
    }

    fn sample() -> Stack {
        // main <- a <- b <- c ; b <- side ; main <- z
        Stack::new(
            "main",
            vec![
                tb("c", "b"),
                tb("side", "b"),
                tb("z", "main"),
                tb("b", "a"),
                tb("a", "main"),
            ],
        )
        .unwrap()
    }

    #[test]
    fn orders_parent_first_with_contiguous_subtrees() {
        let s = sample();
        let order: Vec<&str> = s.branches().iter().map(|b| b.name.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "side", "z"]);
        assert_eq!(s.children("main"), ["a", "z"]);
        assert_eq!(s.children("b"), ["c", "side"]);
        assert!(s.children("c").is_empty());
    }

    #[test]
    fn subtree_and_membership() {
        let s = sample();
        assert_eq!(names(&s.subtree("b")), ["b", "c", "side"]);
        assert_eq!(names(&s.subtree("a")), ["a", "b", "c", "side"]);
        assert_eq!(names(&s.subtree("z")), ["z"]);
        assert!(s.subtree("nope").is_empty());
        assert!(s.is_in_subtree("a", "side"));
        assert!(s.is_in_subtree("b", "b"));
        assert!(!s.is_in_subtree("b", "a"));
        assert!(!s.is_in_subtree("z", "c"));
        assert_eq!(s.ancestors("side"), ["b", "a"]);
        assert_eq!(s.depth("c"), 2);
        assert_eq!(s.depth("a"), 0);
    }

    #[test]
    fn reports_cycles() {
        let err = Stack::new(
            "main",
            vec![tb("a", "b"), tb("b", "c"), tb("c", "a"), tb("d", "main")],
        )
        .unwrap_err();
        assert_eq!(
            err,
            StackError::Cycle {
                branches: vec!["a".into(), "b".into(), "c".into()]
            }
        );
        let err = Stack::new("main", vec![tb("x", "x")]).unwrap_err();
        assert_eq!(
            err,
            StackError::Cycle {
                branches: vec!["x".into()]
            }
        );
        // A branch hanging off a loop reports the loop, not itself.
        let err = Stack::new("main", vec![tb("a", "b"), tb("b", "a"), tb("0", "a")]).unwrap_err();
        assert_eq!(
            err,
            StackError::Cycle {
                branches: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn reports_missing_parents_duplicates_and_bad_names() {
        assert_eq!(
            Stack::new("main", vec![tb("a", "ghost")]).unwrap_err(),
            StackError::MissingParent {
                branch: "a".into(),
                parent: "ghost".into()
            }
        );
        assert_eq!(
            Stack::new("main", vec![tb("a", "main"), tb("a", "main")]).unwrap_err(),
            StackError::Duplicate { branch: "a".into() }
        );
        assert_eq!(
            Stack::new("main", vec![tb("main", "main")]).unwrap_err(),
            StackError::TrunkTracked {
                trunk: "main".into()
            }
        );
        assert!(matches!(
            Stack::new("main", vec![tb("a..b", "main")]).unwrap_err(),
            StackError::InvalidName(_)
        ));
    }

    #[test]
    fn reparent_rules() {
        let s = sample();
        assert_eq!(
            s.reparent("b", "b").unwrap_err(),
            StackError::ParentIsSelf { branch: "b".into() }
        );
        assert_eq!(
            s.reparent("b", "side").unwrap_err(),
            StackError::ParentInSubtree {
                branch: "b".into(),
                parent: "side".into()
            }
        );
        assert_eq!(
            s.reparent("b", "ghost").unwrap_err(),
            StackError::MissingParent {
                branch: "b".into(),
                parent: "ghost".into()
            }
        );
        assert_eq!(
            s.reparent("ghost", "a").unwrap_err(),
            StackError::NotTracked {
                branch: "ghost".into()
            }
        );
        let moved = s.reparent("b", "z").unwrap();
        assert_eq!(moved.get("b").unwrap().parent, "z");
        assert_eq!(names(&moved.subtree("z")), ["z", "b", "c", "side"]);
        let to_trunk = s.reparent("c", "main").unwrap();
        assert_eq!(to_trunk.children("main"), ["a", "c", "z"]);
    }

    #[test]
    fn with_branch_adds_or_replaces() {
        let s = sample();
        let added = s.with_branch(tb("d", "c")).unwrap();
        assert_eq!(added.get("d").unwrap().parent, "c");
        let replaced = s.with_branch(tb("c", "main")).unwrap();
        assert_eq!(replaced.len(), s.len());
        assert_eq!(replaced.get("c").unwrap().parent, "main");
        assert!(s.with_branch(tb("a", "c")).is_err());
    }
}
