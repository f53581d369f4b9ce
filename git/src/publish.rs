//! Publishing an operation's result: every moved ref in one local `update-ref` transaction,
//! then one atomic push whose leases name the values fetched at the start, so a person's
//! concurrent push is never overwritten and the remote sees all of the job or none of it.

use tokio_util::sync::CancellationToken;

use crate::clone::{REMOTE, RepoClone};
use crate::error::GitError;

/// A branch an operation moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefMove {
    /// Branch name.
    pub branch: String,
    /// Its tip before (the value fetched from the remote).
    pub from: String,
    /// Its tip after.
    pub to: String,
}

/// Moves the refs locally (compare-and-swap on `from`) and pushes them atomically with
/// `--force-with-lease=refs/heads/B:<from>`. If the push fails, the local refs are put back
/// to `from`, so the clone again mirrors the remote.
pub(crate) async fn publish(
    clone: &RepoClone,
    moves: &[RefMove],
    cancel: &CancellationToken,
) -> Result<(), GitError> {
    if moves.is_empty() {
        return Ok(());
    }
    update_refs(clone, moves, Direction::Forward, cancel).await?;
    let pushed = push(clone, moves, cancel).await;
    if pushed.is_err() {
        // Runs even when the job was cancelled: the clone must not keep unpushed refs.
        let token = CancellationToken::new();
        if let Err(e) = update_refs(clone, moves, Direction::Back, &token).await {
            tracing::warn!(error = %e, "restoring local refs after a failed push; the next fetch re-mirrors them");
        }
    }
    pushed
}

#[derive(Clone, Copy)]
enum Direction {
    Forward,
    Back,
}

async fn update_refs(
    clone: &RepoClone,
    moves: &[RefMove],
    direction: Direction,
    cancel: &CancellationToken,
) -> Result<(), GitError> {
    let mut input = String::from("start\n");
    for m in moves {
        let (new, old) = match direction {
            Direction::Forward => (&m.to, &m.from),
            Direction::Back => (&m.from, &m.to),
        };
        input.push_str(&format!("update refs/heads/{} {new} {old}\n", m.branch));
    }
    input.push_str("prepare\ncommit\n");
    let message = match direction {
        Direction::Forward => "gantry: publish",
        Direction::Back => "gantry: roll back unpushed refs",
    };
    clone
        .cmd()
        .args(["update-ref", "-m", message, "--stdin"])
        .stdin(input)
        .run(cancel)
        .await
}

async fn push(
    clone: &RepoClone,
    moves: &[RefMove],
    cancel: &CancellationToken,
) -> Result<(), GitError> {
    let mut cmd = clone
        .cmd()
        .args(["push", "--atomic", "--porcelain", "--no-verify", REMOTE]);
    for m in moves {
        cmd = cmd.arg(format!(
            "--force-with-lease=refs/heads/{}:{}",
            m.branch, m.from
        ));
    }
    for m in moves {
        cmd = cmd.arg(format!("{}:refs/heads/{}", m.to, m.branch));
    }
    // Exit 1 is how push reports rejected refs; the porcelain lines on stdout say which.
    let out = cmd.allow_exit_codes(&[1]).output(cancel).await?;
    if out.code == 0 {
        return Ok(());
    }
    let text = out.text();
    Err(
        classify_rejection(&text, &out.stderr).unwrap_or_else(|| GitError::Command {
            args: vec!["push".into(), "--atomic".into(), REMOTE.into()],
            code: Some(out.code),
            stderr: format!("{}\n{}", text.trim(), out.stderr.trim())
                .trim()
                .to_string(),
        }),
    )
}

/// Reads `git push --porcelain` lines (`!\t<src>:<dst>\t[rejected] (stale info)`) and decides
/// whose fault a failed atomic push was. Refs marked only "atomic push failed" were collateral.
///
/// When someone pushes between the lease check and the remote's ref transaction, every line says
/// only "atomic transaction failed" and the remote names the moved ref on stderr (`cannot lock
/// ref 'refs/heads/b': is at X but expected Y`): that too is a branch moved on the remote.
pub(crate) fn classify_rejection(porcelain: &str, stderr: &str) -> Option<GitError> {
    let classified = classify_porcelain(porcelain);
    if classified.is_some() {
        return classified;
    }
    let moved: Vec<String> = stderr
        .lines()
        .filter(|line| line.contains("but expected"))
        .filter_map(|line| {
            let (_, rest) = line.split_once("cannot lock ref 'refs/heads/")?;
            let (branch, _) = rest.split_once('\'')?;
            Some(branch.to_string())
        })
        .collect();
    (!moved.is_empty()).then_some(GitError::PushRejected { branches: moved })
}

fn classify_porcelain(porcelain: &str) -> Option<GitError> {
    let mut moved_remotely = Vec::new();
    let mut refused = Vec::new();
    let mut reason = String::new();
    for line in porcelain.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(flag), Some(refs), Some(summary)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if flag != "!" {
            continue;
        }
        let Some(branch) = refs
            .rsplit_once(':')
            .and_then(|(_, dst)| dst.strip_prefix("refs/heads/"))
        else {
            continue;
        };
        let lower = summary.to_ascii_lowercase();
        if lower.contains("atomic") {
            continue;
        }
        if [
            "stale info",
            "fetch first",
            "non-fast-forward",
            "already exists",
            "failed to update ref",
            "failed to lock",
            "incorrect old value",
        ]
        .iter()
        .any(|m| lower.contains(m))
        {
            moved_remotely.push(branch.to_string());
        } else {
            refused.push(branch.to_string());
            if reason.is_empty() {
                reason = summary.trim().to_string();
            }
        }
    }
    if !moved_remotely.is_empty() {
        Some(GitError::PushRejected {
            branches: moved_remotely,
        })
    } else if !refused.is_empty() {
        Some(GitError::PushRefused {
            branches: refused,
            reason,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_branch_whose_lease_failed() {
        let out = "To /tmp/remote.git\n\
            !\t4ae6:refs/heads/s1\t[rejected] (atomic push failed)\n\
            !\t48e8:refs/heads/s2\t[rejected] (stale info)\n\
            Done\n";
        match classify_rejection(out, "") {
            Some(GitError::PushRejected { branches }) => assert_eq!(branches, ["s2"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn hook_refusals_are_not_foreign_pushes() {
        let out = "!\tabc:refs/heads/a\t[remote rejected] (pre-receive hook declined)\n";
        match classify_rejection(out, "") {
            Some(GitError::PushRefused { branches, reason }) => {
                assert_eq!(branches, ["a"]);
                assert!(reason.contains("hook declined"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(classify_rejection("=\tabc:refs/heads/a\t[up to date]\n", "").is_none());
    }

    /// Found by the chaos test: a person's push landing between the lease check and the remote's
    /// ref transaction.
    #[test]
    fn a_push_racing_the_remote_transaction_is_a_foreign_push() {
        let out = "To /tmp/remote.git\n\
            !\t0608:refs/heads/s00\t[remote rejected] (atomic transaction failed)\n\
            !\t2c3d:refs/heads/s08\t[remote rejected] (atomic transaction failed)\n\
            Done\n";
        let err = "remote: error: cannot lock ref 'refs/heads/s08': is at 0072 but expected 1ca5\n\
            error: failed to push some refs to '/tmp/remote.git'";
        match classify_rejection(out, err) {
            Some(GitError::PushRejected { branches }) => assert_eq!(branches, ["s08"]),
            other => panic!("unexpected {other:?}"),
        }
        assert!(classify_rejection(out, "error: something else").is_none());
    }
}
