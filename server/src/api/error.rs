//! The one error type every endpoint answers with: a status and `{"error": {"code", "message"}}`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gantry_types::rest::{ErrorBody, ErrorInfo};
use tracing::error;

use crate::storage::StorageError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header (in whole seconds, at least 1).
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// 413: the body is over the configured limit.
    pub fn body_too_large(limit: Option<usize>) -> ApiError {
        let limit = limit.map_or_else(String::new, |l| format!(" of {l} bytes"));
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the request body is larger than this server's limit{limit} (--max-body-bytes)"
            ),
        )
    }

    /// 422: the request is well-formed but asks for something invalid.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> ApiError {
        match &err {
            StorageError::NotFound(what) => {
                ApiError::not_found("not_found", format!("{what} not found"))
            }
            StorageError::AlreadyExists(what) => {
                ApiError::conflict("already_exists", format!("{what} already exists"))
            }
            StorageError::JobFinished(id) => ApiError::conflict(
                "job_finished",
                format!("job {id} has already finished and cannot be cancelled"),
            ),
            StorageError::IdempotencyMismatch(id) => ApiError::invalid(
                "idempotency_key_reused",
                format!("this Idempotency-Key was already used for a different action (job {id})"),
            ),
            _ if err.is_unavailable() => {
                error!(error = %err, "storage unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the database is unavailable, busy or full; nothing was written, try again",
                )
                .retry_after(1)
            }
            _ => {
                error!(error = %err, "storage error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; nothing was written",
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send a JSON body with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(e) => ApiError::invalid(
                "invalid_json",
                format!("the body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => ApiError::invalid(
                "invalid_body",
                format!("the body does not fit: {}", e.body_text()),
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::body_too_large(None)
            }
            other => ApiError::new(other.status(), "invalid_body", other.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInfo {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
