//! Real git repositories for tests: a bare "remote" and a person's clone that pushes to it,
//! driven with the git CLI as a person would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Remote {
    _dir: tempfile::TempDir,
    pub bare: PathBuf,
    pub work: PathBuf,
}

fn run(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "commit.gpgSign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Person")
        .env("GIT_AUTHOR_EMAIL", "person@example.com")
        .env("GIT_COMMITTER_NAME", "Person")
        .env("GIT_COMMITTER_EMAIL", "person@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Remote {
    /// A remote whose `main` has one commit.
    pub fn new() -> Remote {
        let dir = tempfile::tempdir().expect("temp dir");
        let bare = dir.path().join("remote.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&bare).expect("bare dir");
        run(&bare, &["init", "--bare", "--quiet"]);
        run(
            dir.path(),
            &[
                "clone",
                "--quiet",
                bare.to_str().expect("utf-8 path"),
                "work",
            ],
        );
        let remote = Remote {
            _dir: dir,
            bare,
            work,
        };
        remote.commit("README.md", "hello\n", "initial");
        remote.git(&["push", "--quiet", "origin", "main"]);
        remote
    }

    pub fn url(&self) -> String {
        self.bare.to_string_lossy().into_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        run(&self.work, args)
    }

    /// `git` in the bare remote.
    pub fn remote_git(&self, args: &[&str]) -> String {
        run(&self.bare, args)
    }

    pub fn commit(&self, file: &str, content: &str, message: &str) -> String {
        let path = self.work.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("dirs");
        }
        std::fs::write(&path, content).expect("write file");
        self.git(&["add", "--", file]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Creates `name` at `from` and checks it out.
    pub fn branch(&self, name: &str, from: &str) {
        self.git(&["checkout", "--quiet", "-b", name, from]);
    }

    pub fn checkout(&self, name: &str) {
        self.git(&["checkout", "--quiet", name]);
    }

    pub fn push(&self, branches: &[&str]) {
        let mut args = vec!["push", "--quiet", "--force", "origin"];
        args.extend(branches);
        self.git(&args);
    }

    /// Brings the person's clone up to date with the remote (after gantry pushed).
    pub fn pull_all(&self) {
        self.git(&[
            "fetch",
            "--quiet",
            "--prune",
            "origin",
            "+refs/heads/*:refs/remotes/origin/*",
        ]);
    }

    pub fn sha(&self, branch: &str) -> String {
        self.remote_git(&["rev-parse", &format!("refs/heads/{branch}")])
    }

    pub fn refs(&self) -> BTreeMap<String, String> {
        refs_of(&self.bare)
    }

    /// Whether `ancestor` is in the history of `branch` on the remote.
    pub fn contains(&self, branch: &str, ancestor_sha: &str) -> bool {
        Command::new("git")
            .args([
                "merge-base",
                "--is-ancestor",
                ancestor_sha,
                &format!("refs/heads/{branch}"),
            ])
            .current_dir(&self.bare)
            .status()
            .expect("git merge-base")
            .success()
    }

    /// The patch-ids of the commits in `head` that are not in `base`, on the remote.
    pub fn patch_ids(&self, base: &str, head: &str) -> BTreeSet<String> {
        let log = run(
            &self.bare,
            &[
                "log",
                "-p",
                "--format=commit %H",
                &format!("{base}..{head}"),
            ],
        );
        let output = Command::new("git")
            .args(["patch-id", "--stable"])
            .current_dir(&self.bare)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(log.as_bytes())?;
                child.wait_with_output()
            })
            .expect("git patch-id");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect()
    }
}

impl Default for Remote {
    fn default() -> Self {
        Remote::new()
    }
}

/// Every `refs/heads/*` of a repository, by branch name.
pub fn refs_of(git_dir: &Path) -> BTreeMap<String, String> {
    run(
        git_dir,
        &[
            "for-each-ref",
            "--format=%(refname:strip=2) %(objectname)",
            "refs/heads",
        ],
    )
    .lines()
    .filter_map(|line| {
        line.split_once(' ')
            .map(|(n, s)| (n.to_owned(), s.to_owned()))
    })
    .collect()
}
