//! The only place that starts git processes, so every invocation gets the same safety net:
//! no shell, no hooks, no editors, no prompts, no system config, no stray repository discovery,
//! a cancellation token that kills the child, and typed errors.
//!
//! The global config (`~/.gitconfig`, or `GIT_CONFIG_GLOBAL`) is still read, so an operator can
//! set credentials, URL rewrites or an ssh command for the server; the settings that would
//! change what the engine does or parses are overridden with `-c` on every call.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::error::GitError;
use crate::redact::redact_credentials;

/// The oldest git the engine accepts (`merge-tree --write-tree --stdin`).
pub const MIN_VERSION: GitVersion = GitVersion {
    major: 2,
    minor: 40,
    patch: 0,
};

/// `git replay`, the worktree-free fast path, appeared in 2.44; older gits use `git rebase`.
const REPLAY_VERSION: GitVersion = GitVersion {
    major: 2,
    minor: 44,
    patch: 0,
};

/// `for-each-ref --format=%(ahead-behind:...)` appeared in 2.41.
const AHEAD_BEHIND_VERSION: GitVersion = GitVersion {
    major: 2,
    minor: 41,
    patch: 0,
};

/// Configuration forced on every invocation. Hooks, auto-stash, update-refs, signing and
/// auto-gc would each make a server-side rebase do something nobody asked for; `ext::` URLs
/// would let a remote URL run arbitrary commands.
const FORCED_CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "rebase.autoStash=false",
    "rebase.updateRefs=false",
    "rebase.autoSquash=false",
    "rebase.rebaseMerges=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "rerere.enabled=false",
    "advice.detachedHead=false",
    // The transports are allow-listed separately (see `Git::with_protocols`); these two stay
    // refused whatever the list says.
    "protocol.ext.allow=never",
    "protocol.fd.allow=never",
    "core.fsmonitor=false",
    // A person's global config is honoured (credentials, URL rewrites, ssh command), but
    // settings that would change the output the engine parses, or what a checkout-based
    // rebase writes compared to an in-memory replay, are pinned.
    "color.ui=false",
    "log.showSignature=false",
    "core.autocrlf=false",
    "core.safecrlf=false",
    "push.useForceIfIncludes=false",
];

/// Environment variables that would redirect git to another repository or index if the server
/// itself were started from inside a git hook or a shell that exported them.
const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_COMMON_DIR",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
    "GIT_REFLOG_ACTION",
    "GIT_EXEC_PATH",
    "GIT_ALLOW_PROTOCOL",
    "GIT_PROTOCOL_FROM_USER",
];

/// The transports git may use unless told otherwise: encrypted ones, and local paths.
pub const DEFAULT_PROTOCOLS: &[&str] = &["https", "ssh", "file"];

/// Transports that can never be allowed: `ext::` runs a command, `fd::` talks over an inherited
/// file descriptor.
const NEVER_PROTOCOLS: &[&str] = &["ext", "fd"];

/// How much of git's stderr an error keeps: enough to diagnose, bounded for the job row.
const STDERR_LIMIT: usize = 2000;

/// A parsed `git --version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level.
    pub patch: u32,
}

