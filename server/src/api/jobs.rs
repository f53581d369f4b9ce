//! Actions (which become jobs), and reading and cancelling jobs.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use gantry_types::rest::{ActionRequest, JobResponse, JobsResponse};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Writer};
use crate::app::App;
use crate::auth::Principal;

/// `POST /v1/repos/{id}/actions`: 202 with the queued job (or the one already standing for the
/// same request).
pub async fn accept(
    State(app): State<Arc<App>>,
    Writer(principal): Writer,
    Path(repo_id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ActionRequest>,
) -> ApiResult<(StatusCode, Json<JobResponse>)> {
    let idempotency_key = match headers.get("idempotency-key") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    ApiError::invalid(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be visible ASCII",
                    )
                })?
                .to_owned(),
        ),
        None => None,
    };
    let enqueued = app
        .accept_action(&principal, &repo_id, &req, idempotency_key)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(JobResponse {
            job: enqueued.into_job(),
        }),
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
}

pub async fn list(
    State(app): State<Arc<App>>,
    principal: Principal,
    Path(repo_id): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<JobsResponse>> {
    let Query(query) = query.map_err(|e| ApiError::invalid("invalid_query", e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_query",
            "limit must be between 1 and 1000",
        ));
    }
    let repo = app.repo(&principal, &repo_id).await?;
    Ok(Json(JobsResponse {
        jobs: app.store.list_jobs(&repo.id, limit).await?,
    }))
}

pub async fn get(
    State(app): State<Arc<App>>,
    principal: Principal,
    Path(job_id): Path<String>,
) -> ApiResult<Json<JobResponse>> {
    Ok(Json(JobResponse {
        job: app.job(&principal, &job_id).await?,
    }))
}

pub async fn cancel(
    State(app): State<Arc<App>>,
    Writer(principal): Writer,
    Path(job_id): Path<String>,
) -> ApiResult<(StatusCode, Json<JobResponse>)> {
    let job = app.cancel_job(&principal, &job_id).await?;
    Ok((StatusCode::ACCEPTED, Json(JobResponse { job })))
}
