//! HTTP error answers, shaped like the protocol's `error` message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An HTTP error with a status and a precise message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl ToString) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.to_string() }
    }

    /// 403: the request's origin may not connect.
    pub fn forbidden(message: impl ToString) -> Self {
        ApiError { status: StatusCode::FORBIDDEN, message: message.to_string() }
    }

    /// 404: no such thing (e.g. a room the inspector asks about does not exist).
    pub fn not_found(message: impl ToString) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, message: message.to_string() }
    }

    /// 408: the client did not send its request in time.
    pub fn request_timeout(message: impl ToString) -> Self {
        ApiError { status: StatusCode::REQUEST_TIMEOUT, message: message.to_string() }
    }

    /// 413: the body is over `--max-message-bytes`.
    pub fn payload_too_large(message: impl ToString) -> Self {
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, message: message.to_string() }
    }

    /// 429: this client's own rate (e.g. of new rooms) is exceeded; others are not affected.
    pub fn too_many_requests(message: impl ToString) -> Self {
        ApiError { status: StatusCode::TOO_MANY_REQUESTS, message: message.to_string() }
    }

    /// 503: a server-wide capacity limit (e.g. the number of rooms) is reached.
    pub fn unavailable(message: impl ToString) -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: message.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "type": "error", "message": self.message }))).into_response()
    }
}
