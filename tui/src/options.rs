//! What `gantry tui` needs to know to start: where the server is and how to prove who we are.
//!
//! Kept apart from the CLI so that the binary, tests and other embedders build it the same way.

use crate::error::TuiError;

/// Options of [`run`](crate::run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TuiOptions {
    /// The server's base URL, e.g. `http://127.0.0.1:7420`.
    pub server: String,
    /// The bearer token for REST and WebSocket.
    pub token: String,
}

impl TuiOptions {
    pub fn new(server: impl Into<String>, token: impl Into<String>) -> TuiOptions {
        TuiOptions {
            server: server.into(),
            token: token.into(),
        }
    }

    /// The base URL without a trailing slash.
    pub fn base_url(&self) -> String {
        self.server.trim_end_matches('/').to_owned()
    }

    /// The WebSocket endpoint: `http` becomes `ws`, `https` becomes `wss`.
    pub fn ws_url(&self) -> Result<String, TuiError> {
        let base = self.base_url();
        let rest = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            return Err(TuiError::Options(format!(
                "server URL {:?} must start with http:// or https://",
                self.server
            )));
        };
        Ok(format!("{rest}/v1/ws"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_follows_the_http_scheme() {
        let opts = TuiOptions::new("http://127.0.0.1:7420/", "t");
        assert_eq!(
            opts.ws_url().ok().as_deref(),
            Some("ws://127.0.0.1:7420/v1/ws")
        );
        let opts = TuiOptions::new("https://gantry.example", "t");
        assert_eq!(
            opts.ws_url().ok().as_deref(),
            Some("wss://gantry.example/v1/ws")
        );
        assert!(TuiOptions::new("127.0.0.1:7420", "t").ws_url().is_err());
    }
}
