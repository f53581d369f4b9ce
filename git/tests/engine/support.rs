//! Test worlds: a bare "remote", a person's clone that commits and pushes to it as a person
//! would, and the server's bare clone driven through the engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gantry_git::{Git, RepoClone, Stack, TrackedBranch};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const TRUNK: &str = "main";

pub struct World {
    pub dir: TempDir,
    pub remote: PathBuf,
    pub person: PathBuf,
    pub clone_path: PathBuf,
    pub git: Git,
}

/// Runs git in `dir` with a hermetic, pinned environment; panics on failure.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = git_raw(dir, args, None);
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn git_raw(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Pat Person")
        .env("GIT_AUTHOR_EMAIL", "pat@example.invalid")
        .env("GIT_COMMITTER_NAME", "Pat Person")
        .env("GIT_COMMITTER_EMAIL", "pat@example.invalid")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub async fn engine_git() -> Git {
    Git::discover(None)
        .await
        .unwrap()
        .with_env("GIT_CONFIG_GLOBAL", "/dev/null")
        .with_env("GIT_COMMITTER_DATE", "1800000000 +0000")
}

impl World {
    /// A remote whose trunk has one commit (README and `shared.txt`), and a person's clone.
    pub async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote.git");
        let person = dir.path().join("person");
        git_in(
            dir.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                TRUNK,
                remote.to_str().unwrap(),
            ],
        );
        git_in(
            dir.path(),
            &["init", "-q", "-b", TRUNK, person.to_str().unwrap()],
        );
        let w = World {
            clone_path: dir.path().join("data/repos/r1.git"),
            dir,
            remote,
            person,
            git: engine_git().await,
        };
        w.sh(&["remote", "add", "origin", w.remote.to_str().unwrap()]);
        w.commit("README.md", "hello\n", "initial");
        w.commit(
            "shared.txt",
            "line one\nline two\nline three\n",
            "shared file",
        );
        w.sh(&["push", "-q", "origin", TRUNK]);
        w
    }

    pub fn sh(&self, args: &[&str]) -> String {
        git_in(&self.person, args)
    }

    /// In the person's clone: writes `file` on the current branch and commits it.
    pub fn commit(&self, file: &str, content: &str, message: &str) -> String {
        let path = self.person.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        self.sh(&["add", "--", file]);
        self.sh(&["commit", "-q", "-m", message]);
        self.sh(&["rev-parse", "HEAD"])
    }

    pub fn checkout(&self, branch: &str) {
        self.sh(&["checkout", "-q", branch]);
    }

    /// Creates (or resets) `branch` at `from` and checks it out.
    pub fn start_branch(&self, branch: &str, from: &str) {
        self.sh(&["checkout", "-q", "-B", branch, from]);
    }

    pub fn push(&self, branches: &[&str]) {
        let mut args = vec!["push", "-q", "-f", "origin"];
        args.extend(branches.iter().copied());
        self.sh(&args);
    }

    /// Builds branches (name, parent, commits), each commit adding its own file, pushes them,
    /// and returns the tracked metadata (base = parent tip at creation).
    pub fn build_stack(&self, spec: &[(&str, &str, usize)]) -> Vec<TrackedBranch> {
        let mut out = Vec::new();
        let mut names = Vec::new();
        for (name, parent, commits) in spec {
            let base = self.sh(&["rev-parse", parent]);
            self.start_branch(name, parent);
            for k in 0..*commits {
                let file = format!("{}/f{k}.txt", name.replace('/', "_"));
                self.commit(
                    &file,
                    &format!("{name} {k}\n"),
                    &format!("{name}: change {k}"),
                );
            }
            out.push(TrackedBranch::new(*name, *parent, Some(base)));
            names.push(*name);
        }
        self.push(&names);
        self.checkout(TRUNK);
        out
    }

    /// Moves trunk ahead with a commit on an unrelated file and pushes it.
    pub fn advance_trunk(&self, tag: &str) -> String {
        self.checkout(TRUNK);
        let sha = self.commit(
            &format!("trunk/{tag}.txt"),
            &format!("{tag}\n"),
            &format!("trunk: {tag}"),
        );
        self.push(&[TRUNK]);
        sha
    }

    pub async fn server(&self) -> RepoClone {
        RepoClone::open_or_clone(
            &self.git,
            &self.clone_path,
            self.remote.to_str().unwrap(),
            TRUNK,
            &CancellationToken::new(),
        )
        .await
        .unwrap()
    }

    pub fn remote_refs(&self) -> BTreeMap<String, String> {
        refs(&self.remote)
    }

    pub fn clone_refs(&self) -> BTreeMap<String, String> {
        refs(&self.clone_path)
    }

    pub fn remote_sha(&self, branch: &str) -> String {
        self.remote_refs()
            .get(branch)
            .cloned()
            .unwrap_or_else(|| panic!("no {branch} on the remote"))
    }

    pub fn is_ancestor(&self, a: &str, b: &str) -> bool {
        git_raw(&self.remote, &["merge-base", "--is-ancestor", a, b], None)
            .status
            .success()
    }

    /// Stable patch-ids of the commits in `range` (oldest first), in the remote.
    pub fn patch_ids(&self, range: &str) -> Vec<String> {
        patch_ids(&self.remote, range)
    }

    pub fn worktree_count(&self) -> usize {
        git_in(&self.clone_path, &["worktree", "list", "--porcelain"])
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count()
            - 1
    }
}

