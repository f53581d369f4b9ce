//! Chaos: restack jobs on a 20-branch stack while the real server is SIGKILLed at random moments
//! and restarted, and a person pushes to the stack meanwhile. After every kill, and at the end:
//! - no accepted job is lost: every 202's job exists and ends (`completed`, or `error` only
//!   because a person's push raced it);
//! - no job stays `running` past its lease after a restart;
//! - every branch on the remote holds exactly its own commits on top of its parent's current
//!   tip or an older one: a restack is never half-published, a person's commit never dropped;
//! - at the end no worktree and no lock file is left, and the clone equals the remote.
//!
//! Bounded for CI (`GANTRY_CHAOS_JOBS`, default 100; `GANTRY_CHAOS_KILLS`, default 10);
//! `GANTRY_CHAOS_SEED` replays a run. It prints its counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gantry_tests::gitrepo::{Remote, refs_of};
use gantry_tests::{Api, BinaryServer, time};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BRANCHES: usize = 20;
const LEASE_SECS: u64 = 2;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn name(i: usize) -> String {
    format!("s{i:02}")
}

fn parent_of(i: usize) -> String {
    if i == 0 {
        "main".to_owned()
    } else {
        name(i - 1)
    }
}

/// `git` in a directory, returning whether it succeeded (for pushes that may be refused).
fn try_git(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "commit.gpgSign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Person")
        .env("GIT_AUTHOR_EMAIL", "person@example.com")
        .env("GIT_COMMITTER_NAME", "Person")
        .env("GIT_COMMITTER_EMAIL", "person@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

struct Chaos {
    remote: Remote,
    /// Each branch's own commits, by patch id: its original ones plus a person's later pushes.
    own: BTreeMap<String, BTreeSet<String>>,
    foreign: usize,
    trunk_moves: usize,
}

impl Chaos {
    fn new() -> Chaos {
        let remote = Remote::new();
        let mut own = BTreeMap::new();
        for i in 0..BRANCHES {
            remote.branch(&name(i), &parent_of(i));
            remote.commit(&format!("f{i}.txt"), &format!("{i}\n"), &format!("own {i}"));
        }
        let names: Vec<String> = (0..BRANCHES).map(name).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        remote.push(&refs);
        for i in 0..BRANCHES {
            let ids = remote.patch_ids(&remote.sha(&parent_of(i)), &remote.sha(&name(i)));
            assert_eq!(ids.len(), 1);
            own.insert(name(i), ids);
        }
        Chaos {
            remote,
            own,
            foreign: 0,
            trunk_moves: 0,
        }
    }

    /// A person adds a commit on trunk (a fast-forward push).
    fn move_trunk(&mut self) {
        let work = &self.remote.work;
        let n = self.trunk_moves;
        for _ in 0..5 {
            if try_git(work, &["fetch", "--quiet", "origin", "main"])
                && try_git(work, &["checkout", "--quiet", "-B", "main", "origin/main"])
            {
                std::fs::write(work.join(format!("trunk-{n}.txt")), format!("{n}\n")).unwrap();
                let committed = try_git(work, &["add", "--", &format!("trunk-{n}.txt")])
                    && try_git(work, &["commit", "--quiet", "-m", &format!("trunk {n}")]);
                if committed && try_git(work, &["push", "--quiet", "origin", "main"]) {
                    self.trunk_moves += 1;
                    return;
                }
            }
        }
    }

    /// A person pushes a commit of their own onto branch `i` (never forced: when gantry moved
    /// the branch meanwhile, they fetch and try again, as a person would).
    fn foreign_push(&mut self, i: usize) {
        let work = &self.remote.work;
        let branch = name(i);
        let n = self.foreign;
        for _ in 0..5 {
            let fetched = try_git(
                work,
                &[
                    "fetch",
                    "--quiet",
                    "origin",
                    &format!("+refs/heads/{branch}:refs/remotes/origin/{branch}"),
                ],
            ) && try_git(
                work,
                &[
                    "checkout",
                    "--quiet",
                    "-B",
                    &branch,
                    &format!("origin/{branch}"),
                ],
            );
            if !fetched {
                continue;
            }
            let file = format!("person-{n}.txt");
            std::fs::write(work.join(&file), format!("person {n}\n")).unwrap();
            if !(try_git(work, &["add", "--", &file])
                && try_git(work, &["commit", "--quiet", "-m", &format!("person {n}")]))
            {
                continue;
            }
            let sha = self.remote.git(&["rev-parse", "HEAD"]);
            let patch = self.remote_patch_of(&sha);
            if try_git(work, &["push", "--quiet", "origin", &branch]) {
                self.own.entry(branch).or_default().insert(patch);
                self.foreign += 1;
                return;
            }
        }
    }

    fn remote_patch_of(&self, sha: &str) -> String {
        let work = &self.remote.work;
        let show = Command::new("git")
            .args(["show", sha])
            .current_dir(work)
            .output()
            .unwrap();
        let mut child = Command::new("git")
            .args(["patch-id", "--stable"])
            .current_dir(work)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&show.stdout).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }

    /// The invariant that must hold on the remote at every moment: each branch's commits on top
    /// of its parent's current tip are exactly its own (nothing lost, nothing half-restacked:
    /// a child left on its parent's old commits would show them again here).
    fn check_remote(&self, when: &str) {
        for i in 0..BRANCHES {
            let branch = name(i);
            let ids = self
                .remote
                .patch_ids(&self.remote.sha(&parent_of(i)), &self.remote.sha(&branch));
            assert_eq!(
                ids, self.own[&branch],
                "{when}: {branch} on the remote does not hold exactly its own commits"
            );
        }
    }

    fn fully_stacked(&self) {
        for i in 0..BRANCHES {
            assert!(
                self.remote
                    .contains(&name(i), &self.remote.sha(&parent_of(i))),
                "{} lacks its parent's tip",
                name(i)
            );
        }
    }
}

