//! `/v1/repos/{id}/tasks`: tasks on branches, created without waiting for git.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gantry_types::rest::{CreateTaskRequest, TaskResponse, TasksResponse};

use super::error::ApiResult;
use super::extract::{ApiJson, Writer};
use crate::app::App;
use crate::auth::Principal;

pub async fn create(
    State(app): State<Arc<App>>,
    Writer(principal): Writer,
    Path(repo_id): Path<String>,
    ApiJson(req): ApiJson<CreateTaskRequest>,
) -> ApiResult<(StatusCode, Json<TaskResponse>)> {
    let task = app.create_task(&principal, &repo_id, req).await?;
    Ok((StatusCode::CREATED, Json(TaskResponse { task })))
}

pub async fn list(
    State(app): State<Arc<App>>,
    principal: Principal,
    Path(repo_id): Path<String>,
) -> ApiResult<Json<TasksResponse>> {
    let repo = app.repo(&principal, &repo_id).await?;
    Ok(Json(TasksResponse {
        tasks: app.store.list_tasks(&repo.id).await?,
    }))
}
