//! Resume with `since`: exactly the missed diffs, or a snapshot with `reset: true` when the
//! cursor cannot be honoured; and resume across a simulated restart (`load`).

mod common;

use chrono::{Duration, Utc};
use common::*;
use gantry_projections::{Subscribed, TopicSeed};
use gantry_types::ws::{Cursor, ServerMessage};

fn cursor(position: i64) -> Cursor {
    Cursor {
        epoch: EPOCH.into(),
        position,
    }
}

/// Topic "t" changes at 2, 4, 6, 8, 10; "u" at the odd positions.
fn busy_hub(retention_count: usize) -> std::sync::Arc<gantry_projections::Hub> {
    let hub = hub_with(|c| c.retention_count = retention_count);
    hub.apply((1..=10).map(|p| {
        let topic = if p % 2 == 0 { "t" } else { "u" };
        change(p, topic, vec![upsert(&format!("k{p}"), p)])
    }));
    hub
}

#[test]
fn resume_replays_exactly_the_missed_diffs_in_order() {
    let hub = busy_hub(100);
    // A client saw the snapshot at 4 (or diff 4): it missed 6, 8, 10.
    let outbox = hub.connect();
    let outcome = hub
        .subscribe(&outbox, Some(5), "t", Some(&cursor(4)))
        .unwrap();
    assert_eq!(
        outcome,
        Subscribed::Resumed {
            position: 4,
            replayed: 3
        }
    );
    let msgs = drain_parsed(&outbox);
    let ServerMessage::Resumed {
        id,
        position,
        epoch,
        topic,
    } = &msgs[0]
    else {
        panic!("{msgs:?}")
    };
    assert_eq!(
        (*id, *position, epoch.as_str(), topic.as_str()),
        (Some(5), 4, EPOCH, "t")
    );
    let replayed: Vec<(i64, i64)> = msgs[1..]
        .iter()
        .map(|m| match m {
            ServerMessage::Diff { position, prev, .. } => (*position, *prev),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(replayed, [(6, 4), (8, 6), (10, 8)]);

    // Then live diffs continue the chain.
    let mut model = Model::default();
    for m in &msgs {
        model.feed(m);
    }
    hub.apply([change(11, "t", vec![upsert("k11", 11)])]);
    model.feed_all(&drain(&outbox));
    assert_eq!(model.diffs, [6, 8, 10, 11]);
}

#[test]
fn resume_from_a_cursor_between_topic_positions_starts_at_the_first_diff_prev() {
    let hub = busy_hub(100);
    let outbox = hub.connect();
    // 5 is another topic's position: the first missed diff is 6, whose prev is 4.
    let outcome = hub.subscribe(&outbox, None, "t", Some(&cursor(5))).unwrap();
    assert_eq!(
        outcome,
        Subscribed::Resumed {
            position: 4,
            replayed: 3
        }
    );
}

#[test]
fn resume_with_nothing_missed_sends_resumed_at_the_topic_position() {
    let hub = busy_hub(100);
    let outbox = hub.connect();
    // The hub is at 10 and so is "t"; a cursor of 10 missed nothing.
    let outcome = hub
        .subscribe(&outbox, None, "t", Some(&cursor(10)))
        .unwrap();
    assert_eq!(
        outcome,
        Subscribed::Resumed {
            position: 10,
            replayed: 0
        }
    );
    // "u" last changed at 9 <= cursor 10.
    let outcome = hub
        .subscribe(&outbox, None, "u", Some(&cursor(10)))
        .unwrap();
    assert_eq!(
        outcome,
        Subscribed::Resumed {
            position: 9,
            replayed: 0
        }
    );
    let msgs = drain_parsed(&outbox);
    assert!(matches!(
        msgs[..],
        [
            ServerMessage::Resumed { position: 10, .. },
            ServerMessage::Resumed { position: 9, .. }
        ]
    ));
}

#[test]
fn unresumable_cursors_get_a_reset_snapshot() {
    let hub = busy_hub(2); // "t" retains 8 and 10 only: floor 6.
    let cases = [
        ("beyond the window", cursor(4)),
        (
            "another epoch",
            Cursor {
                epoch: "epoch-0".into(),
                position: 8,
            },
        ),
        ("ahead of the hub", cursor(11)),
        ("negative", cursor(-1)),
    ];
    for (what, since) in cases {
        let outbox = hub.connect();
        let outcome = hub.subscribe(&outbox, Some(1), "t", Some(&since)).unwrap();
        assert_eq!(
            outcome,
            Subscribed::Snapshot {
                position: 10,
                rows: 5,
                reset: true
            },
            "{what}"
        );
        match &drain_parsed(&outbox)[..] {
            [
                ServerMessage::Snapshot {
                    reset: true,
                    position: 10,
                    rows,
                    ..
                },
            ] => {
                assert_eq!(rows.len(), 5, "{what}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // At the floor itself it still resumes.
    let outbox = hub.connect();
    assert_eq!(
        hub.subscribe(&outbox, None, "t", Some(&cursor(6))).unwrap(),
        Subscribed::Resumed {
            position: 6,
            replayed: 2
        }
    );
}

#[test]
fn a_replay_larger_than_the_outbox_bound_becomes_a_reset_snapshot() {
    let hub = hub_with(|c| c.outbox_max_bytes = 2_000);
    hub.apply((1..=100).map(|p| change(p, "t", vec![upsert("k", p)])));
    let outbox = hub.connect();
    let outcome = hub.subscribe(&outbox, None, "t", Some(&cursor(1))).unwrap();
    assert!(
        matches!(
            outcome,
            Subscribed::Snapshot {
                reset: true,
                position: 100,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(!outbox.is_closed());
    // A short replay still resumes.
    let outbox = hub.connect();
    let outcome = hub
        .subscribe(&outbox, None, "t", Some(&cursor(98)))
        .unwrap();
    assert_eq!(
        outcome,
        Subscribed::Resumed {
            position: 98,
            replayed: 2
        }
    );
}

#[test]
fn resume_works_after_a_simulated_restart() {
    // Before the restart: a client follows "t" up to 6, then the server dies at 10.
    let before = busy_hub(100);
    let client = before.connect();
    before
        .subscribe(&client, None, "t", Some(&cursor(0)))
        .unwrap();
    let mut model = Model::default();
    let frames = drain(&client);
    model.feed_all(&frames[..4]); // resumed(0), 2, 4, 6
    assert_eq!(model.position, Some(6));

    // The restarted server reads the state at 10 and the tail of the log in one read.
    let snapshot = {
        let seed = before.connect();
        before.subscribe(&seed, None, "t", None).unwrap();
        let mut m = Model::default();
        m.feed_all(&drain(&seed));
        m
    };
    let after = hub();
    let tail: Vec<_> = (3..=10)
        .map(|p| {
            let topic = if p % 2 == 0 { "t" } else { "u" };
            change(p, topic, vec![upsert(&format!("k{p}"), p)])
        })
        .collect();
    after
        .load(
            10,
            vec![
                TopicSeed {
                    topic: "t".into(),
                    position: 10,
                    rows: snapshot.rows.clone().into_iter().collect(),
                },
                TopicSeed {
                    topic: "u".into(),
                    position: 9,
                    rows: vec![],
                },
            ],
            tail,
        )
        .unwrap();
    assert_eq!(after.position(), 10);
    // The first retained change of each topic (4, 3) only marks its floor; the rest replay.
    assert_eq!(after.stats().retained_diffs, 3 + 3);

    let client = after.connect();
    let outcome = after
        .subscribe(&client, None, "t", Some(&cursor(model.position.unwrap())))
        .unwrap();
    assert_eq!(
        outcome,
        Subscribed::Resumed {
            position: 6,
            replayed: 2
        }
    );
    model.feed_all(&drain(&client));
    assert_eq!(model.rows, snapshot.rows);
    after.apply([change(12, "t", vec![remove("k2")])]);
    model.feed_all(&drain(&client));
    assert_eq!(model.diffs, [2, 4, 6, 8, 10, 12]);
    assert!(!model.rows.contains_key("k2"));

    // A cursor older than the loaded tail resets; one exactly at its first change resumes.
    let other = after.connect();
    assert!(matches!(
        after
            .subscribe(&other, None, "t", Some(&cursor(2)))
            .unwrap(),
        Subscribed::Snapshot {
            reset: true,
            position: 12,
            ..
        }
    ));
    assert_eq!(
        after
            .subscribe(&other, None, "u", Some(&cursor(5)))
            .unwrap(),
        Subscribed::Resumed {
            position: 5,
            replayed: 2
        }
    );
    // Loading twice is refused.
    assert!(after.load(10, vec![], vec![]).is_err());
}

#[test]
fn load_applies_retention_and_ignores_changes_past_its_position() {
    let hub = hub_with(|c| c.retention_age = std::time::Duration::from_secs(60));
    let old = Utc::now() - Duration::hours(2);
    let tail = vec![
        change_at(1, "t", old, vec![upsert("a", 1)]),
        change_at(2, "t", old, vec![upsert("a", 2)]),
        change(3, "t", vec![upsert("a", 3)]),
        change(4, "t", vec![upsert("a", 4)]),
        change(9, "t", vec![upsert("a", 9)]), // beyond the load position
    ];
    hub.load(
        4,
        vec![TopicSeed {
            topic: "t".into(),
            position: 4,
            rows: vec![("a".into(), row("a", 4))],
        }],
        tail,
    )
    .unwrap();
    // 2 was too old: floor 2, so 3 and 4 are replayable.
    assert_eq!(hub.stats().retained_diffs, 2);
    let outbox = hub.connect();
    assert!(matches!(
        hub.subscribe(&outbox, None, "t", Some(&cursor(1))).unwrap(),
        Subscribed::Snapshot {
            reset: true,
            position: 4,
            rows: 1
        }
    ));
    assert_eq!(
        hub.subscribe(&hub.connect(), None, "t", Some(&cursor(2)))
            .unwrap(),
        Subscribed::Resumed {
            position: 2,
            replayed: 2
        }
    );
}

#[test]
fn a_subscriber_that_came_before_load_is_sent_away_to_resume() {
    let hub = hub();
    let early = hub.connect();
    hub.subscribe(&early, None, "t", None).unwrap();
    hub.load(
        3,
        vec![TopicSeed {
            topic: "t".into(),
            position: 3,
            rows: vec![("a".into(), row("a", 1))],
        }],
        vec![],
    )
    .unwrap();
    assert_eq!(
        early.close_reason(),
        Some(gantry_projections::CloseReason::GoingAway)
    );
    hub.disconnect(&early);
    assert_eq!(hub.stats().subscriptions, 0);
    assert_eq!(hub.stats().connections, 0);
}