impl GitVersion {
    /// Parses the output of `git --version` (`git version 2.47.3`, `git version 2.39.2.windows.1`,
    /// `git version 2.45.0.rc1`, ...).
    pub fn parse(text: &str) -> Option<GitVersion> {
        let rest = text.trim().strip_prefix("git version ")?;
        let mut nums = rest.split(['.', ' ', '-']).map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = nums.next()??;
        let minor = nums.next()??;
        let patch = nums.next().flatten().unwrap_or(0);
        Some(GitVersion {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for GitVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The identity recorded as committer on every commit the engine writes (rebased commits keep
/// their author).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Committer name.
    pub name: String,
    /// Committer email.
    pub email: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            name: "gantry".to_string(),
            email: "gantry@localhost".to_string(),
        }
    }
}

/// A checked git executable. Cheap to clone.
#[derive(Clone)]
pub struct Git {
    inner: Arc<GitInner>,
}

struct GitInner {
    program: PathBuf,
    version: GitVersion,
    committer: Identity,
    extra_env: Vec<(OsString, OsString)>,
    /// `-c protocol.allow=never` plus one `protocol.<name>.allow=always` per allowed transport.
    protocol_config: Vec<String>,
    /// The same list for `GIT_ALLOW_PROTOCOL`, which overrides any configuration.
    allow_protocol_env: String,
}

impl fmt::Debug for Git {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Git")
            .field("program", &self.inner.program)
            .field("version", &self.inner.version)
            .finish()
    }
}

impl Git {
    /// Finds git (`program`, or `git` on `PATH`) and checks that it is at least
    /// [`MIN_VERSION`].
    pub async fn discover(program: Option<PathBuf>) -> Result<Git, GitError> {
        let program = program.unwrap_or_else(|| PathBuf::from("git"));
        let git = Git {
            inner: Arc::new(GitInner {
                program,
                version: MIN_VERSION,
                committer: Identity::default(),
                extra_env: Vec::new(),
                protocol_config: Vec::new(),
                allow_protocol_env: String::new(),
            }),
        };
        let git = git.rebuild(|inner| set_protocols(inner, DEFAULT_PROTOCOLS));
        let out = git
            .command(Location::Nowhere)
            .arg("--version")
            .run_text(&CancellationToken::new())
            .await?;
        let version = GitVersion::parse(&out)
            .ok_or_else(|| GitError::unexpected("git --version", out.trim().to_string()))?;
        if version < MIN_VERSION {
            return Err(GitError::VersionTooOld {
                found: version.to_string(),
                required: MIN_VERSION.to_string(),
            });
        }
        Ok(git.rebuild(|inner| inner.version = version))
    }

    /// Returns a runner that records `committer` on the commits it writes.
    pub fn with_committer(&self, committer: Identity) -> Git {
        self.rebuild(|inner| inner.committer = committer)
    }

    /// Returns a runner that adds `key=value` to every invocation's environment (for example a
    /// pinned `GIT_COMMITTER_DATE` in reproducible benchmarks, or `GIT_SSH_COMMAND`).
    pub fn with_env(&self, key: impl Into<OsString>, value: impl Into<OsString>) -> Git {
        let (key, value) = (key.into(), value.into());
        self.rebuild(|inner| inner.extra_env.push((key, value)))
    }

    /// Returns a runner that lets git use only these transports (`https`, `ssh`, `file`, `http`,
    /// `git`): `protocol.allow=never` with an explicit allow per name, and `GIT_ALLOW_PROTOCOL`
    /// to the same effect, so neither a remote URL, a URL rewrite in a config file, nor a
    /// malicious repository's submodule can reach another transport. `ext` and `fd` are never
    /// allowed, whatever the list says. The default is [`DEFAULT_PROTOCOLS`].
    pub fn with_protocols(&self, protocols: &[&str]) -> Git {
        self.rebuild(|inner| set_protocols(inner, protocols))
    }

    /// The transports this runner lets git use.
    pub fn protocols(&self) -> Vec<&str> {
        self.inner
            .allow_protocol_env
            .split(':')
            .filter(|p| !p.is_empty())
            .collect()
    }

    fn rebuild(&self, change: impl FnOnce(&mut GitInner)) -> Git {
        let mut inner = GitInner {
            program: self.inner.program.clone(),
            version: self.inner.version,
            committer: self.inner.committer.clone(),
            extra_env: self.inner.extra_env.clone(),
            protocol_config: self.inner.protocol_config.clone(),
            allow_protocol_env: self.inner.allow_protocol_env.clone(),
        };
        change(&mut inner);
        Git {
            inner: Arc::new(inner),
        }
    }

    /// The executable this runner starts.
    pub fn program(&self) -> &Path {
        &self.inner.program
    }

