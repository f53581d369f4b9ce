//! The HTTP surface of `CONTRACT.md`: thin handlers over [`App`](crate::app::App).

pub mod error;
pub mod extract;
mod hooks;
mod jobs;
mod repos;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

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
        .with_state(app)
}
