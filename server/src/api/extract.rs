//! Extractors that turn request parts into typed values, answering with [`ApiError`] otherwise.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::App;
use crate::auth::Principal;

/// `axum::Json`, but rejections become our error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// The bearer token of a request, from `Authorization: Bearer`, or (for WebSocket upgrades from
/// browsers, which cannot set headers) the `access_token` query parameter when `query` is given.
pub fn bearer_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut words = value.splitn(2, ' ');
        let scheme = words.next().unwrap_or_default();
        let token = words.next().unwrap_or_default().trim();
        if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
            return Some(token.to_owned());
        }
        return None;
    }
    query?
        .split('&')
        .filter_map(|pair| pair.strip_prefix("access_token="))
        .find(|token| !token.is_empty())
        .map(str::to_owned)
}

impl FromRequestParts<Arc<App>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers, None).ok_or_else(ApiError::unauthorized)?;
        app.authenticate(&token)
            .await?
            .ok_or_else(ApiError::unauthorized)
    }
}

/// A principal that may change things (scope `write` or `admin`).
pub struct Writer(pub Principal);

impl FromRequestParts<Arc<App>> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, app).await?;
        if principal.can_write() {
            Ok(Writer(principal))
        } else {
            Err(ApiError::forbidden(
                "this token has read scope; this request needs write scope",
            ))
        }
    }
}
