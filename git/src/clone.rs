//! The server-owned bare clone of one repository, so no operation ever touches a person's
//! checkout, and a crash can never leave a half-made clone behind.
//!
//! # Ref layout
//!
//! The clone mirrors the remote's branches into its own `refs/heads/*`: every fetch runs
//! `git fetch --prune origin +refs/heads/*:refs/heads/*`, so after it the clone's branches are
//! exactly the remote's (new ones appear, deleted ones disappear, force-pushed ones follow).
//! There are no `refs/remotes/*`, and no tags. Nothing but a fetch or an operation's publish
//! step writes `refs/heads/*`, and a publish writes them only for refs it pushes in the same
//! step (rolled back if the push fails), so any local leftovers of an interrupted run are
//! overwritten by the next fetch: every job re-plans from the remote's live refs.
//!
//! `HEAD` points at the trunk. Reflogs are on (`core.logAllRefUpdates=true`), which is what
//! lets `merge-base --fork-point` find where a branch forked from its parent's earlier tip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use crate::error::GitError;
use crate::refname::validate_branch_name;
use crate::runner::{Git, GitCommand, Location};

/// The refspec every fetch uses: the remote's branches become the clone's branches.
pub const MIRROR_REFSPEC: &str = "+refs/heads/*:refs/heads/*";

/// The remote name the clone pushes to and fetches from.
pub const REMOTE: &str = "origin";

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A process-unique suffix for temporary names (clone staging dirs, worktrees).
pub(crate) fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{:08x}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The server's bare clone of one repository.
#[derive(Debug, Clone)]
pub struct RepoClone {
    git: Git,
    path: PathBuf,
    trunk: String,
}

