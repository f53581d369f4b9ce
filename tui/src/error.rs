//! Typed errors of the TUI.
//!
//! Two families, kept apart because they are handled differently: [`TuiError`] ends the program
//! (the terminal could not be driven), while [`RestError`] is a failed request that the UI shows
//! on its status line and then carries on.

/// What can end `gantry tui`.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The terminal could not be set up, drawn on, read from or restored.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    /// The options cannot work (for example a server URL that is not http or https).
    #[error("invalid options: {0}")]
    Options(String),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(String),
}

/// A REST request that did not get the answer it wanted. Never fatal: the UI shows it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// No answer at all: the server is down or unreachable, or the request timed out.
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    /// The server answered with an error body (`{"error": {"code", "message"}}`).
    #[error("{message} ({status} {code})")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// The server answered something this client does not understand.
    #[error("unexpected answer ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
}

impl RestError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::Unreachable(_) => None,
            RestError::Server { status, .. } | RestError::Unexpected { status, .. } => {
                Some(*status)
            }
        }
    }
}