fn terminal(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "error" | "cancelled")
    )
}

async fn all_jobs(api: &Api, repo: &str) -> Vec<Value> {
    let (status, body) = api.get(&format!("/v1/repos/{repo}/jobs?limit=1000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["jobs"].as_array().cloned().unwrap_or_default()
}

/// Waits until no process names `path` on its command line or works inside it: the git children a SIGKILLed server
/// leaves behind (a push in flight, say) finish on their own, and the remote is looked at only
/// once they have, not while a ref transaction is half-way through its files.
async fn wait_for_orphans(path: &Path) {
    let needle = path.to_string_lossy().into_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let busy = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .any(|e| {
                let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).contains(&needle)
                    || cwd.to_string_lossy().contains(&needle)
            });
        if !busy {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "git processes of the killed server never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn find_locks(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_during_restacks_loses_nothing_and_half_applies_nothing() {
    let target_jobs = env_or("GANTRY_CHAOS_JOBS", 100) as usize;
    let kills = env_or("GANTRY_CHAOS_KILLS", 10).max(1) as usize;
    let seed = env_or("GANTRY_CHAOS_SEED", fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    eprintln!("chaos: seed {seed} (GANTRY_CHAOS_SEED={seed} replays it)");

    let mut chaos = Chaos::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lease = LEASE_SECS.to_string();
    let args = [
        "--lease-secs",
        &lease,
        "--max-attempts",
        "100",
        "--retry-base-ms",
        "50",
    ];
    let mut server = BinaryServer::spawn_with(&data, &args, false).await;
    let api = server.api.clone();
    let (status, body) = api
        .post(
            "/v1/repos",
            &json!({"name": "chaos", "remote_url": chaos.remote.url()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let repo = body["repo"]["id"].as_str().unwrap().to_owned();
    api.wait_status(body["job"]["id"].as_str().unwrap(), "completed")
        .await;
    for i in 0..BRANCHES {
        let job = api
            .act(
                &repo,
                "register_existing_branch",
                Some(&name(i)),
                Some(&parent_of(i)),
            )
            .await;
        api.wait_status(job["id"].as_str().unwrap(), "completed")
            .await;
    }
    chaos.move_trunk();

    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let per_round = target_jobs.div_ceil(kills);
    let mut kill_count = 0;
    let mut requeued_checks = 0;
    for round in 0..kills {
        let want = ((round + 1) * per_round).min(target_jobs);
        let mut attempts = 0;
        while accepted.len() < want && attempts < per_round * 20 {
            attempts += 1;
            let job = if rng.u8(..4) == 0 {
                server.api.act(&repo, "restack_repo", None, None).await
            } else {
                let branch = name(rng.usize(..BRANCHES));
                server
                    .api
                    .act(&repo, "restack_subtree", Some(&branch), None)
                    .await
            };
            accepted.insert(job["id"].as_str().unwrap().to_owned());
            match rng.u8(..10) {
                0..=2 => chaos.move_trunk(),
                3 => chaos.foreign_push(rng.usize(..BRANCHES)),
                _ => {}
            }
        }
        // The random moment: somewhere inside the jobs just queued.
        tokio::time::sleep(Duration::from_millis(rng.u64(0..1200))).await;
        server.kill9().await;
        kill_count += 1;
        wait_for_orphans(&data).await;
        wait_for_orphans(&chaos.remote.bare).await;
        chaos.check_remote(&format!("after kill {kill_count}"));

        let restarted_at = chrono::Utc::now();
        server = BinaryServer::spawn_with(&data, &args, false).await;
        // Nothing a dead process held stays `running` beyond its lease.
        let limit = Duration::from_secs(LEASE_SECS + 3);
        let api = server.api.clone();
        let stale = tokio::time::timeout(limit, async {
            loop {
                let stale: Vec<Value> = all_jobs(&api, &repo)
                    .await
                    .into_iter()
                    .filter(|j| j["status"] == "running" && time(j, "started_at") < restarted_at)
                    .collect();
                if stale.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            stale.is_ok(),
            "a job stayed running past its lease after restart {kill_count}"
        );
        requeued_checks += 1;
    }

    // Every accepted job ends.
    let api = server.api.clone();
    let deadline = Duration::from_secs(180);
    let finished = tokio::time::timeout(deadline, async {
        loop {
            let jobs = all_jobs(&api, &repo).await;
            let open = accepted
                .iter()
                .filter(|id| !jobs.iter().any(|j| j["id"] == id.as_str() && terminal(j)))
                .count();
            if open == 0 {
                return jobs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every accepted job finishes");
    let mut completed = 0;
    let mut raced = 0;
    let mut lost = 0;
    for id in &accepted {
        match finished.iter().find(|j| j["id"] == id.as_str()) {
            None => lost += 1,
            Some(job) if job["status"] == "completed" => completed += 1,
            Some(job) => {
                let message = job["message"].as_str().unwrap_or_default();
                // A retry that found an identical job already queued hands its work to that job,
                // which this loop checks on its own (it is one of the accepted jobs): nothing is
                // lost as long as that job finished.
                let superseded_by = message
                    .split("superseded by queued job ")
                    .nth(1)
                    .map(|id| id.trim());
                if let Some(other) = superseded_by {
                    let done = finished.iter().any(|j| j["id"] == other);
                    assert!(
                        done,
                        "{job} was superseded by {other}, which did not finish"
                    );
                    completed += 1;
                    continue;
                }
                assert!(
                    job["status"] == "error" && message.contains("moved on the remote"),
                    "a job ended other than by completing or losing a race to a person: {job}"
                );
                raced += 1;
            }
        }
    }
    let attempts_max = finished
        .iter()
        .filter_map(|j| j["attempt"].as_u64())
        .max()
        .unwrap_or(0);
    eprintln!(
        "chaos: kills={kill_count} jobs={} completed={completed} error_raced={raced} lost={lost} \
         trunk_moves={} person_pushes={} lease_checks={requeued_checks} max_attempt={attempts_max} seed={seed}",
        accepted.len(),
        chaos.trunk_moves,
        chaos.foreign,
    );
    assert_eq!(lost, 0, "accepted jobs were lost");
    assert!(accepted.len() >= target_jobs.min(BRANCHES + 1));
    chaos.check_remote("at the end");

    // One last restack converges the whole stack; the clone equals the remote; nothing is left.
    let last = api.act(&repo, "restack_repo", None, None).await;
    let last = api
        .wait_job(last["id"].as_str().unwrap(), "finished", terminal)
        .await;
    assert_eq!(last["status"], "completed", "{last}");
    chaos.check_remote("after the final restack");
    chaos.fully_stacked();
    assert!(server.terminate().await.success());
    let clone = gantry_server::git_jobs::repos_dir(&data).join(format!("{repo}.git"));
    let remote_refs = chaos.remote.refs();
    let clone_refs: BTreeMap<String, String> = refs_of(&clone)
        .into_iter()
        .filter(|(name, _)| remote_refs.contains_key(name))
        .collect();
    assert_eq!(clone_refs, remote_refs, "the clone equals the remote");
    let worktrees = clone.with_extension("git.worktrees");
    let left: Vec<_> = std::fs::read_dir(&worktrees)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "worktrees left behind: {left:?}");
    let locks = find_locks(&clone);
    assert!(locks.is_empty(), "lock files left behind: {locks:?}");
}
