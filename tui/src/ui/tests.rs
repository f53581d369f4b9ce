//! Rendering tests: the whole screen drawn into a `TestBackend`, read back as text.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gantry_types::ws::ServerMessage;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};

use super::buffer_text;
use crate::App;
use crate::fixtures::*;
use crate::net::{ConnectionStatus, NetEvent};

fn snapshot(topic: &str, rows: Vec<Value>) -> NetEvent {
    NetEvent::Message(ServerMessage::Snapshot {
        id: None,
        topic: topic.into(),
        epoch: "e".into(),
        position: 1,
        rows,
        reset: false,
    })
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn screen(app: &mut App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    app.render(&mut terminal).expect("draw");
    buffer_text(terminal.backend().buffer())
}

/// A connected app showing repo r1 with a stack and a few jobs.
fn demo_app() -> App {
    let mut app = App::new("http://127.0.0.1:7420");
    app.handle_net(NetEvent::Status(ConnectionStatus::Live { generation: 1 }));
    app.handle_net(snapshot(
        "repos",
        vec![repo_json("r1", "demo"), repo_json("r2", "other")],
    ));
    let mut api = branch_json("r1", "stack/1-api", Some("main"));
    api["needs_restack"] = json!(true);
    api["behind"] = json!(3);
    api["active_job_id"] = json!("job-run1");
    let mut retries = branch_json("r1", "fix/retries", Some("main"));
    retries["conflicts_with_trunk"] = json!(true);
    app.handle_net(snapshot(
        "repo/r1/branches",
        vec![
            api,
            branch_json("r1", "stack/2-model", Some("stack/1-api")),
            branch_json("r1", "stack/3-ui", Some("stack/2-model")),
            branch_json("r1", "stack/4-docs", Some("stack/3-ui")),
            branch_json("r1", "side/experiment", Some("stack/2-model")),
            retries,
        ],
    ));
    let mut running = job_json(
        "job-run1",
        "r1",
        "restack_subtree",
        Some("stack/1-api"),
        "running",
        3,
    );
    running["progress"] = json!({"step": 2, "total": 5, "text": "restacking stack/2-model"});
    let mut failed = job_json(
        "job-err1",
        "r1",
        "rebase_branch",
        Some("fix/retries"),
        "error",
        2,
    );
    failed["message"] = json!("conflict in config/settings.txt");
    app.handle_net(snapshot(
        "repo/r1/jobs",
        vec![
            job_json("job-don1", "r1", "sync_repo", None, "completed", 1),
            failed,
            running,
            job_json(
                "job-que1",
                "r1",
                "rebase_branch",
                Some("stack/3-ui"),
                "queued",
                4,
            ),
            job_json("job-can1", "r1", "restack_repo", None, "cancelled", 0),
        ],
    ));
    app.handle_net(snapshot(
        "repo/r1/tasks",
        vec![task_json(
            "t1",
            "r1",
            "Ship the API",
            "stack/1-api",
            "ready",
        )],
    ));
    app
}

/// The column (in characters) where `name` starts on its stack row, and the row's index.
fn position(text: &str, name: &str) -> (usize, usize) {
    let needle = format!("─ {name} ");
    text.lines()
        .enumerate()
        .find_map(|(row, line)| {
            let at = line.find(&needle)?;
            Some((row, line[..at].chars().count() + 2))
        })
        .unwrap_or_else(|| panic!("{name} not on screen:\n{text}"))
}

#[test]
fn the_stack_is_a_tree_with_children_indented_under_their_parent() {
    let mut app = demo_app();
    let text = screen(&mut app, 110, 30);
    assert!(text.contains("main  trunk"), "{text}");
    // The trunk's children, then each branch under its parent, drawn as a tree.
    for drawn in [
        "├─ fix/retries ",
        "└─ stack/1-api ",
        "   └─ stack/2-model ",
        "      ├─ side/experiment ",
        "      └─ stack/3-ui ",
        "         └─ stack/4-docs ",
    ] {
        assert!(text.contains(drawn), "{drawn:?} missing:\n{text}");
    }
    let (trunk_row, _) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("main  trunk"))
        .unwrap_or_default();
    let (fix_row, fix_col) = position(&text, "fix/retries");
    let (api_row, api_col) = position(&text, "stack/1-api");
    let (model_row, model_col) = position(&text, "stack/2-model");
    let (side_row, side_col) = position(&text, "side/experiment");
    let (ui_row, ui_col) = position(&text, "stack/3-ui");
    let (docs_row, docs_col) = position(&text, "stack/4-docs");
    // Parent first, then its children one level (3 columns) deeper; siblings share a column.
    assert_eq!(
        [
            trunk_row + 1,
            fix_row + 1,
            api_row + 1,
            model_row + 1,
            side_row + 1,
            ui_row + 1
        ],
        [fix_row, api_row, model_row, side_row, ui_row, docs_row]
    );
    assert_eq!(fix_col, api_col);
    assert_eq!(model_col, api_col + 3);
    assert_eq!([side_col, ui_col], [model_col + 3, model_col + 3]);
    assert_eq!(docs_col, ui_col + 3);
}

