//! `GET /v1/ws`: the WebSocket endpoint. Authentication happens at the upgrade (a bad token never
//! gets a socket); authorisation happens per topic at subscribe.

mod connection;
pub mod registry;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::Uri;
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
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            max_message_bytes: 64 * 1024,
        }
    }
}

pub async fn upgrade(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let token = bearer_token(&headers, uri.query()).ok_or_else(ApiError::unauthorized)?;
    let principal = app
        .authenticate(&token)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let limit = app.config.ws.max_message_bytes;
    Ok(ws
        .read_buffer_size(4096)
        .write_buffer_size(8192)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection::serve(app, principal, socket)))
}
