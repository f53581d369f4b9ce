//! Storage transitions on a real database (a SQLite file, or a fresh PostgreSQL schema with
//! `GANTRY_TEST_DATABASE=postgres`): fencing, lease expiry, pruning, the change log.

use std::time::Duration;

use gantry_server::storage::{
    FinishJob, JobEffects, JobEnd, NewJob, PrunePolicy, StorageError, Store,
};
use gantry_types::{JobKind, JobStatus};

async fn store() -> (tempfile::TempDir, Store, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = gantry_server::test_support::open_store(dir.path())
        .await
        .expect("the test database opens");
    let org = store.default_org_id().await.unwrap();
    let (repo, _) = store
        .create_repo(
            &org,
            "r",
            "https://h/r",
            "main",
            new_job("repo-1", JobKind::SyncRepo, None),
        )
        .await
        .unwrap();
    (dir, store, repo.id)
}

fn new_job(repo_id: &str, kind: JobKind, branch: Option<&str>) -> NewJob {
    NewJob {
        repo_id: repo_id.to_owned(),
        kind,
        branch: branch.map(str::to_owned),
        parent: None,
        max_attempts: 3,
        idempotency_key: None,
    }
}

#[tokio::test]
async fn a_worker_whose_lease_was_taken_over_cannot_write() {
    let (_dir, store, repo) = store().await;
    let lease = Duration::from_secs(30);
    let first = store.claim_next_job("w1", lease).await.unwrap().unwrap();
    assert_eq!(first.job.repo_id, repo);
    assert_eq!(first.job.attempt, 1);

    // The lease is taken over (its worker presumed dead) and another worker claims attempt 2.
    let expired = store.expire_leases(true).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].status, JobStatus::Queued);
    let second = store.claim_next_job("w2", lease).await.unwrap().unwrap();
    assert_eq!(second.job.id, first.job.id);
    assert_eq!(second.job.attempt, 2);

    // Every write of attempt 1 is refused.
    let id = &first.job.id;
    let fenced = |r: Result<_, StorageError>| matches!(r, Err(StorageError::Fenced { .. }));
    assert!(fenced(
        store
            .finish_job(id, 1, JobEnd::Completed, JobEffects::default())
            .await
            .map(|_| ())
    ));
    assert!(fenced(store.heartbeat_job(id, 1, lease).await.map(|_| ())));
    assert!(fenced(
        store.report_progress(id, 1, &Default::default()).await
    ));
    assert!(fenced(
        store
            .retry_job(id, 1, Duration::ZERO, "x")
            .await
            .map(|_| ())
    ));

    let org = store.default_org_id().await.unwrap();
    let job = store.get_job(&org, id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Running, 2));
    let done = store
        .finish_job(id, 2, JobEnd::Completed, JobEffects::default())
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
}

#[tokio::test]
async fn the_database_refuses_a_second_running_job_on_one_repo() {
    let (_dir, store, repo) = store().await;
    store
        .enqueue_job(new_job(&repo, JobKind::RebaseBranch, Some("a")))
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let first = store.claim_next_job("w1", lease).await.unwrap().unwrap();
    assert!(
        store.claim_next_job("w2", lease).await.unwrap().is_none(),
        "claimed beside a running job"
    );
    store
        .finish_job(&first.job.id, 1, JobEnd::Completed, JobEffects::default())
        .await
        .unwrap();
    assert!(store.claim_next_job("w2", lease).await.unwrap().is_some());
}

#[tokio::test]
async fn every_write_appends_its_change_log_rows_in_order() {
    let (_dir, store, repo) = store().await;
    let before = store.changes_after(0, 1000).await.unwrap();
    assert!(!before.is_empty(), "creating a repo wrote changes");
    let job = store
        .enqueue_job(new_job(&repo, JobKind::RebaseBranch, Some("b")))
        .await
        .unwrap()
        .into_job();
    let after = store
        .changes_after(before.last().unwrap().position, 1000)
        .await
        .unwrap();
    let topics: Vec<&str> = after.iter().map(|c| c.topic.as_str()).collect();
    assert_eq!(
        topics,
        vec![
            format!("job/{}", job.id).as_str(),
            format!("repo/{repo}/jobs").as_str()
        ]
    );
    let positions: Vec<i64> = store
        .changes_after(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.position)
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*store.commits().borrow(), *positions.last().unwrap());
}

