//! Badges and styles: every state has a symbol and a word as well as a colour, so the screen
//! reads the same on a terminal without colour (or to someone who cannot tell red from green).

use gantry_types::{BranchSyncStatus, JobKind, JobStatus, TaskStatus};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

use crate::net::ConnectionStatus;

/// A state as shown on screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Badge {
    pub symbol: &'static str,
    pub label: &'static str,
    pub color: Color,
}

impl Badge {
    /// `"{symbol} {label}"` in its colour.
    pub fn span(self) -> Span<'static> {
        Span::styled(
            format!("{} {}", self.symbol, self.label),
            Style::new().fg(self.color),
        )
    }

    /// The symbol alone, in its colour.
    pub fn symbol_span(self) -> Span<'static> {
        Span::styled(self.symbol, Style::new().fg(self.color))
    }
}

pub fn job_status(status: JobStatus) -> Badge {
    let (symbol, label, color) = match status {
        JobStatus::Queued => ("○", "queued", Color::Yellow),
        JobStatus::Running => ("●", "running", Color::Cyan),
        JobStatus::Completed => ("✓", "completed", Color::Green),
        JobStatus::Error => ("✗", "error", Color::Red),
        JobStatus::Cancelled => ("⊘", "cancelled", Color::Magenta),
    };
    Badge {
        symbol,
        label,
        color,
    }
}

pub fn task_status(status: TaskStatus) -> Badge {
    let (symbol, label, color) = match status {
        TaskStatus::PendingBranchAttach => ("○", "attaching", Color::Yellow),
        TaskStatus::Ready => ("✓", "ready", Color::Green),
        TaskStatus::AttachFailed => ("✗", "attach failed", Color::Red),
    };
    Badge {
        symbol,
        label,
        color,
    }
}

pub fn repo_sync(status: BranchSyncStatus) -> Badge {
    let (symbol, label, color) = match status {
        BranchSyncStatus::Pending => ("○", "pending", Color::Yellow),
        BranchSyncStatus::Syncing => ("●", "syncing", Color::Cyan),
        BranchSyncStatus::Synced => ("✓", "synced", Color::Green),
        BranchSyncStatus::Error => ("✗", "sync error", Color::Red),
    };
    Badge {
        symbol,
        label,
        color,
    }
}

pub fn connection(status: &ConnectionStatus) -> Badge {
    let (symbol, label, color) = match status {
        ConnectionStatus::Connecting => ("◌", "connecting", Color::Yellow),
        ConnectionStatus::Live { .. } => ("●", "live", Color::Green),
        ConnectionStatus::Reconnecting { .. } => ("◌", "reconnecting", Color::Yellow),
        ConnectionStatus::Offline { .. } => ("✗", "offline", Color::Red),
    };
    Badge {
        symbol,
        label,
        color,
    }
}

/// A branch that must be restacked onto its parent.
pub const NEEDS_RESTACK: Badge = Badge {
    symbol: "↻",
    label: "restack",
    color: Color::Yellow,
};

/// A branch that conflicts with the trunk (or whose last restack stopped on a conflict).
pub const CONFLICT: Badge = Badge {
    symbol: "!",
    label: "conflict",
    color: Color::Red,
};

/// A branch gantry does not manage as part of a stack.
pub const UNTRACKED: Badge = Badge {
    symbol: "?",
    label: "untracked",
    color: Color::DarkGray,
};

/// A short name for a job kind, for narrow columns.
pub fn kind_label(kind: JobKind) -> &'static str {
    match kind {
        JobKind::SyncRepo => "sync",
        JobKind::RestackRepo => "restack repo",
        JobKind::RestackSubtree => "restack subtree",
        JobKind::RebaseBranch => "rebase",
        JobKind::ReparentBranch => "reparent",
        JobKind::RegisterExistingBranch => "register",
    }
}

/// The marker in front of the selected row.
pub const SELECTED: &str = "▸ ";
pub const UNSELECTED: &str = "  ";

/// The style of the selected row: reversed in the focused pane, bold elsewhere.
pub fn selected(focused: bool) -> Style {
    if focused {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}

/// A pane's border: bright when it has focus.
pub fn border(focused: bool) -> Style {
    if focused {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new().fg(Color::DarkGray)
    }
}

pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}
