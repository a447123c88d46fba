//! The admin API's failures as HTTP: the receiver's `{"error":{"type","message"}}` shape,
//! `retry_after` on a 429, and the rate-limit headers on every answer that has a key's state.

use actix_web::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::limits::RateState;
use crate::api_key::Scope;

/// Every failure's body, as the OpenAPI document describes it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The failure.
    pub error: ErrorDetail,
}

/// One failure: a stable type, a sentence, and for a 429 the seconds to wait.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `authentication_required`, `invalid_api_key`, `insufficient_scope`, `not_allowed`,
    /// `rate_limit_exceeded`, `not_found`, `bad_request` or `storage_unavailable`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened, for a person.
    pub message: String,
    /// Seconds until a retry is let through (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminErrorKind {
    /// No `Authorization: Bearer` header.
    AuthenticationRequired,
    /// A key that is malformed, unknown, revoked or expired (one answer for all four).
    InvalidApiKey,
    /// The key lacks this scope.
    InsufficientScope(Scope),
    /// Too many requests; retry after this many seconds.
    RateLimited(u64),
    /// The key may not do this whatever its scopes (a test key making a live key, a key
    /// granting more than it holds).
    NotAllowed(String),
    /// Nothing here (or nothing this key may see).
    NotFound(String),
    /// A malformed query.
    BadRequest(String),
    /// The store cannot answer now.
    Storage,
}

/// A failure with the caller's rate-limit state, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    /// What went wrong.
    pub kind: AdminErrorKind,
    /// The key's (or the source's) limit state, sent as headers.
    pub rate: Option<RateState>,
}

impl AdminError {
    /// A failure without rate-limit state.
    #[must_use]
    pub fn new(kind: AdminErrorKind) -> Self {
        Self { kind, rate: None }
    }

    /// The same failure, answered with `rate`'s headers.
    #[must_use]
    pub fn with_rate(mut self, rate: RateState) -> Self {
        self.rate = Some(rate);
        self
    }

    /// The stable error type.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self.kind {
            AdminErrorKind::AuthenticationRequired => "authentication_required",
            AdminErrorKind::InvalidApiKey => "invalid_api_key",
            AdminErrorKind::InsufficientScope(_) => "insufficient_scope",
            AdminErrorKind::RateLimited(_) => "rate_limit_exceeded",
            AdminErrorKind::NotAllowed(_) => "not_allowed",
            AdminErrorKind::NotFound(_) => "not_found",
            AdminErrorKind::BadRequest(_) => "bad_request",
            AdminErrorKind::Storage => "storage_unavailable",
        }
    }
}

impl From<AdminErrorKind> for AdminError {
    fn from(kind: AdminErrorKind) -> Self {
        Self::new(kind)
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            AdminErrorKind::AuthenticationRequired => {
                f.write_str("send an API key: Authorization: Bearer phk_…")
            }
            AdminErrorKind::InvalidApiKey => {
                f.write_str("the API key is not valid (unknown, revoked or expired)")
            }
            AdminErrorKind::InsufficientScope(scope) => {
                write!(f, "this API key lacks the {} scope", scope.name())
            }
            AdminErrorKind::RateLimited(after) => {
                write!(f, "too many requests; retry in {after} s")
            }
            AdminErrorKind::NotFound(what)
            | AdminErrorKind::BadRequest(what)
            | AdminErrorKind::NotAllowed(what) => f.write_str(what),
            AdminErrorKind::Storage => f.write_str("the store cannot answer now; retry later"),
        }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self.kind {
            AdminErrorKind::AuthenticationRequired | AdminErrorKind::InvalidApiKey => {
                StatusCode::UNAUTHORIZED
            }
            AdminErrorKind::InsufficientScope(_) | AdminErrorKind::NotAllowed(_) => {
                StatusCode::FORBIDDEN
            }
            AdminErrorKind::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminErrorKind::NotFound(_) => StatusCode::NOT_FOUND,
            AdminErrorKind::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminErrorKind::Storage => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut error = json!({"type": self.code(), "message": self.to_string()});
        let mut response = HttpResponse::build(self.status_code());
        if let (AdminErrorKind::RateLimited(after), Some(fields)) =
            (&self.kind, error.as_object_mut())
        {
            fields.insert("retry_after".to_owned(), (*after).into());
            response.insert_header((RETRY_AFTER, after.to_string()));
        }
        if self.status_code() == StatusCode::UNAUTHORIZED {
            response.insert_header((WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(rate) = &self.rate {
            rate.write_headers(&mut response);
        }
        response.json(json!({ "error": error }))
    }
}

/// Any path the admin listener does not serve.
pub async fn not_found() -> HttpResponse {
    AdminError::new(AdminErrorKind::NotFound(
        "no admin route here; the routes are under /admin/v1/".to_owned(),
    ))
    .error_response()
}
