//! A measurement, not a timed test (ignored by default): how fast the store burns down a queue of
//! trivial jobs with several concurrent workers claiming and finishing them, on the selected
//! backend. Run with
//! `GANTRY_TEST_DATABASE=postgres cargo nextest run -p gantry-server --run-ignored only -E 'binary(throughput)' --no-capture`.

use std::time::{Duration, Instant};

use gantry_server::storage::{JobEffects, JobEnd, NewJob};
use gantry_types::JobKind;

const REPOS: usize = 200;
const JOBS_PER_REPO: usize = 10;
const WORKERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run on demand"]
async fn claim_and_finish_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = gantry_server::test_support::open_store(dir.path())
        .await
        .expect("the test database opens");
    let org = store.default_org_id().await.unwrap();
    let mut repos = Vec::new();
    for r in 0..REPOS {
        let repo_id = format!("repo-{r}");
        let first = NewJob {
            repo_id: repo_id.clone(),
            kind: JobKind::SyncRepo,
            branch: None,
            parent: None,
            max_attempts: 3,
            idempotency_key: None,
        };
        store
            .create_repo(&org, &repo_id, "https://h/r", "main", first)
            .await
            .unwrap();
        repos.push(repo_id);
    }
    let enqueue_started = Instant::now();
    for n in 0..JOBS_PER_REPO {
        for repo in &repos {
            store
                .enqueue_job(NewJob {
                    repo_id: repo.clone(),
                    kind: JobKind::RebaseBranch,
                    branch: Some(format!("b{n}")),
                    parent: None,
                    max_attempts: 3,
                    idempotency_key: None,
                })
                .await
                .unwrap();
        }
    }
    let enqueued = REPOS * JOBS_PER_REPO;
    let enqueue_secs = enqueue_started.elapsed().as_secs_f64();

    let total = REPOS * (JOBS_PER_REPO + 1);
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut claims = Vec::new();
                let mut idle = 0;
                while idle < 20 {
                    let t = Instant::now();
                    match store
                        .claim_next_job(&format!("w{w}"), Duration::from_secs(30))
                        .await
                        .unwrap()
                    {
                        Some(claimed) => {
                            claims.push(t.elapsed());
                            idle = 0;
                            store
                                .finish_job(
                                    &claimed.job.id,
                                    claimed.job.attempt,
                                    JobEnd::Completed,
                                    JobEffects::default(),
                                )
                                .await
                                .unwrap();
                        }
                        None => {
                            idle += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
                claims
            })
        })
        .collect();
    let mut claims = Vec::new();
    for worker in workers {
        claims.extend(worker.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(claims.len(), total, "every job claimed exactly once");
    claims.sort();
    let pct = |p: f64| claims[((claims.len() as f64 * p) as usize).min(claims.len() - 1)];
    eprintln!(
        "enqueue: {enqueued} jobs in {enqueue_secs:.2} s ({:.0}/s, one client)\n\
         claim+finish: {total} jobs, {WORKERS} workers, {secs:.2} s, {:.0} jobs/s \
         (claim p50 {:?}, p99 {:?}; includes the idle polls at the end)",
        enqueued as f64 / enqueue_secs,
        total as f64 / secs,
        pct(0.5),
        pct(0.99),
    );
}
