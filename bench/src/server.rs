//! The parent's handle on a server child (see `child.rs`): spawn it from this very binary, wait
//! until it listens, ask it for stats, read its memory and CPU, stop it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::error::{BenchError, BenchResult};

/// How to start a server child.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    pub workers: usize,
    pub database_url: Option<String>,
    pub git: bool,
    pub count_queries: bool,
    /// Write every progress line in its own transaction (one diff each) instead of the
    /// engine's default coalescing: the push and resume scenarios count on a diff per step.
    pub progress_per_line: bool,
    /// The data dir; a temporary one when `None`.
    pub data_dir: Option<PathBuf>,
}

pub struct ServerChild {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    pub url: String,
    pub token: String,
    pub pid: u32,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl ServerChild {
    pub async fn start(options: &ServerOptions) -> BenchResult<ServerChild> {
        let (data_dir, temp) = match &options.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("gantry-bench-")
                    .tempdir()
                    .map_err(BenchError::io("temp dir"))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        std::fs::create_dir_all(&data_dir).map_err(BenchError::io("data dir"))?;
        let exe = std::env::current_exe().map_err(BenchError::io("current exe"))?;
        let log = std::fs::File::create(data_dir.join("server.log"))
            .map_err(BenchError::io("server log"))?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("serve-child")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--workers")
            .arg(options.workers.to_string());
        if let Some(url) = &options.database_url {
            cmd.arg("--database-url").arg(url);
        }
        if options.git {
            cmd.arg("--git");
        }
        if options.count_queries {
            cmd.arg("--count-queries");
        }
        if options.progress_per_line {
            cmd.arg("--progress-per-line");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(BenchError::io("spawning the server child"))?;
        let pid = child.id().unwrap_or(0);
        let stdin = child
            .stdin
            .take()
            .ok_or(BenchError::Child("no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or(BenchError::Child("no stdout".into()))?;
        let mut stdout = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(120), stdout.next_line())
            .await
            .map_err(|_| BenchError::Timeout("the server child to start".into()))?
            .map_err(BenchError::io("server child stdout"))?;
        let Some(ready) = ready else {
            let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
            return Err(BenchError::Child(format!("it exited at start:\n{log}")));
        };
        let mut parts = ready.split_whitespace();
        let (Some("READY"), Some(url), Some(token)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(BenchError::Child(format!(
                "unexpected first line {ready:?}"
            )));
        };
        Ok(ServerChild {
            url: url.to_owned(),
            token: token.to_owned(),
            child,
            stdin,
            stdout,
            pid,
            data_dir,
            _temp: temp,
        })
    }

    async fn command(&mut self, command: &str) -> BenchResult<String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(BenchError::io("server child stdin"))?;
        self.stdin
            .flush()
            .await
            .map_err(BenchError::io("server child stdin"))?;
        let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .map_err(|_| BenchError::Timeout(format!("the child's answer to {command}")))?
            .map_err(BenchError::io("server child stdout"))?;
        line.ok_or_else(|| BenchError::Child(format!("it exited before answering {command}")))
    }

    /// The child's counters (see `child.rs`).
    pub async fn stats(&mut self) -> BenchResult<Value> {
        let line = self.command("stats").await?;
        let json = line
            .strip_prefix("STATS ")
            .ok_or_else(|| BenchError::Child(format!("unexpected answer {line:?}")))?;
        Ok(serde_json::from_str(json)?)
    }

    /// Opens the gate of `gate-*` jobs.
    pub async fn release(&mut self) -> BenchResult<()> {
        let line = self.command("release").await?;
        if line == "OK" {
            Ok(())
        } else {
            Err(BenchError::Child(format!("release answered {line:?}")))
        }
    }

    pub fn rss_kib(&self) -> u64 {
        crate::machine::rss_kib(self.pid).unwrap_or(0)
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("gantry.db")
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    /// Closes stdin (the child shuts down cleanly) and waits, killing it after a while.
    /// With `GANTRY_BENCH_SERVER_LOG=FILE` set, the child's log is appended there (the data
    /// dir is temporary).
    pub async fn stop(mut self) -> BenchResult<()> {
        let _ = self.stdin.shutdown().await;
        let log_path = self.log_path();
        drop(self.stdin);
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status.map_err(BenchError::io("waiting for the server child"))?;
            }
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
            }
        }
        if let Some(keep) = std::env::var_os("GANTRY_BENCH_SERVER_LOG") {
            use std::io::Write;
            let log = std::fs::read(&log_path).unwrap_or_default();
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&keep)
                .map_err(BenchError::io("GANTRY_BENCH_SERVER_LOG"))?;
            out.write_all(&log)
                .map_err(BenchError::io("GANTRY_BENCH_SERVER_LOG"))?;
        }
        Ok(())
    }
}

/// Reads the tail of a server log (for error messages).
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