pub fn refs(repo: &Path) -> BTreeMap<String, String> {
    git_in(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname:lstrip=2) %(objectname)",
            "refs/heads/",
        ],
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(n, s)| (n.to_string(), s.to_string()))
    .collect()
}

pub fn patch_ids(repo: &Path, range: &str) -> Vec<String> {
    let commits = git_in(repo, &["rev-list", "--reverse", "--no-merges", range]);
    let log = git_raw(
        repo,
        &[
            "log",
            "--reverse",
            "-p",
            "--no-merges",
            "--format=commit %H",
            range,
        ],
        None,
    );
    let ids = git_raw(repo, &["patch-id", "--stable"], Some(&log.stdout));
    let by_commit: BTreeMap<String, String> = String::from_utf8_lossy(&ids.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, c)| (c.to_string(), p.to_string()))
        .collect();
    commits
        .lines()
        .map(|c| {
            by_commit
                .get(c)
                .cloned()
                .unwrap_or_else(|| "EMPTY".to_string())
        })
        .collect()
}

/// The own commits (patch-ids) of every tracked branch, measured before a restack.
pub fn own_patch_ids(w: &World, stack: &[TrackedBranch]) -> BTreeMap<String, Vec<String>> {
    stack
        .iter()
        .map(|b| {
            let base = b.base_sha.clone().unwrap();
            (
                b.name.clone(),
                w.patch_ids(&format!("{base}..{}", w.remote_sha(&b.name))),
            )
        })
        .collect()
}

/// Every listed branch contains its parent's tip, keeps exactly its own commits, and the
/// server clone's refs equal the remote's.
pub fn assert_restacked(
    w: &World,
    stack: &[TrackedBranch],
    own: &BTreeMap<String, Vec<String>>,
    names: &[&str],
) {
    for b in stack.iter().filter(|b| names.contains(&b.name.as_str())) {
        let parent_tip = w.remote_sha(&b.parent);
        let tip = w.remote_sha(&b.name);
        assert!(
            w.is_ancestor(&parent_tip, &tip),
            "{} does not contain {}'s tip",
            b.name,
            b.parent
        );
        assert_eq!(
            w.patch_ids(&format!("{parent_tip}..{tip}")),
            own[&b.name],
            "{} lost or gained commits",
            b.name
        );
    }
    assert_eq!(
        w.remote_refs(),
        w.clone_refs(),
        "server clone and remote disagree"
    );
}

pub fn stack_of(branches: Vec<TrackedBranch>) -> Stack {
    Stack::new(TRUNK, branches).unwrap()
}