    /// The version `git --version` reported.
    pub fn version(&self) -> GitVersion {
        self.inner.version
    }

    /// The committer identity used for new commits.
    pub fn committer(&self) -> &Identity {
        &self.inner.committer
    }

    pub(crate) fn has_replay(&self) -> bool {
        self.inner.version >= REPLAY_VERSION
    }

    pub(crate) fn has_ahead_behind(&self) -> bool {
        self.inner.version >= AHEAD_BEHIND_VERSION
    }

    /// Starts building an invocation that runs against `location`.
    pub fn command(&self, location: Location<'_>) -> GitCommand {
        GitCommand {
            git: self.clone(),
            // Absolute, because git runs with the location as its working directory.
            location: match location {
                Location::GitDir(p) => OwnedLocation::GitDir(absolute(p)),
                Location::WorkTree(p) => OwnedLocation::WorkTree(absolute(p)),
                Location::Nowhere => OwnedLocation::Nowhere,
            },
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            ok_codes: vec![0],
        }
    }
}

/// Where a command runs. Explicit, so git never discovers some other repository by walking up
/// from a directory that vanished.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    /// A bare repository, passed as `--git-dir`.
    GitDir(&'a Path),
    /// A worktree; discovery is fenced at its parent directory.
    WorkTree(&'a Path),
    /// No repository (`--version`, `clone`, `init`): runs in the process's working directory.
    Nowhere,
}

#[derive(Debug, Clone)]
enum OwnedLocation {
    GitDir(PathBuf),
    WorkTree(PathBuf),
    Nowhere,
}

/// The result of a finished git command.
#[derive(Debug, Clone)]
pub struct GitOutput {
    /// The exit code (one of the codes the command allowed).
    pub code: i32,
    /// Standard output, raw.
    pub stdout: Vec<u8>,
    /// Standard error, lossily decoded, untrimmed.
    pub stderr: String,
}

impl GitOutput {
    /// Standard output decoded as UTF-8 (lossily: ref names and paths that are not UTF-8 are
    /// not addressable through this crate's `String` API anyway).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// One git invocation being built. Arguments are separate OS strings; nothing is ever parsed
/// by a shell.
#[derive(Debug)]
pub struct GitCommand {
    git: Git,
    location: OwnedLocation,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    env: Vec<(OsString, OsString)>,
    ok_codes: Vec<i32>,
}

impl GitCommand {
    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Feeds `data` to the command's standard input (otherwise stdin is `/dev/null`).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Sets an environment variable for this invocation only.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Exit codes that are answers rather than failures (e.g. `merge-base --is-ancestor`
    /// answers 1 for "no"). 0 is always allowed.
    pub fn allow_exit_codes(mut self, codes: &[i32]) -> Self {
        self.ok_codes.extend_from_slice(codes);
        self
    }

    /// Runs the command to completion, or kills it when `cancel` fires.
    pub async fn output(self, cancel: &CancellationToken) -> Result<GitOutput, GitError> {
        if cancel.is_cancelled() {
            return Err(GitError::Cancelled);
        }
        // Arguments and stderr are shown in job rows and logs: credentials in a remote URL never
        // are.
        let shown_args: Vec<String> = self
            .args
            .iter()
            .map(|a| redact_credentials(&a.to_string_lossy()).into_owned())
            .collect();
        let t0 = std::time::Instant::now();
        let mut cmd = Command::new(&self.git.inner.program);
        for key in SCRUBBED_ENV {
            cmd.env_remove(key);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_EDITOR", "true")
            .env("GIT_SEQUENCE_EDITOR", "true")
            .env("GIT_MERGE_AUTOEDIT", "no")
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_COMMITTER_NAME", &self.git.inner.committer.name)
            .env("GIT_COMMITTER_EMAIL", &self.git.inner.committer.email);
        for (k, v) in &self.git.inner.extra_env {
            cmd.env(k, v);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.env("GIT_ALLOW_PROTOCOL", &self.git.inner.allow_protocol_env);
        for setting in FORCED_CONFIG {
            cmd.arg("-c").arg(setting);
        }
        for setting in &self.git.inner.protocol_config {
            cmd.arg("-c").arg(setting);
        }
        match &self.location {
            OwnedLocation::GitDir(dir) => {
                let mut flag = OsString::from("--git-dir=");
                flag.push(dir.as_os_str());
                cmd.arg(flag);
                cmd.current_dir(dir);
            }
            OwnedLocation::WorkTree(dir) => {
                if let Some(parent) = dir.parent() {
                    cmd.env("GIT_CEILING_DIRECTORIES", parent);
                }
                cmd.current_dir(dir);
            }
            // The server's own working directory: relative paths mean what the caller meant.
            OwnedLocation::Nowhere => {}
        }
        cmd.args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);

        let mut child = cmd.spawn().map_err(|source| GitError::Spawn {
            program: self.git.inner.program.clone(),
            source,
        })?;
        let stdin_pipe = child.stdin.take();
        let mut stdout_pipe = child.stdout.take();
        let mut stderr_pipe = child.stderr.take();
        let input = self.stdin;

        // Feed stdin while draining both pipes, or a large input/output pair would deadlock.
        let io = async {
            let feed = async {
                if let (Some(mut pipe), Some(data)) = (stdin_pipe, input) {
                    // A child that exits early closes its stdin; its exit status tells the story.
                    let _ = pipe.write_all(&data).await;
                    let _ = pipe.shutdown().await;
                }
            };
            let read_out = async {
                let mut buf = Vec::new();
                if let Some(pipe) = stdout_pipe.as_mut() {
                    pipe.read_to_end(&mut buf).await?;
                }
                Ok::<_, std::io::Error>(buf)
            };
            let read_err = async {
                let mut buf = Vec::new();
                if let Some(pipe) = stderr_pipe.as_mut() {
                    pipe.read_to_end(&mut buf).await?;
                }
                Ok::<_, std::io::Error>(buf)
            };
            let ((), out, err) = tokio::join!(feed, read_out, read_err);
            (out, err)
        };

        let finished = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            (res, status) = async {
                let res = io.await;
                let status = child.wait().await;
                (res, status)
            } => Some((res, status)),
        };

        let Some(((out, err), status)) = finished else {
            // Kill and reap, so a cancelled job leaves no git behind holding locks.
            let _ = child.start_kill();
            let _ = child.wait().await;
            tracing::debug!(args = ?shown_args, "git cancelled");
            return Err(GitError::Cancelled);
        };
        let stdout = out.map_err(|e| GitError::io("reading git output", e))?;
        let stderr_raw = err.map_err(|e| GitError::io("reading git output", e))?;
        let status = status.map_err(|e| GitError::io("waiting for git", e))?;
        let stderr = redact_credentials(&String::from_utf8_lossy(&stderr_raw)).into_owned();
        tracing::trace!(
            args = ?shown_args,
            code = ?status.code(),
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "git"
        );
        match status.code() {
            Some(code) if self.ok_codes.contains(&code) => Ok(GitOutput {
                code,
                stdout,
                stderr,
            }),
            code => Err(GitError::Command {
                args: shown_args,
                code,
                stderr: truncate(stderr.trim(), STDERR_LIMIT),
            }),
        }
    }

    /// Runs the command and returns its standard output as text.
    pub async fn run_text(self, cancel: &CancellationToken) -> Result<String, GitError> {
        Ok(self.output(cancel).await?.text())
    }

    /// Runs the command for its effect only.
    pub async fn run(self, cancel: &CancellationToken) -> Result<(), GitError> {
        self.output(cancel).await.map(|_| ())
    }
}

fn set_protocols(inner: &mut GitInner, protocols: &[&str]) {
    let mut allowed: Vec<&str> = Vec::new();
    for protocol in protocols {
        let valid = !protocol.is_empty()
            && protocol
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'+');
        if valid && !NEVER_PROTOCOLS.contains(protocol) && !allowed.contains(protocol) {
            allowed.push(protocol);
        }
    }
    inner.protocol_config = std::iter::once("protocol.allow=never".to_string())
        .chain(allowed.iter().map(|p| format!("protocol.{p}.allow=always")))
        .collect();
    inner.allow_protocol_env = allowed.join(":");
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (truncated)", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = |s| GitVersion::parse(s).unwrap();
        assert_eq!(
            v("git version 2.47.3\n"),
            GitVersion {
                major: 2,
                minor: 47,
                patch: 3
            }
        );
        assert_eq!(
            v("git version 2.39.2.windows.1"),
            GitVersion {
                major: 2,
                minor: 39,
                patch: 2
            }
        );
        assert_eq!(
            v("git version 2.45.0.rc1"),
            GitVersion {
                major: 2,
                minor: 45,
                patch: 0
            }
        );
        assert_eq!(
            v("git version 2.40"),
            GitVersion {
                major: 2,
                minor: 40,
                patch: 0
            }
        );
        assert!(GitVersion::parse("hg 6.1").is_none());
        assert!(v("git version 2.39.9") < MIN_VERSION);
        assert!(v("git version 2.40.0") >= MIN_VERSION);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        let s = "ü".repeat(10);
        let t = truncate(&s, 5);
        assert!(t.starts_with("üü"));
        assert!(t.ends_with("(truncated)"));
    }

    fn bare_repo(dir: &Path) -> PathBuf {
        let path = dir.join("r.git");
        let status = std::process::Command::new("git")
            .args(["init", "--bare", "--quiet"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path
    }

    #[tokio::test]
    async fn only_allowed_transports_are_used_and_ext_never() {
        let dir = tempfile::tempdir().unwrap();
        let repo = bare_repo(dir.path());
        let cancel = CancellationToken::new();
        let git = Git::discover(None).await.unwrap();
        assert_eq!(git.protocols(), DEFAULT_PROTOCOLS);
        let ls = |git: &Git, url: &str| {
            git.command(Location::Nowhere)
                .args(["ls-remote", url])
                .run(&cancel)
        };
        let local = repo.to_string_lossy().into_owned();
        ls(&git, &local).await.unwrap();

        let no_file = git.with_protocols(&["https", "ssh"]);
        let err = ls(&no_file, &local).await.unwrap_err().to_string();
        assert!(err.contains("transport 'file' not allowed"), "{err}");
        let err = ls(&no_file, &format!("file://{local}"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("transport 'file' not allowed"), "{err}");

        // Plain http is not among the defaults.
        let err = ls(&git, "http://127.0.0.1:1/x.git")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("transport 'http' not allowed"), "{err}");

        // ext:: runs a command: refused even when asked for, and even when the operator's
        // global config would allow it.
        let marker = dir.path().join("pwned");
        let global = dir.path().join("gitconfig");
        std::fs::write(&global, "[protocol \"ext\"]\n\tallow = always\n").unwrap();
        let evil = git
            .with_protocols(&["https", "ssh", "file", "ext", "fd"])
            .with_env("GIT_CONFIG_GLOBAL", &global);
        assert_eq!(evil.protocols(), DEFAULT_PROTOCOLS);
        let url = format!("ext::sh -c touch% {}", marker.display());
        let err = ls(&evil, &url).await.unwrap_err().to_string();
        assert!(err.contains("transport 'ext' not allowed"), "{err}");
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn credentials_never_appear_in_errors() {
        let git = Git::discover(None).await.unwrap();
        let err = git
            .command(Location::Nowhere)
            .args(["ls-remote", "https://user:s3cret-pw@127.0.0.1:1/x.git"])
            .run(&CancellationToken::new())
            .await
            .unwrap_err();
        let GitError::Command { args, stderr, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(stderr.contains("127.0.0.1"), "git names the URL: {stderr}");
        let shown = format!("{err} {err:?} {args:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("https://***@127.0.0.1:1/x.git"), "{shown}");
    }
}
