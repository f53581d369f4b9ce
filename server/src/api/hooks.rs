//! `POST /v1/hooks/github`: push notifications that queue a sync. Authenticated by the
//! repo's webhook secret (HMAC of the body), not by a bearer token.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use gantry_types::rest::WebhookResponse;

use super::error::{ApiError, ApiResult};
use crate::app::App;

pub async fn github(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<WebhookResponse>)> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::body_too_large(Some(app.config.max_body_bytes))
        } else {
            ApiError::new(rejection.status(), "invalid_body", rejection.body_text())
        }
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let answer = app
        .github_webhook(
            header("x-github-event"),
            header("x-hub-signature-256"),
            &body,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
