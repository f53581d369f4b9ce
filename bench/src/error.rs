//! The bench's typed errors. Scenario code returns [`BenchError`]; only `main` turns it into an
//! exit status.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the server child failed: {0}")]
    Child(String),
    #[error("http request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{program} failed: {detail}")]
    Command { program: String, detail: String },
    #[error("{0} is missing; this scenario needs the shared/ folder beside the repo (--shared)")]
    MissingShared(PathBuf),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("chart: {0}")]
    Chart(String),
    #[error("the server: {0}")]
    Serve(#[from] gantry_server::server::ServeError),
}

impl BenchError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}

pub type BenchResult<T> = Result<T, BenchError>;
