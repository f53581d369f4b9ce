//! Extractors that turn request parts into typed values, answering with [`ApiError`] otherwise.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::App;
use crate::auth::{Principal, Scope};

/// `axum::Json`, but rejections become our error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, app).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::body_too_large(Some(app.config.max_body_bytes)))
            }
            Err(rejection) => Err(rejection.into()),
        }
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
        if !principal.can_write() {
            return Err(ApiError::forbidden(
                "this token has read scope; this request needs write scope",
            ));
        }
        app.check_write_rate(&principal)?;
        Ok(Writer(principal))
    }
}

/// A principal that may manage organisations and tokens (scope `admin`).
pub struct Admin(pub Principal);

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, app).await?;
        if principal.scope == Scope::Admin {
            Ok(Admin(principal))
        } else {
            Err(ApiError::forbidden(format!(
                "this token has {} scope; managing organisations and tokens needs admin scope",
                principal.scope.as_str()
            )))
        }
    }
}
