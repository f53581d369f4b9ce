//! Batched read-only queries (merge previews, ahead/behind counts, diff stats, revision
//! lookups): one git process answers for many branches, which is what keeps the branch
//! projection of a 300-branch repository fast.

use std::collections::{BTreeMap, HashMap};

use tokio_util::sync::CancellationToken;

use crate::clone::RepoClone;
use crate::error::GitError;

/// The result of merging two commits in memory (`git merge-tree --write-tree`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergePreview {
    /// Whether the merge is free of conflicts.
    pub clean: bool,
    /// The resulting tree (with conflict markers when not clean).
    pub tree: String,
    /// Paths with conflicts.
    pub conflicted: Vec<String>,
}

/// Merges each `(a, b)` pair in memory with one `git merge-tree --stdin`.
pub(crate) async fn merge_previews(
    clone: &RepoClone,
    pairs: &[(String, String)],
    cancel: &CancellationToken,
) -> Result<Vec<MergePreview>, GitError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let mut input = String::new();
    for (a, b) in pairs {
        input.push_str(a);
        input.push(' ');
        input.push_str(b);
        input.push('\n');
    }
    let out = clone
        .cmd()
        .args([
            "merge-tree",
            "--stdin",
            "--name-only",
            "--no-messages",
            "--allow-unrelated-histories",
        ])
        .stdin(input)
        .output(cancel)
        .await?;
    let previews = parse_merge_previews(&out.text())?;
    if previews.len() != pairs.len() {
        return Err(GitError::unexpected(
            "merge-tree --stdin",
            format!("{} answers for {} merges", previews.len(), pairs.len()),
        ));
    }
    Ok(previews)
}

/// Each merge prints `<1 clean | 0 conflicted> NUL <tree> NUL [<path> NUL]... NUL`.
fn parse_merge_previews(text: &str) -> Result<Vec<MergePreview>, GitError> {
    let mut out = Vec::new();
    let mut tokens = text.split('\0');
    while let Some(status) = tokens.next() {
        if status.is_empty() {
            continue;
        }
        let clean = match status {
            "1" => true,
            "0" => false,
            other => {
                return Err(GitError::unexpected(
                    "merge-tree --stdin",
                    format!("status {other:?}"),
                ));
            }
        };
        let tree = tokens
            .next()
            .ok_or_else(|| GitError::unexpected("merge-tree --stdin", "missing tree"))?
            .to_string();
        let mut conflicted = Vec::new();
        for token in tokens.by_ref() {
            if token.is_empty() {
                break;
            }
            conflicted.push(token.to_string());
        }
        out.push(MergePreview {
            clean,
            tree,
            conflicted,
        });
    }
    Ok(out)
}

/// How many `%(ahead-behind:...)` targets one `for-each-ref` computes: the walk is shared,
/// but every listed ref prints every target, so the output grows with the square.
const AHEAD_BEHIND_CHUNK: usize = 32;

/// `(ahead, behind)` of `refs/heads/<branch>` relative to `target` (a commit id or a full ref
/// name) for each query: ahead = commits in the branch not in target, behind = the reverse.
pub(crate) async fn ahead_behind(
    clone: &RepoClone,
    queries: &[(String, String)],
    cancel: &CancellationToken,
) -> Result<HashMap<(String, String), (u32, u32)>, GitError> {
    let mut result = HashMap::new();
    if queries.is_empty() {
        return Ok(result);
    }
    if !clone.git().has_ahead_behind() {
        for (branch, target) in queries {
            let out = clone
                .cmd()
                .args(["rev-list", "--left-right", "--count"])
                .arg(format!("refs/heads/{branch}...{target}"))
                .arg("--")
                .run_text(cancel)
                .await?;
            let mut nums = out
                .split_whitespace()
                .map(|n| n.parse::<u32>().unwrap_or(0));
            let ahead = nums.next().unwrap_or(0);
            let behind = nums.next().unwrap_or(0);
            result.insert((branch.clone(), target.clone()), (ahead, behind));
        }
        return Ok(result);
    }

    let mut by_target: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (branch, target) in queries {
        by_target
            .entry(target.as_str())
            .or_default()
            .push(branch.as_str());
    }
    let targets: Vec<(&str, Vec<&str>)> = by_target.into_iter().collect();
    for chunk in targets.chunks(AHEAD_BEHIND_CHUNK) {
        let mut format = String::from("%(refname)");
        for (target, _) in chunk {
            format.push_str(&format!(" %(ahead-behind:{target})"));
        }
        let mut refs: Vec<String> = chunk
            .iter()
            .flat_map(|(_, branches)| branches.iter().map(|b| format!("refs/heads/{b}")))
            .collect();
        refs.sort();
        refs.dedup();
        let out = clone
            .cmd()
            .arg("for-each-ref")
            .arg(format!("--format={format}"))
            .args(&refs)
            .run_text(cancel)
            .await?;
        for line in out.lines() {
            let mut words = line.split(' ');
            let Some(branch) = words.next().and_then(|r| r.strip_prefix("refs/heads/")) else {
                continue;
            };
            let nums: Vec<u32> = words.map(|n| n.parse().unwrap_or(0)).collect();
            for (i, (target, branches)) in chunk.iter().enumerate() {
                if branches.contains(&branch)
                    && let (Some(&ahead), Some(&behind)) = (nums.get(2 * i), nums.get(2 * i + 1))
                {
                    result.insert((branch.to_string(), target.to_string()), (ahead, behind));
                }
            }
        }
    }
    Ok(result)
}

