//! `/v1/repos`: register, list and read repos and their cached branches.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gantry_types::rest::{
    BranchesResponse, CreateRepoRequest, CreateRepoResponse, RepoResponse, ReposResponse,
};

use super::error::ApiResult;
use super::extract::{ApiJson, Writer};
use crate::app::App;
use crate::auth::Principal;

pub async fn create(
    State(app): State<Arc<App>>,
    Writer(principal): Writer,
    ApiJson(req): ApiJson<CreateRepoRequest>,
) -> ApiResult<(StatusCode, Json<CreateRepoResponse>)> {
    let (repo, job) = app.create_repo(&principal, req).await?;
    Ok((StatusCode::CREATED, Json(CreateRepoResponse { repo, job })))
}

pub async fn list(
    State(app): State<Arc<App>>,
    principal: Principal,
) -> ApiResult<Json<ReposResponse>> {
    Ok(Json(ReposResponse {
        repos: app.store.list_repos(&principal.org_id).await?,
    }))
}

pub async fn get(
    State(app): State<Arc<App>>,
    principal: Principal,
    Path(repo_id): Path<String>,
) -> ApiResult<Json<RepoResponse>> {
    Ok(Json(RepoResponse {
        repo: app.repo(&principal, &repo_id).await?,
    }))
}

pub async fn branches(
    State(app): State<Arc<App>>,
    principal: Principal,
    Path(repo_id): Path<String>,
) -> ApiResult<Json<BranchesResponse>> {
    let repo = app.repo(&principal, &repo_id).await?;
    Ok(Json(BranchesResponse {
        branches: app.store.list_branches(&repo.id).await?,
    }))
}