#[test]
fn branches_and_jobs_carry_symbol_badges() {
    let mut app = demo_app();
    let text = screen(&mut app, 160, 30);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not on screen:\n{text}"))
            .to_owned()
    };
    // Branch badges: ahead/behind, needs restack, conflict, and the active job with its step.
    let api = line("└─ stack/1-api");
    assert!(api.contains("↑1 ↓3"), "{api}");
    assert!(api.contains("↻ restack"), "{api}");
    assert!(api.contains("● running 2/5"), "{api}");
    assert!(line("fix/retries").contains("! conflict"));
    // The queued job is shown on its branch before the server marks the branch active.
    assert!(line("└─ stack/3-ui").contains("○ queued"));
    // Job badges: symbol and word for every status; running jobs show their step.
    assert!(line("#job-run1").contains("● running   restack subtree stack/1-api"));
    assert!(line("#job-run1").contains("2/5 restacking stack/2-model"));
    assert!(line("#job-que1").contains("○ queued"));
    assert!(line("#job-don1").contains("✓ completed"));
    assert!(line("#job-err1").contains("✗ error"));
    assert!(line("#job-err1").contains("conflict in config/settings.txt"));
    assert!(line("#job-can1").contains("⊘ cancelled"));
    assert!(line("Jobs · 5 · 1 running · 1 queued").contains("Tasks · 1"));
    assert!(line("Ship the API").contains("✓ ready"));
    assert!(line("▸ demo").contains("✓ synced"));
    // Status line: connection state and server.
    assert!(line("● live").contains("│ http://127.0.0.1:7420"));
}

#[test]
fn the_help_overlay_lists_every_key() {
    let mut app = demo_app();
    app.handle_key(key(KeyCode::Char('?')));
    let text = screen(&mut app, 110, 30);
    assert!(text.contains("Keys"), "{text}");
    for expected in [
        "s               sync the repo",
        "r               restack the selected branch and its subtree",
        "R               restack the whole repo",
        "b               rebase the selected branch onto its parent",
        "p               reparent the selected branch",
        "t               create a task on the selected branch",
        "c               cancel the selected job",
        "enter           job detail with live progress",
        "q  Ctrl-C       quit",
        "○ queued ● running ✓ completed ✗ error ⊘ cancelled",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    // Any key closes it.
    app.handle_key(key(KeyCode::Esc));
    assert!(!screen(&mut app, 110, 30).contains("restack the whole repo"));
}

#[test]
fn the_reparent_picker_offers_only_valid_parents() {
    let mut app = demo_app();
    // Select stack/2-model: fix/retries, stack/1-api, [stack/2-model].
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Down));
    assert_eq!(app.ui().branch.as_deref(), Some("stack/2-model"));
    app.handle_key(key(KeyCode::Char('p')));
    let text = screen(&mut app, 110, 30);
    let start = text
        .find("Reparent stack/2-model onto")
        .unwrap_or_else(|| panic!("{text}"));
    let picker: String = text[start..].lines().take(6).collect::<Vec<_>>().join("\n");
    for valid in ["main", "fix/retries", "stack/1-api  (current parent)"] {
        assert!(picker.contains(valid), "{valid} missing:\n{picker}");
    }
    for invalid in [
        "stack/2-model",
        "stack/3-ui",
        "stack/4-docs",
        "side/experiment",
    ] {
        let offered = picker.lines().skip(1).any(|l| l.contains(invalid));
        assert!(!offered, "{invalid} offered:\n{picker}");
    }
}

