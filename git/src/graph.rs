//! An in-memory slice of the commit graph (the commits of the stack that are not on trunk),
//! loaded with one `git rev-list --parents`, so that planning a restack of hundreds of
//! branches asks "is X an ancestor of Y?" without one process per question.

use std::collections::{HashMap, HashSet, VecDeque};

use tokio_util::sync::CancellationToken;

use crate::clone::RepoClone;
use crate::error::GitError;

/// Commits reachable from some tips but not from some excluded commits, with their parents.
#[derive(Debug, Default)]
pub(crate) struct CommitGraph {
    parents: HashMap<String, Vec<String>>,
    /// The excluded commits the slice was cut at.
    excluded: Vec<String>,
}

impl CommitGraph {
    /// Loads `tips ^exclude...` (typically: every branch tip, excluding the trunk tip).
    pub(crate) async fn load(
        clone: &RepoClone,
        tips: &[String],
        exclude: &[String],
        cancel: &CancellationToken,
    ) -> Result<CommitGraph, GitError> {
        if tips.is_empty() {
            return Ok(CommitGraph::default());
        }
        let mut input = String::new();
        for tip in tips {
            input.push_str(tip);
            input.push('\n');
        }
        for ex in exclude {
            input.push('^');
            input.push_str(ex);
            input.push('\n');
        }
        let out = clone
            .cmd()
            .args(["rev-list", "--parents", "--stdin"])
            .stdin(input)
            .run_text(cancel)
            .await?;
        let mut graph = CommitGraph::parse(&out);
        graph.excluded = exclude.to_vec();
        Ok(graph)
    }

    fn parse(text: &str) -> CommitGraph {
        let parents = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let commit = words.next()?;
                Some((commit.to_string(), words.map(str::to_string).collect()))
            })
            .collect();
        CommitGraph {
            parents,
            excluded: Vec::new(),
        }
    }

    /// Whether `ancestor` is reachable from `descendant` (a commit is its own ancestor).
    /// `None` when the slice cannot tell (both lie outside it, beyond the excluded commits);
    /// the caller then asks git.
    pub(crate) fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Option<bool> {
        if ancestor == descendant {
            return Some(true);
        }
        if !self.parents.contains_key(descendant) {
            return None;
        }
        let mut seen: HashSet<&str> = HashSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([descendant]);
        let mut boundary_hit = false;
        while let Some(commit) = queue.pop_front() {
            if !seen.insert(commit) {
                continue;
            }
            if commit == ancestor {
                return Some(true);
            }
            match self.parents.get(commit) {
                Some(ps) => queue.extend(ps.iter().map(String::as_str)),
                None => boundary_hit = true,
            }
        }
        let sole_cut = self.excluded.len() == 1 && self.excluded[0] == ancestor;
        if self.parents.contains_key(ancestor) || !boundary_hit || sole_cut {
            // A commit inside the slice is not reachable from the excluded side, so it can
            // only be an ancestor through the slice itself, which we just walked. Likewise
            // the one commit the slice was cut at: every commit on a path from the
            // descendant down to it lies in the slice, so the walk would have reached it.
            Some(false)
        } else {
            None
        }
    }

    /// The commits just outside the slice that `descendant` reaches (where its history meets
    /// the excluded side). `None` when `descendant` is not in the slice.
    pub(crate) fn boundary(&self, descendant: &str) -> Option<Vec<String>> {
        self.parents.get(descendant)?;
        let mut seen: HashSet<&str> = HashSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([descendant]);
        let mut out: Vec<String> = Vec::new();
        while let Some(commit) = queue.pop_front() {
            if !seen.insert(commit) {
                continue;
            }
            match self.parents.get(commit) {
                Some(ps) => queue.extend(ps.iter().map(String::as_str)),
                None => out.push(commit.to_string()),
            }
        }
        out.sort();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_what_it_can() {
        // trunk history: t1 <- t2 (excluded); stack: a1 (on t1) <- a2 <- b1 ; c1 (on t2)
        let g = CommitGraph::parse("b1 a2\na2 a1\na1 t1\nc1 t2\n");
        assert_eq!(g.is_ancestor("a1", "b1"), Some(true));
        assert_eq!(g.is_ancestor("t1", "b1"), Some(true));
        assert_eq!(g.is_ancestor("b1", "a1"), Some(false));
        assert_eq!(g.is_ancestor("c1", "b1"), Some(false));
        assert_eq!(g.is_ancestor("b1", "b1"), Some(true));
        // t0 is beyond t1: only git knows.
        assert_eq!(g.is_ancestor("t0", "b1"), None);
        assert_eq!(g.is_ancestor("a1", "t2"), None);
        assert_eq!(g.boundary("b1"), Some(vec!["t1".to_string()]));
        assert_eq!(g.boundary("t1"), None);
        let mut cut = CommitGraph::parse("b1 a2\na2 a1\na1 t1\n");
        cut.excluded = vec!["t9".to_string()];
        assert_eq!(cut.is_ancestor("t9", "b1"), Some(false));
        assert_eq!(cut.is_ancestor("t8", "b1"), None);
    }
}
