//! `/v1/orgs` and `/v1/tokens`: organisations and their tokens, for admin tokens only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gantry_types::admin::{
    CreateOrgRequest, CreateTokenRequest, CreatedToken, OrgResponse, OrgsResponse, TokenResponse,
    TokensResponse,
};

use super::error::ApiResult;
use super::extract::{Admin, ApiJson};
use crate::app::App;

pub async fn create_org(
    State(app): State<Arc<App>>,
    Admin(_): Admin,
    ApiJson(req): ApiJson<CreateOrgRequest>,
) -> ApiResult<(StatusCode, Json<OrgResponse>)> {
    let org = app.create_org(&req.name).await?;
    Ok((StatusCode::CREATED, Json(OrgResponse { org })))
}

pub async fn list_orgs(
    State(app): State<Arc<App>>,
    Admin(_): Admin,
) -> ApiResult<Json<OrgsResponse>> {
    Ok(Json(OrgsResponse {
        orgs: app.store.list_orgs().await?,
    }))
}

pub async fn create_token(
    State(app): State<Arc<App>>,
    Admin(_): Admin,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let created = app.create_token(&req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_tokens(
    State(app): State<Arc<App>>,
    Admin(_): Admin,
) -> ApiResult<Json<TokensResponse>> {
    Ok(Json(TokensResponse {
        tokens: app.store.list_tokens().await?,
    }))
}

pub async fn revoke_token(
    State(app): State<Arc<App>>,
    Admin(_): Admin,
    Path(token_id): Path<String>,
) -> ApiResult<Json<TokenResponse>> {
    Ok(Json(TokenResponse {
        token: app.revoke_token(&token_id).await?,
    }))
}
