//! The HTTP surface of `CONTRACT.md`: thin handlers over [`App`](crate::app::App).

mod admin;
pub mod error;
pub mod extract;
mod hooks;
mod jobs;
mod repos;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::response::Response;
use axum::routing::{delete, get, post};

use crate::app::App;
use error::ApiError;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/v1/repos", post(repos::create).get(repos::list))
        .route("/v1/repos/{repo_id}", get(repos::get))
        .route("/v1/repos/{repo_id}/actions", post(jobs::accept))
        .route("/v1/repos/{repo_id}/jobs", get(jobs::list))
        .route("/v1/repos/{repo_id}/branches", get(repos::branches))
        .route("/v1/jobs/{job_id}", get(jobs::get))
        .route("/v1/jobs/{job_id}/cancel", post(jobs::cancel))
        .route("/v1/ws", get(crate::ws::upgrade))
        .route(
            "/v1/repos/{repo_id}/tasks",
            post(tasks::create).get(tasks::list),
        )
        .route("/v1/hooks/github", post(hooks::github))
        .route("/v1/orgs", post(admin::create_org).get(admin::list_orgs))
        .route(
            "/v1/tokens",
            post(admin::create_token).get(admin::list_tokens),
        )
        .route("/v1/tokens/{token_id}", delete(admin::revoke_token))
        .merge(crate::dashboard::routes())
        .fallback(|| async {
            ApiError::not_found("route_not_found", "no such endpoint; see CONTRACT.md")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// The policy of API answers: JSON that no browser should render, frame or cache.
pub const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Sets the security headers on every answer that has not set its own (the dashboard's pages
/// carry their own, less strict, policy).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let defaults = [
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (REFERRER_POLICY, "no-referrer"),
        (CONTENT_SECURITY_POLICY, API_CONTENT_SECURITY_POLICY),
        (CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