#[test]
fn the_status_line_tells_live_reconnecting_and_offline_apart() {
    let mut app = demo_app();
    app.handle_net(NetEvent::Status(ConnectionStatus::Reconnecting {
        attempt: 2,
        reason: "connection refused".into(),
    }));
    let text = screen(&mut app, 110, 30);
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains("◌ reconnecting (attempt 2)  │ connection refused · http://127.0.0.1:7420"),
        "{last}"
    );
    app.handle_net(NetEvent::Status(ConnectionStatus::Offline {
        reason: "connection refused".into(),
        retrying: true,
    }));
    let text = screen(&mut app, 110, 30);
    assert!(
        text.contains("✗ offline (retrying)  │ connection refused"),
        "{text}"
    );
    // The data stays on screen while offline.
    assert!(text.contains("stack/4-docs"), "{text}");
}

#[test]
fn a_thousand_jobs_scroll_without_building_them_all() {
    let mut app = App::new("http://x");
    app.handle_net(NetEvent::Status(ConnectionStatus::Live { generation: 1 }));
    app.handle_net(snapshot("repos", vec![repo_json("r1", "demo")]));
    let jobs: Vec<Value> = (0..1000)
        .map(|n| {
            job_json(
                &format!("job-{n:04}"),
                "r1",
                "sync_repo",
                None,
                "completed",
                n,
            )
        })
        .collect();
    app.handle_net(snapshot("repo/r1/jobs", jobs));
    app.handle_key(key(KeyCode::Tab)); // stack -> jobs
    app.handle_key(key(KeyCode::Down));
    let text = screen(&mut app, 100, 30);
    assert!(
        text.contains("▸ ✓ completed") && text.contains("#job-0999"),
        "{text}"
    );
    app.handle_key(key(KeyCode::End));
    let text = screen(&mut app, 100, 30);
    let selected = text.lines().find(|l| l.contains("▸ ✓")).unwrap_or_default();
    assert!(selected.contains("#job-0000"), "{text}");
    app.handle_key(key(KeyCode::PageUp));
    let text = screen(&mut app, 100, 30);
    let selected = text.lines().find(|l| l.contains("▸ ✓")).unwrap_or_default();
    assert!(selected.contains("#job-00"), "{selected}");
    assert!(!selected.contains("#job-0000"), "{selected}");
}

#[test]
fn the_job_detail_shows_live_progress_lines() {
    let mut app = demo_app();
    app.handle_key(key(KeyCode::Down)); // stack/1-api, whose running job is job-run1
    app.handle_key(key(KeyCode::Enter));
    assert!(app.model().is_tracked("job/job-run1"));
    let line = |seq: u32| {
        json!({"job_id": "job-run1", "attempt": 1, "seq": seq, "step": seq, "total": 5,
            "text": format!("step {seq} of the restack"), "at": T0})
    };
    let mut job = job_json(
        "job-run1",
        "r1",
        "restack_subtree",
        Some("stack/1-api"),
        "running",
        3,
    );
    job["attempt"] = json!(1);
    app.handle_net(snapshot("job/job-run1", vec![job, line(1), line(2)]));
    let text = screen(&mut app, 110, 30);
    assert!(
        text.contains("Job job-run1 · restack_subtree stack/1-api"),
        "{text}"
    );
    assert!(text.contains("● running  attempt 1/3"), "{text}");
    assert!(text.contains("1/5    step 1 of the restack"), "{text}");
    assert!(text.contains("2/5    step 2 of the restack"), "{text}");
    app.handle_key(key(KeyCode::Esc));
    assert!(!app.model().is_tracked("job/job-run1"));
}

