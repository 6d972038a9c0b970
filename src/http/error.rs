//! The JSON errors of the HTTP API: `{"error_code": "...", "error_msg": "..."}` with its status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use tracing::warn;

use super::AuthError;

/// Error codes of the federation routes.
pub mod codes {
    pub const INVALID_FLEET_ID: &str = "FED.4000001";
    pub const INVALID_QUERY: &str = "FED.4000002";
    pub const UNAUTHORIZED: &str = "FED.4010001";
    pub const NOT_FOUND: &str = "FED.4040001";
    pub const NO_SUCH_ROUTE: &str = "FED.4040002";
    /// The caller holds `--http-max-streams-per-user` live streams already.
    pub const TOO_MANY_STREAMS: &str = "FED.4290001";
    /// This address asked for more token reviews than `--token-reviews-per-second` allows.
    pub const TOO_MANY_REVIEWS: &str = "FED.4290002";
    pub const INTERNAL: &str = "FED.5000001";
}

/// `{"error_code": "...", "error_msg": "..."}` with its status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error_code: &'a str,
    error_msg: &'a str,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(super) fn not_found(fleet: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no federation for cluster group {fleet:?}"),
        )
    }

    pub(super) fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::INVALID_QUERY, message)
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::MissingToken | AuthError::InvalidToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                error.to_string(),
            ),
            AuthError::TooManyReviews { retry_after } => ApiError {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::TOO_MANY_REVIEWS,
                    error.to_string(),
                )
            },
            AuthError::TooManyStreams { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_STREAMS,
                error.to_string(),
            ),
            AuthError::Api(source) => {
                warn!(error = %source, "access review failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL,
                    "could not review the caller's access; try again",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(
            self.status,
            &ErrorBody {
                error_code: self.code,
                error_msg: &self.message,
            },
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `body`, JSON already, with its status.
pub(super) fn json_bytes_response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

pub(super) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_bytes_response(status, bytes),
        Err(error) => {
            warn!(%error, "could not serialize a response");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                r#"{"error_code":"FED.5000001","error_msg":"internal error"}"#,
            )
                .into_response()
        }
    }
}
