//! The key map: which key does what, and the help text generated from the same table, so the
//! help overlay can never disagree with the keys.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for when no overlay is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextPane,
    PrevPane,
    Sync,
    RestackSubtree,
    RestackRepo,
    Rebase,
    Reparent,
    CreateTask,
    Cancel,
    Open,
}

/// The help overlay's rows: keys, then what they do. Every [`Action`] appears here (a test
/// checks it).
pub const HELP: &[(&str, &str, Action)] = &[
    ("↑ ↓  k j", "move the selection", Action::Up),
    ("PgUp PgDn", "move a page", Action::PageUp),
    ("Home End  g G", "first / last", Action::Top),
    ("Tab  Shift-Tab", "next / previous pane", Action::NextPane),
    (
        "enter",
        "job detail with live progress (or open the repo)",
        Action::Open,
    ),
    ("s", "sync the repo", Action::Sync),
    (
        "r",
        "restack the selected branch and its subtree",
        Action::RestackSubtree,
    ),
    ("R", "restack the whole repo", Action::RestackRepo),
    (
        "b",
        "rebase the selected branch onto its parent",
        Action::Rebase,
    ),
    (
        "p",
        "reparent the selected branch (pick a parent)",
        Action::Reparent,
    ),
    (
        "t",
        "create a task on the selected branch",
        Action::CreateTask,
    ),
    ("c", "cancel the selected job", Action::Cancel),
    ("?", "this help (any key closes it)", Action::Help),
    ("q  Ctrl-C", "quit", Action::Quit),
];

/// Whether the key is Ctrl-C, which quits from anywhere (raw mode turns it into a key).
pub fn is_interrupt(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c')
}

/// The action of a key on the main screen.
pub fn action_for(key: &KeyEvent) -> Option<Action> {
    if is_interrupt(key) {
        return Some(Action::Quit);
    }
    let action = match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        KeyCode::Tab => Action::NextPane,
        KeyCode::BackTab => Action::PrevPane,
        KeyCode::Char('s') => Action::Sync,
        KeyCode::Char('r') => Action::RestackSubtree,
        KeyCode::Char('R') => Action::RestackRepo,
        KeyCode::Char('b') => Action::Rebase,
        KeyCode::Char('p') => Action::Reparent,
        KeyCode::Char('t') => Action::CreateTask,
        KeyCode::Char('c') => Action::Cancel,
        KeyCode::Enter => Action::Open,
        _ => return None,
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_brief_maps_to_its_action() {
        let key = |c: char| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(action_for(&key('s')), Some(Action::Sync));
        assert_eq!(action_for(&key('r')), Some(Action::RestackSubtree));
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT)),
            Some(Action::RestackRepo)
        );
        assert_eq!(action_for(&key('b')), Some(Action::Rebase));
        assert_eq!(action_for(&key('p')), Some(Action::Reparent));
        assert_eq!(action_for(&key('t')), Some(Action::CreateTask));
        assert_eq!(action_for(&key('c')), Some(Action::Cancel));
        assert_eq!(action_for(&key('q')), Some(Action::Quit));
        assert_eq!(action_for(&key('?')), Some(Action::Help));
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
    }

    #[test]
    fn the_help_names_every_action_that_is_not_a_variant_of_another() {
        // Down, PageDown, Bottom and PrevPane share a row with their counterpart.
        for action in [
            Action::Quit,
            Action::Help,
            Action::Up,
            Action::PageUp,
            Action::Top,
            Action::NextPane,
            Action::Sync,
            Action::RestackSubtree,
            Action::RestackRepo,
            Action::Rebase,
            Action::Reparent,
            Action::CreateTask,
            Action::Cancel,
            Action::Open,
        ] {
            assert!(HELP.iter().any(|(_, _, a)| *a == action), "{action:?}");
        }
    }
}