#[test]
fn server_errors_are_shown_not_fatal() {
    use crate::error::RestError;
    use crate::net::{RestOutcome, RestRequest};
    let mut app = demo_app();
    app.handle_key(key(KeyCode::Char('t')));
    for c in "Write docs".chars() {
        app.handle_key(key(KeyCode::Char(c)));
    }
    let text = screen(&mut app, 110, 30);
    assert!(
        text.contains("New task on fix/retries") && text.contains("title: Write docs"),
        "{text}"
    );
    app.handle_key(key(KeyCode::Enter));
    let sent = app.take_commands();
    assert!(
        sent.iter().any(|c| matches!(c, crate::net::NetCommand::Rest(RestRequest::CreateTask { title, .. }) if title == "Write docs")),
        "{sent:?}"
    );
    app.handle_net(NetEvent::Rest(Box::new(RestOutcome {
        request: RestRequest::CreateTask {
            repo_id: "r1".into(),
            title: "Write docs".into(),
            branch: "fix/retries".into(),
        },
        result: Err(RestError::Server {
            status: 404,
            code: "route_not_found".into(),
            message: "no such endpoint".into(),
        }),
    })));
    let text = screen(&mut app, 110, 30);
    assert!(
        text.contains("✗ this server does not offer tasks yet (404)"),
        "{text}"
    );
}

#[test]
fn r_sends_the_action_and_the_202_shows_the_queued_job_at_once() {
    use crate::net::{NetCommand, RestAnswer, RestOutcome, RestRequest};
    use gantry_types::JobKind;
    let mut app = demo_app();
    app.take_commands();
    app.handle_key(key(KeyCode::Down)); // stack/1-api
    app.handle_key(key(KeyCode::Down)); // stack/2-model
    app.handle_key(key(KeyCode::Char('r')));
    let request = RestRequest::Action {
        repo_id: "r1".into(),
        kind: JobKind::RestackSubtree,
        branch: Some("stack/2-model".into()),
        parent: None,
    };
    assert_eq!(app.take_commands(), vec![NetCommand::Rest(request.clone())]);
    let accepted = job(
        "job-new1",
        "r1",
        "restack_subtree",
        Some("stack/2-model"),
        "queued",
        9,
    );
    app.handle_net(NetEvent::Rest(Box::new(RestOutcome {
        request,
        result: Ok(RestAnswer::Job(accepted)),
    })));
    let text = screen(&mut app, 160, 30);
    let row = text
        .lines()
        .find(|l| l.contains("#job-new1"))
        .unwrap_or_default();
    assert!(
        row.contains("▸ ○ queued    restack subtree stack/2-model"),
        "{text}"
    );
    let branch = text
        .lines()
        .find(|l| l.contains("─ stack/2-model "))
        .unwrap_or_default();
    assert!(branch.contains("○ queued"), "{text}");
    assert!(text.contains("accepted as job job-new1 (queued)"), "{text}");
}

#[test]
fn c_cancels_the_selected_job_and_refuses_a_finished_one() {
    use crate::net::{NetCommand, RestRequest};
    let mut app = demo_app();
    app.take_commands();
    app.handle_key(key(KeyCode::Tab)); // stack -> jobs
    app.handle_key(key(KeyCode::Home)); // the newest: the queued rebase
    app.handle_key(key(KeyCode::Char('c')));
    assert_eq!(
        app.take_commands(),
        vec![NetCommand::Rest(RestRequest::Cancel {
            job_id: "job-que1".into()
        })]
    );
    app.handle_key(key(KeyCode::End)); // the oldest: cancelled already
    app.handle_key(key(KeyCode::Char('c')));
    assert!(app.take_commands().is_empty());
    assert!(screen(&mut app, 160, 30).contains("✗ that job is already cancelled"));
}

#[test]
fn tiny_terminals_never_panic() {
    let mut app = demo_app();
    app.handle_key(key(KeyCode::Down));
    for overlay_key in [None, Some('?'), Some('p'), Some('t')] {
        if let Some(c) = overlay_key {
            app.handle_key(key(KeyCode::Char(c)));
        }
        for (width, height) in [(1, 1), (2, 3), (10, 4), (30, 8), (60, 12)] {
            screen(&mut app, width, height);
        }
        app.handle_key(key(KeyCode::Esc));
    }
    app.handle_key(key(KeyCode::Enter)); // job detail
    for (width, height) in [(1, 1), (10, 4), (30, 8)] {
        screen(&mut app, width, height);
    }
}