impl RepoClone {
    /// Opens the bare clone at `path`, or clones `remote_url` there when it does not exist yet.
    ///
    /// A new clone is made in a temporary sibling directory and renamed into place, so a crash
    /// mid-clone leaves only a temporary directory (removed by the next call), never a
    /// half-clone at `path`. An existing clone has its `origin` URL updated if `remote_url`
    /// changed.
    pub async fn open_or_clone(
        git: &Git,
        path: impl Into<PathBuf>,
        remote_url: &str,
        trunk: &str,
        cancel: &CancellationToken,
    ) -> Result<RepoClone, GitError> {
        validate_branch_name(trunk)?;
        // Absolute paths: git runs with the clone or a worktree as its working directory, where
        // a relative clone path or local remote URL would mean something else.
        let path = std::path::absolute(path.into())
            .map_err(|e| GitError::io("resolving the clone path", e))?;
        let remote_url = match Path::new(remote_url) {
            local if local.exists() => std::path::absolute(local)
                .map_err(|e| GitError::io("resolving the remote path", e))?
                .to_string_lossy()
                .into_owned(),
            _ => remote_url.to_string(),
        };
        let remote_url = remote_url.as_str();
        let clone = RepoClone {
            git: git.clone(),
            path: path.clone(),
            trunk: trunk.to_string(),
        };
        if path.join("HEAD").is_file() && path.join("objects").is_dir() {
            let current = clone
                .cmd()
                .args(["config", "--get", "remote.origin.url"])
                .allow_exit_codes(&[1])
                .run_text(cancel)
                .await?;
            if current.trim_end_matches('\n') != remote_url {
                clone
                    .cmd()
                    .args(["config", "--", "remote.origin.url", remote_url])
                    .run(cancel)
                    .await?;
            }
            return Ok(clone);
        }
        if path.exists() {
            return Err(GitError::io(
                format!("{} exists but is not a bare git repository", path.display()),
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }

        let (parent, file_name) = split_path(&path)?;
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| GitError::io(format!("creating {}", parent.display()), e))?;
        remove_stale_staging(&parent, &file_name).await;

        let staging = parent.join(format!("{file_name}.tmp-{}", unique_suffix()));
        let result = async {
            git.command(Location::Nowhere)
                .args([
                    "clone",
                    "--bare",
                    "--quiet",
                    "--no-tags",
                    "--origin",
                    REMOTE,
                    "--",
                ])
                .arg(remote_url)
                .arg(&staging)
                .run(cancel)
                .await?;
            let staged = Location::GitDir(&staging);
            git.command(staged)
                .args(["config", "core.logAllRefUpdates", "true"])
                .run(cancel)
                .await?;
            git.command(staged)
                .args(["symbolic-ref", "HEAD"])
                .arg(format!("refs/heads/{trunk}"))
                .run(cancel)
                .await?;
            tokio::fs::rename(&staging, &path)
                .await
                .map_err(|e| GitError::io(format!("moving the clone to {}", path.display()), e))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(&staging).await;
        }
        result?;
        tracing::info!(path = %path.display(), "cloned repository");
        Ok(clone)
    }

    /// Opens a clone made earlier by [`RepoClone::open_or_clone`] without knowing its remote,
    /// for crash recovery at start. `None` when `path` is not such a clone.
    pub fn open_existing(git: &Git, path: &Path) -> Option<RepoClone> {
        let head = std::fs::read_to_string(path.join("HEAD")).ok()?;
        let trunk = head.trim().strip_prefix("ref: refs/heads/")?.to_string();
        let path = std::path::absolute(path).ok()?;
        path.join("objects").is_dir().then(|| RepoClone {
            git: git.clone(),
            path,
            trunk,
        })
    }

    /// The clone's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The trunk branch name.
    pub fn trunk(&self) -> &str {
        &self.trunk
    }

    /// The git runner this clone uses.
    pub fn git(&self) -> &Git {
        &self.git
    }

    /// The directory holding this clone's job worktrees: `<path>.worktrees`.
    pub fn worktrees_dir(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_os_string();
        name.push(".worktrees");
        PathBuf::from(name)
    }

    /// A git command running against the clone.
    pub fn cmd(&self) -> GitCommand {
        self.git.command(Location::GitDir(&self.path))
    }

    /// Mirrors the remote's branches into the clone (see the module docs for the layout).
    pub async fn fetch(&self, cancel: &CancellationToken) -> Result<(), GitError> {
        self.cmd()
            .args([
                "fetch",
                "--prune",
                "--no-tags",
                "--quiet",
                "--no-write-fetch-head",
                "--no-auto-gc",
                "--no-show-forced-updates",
                REMOTE,
                MIRROR_REFSPEC,
            ])
            .run(cancel)
            .await
    }

    /// Every branch in the clone, name -> tip sha. Names that are not UTF-8 are skipped: the
    /// engine's API cannot address them.
    pub async fn heads(
        &self,
        cancel: &CancellationToken,
    ) -> Result<BTreeMap<String, String>, GitError> {
        let out = self
            .cmd()
            .args([
                "for-each-ref",
                "--format=%(refname)%00%(objectname)",
                "refs/heads/",
            ])
            .output(cancel)
            .await?;
        let mut heads = BTreeMap::new();
        for line in out.stdout.split(|&b| b == b'\n') {
            let mut parts = line.splitn(2, |&b| b == 0);
            let (Some(name), Some(sha)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(name), Ok(sha)) = (std::str::from_utf8(name), std::str::from_utf8(sha)) else {
                continue;
            };
            if let Some(branch) = name.strip_prefix("refs/heads/") {
                heads.insert(branch.to_string(), sha.to_string());
            }
        }
        Ok(heads)
    }
}

fn split_path(path: &Path) -> Result<(PathBuf, String), GitError> {
    let parent = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            GitError::io(
                format!("{} has no usable file name", path.display()),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            )
        })?
        .to_string();
    Ok((parent, file_name))
}

/// Removes staging directories of clones that crashed before their rename.
async fn remove_stale_staging(parent: &Path, file_name: &str) {
    let prefix = format!("{file_name}.tmp-");
    let Ok(mut entries) = tokio::fs::read_dir(parent).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = tokio::fs::remove_dir_all(entry.path()).await;
        }
    }
}
