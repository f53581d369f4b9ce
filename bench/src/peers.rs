//! The peers from `shared/peers/`: preparing the job-queue scripts (a writable copy with
//! `npm ci`), throwaway PostgreSQL databases, and running the scripts and shell tools.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use sqlx::Connection;

use crate::error::{BenchError, BenchResult};

/// The default location of `shared/`: beside the repository.
pub fn default_shared() -> PathBuf {
    std::env::var_os("GANTRY_SHARED").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
        PathBuf::from,
    )
}

/// Fails with a clear message when a file of `shared/` is missing.
pub fn need(path: &Path) -> BenchResult<PathBuf> {
    if path.exists() {
        Ok(path.to_path_buf())
    } else {
        Err(BenchError::MissingShared(path.to_path_buf()))
    }
}

/// Runs a program; returns its stdout, or an error with its stderr.
pub fn run(
    program: &str,
    args: &[&str],
    dir: Option<&Path>,
    env: &[(&str, &str)],
) -> BenchResult<String> {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(BenchError::io(format!("running {program}")))?;
    if !out.status.success() {
        return Err(BenchError::Command {
            program: format!("{program} {}", args.join(" ")),
            detail: format!(
                "{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a program and times it (wall clock).
pub fn timed(program: &str, args: &[&str], env: &[(&str, &str)]) -> BenchResult<(f64, String)> {
    let start = Instant::now();
    let out = run(program, args, None, env)?;
    Ok((start.elapsed().as_secs_f64(), out))
}

/// A writable copy of `shared/peers/jobs` with its node modules installed (kept between runs
/// while `package-lock.json` is unchanged).
pub fn prepare_jobs_peer(shared: &Path) -> BenchResult<PathBuf> {
    let src = need(&shared.join("peers/jobs"))?;
    let dst = std::env::temp_dir().join("gantry-bench-peers-jobs");
    std::fs::create_dir_all(&dst).map_err(BenchError::io("peer dir"))?;
    let lock = std::fs::read(src.join("package-lock.json")).unwrap_or_default();
    let installed = std::fs::read(dst.join("package-lock.json")).unwrap_or_default();
    for entry in std::fs::read_dir(&src).map_err(BenchError::io("reading peers/jobs"))? {
        let entry = entry.map_err(BenchError::io("reading peers/jobs"))?;
        let path = entry.path();
        if path.is_file() {
            std::fs::copy(&path, dst.join(entry.file_name()))
                .map_err(BenchError::io(format!("copying {}", path.display())))?;
        }
    }
    if lock != installed || !dst.join("node_modules").exists() {
        run(
            "npm",
            &["ci", "--no-audit", "--no-fund", "--silent"],
            Some(&dst),
            &[],
        )?;
    }
    Ok(dst)
}

/// Runs one of the peer's scripts; returns the JSON line it prints.
pub fn node_script(
    dir: &Path,
    script: &str,
    args: &[&str],
    database_url: &str,
) -> BenchResult<Value> {
    let mut all = vec![script];
    all.extend_from_slice(args);
    let out = run("node", &all, Some(dir), &[("DATABASE_URL", database_url)])?;
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| BenchError::Protocol(format!("{script} printed no JSON: {out}")))?;
    Ok(serde_json::from_str(line)?)
}

/// Drops and creates the database a `postgres://` URL names, on its server, then checkpoints
/// (as the peers' `pg.sh fresh-db` does). Only databases whose name starts with `gantry_bench`
/// are ever dropped.
pub async fn fresh_postgres_db(url: &str) -> BenchResult<()> {
    let (server, name) = url
        .rsplit_once('/')
        .ok_or_else(|| BenchError::Protocol(format!("no database in {url}")))?;
    let name = name.split('?').next().unwrap_or_default();
    if !name.starts_with("gantry_bench")
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(BenchError::Protocol(format!(
            "refusing to recreate database {name:?}: bench databases are named gantry_bench*"
        )));
    }
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
    // The name was checked above: gantry_bench followed by [A-Za-z0-9_] only.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    sqlx::query("CHECKPOINT").execute(&mut admin).await?;
    admin.close().await?;
    Ok(())
}