/// Files changed, lines added and removed between two commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStat {
    /// Files that differ.
    pub files_changed: u32,
    /// Lines added.
    pub insertions: u32,
    /// Lines removed.
    pub deletions: u32,
}

/// Diff stats for each `(from, to)` commit pair, with one `git diff-tree --stdin`.
pub(crate) async fn diff_stats(
    clone: &RepoClone,
    pairs: &[(String, String)],
    cancel: &CancellationToken,
) -> Result<Vec<DiffStat>, GitError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    // A line "<commit> <parent>" diffs parent -> commit; --always prints a header even for an
    // empty diff, so records line up with the input.
    let mut input = String::new();
    for (from, to) in pairs {
        input.push_str(to);
        input.push(' ');
        input.push_str(from);
        input.push('\n');
    }
    let out = clone
        .cmd()
        .args([
            "diff-tree",
            "--stdin",
            "-r",
            "--numstat",
            "-z",
            "--always",
            "--no-renames",
        ])
        .stdin(input)
        .output(cancel)
        .await?;
    let stats = parse_diff_stats(&out.text());
    if stats.len() != pairs.len() {
        return Err(GitError::unexpected(
            "diff-tree --stdin",
            format!("{} answers for {} diffs", stats.len(), pairs.len()),
        ));
    }
    Ok(stats)
}

/// Records are a header token (the commit id, no tab) followed by `added\tdeleted\tpath`
/// tokens (`-\t-\t` for binary files).
fn parse_diff_stats(text: &str) -> Vec<DiffStat> {
    let mut out: Vec<DiffStat> = Vec::new();
    for token in text.split('\0') {
        if token.is_empty() {
            continue;
        }
        if !token.contains('\t') {
            out.push(DiffStat::default());
            continue;
        }
        let Some(stat) = out.last_mut() else {
            continue;
        };
        let mut fields = token.splitn(3, '\t');
        let added = fields
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        let removed = fields
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        stat.files_changed += 1;
        stat.insertions += added;
        stat.deletions += removed;
    }
    out
}

/// Resolves revision expressions (`<sha>~3`, `<sha>^{tree}`, ...) with one
/// `git cat-file --batch-check`; unresolvable ones map to `None`.
pub(crate) async fn resolve(
    clone: &RepoClone,
    revisions: &[String],
    cancel: &CancellationToken,
) -> Result<Vec<Option<String>>, GitError> {
    if revisions.is_empty() {
        return Ok(Vec::new());
    }
    let mut input = String::new();
    for rev in revisions {
        input.push_str(rev);
        input.push('\n');
    }
    let out = clone
        .cmd()
        .args(["cat-file", "--batch-check=%(objectname) %(objecttype)"])
        .stdin(input)
        .run_text(cancel)
        .await?;
    let answers: Vec<Option<String>> = out
        .lines()
        .map(|line| {
            let mut words = line.split(' ');
            match (words.next(), words.next()) {
                (Some(oid), Some("commit" | "tree" | "blob" | "tag")) => Some(oid.to_string()),
                _ => None,
            }
        })
        .collect();
    if answers.len() != revisions.len() {
        return Err(GitError::unexpected(
            "cat-file --batch-check",
            format!(
                "{} answers for {} revisions",
                answers.len(),
                revisions.len()
            ),
        ));
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_merge_tree_stdin_output() {
        let text = "1\x00aaa\x00\x000\x00bbb\x00conf\x00other\x00\x001\x00ccc\x00\x00";
        let previews = parse_merge_previews(text).unwrap();
        assert_eq!(previews.len(), 3);
        assert!(previews[0].clean);
        assert_eq!(previews[0].tree, "aaa");
        assert!(!previews[1].clean);
        assert_eq!(previews[1].conflicted, ["conf", "other"]);
        assert_eq!(previews[2].tree, "ccc");
    }

    #[test]
    fn parses_diff_tree_numstat() {
        let text = "c1\x002\t0\ts1\x001\t3\ts2\x00c2\x00c3\x00-\t-\tbin\x00";
        let stats = parse_diff_stats(text);
        assert_eq!(
            stats,
            [
                DiffStat {
                    files_changed: 2,
                    insertions: 3,
                    deletions: 3
                },
                DiffStat::default(),
                DiffStat {
                    files_changed: 1,
                    insertions: 0,
                    deletions: 0
                },
            ]
        );
    }
}
