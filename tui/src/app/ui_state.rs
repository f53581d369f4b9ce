//! What the user is looking at, apart from the data: which pane has focus, what is selected in
//! each, how far each list is scrolled, and which overlay is open.
//!
//! Selections are kept by identity (repo id, branch name, job id), never by index, so a job
//! arriving at the top of the list does not move the selection to another job.

/// The panes, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Repos,
    Stack,
    Jobs,
    Tasks,
}

impl Focus {
    const ORDER: [Focus; 4] = [Focus::Repos, Focus::Stack, Focus::Jobs, Focus::Tasks];

    pub fn next(self) -> Focus {
        let i = Self::ORDER.iter().position(|f| *f == self).unwrap_or(0);
        Self::ORDER[(i + 1) % Self::ORDER.len()]
    }

    pub fn prev(self) -> Focus {
        let i = Self::ORDER.iter().position(|f| *f == self).unwrap_or(0);
        Self::ORDER[(i + Self::ORDER.len() - 1) % Self::ORDER.len()]
    }
}

/// The reparent picker: only valid parents are offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picker {
    pub branch: String,
    pub current_parent: Option<String>,
    pub options: Vec<String>,
    pub selected: usize,
}

/// The task title prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub branch: String,
    pub text: String,
}

/// A window over the main screen that takes the keys while it is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Reparent(Picker),
    TaskTitle(Prompt),
    /// A job and its live progress lines. `scroll` is the first line shown, or `None` to follow
    /// the newest lines.
    JobDetail {
        job_id: String,
        scroll: Option<usize>,
    },
}

/// Scroll offsets of the lists; the renderer keeps the selection inside the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scroll {
    pub repos: usize,
    pub stack: usize,
    pub jobs: usize,
    pub tasks: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UiState {
    pub focus: Focus,
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub job: Option<String>,
    pub task: Option<String>,
    pub overlay: Option<Overlay>,
    pub scroll: Scroll,
    /// Rows of the jobs pane at the last draw, for page moves.
    pub page: usize,
}

impl Default for UiState {
    fn default() -> Self {
        UiState {
            focus: Focus::Stack,
            repo: None,
            branch: None,
            job: None,
            task: None,
            overlay: None,
            scroll: Scroll::default(),
            page: 10,
        }
    }
}

/// Keeps `selected` inside a window of `height` rows starting at `offset`, moving the window as
/// little as possible; returns the new offset.
pub fn follow(offset: usize, selected: Option<usize>, height: usize, len: usize) -> usize {
    let height = height.max(1);
    let max_offset = len.saturating_sub(height);
    let offset = offset.min(max_offset);
    match selected {
        Some(i) if i < offset => i,
        Some(i) if i >= offset + height => i + 1 - height,
        _ => offset,
    }
}

/// Moves an index by `delta` within `0..len`.
pub fn step(index: Option<usize>, delta: isize, len: usize) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let moved = match index {
        Some(index) => index.saturating_add_signed(delta),
        // Nothing selected yet: the first move lands on the first row, a bigger one (a page,
        // the end) counts from there.
        None => usize::try_from(delta.saturating_sub(1)).unwrap_or(0),
    };
    Some(moved.min(len - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_selection_minimally() {
        assert_eq!(follow(0, Some(5), 10, 100), 0);
        assert_eq!(follow(0, Some(12), 10, 100), 3);
        assert_eq!(follow(3, Some(2), 10, 100), 2);
        assert_eq!(follow(95, None, 10, 20), 10);
    }

    #[test]
    fn steps_stay_in_bounds() {
        assert_eq!(step(Some(0), -1, 5), Some(0));
        assert_eq!(step(Some(3), 10, 5), Some(4));
        assert_eq!(step(None, 1, 5), Some(0));
        assert_eq!(step(None, -1, 5), Some(0));
        assert_eq!(step(None, isize::MAX / 2, 5), Some(4));
        assert_eq!(step(Some(1), 1, 0), None);
    }

    #[test]
    fn focus_cycles() {
        assert_eq!(Focus::Tasks.next(), Focus::Repos);
        assert_eq!(Focus::Repos.prev(), Focus::Tasks);
    }
}
