//! Unit tests of the view model: the reducer (snapshot, resumed, diff, gaps, REST answers), the
//! jobs index and the stack tree.

use std::collections::BTreeMap;

use gantry_types::ws::{Cursor, Op, ServerMessage};
use gantry_types::{JobStatus, Topic};
use serde_json::Value;

use super::stack::{stack_rows, subtree, valid_parents};
use super::*;
use crate::fixtures::*;

fn snapshot(topic: &str, position: i64, rows: Vec<Value>) -> ServerMessage {
    ServerMessage::Snapshot {
        id: Some(1),
        topic: topic.into(),
        epoch: "e1".into(),
        position,
        rows,
        reset: false,
    }
}

fn diff(topic: &str, prev: i64, position: i64, ops: Vec<Op>) -> ServerMessage {
    ServerMessage::Diff {
        topic: topic.into(),
        epoch: "e1".into(),
        position,
        prev,
        committed_at: chrono::DateTime::UNIX_EPOCH,
        ops,
    }
}

fn upsert(key: &str, row: Value) -> Op {
    Op::Upsert {
        key: key.into(),
        row,
    }
}

fn jobs_model() -> ViewModel {
    let mut model = ViewModel::new();
    model.track(&Topic::RepoJobs("r1".into()));
    model
}

fn statuses(model: &ViewModel) -> Vec<(String, JobStatus)> {
    model
        .jobs("r1")
        .map(|jobs| {
            jobs.newest_first()
                .map(|j| (j.id.clone(), j.status))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_snapshot_replaces_the_rows_and_starts_the_chain() {
    let mut model = jobs_model();
    let applied = model.apply(snapshot(
        "repo/r1/jobs",
        10,
        vec![
            job_json("a", "r1", "sync_repo", None, "completed", 1),
            job_json("b", "r1", "restack_subtree", Some("x"), "running", 2),
        ],
    ));
    assert!(applied.changed);
    assert_eq!(
        statuses(&model),
        vec![
            ("b".into(), JobStatus::Running),
            ("a".into(), JobStatus::Completed)
        ]
    );
    assert_eq!(model.cursor("repo/r1/jobs").map(|c| c.position), Some(10));

    // A second snapshot (a reset) replaces, it does not merge.
    model.apply(snapshot(
        "repo/r1/jobs",
        20,
        vec![job_json("c", "r1", "sync_repo", None, "queued", 3)],
    ));
    assert_eq!(statuses(&model), vec![("c".into(), JobStatus::Queued)]);
}

#[test]
fn diffs_upsert_and_remove_rows_by_key() {
    let mut model = jobs_model();
    model.apply(snapshot(
        "repo/r1/jobs",
        10,
        vec![job_json("a", "r1", "sync_repo", None, "queued", 1)],
    ));
    let applied = model.apply(diff(
        "repo/r1/jobs",
        10,
        11,
        vec![
            upsert("a", job_json("a", "r1", "sync_repo", None, "running", 1)),
            upsert(
                "b",
                job_json("b", "r1", "rebase_branch", Some("x"), "queued", 5),
            ),
        ],
    ));
    assert_eq!(
        applied,
        Applied {
            changed: true,
            resubscribe: None
        }
    );
    assert_eq!(
        statuses(&model),
        vec![
            ("b".into(), JobStatus::Queued),
            ("a".into(), JobStatus::Running)
        ]
    );
    model.apply(diff(
        "repo/r1/jobs",
        11,
        12,
        vec![Op::Remove { key: "a".into() }],
    ));
    assert_eq!(statuses(&model), vec![("b".into(), JobStatus::Queued)]);
}

#[test]
fn a_gap_asks_to_resubscribe_since_the_last_applied_position_and_resumed_continues() {
    let mut model = jobs_model();
    model.apply(snapshot("repo/r1/jobs", 10, vec![]));
    model.apply(diff(
        "repo/r1/jobs",
        10,
        11,
        vec![upsert(
            "a",
            job_json("a", "r1", "sync_repo", None, "queued", 1),
        )],
    ));
    // Position 12 was missed: the next diff says prev 12.
    let applied = model.apply(diff(
        "repo/r1/jobs",
        12,
        13,
        vec![upsert(
            "a",
            job_json("a", "r1", "sync_repo", None, "completed", 1),
        )],
    ));
    assert_eq!(
        applied.resubscribe,
        Some(Resubscribe {
            topic: "repo/r1/jobs".into(),
            since: Cursor {
                epoch: "e1".into(),
                position: 11
            }
        })
    );
    assert!(!applied.changed);
    assert_eq!(statuses(&model), vec![("a".into(), JobStatus::Queued)]);

    // Diffs still queued from the old subscription are dropped while resyncing.
    let applied = model.apply(diff("repo/r1/jobs", 13, 14, vec![]));
    assert_eq!(applied, Applied::default());

    // The resubscribe is answered with `resumed` and the missed diffs, chained from 11.
    model.awaiting("repo/r1/jobs");
    model.apply(ServerMessage::Resumed {
        id: Some(2),
        topic: "repo/r1/jobs".into(),
        epoch: "e1".into(),
        position: 11,
    });
    for (prev, position, status) in [(11, 12, "running"), (12, 13, "completed")] {
        let applied = model.apply(diff(
            "repo/r1/jobs",
            prev,
            position,
            vec![upsert(
                "a",
                job_json("a", "r1", "sync_repo", None, status, 1),
            )],
        ));
        assert!(applied.changed && applied.resubscribe.is_none());
    }
    assert_eq!(statuses(&model), vec![("a".into(), JobStatus::Completed)]);
    assert_eq!(model.cursor("repo/r1/jobs").map(|c| c.position), Some(13));
}

#[test]
fn resumed_keeps_rows_after_a_reconnect() {
    let mut model = jobs_model();
    model.apply(snapshot(
        "repo/r1/jobs",
        10,
        vec![job_json("a", "r1", "sync_repo", None, "queued", 1)],
    ));
    // Reconnected: subscribe since 10 sent, answered with resumed.
    model.awaiting("repo/r1/jobs");
    assert_eq!(model.cursor("repo/r1/jobs").map(|c| c.position), Some(10));
    model.apply(ServerMessage::Resumed {
        id: Some(3),
        topic: "repo/r1/jobs".into(),
        epoch: "e1".into(),
        position: 10,
    });
    assert_eq!(statuses(&model), vec![("a".into(), JobStatus::Queued)]);
    let applied = model.apply(diff(
        "repo/r1/jobs",
        10,
        15,
        vec![upsert(
            "a",
            job_json("a", "r1", "sync_repo", None, "running", 1),
        )],
    ));
    assert!(applied.changed);
    assert_eq!(statuses(&model), vec![("a".into(), JobStatus::Running)]);
}

#[test]
fn messages_for_untracked_topics_and_undecodable_rows_are_harmless() {
    let mut model = jobs_model();
    assert_eq!(
        model.apply(snapshot("repo/other/jobs", 1, vec![])),
        Applied::default()
    );
    model.apply(snapshot(
        "repo/r1/jobs",
        1,
        vec![serde_json::json!({"id": "x", "what": "not a job"})],
    ));
    assert_eq!(model.skipped_rows(), 1);
    assert!(model.jobs("r1").is_some_and(|j| j.is_empty()));
}

#[test]
fn a_rest_answer_shows_at_once_but_never_overwrites_a_newer_pushed_state() {
    let mut model = jobs_model();
    model.apply(snapshot("repo/r1/jobs", 1, vec![]));
    // 202 arrives first: the queued job is shown.
    assert!(model.accept_job(job("a", "r1", "restack_subtree", Some("x"), "queued", 1)));
    assert_eq!(statuses(&model), vec![("a".into(), JobStatus::Queued)]);
    // Pushed diffs take over.
    let mut running = job_json("a", "r1", "restack_subtree", Some("x"), "running", 1);
    running["updated_at"] = Value::from(at(2));
    model.apply(diff("repo/r1/jobs", 1, 2, vec![upsert("a", running)]));
    // A late REST answer (older) does not bring the job back to queued.
    assert!(!model.accept_job(job("a", "r1", "restack_subtree", Some("x"), "queued", 1)));
    assert_eq!(statuses(&model), vec![("a".into(), JobStatus::Running)]);
}

#[test]
fn job_topic_holds_the_job_and_its_lines_in_report_order() {
    let mut model = ViewModel::new();
    model.track(&Topic::Job("j1".into()));
    let line = |seq: u32, text: &str| {
        serde_json::json!({"job_id": "j1", "attempt": 1, "seq": seq, "step": seq, "total": 12,
            "text": text, "at": T0})
    };
    model.apply(snapshot(
        "job/j1",
        5,
        vec![
            job_json("j1", "r1", "restack_repo", None, "running", 1),
            line(10, "ten"),
            line(2, "two"),
        ],
    ));
    model.apply(diff(
        "job/j1",
        5,
        6,
        vec![upsert(&rows::line_key("j1", 11), line(11, "eleven"))],
    ));
    let detail = model.job_detail("j1").expect("detail");
    let texts: Vec<&str> = detail.lines.values().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, vec!["two", "ten", "eleven"]);
    assert_eq!(
        detail.job.as_ref().map(|j| j.status),
        Some(JobStatus::Running)
    );
}

#[test]
fn jobs_view_scrolls_a_thousand_jobs_newest_first() {
    let mut jobs = JobsView::default();
    for n in 0..1000 {
        jobs.upsert(job(
            &format!("j{n:04}"),
            "r1",
            "sync_repo",
            None,
            "completed",
            n,
        ));
    }
    jobs.upsert(job("j0500", "r1", "sync_repo", None, "running", 500));
    assert_eq!(jobs.len(), 1000);
    assert_eq!(jobs.nth(0).map(|j| j.id.as_str()), Some("j0999"));
    assert_eq!(jobs.index_of("j0500"), Some(499));
    assert_eq!(jobs.count(JobStatus::Running), 1);
    assert_eq!(jobs.unfinished().count(), 1);
}

fn tree() -> BTreeMap<String, gantry_types::Branch> {
    [
        branch("r1", "a", Some("main")),
        branch("r1", "b", Some("a")),
        branch("r1", "c", Some("b")),
        branch("r1", "d", Some("a")),
        branch("r1", "e", Some("main")),
        branch("r1", "loose", None),
    ]
    .into_iter()
    .map(|b| (b.name.clone(), b))
    .collect()
}

#[test]
fn the_stack_is_parent_first_children_indented() {
    let branches = tree();
    let rows: Vec<(String, usize)> = stack_rows("main", &branches)
        .into_iter()
        .map(|r| (r.branch.name.clone(), r.depth))
        .collect();
    let expected: Vec<(String, usize)> = [
        ("a", 0),
        ("b", 1),
        ("c", 2),
        ("d", 1),
        ("e", 0),
        ("loose", 0),
    ]
    .into_iter()
    .map(|(n, d)| (n.to_owned(), d))
    .collect();
    assert_eq!(rows, expected);
}

#[test]
fn a_cycle_from_the_server_cannot_hide_or_hang_branches() {
    let branches: BTreeMap<String, gantry_types::Branch> = [
        branch("r1", "x", Some("y")),
        branch("r1", "y", Some("x")),
        branch("r1", "a", Some("main")),
    ]
    .into_iter()
    .map(|b| (b.name.clone(), b))
    .collect();
    let names: Vec<String> = stack_rows("main", &branches)
        .into_iter()
        .map(|r| r.branch.name.clone())
        .collect();
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"x".to_owned()) && names.contains(&"y".to_owned()));
}

#[test]
fn reparent_offers_neither_the_branch_nor_its_subtree() {
    let branches = tree();
    assert_eq!(
        subtree("a", &branches).into_iter().collect::<Vec<_>>(),
        vec!["a", "b", "c", "d"]
    );
    assert_eq!(
        valid_parents("main", "b", &branches),
        vec!["main", "a", "d", "e"]
    );
    assert_eq!(valid_parents("main", "a", &branches), vec!["main", "e"]);
}