#[tokio::test]
async fn finished_jobs_are_pruned_beyond_the_count_kept_per_repo() {
    let (_dir, store, repo) = store().await;
    let lease = Duration::from_secs(30);
    for i in 0..5 {
        store
            .enqueue_job(new_job(
                &repo,
                JobKind::RebaseBranch,
                Some(&format!("p{i}")),
            ))
            .await
            .unwrap();
    }
    while let Some(claimed) = store.claim_next_job("w", lease).await.unwrap() {
        store
            .finish_job(&claimed.job.id, 1, JobEnd::Completed, JobEffects::default())
            .await
            .unwrap();
    }
    store
        .enqueue_job(new_job(&repo, JobKind::RebaseBranch, Some("still-queued")))
        .await
        .unwrap();
    let policy = PrunePolicy {
        finished_job_max_age: Duration::from_secs(3600),
        finished_jobs_per_repo: 2,
        change_log_max_age: Duration::from_secs(3600),
        change_log_max_rows: 100_000,
    };
    let (jobs, _) = store.prune(policy).await.unwrap();
    assert_eq!(jobs, 4, "6 finished jobs (with the first sync), 2 kept");
    let left = store.list_jobs(&repo, 100).await.unwrap();
    assert_eq!(left.len(), 3);
    assert!(
        left.iter().any(|j| j.status == JobStatus::Queued),
        "queued jobs are never pruned"
    );
}

#[tokio::test]
async fn a_batch_claim_takes_one_job_per_repo_and_a_batch_finish_fences_each_entry() {
    let (_dir, store, repo) = store().await;
    let org = store.default_org_id().await.unwrap();
    let mut repos = vec![repo.clone()];
    for (name, id) in [("r2", "repo-2"), ("r3", "repo-3")] {
        let (r, _) = store
            .create_repo(
                &org,
                name,
                "https://h/x",
                "main",
                new_job(id, JobKind::SyncRepo, None),
            )
            .await
            .unwrap();
        repos.push(r.id);
    }
    // A second job on the first repo must wait behind that repo's first one.
    store
        .enqueue_job(new_job(&repo, JobKind::RebaseBranch, Some("a")))
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let claimed = store.claim_jobs("w1", lease, 10).await.unwrap();
    let mut claimed_repos: Vec<&str> = claimed.iter().map(|c| c.job.repo_id.as_str()).collect();
    claimed_repos.sort_unstable();
    let mut expected: Vec<&str> = repos.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(
        claimed_repos, expected,
        "one job of each repo, in one claim"
    );
    assert!(store.claim_jobs("w1", lease, 10).await.unwrap().is_empty());

    let before = store.changes_after(0, 10_000).await.unwrap();
    let end = |job_id: &str, attempt| FinishJob {
        job_id: job_id.to_owned(),
        attempt,
        end: JobEnd::Completed,
        effects: JobEffects::default(),
    };
    let ends = vec![
        end(&claimed[0].job.id, 1),
        end(&claimed[1].job.id, 7), // a stale attempt
        end(&claimed[2].job.id, 1),
    ];
    let results = store.finish_jobs(&ends).await;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap().status, JobStatus::Completed);
    assert!(matches!(
        results[1],
        Err(StorageError::Fenced { attempt: 7, .. })
    ));
    assert_eq!(results[2].as_ref().unwrap().status, JobStatus::Completed);
    let stale = store
        .get_job(&org, &claimed[1].job.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stale.status,
        JobStatus::Running,
        "the fenced entry wrote nothing"
    );

    // The two ends share one transaction: the shared `repos` topic got one change, not two.
    let after = store
        .changes_after(before.last().unwrap().position, 10_000)
        .await
        .unwrap();
    let repos_topic = format!("org/{org}/repos");
    assert_eq!(after.iter().filter(|c| c.topic == repos_topic).count(), 1);
    // The first repo's second job is claimable now, and only it.
    let next = store.claim_jobs("w1", lease, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].job.branch.as_deref(), Some("a"));
}
