//! The one error type of the HTTP API.
//!
//! Each error keeps the message for the caller apart from the detail for the server's
//! log: the response carries only the first, so internal errors never leak paths, SQL or
//! key material to a client. A client error (4xx) is a refusal: its response carries a
//! [`Refusal`], which the router's access-log layer (`http::guard`) writes to the
//! access log before the answer leaves.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vault_core::api::ErrorBody;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For the server log only.
    pub detail: Option<String>,
    /// Seconds the caller should wait before trying again (`Retry-After`).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    /// The caller is known but may not do this. Also used for "no such thing" where
    /// telling the two apart would reveal that an id exists.
    pub fn denied(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "access_denied",
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    /// The case's key changed since the recorder encrypted (409, `key_changed`): it
    /// encrypts to the new key and tries again.
    pub fn key_changed(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: "key_changed",
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    /// Something the server depends on (a witness) does not answer; try again later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    /// Too many requests from this caller: try again after `secs` seconds (429).
    pub fn too_fast(secs: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("too many requests from your address; try again in {secs} s"),
            detail: None,
            retry_after: Some(secs),
        }
    }

    /// Too many requests of a kind at once; the caller should try again shortly.
    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "busy",
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal server error; the server log has the details".into(),
            detail: Some(detail.to_string()),
            retry_after: None,
        }
    }

    /// The server's disk is full: nothing was stored, and the request can be tried again
    /// once its operator has freed space (507).
    pub fn storage_full(detail: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INSUFFICIENT_STORAGE,
            code: "storage_full",
            message:
                "the server's storage is full, so nothing was stored; try again later and tell the vault's operator"
                    .into(),
            detail: Some(detail.to_string()),
            retry_after: None,
        }
    }

    /// Stored data does not match what the database recorded for it: a fault of the
    /// server's storage, reported as such (without paths) so that someone restores it.
    pub fn damaged(message: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "damaged",
            message: message.into(),
            detail: Some(detail.to_string()),
            retry_after: None,
        }
    }

    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return Self::storage_full(format!("database: {e}"));
        }
        Self::internal(format!("database: {e}"))
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded {
            return Self::storage_full(format!("i/o: {e}"));
        }
        Self::internal(format!("i/o: {e}"))
    }
}

/// What the access log keeps of a refused request: what the caller was told, and the
/// detail behind it. Travels as an extension of the refusing response.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Why, in one word from a fixed set (an [`ApiError`] code, or one of
    /// [`code_for_status`]): the refusal metric's label and the refusal log line's reason.
    pub code: &'static str,
    pub message: String,
    pub why: Option<String>,
}

impl Refusal {
    /// The entry's `details`: `{"refusal": message, "why": detail or null}`, each capped
    /// at [`REFUSAL_TEXT_CAP`] bytes (a detail can quote what the caller sent).
    pub fn details(&self) -> String {
        let cap = |s: &str| crate::accesslog::cap(s, REFUSAL_TEXT_CAP).into_owned();
        serde_json::json!({ "refusal": cap(&self.message), "why": self.why.as_deref().map(cap) }).to_string()
    }
}

/// The code of a client error that no [`ApiError`] made (the router's own 404 and 405, a
/// layer's 408 or 413, hyper's 431): one of a fixed set, so that it can label a metric.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "access_denied",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        _ => "client_error",
    }
}

/// Longest message or detail a refused entry keeps.
pub const REFUSAL_TEXT_CAP: usize = 500;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, detail = self.detail.as_deref().unwrap_or(""), "request failed");
        } else if let Some(d) = &self.detail {
            // The access log is the record of refusals; this line is for debugging, and
            // capped, since a detail can quote what an unauthenticated caller sent.
            tracing::debug!(code = self.code, detail = %crate::accesslog::cap(d, REFUSAL_TEXT_CAP), "request refused");
        }
        let refusal = self.status.is_client_error().then(|| Refusal {
            code: self.code,
            message: self.message.clone(),
            why: self.detail.clone(),
        });
        let mut response =
            (self.status, Json(ErrorBody { error: self.code.into(), message: self.message })).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(r) = refusal {
            response.extensions_mut().insert(r);
        }
        response
    }
}
