//! `GET /v1/ws`: the WebSocket endpoint. Authentication happens at the upgrade (a bad token never
//! gets a socket); authorisation happens per topic at subscribe.

mod connection;
pub use connection::{DecodeError, decode};
pub mod registry;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;

use crate::api::error::ApiError;
use crate::api::extract::bearer_token;
use crate::app::App;

/// Timings and bounds of WebSocket connections.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// How often the server pings an idle peer.
    pub ping_interval: Duration,
    /// A peer silent for this long (no frame, no pong) is closed as unresponsive.
    pub idle_timeout: Duration,
    /// The largest frame or message a client may send.
    pub max_message_bytes: usize,
    /// Open connections per token (0: no limit); an upgrade beyond is refused with 429.
    pub max_connections_per_token: usize,
    /// Browser origins (`scheme://host[:port]`) that may open a socket. Empty: only the server's
    /// own origin (the `Host` the request was sent to). Requests without `Origin` (not from a
    /// browser) are always allowed: they carry their token explicitly.
    pub allowed_origins: Vec<String>,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            max_message_bytes: 64 * 1024,
            // Embedders and benchmarks open many sockets with one token; `gantry serve`
            // defaults to 64 (`--ws-max-connections-per-token`).
            max_connections_per_token: 0,
            allowed_origins: Vec::new(),
        }
    }
}

pub async fn upgrade(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if let Some(origin) = headers.get(ORIGIN)
        && !origin_allowed(origin, headers.get(HOST), &app.config.ws.allowed_origins)
    {
        let shown: String = String::from_utf8_lossy(origin.as_bytes())
            .chars()
            .take(200)
            .collect();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "WebSocket connections from origin {shown:?} are not allowed (see --allowed-origins)"
            ),
        ));
    }
    let token = bearer_token(&headers, uri.query()).ok_or_else(ApiError::unauthorized)?;
    let principal = app
        .authenticate(&token)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let per_token = app.config.ws.max_connections_per_token;
    let Some(slot) = app.connections.reserve(&principal.token_id, per_token) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            format!(
                "this token already has {per_token} open WebSocket connections (see --ws-max-connections-per-token)"
            ),
        )
        .retry_after(1));
    };
    let limit = app.config.ws.max_message_bytes;
    Ok(ws
        .read_buffer_size(4096)
        .write_buffer_size(8192)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            connection::serve(app, principal, socket).await;
            drop(slot);
        }))
}

/// Whether a browser at `origin` may open a socket: one of `allowed`, or, when none are
/// configured, the origin the request was addressed to (`Host`). Opaque (`null`) origins never.
pub fn origin_allowed(
    origin: &HeaderValue,
    host: Option<&HeaderValue>,
    allowed: &[String],
) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    if !allowed.is_empty() {
        return allowed
            .iter()
            .any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin));
    }
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let strip = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        a.strip_suffix(default_port)
            .map_or(a.clone(), str::to_owned)
    };
    !authority.is_empty() && strip(authority) == strip(host.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(origin: &str, host: &str, list: &[&str]) -> bool {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        origin_allowed(
            &HeaderValue::from_str(origin).unwrap(),
            Some(&HeaderValue::from_str(host).unwrap()),
            &list,
        )
    }

    #[test]
    fn only_the_own_or_configured_origins_may_connect() {
        assert!(allowed("http://127.0.0.1:7420", "127.0.0.1:7420", &[]));
        assert!(allowed("http://Example.com", "example.com:80", &[]));
        assert!(allowed("https://example.com", "example.com", &[]));
        assert!(!allowed("http://evil.example", "127.0.0.1:7420", &[]));
        assert!(!allowed("http://127.0.0.1:9999", "127.0.0.1:7420", &[]));
        assert!(!allowed("null", "127.0.0.1:7420", &[]));
        assert!(!allowed("file://", "127.0.0.1:7420", &[]));
        let list = ["https://dash.example.com"];
        assert!(allowed("https://dash.example.com", "127.0.0.1:7420", &list));
        assert!(!allowed("http://127.0.0.1:7420", "127.0.0.1:7420", &list));
    }
}
