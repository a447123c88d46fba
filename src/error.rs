//! The one place where request failures become HTTP statuses and JSON bodies:
//! `{"error":{"type":"<stable code>","message":"<one human sentence>"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::event::{EventError, Mode};
use crate::signature::VerifyError;

/// Why a delivery was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is larger than the limit.
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive within the total read deadline.
    #[error("the body did not arrive within {0} ms")]
    BodyTimeout(u128),
    /// The connection failed while the body was read.
    #[error("the body could not be read")]
    BodyRead,
    /// The signature or timestamp did not verify.
    #[error("{0}")]
    Verify(#[from] VerifyError),
    /// The verified body is not an event.
    #[error("{0}")]
    Event(#[from] EventError),
    /// `livemode` contradicts the endpoint's mode.
    #[error("a {event} event was sent to a {endpoint} endpoint")]
    ModeMismatch {
        /// The event's mode.
        event: Mode,
        /// The endpoint's mode.
        endpoint: Mode,
    },
    /// The bodies already in flight fill the memory budget; the sender should retry.
    #[error("the receiver is at its limit of body bytes in flight; retry later")]
    Overloaded,
    /// The store could not record the event durably; the sender should retry.
    #[error("the event could not be stored; retry later")]
    Storage,
    /// The source address is not in the endpoint's allowlist (`None`: the forwarding
    /// headers named an address that cannot be read).
    #[error("{}", describe_source(*.0))]
    IpNotAllowed(Option<std::net::IpAddr>),
    /// No endpoint at this path.
    #[error("no webhook endpoint at this path")]
    NotFound,
    /// Endpoints accept POST only.
    #[error("webhook endpoints accept POST only")]
    MethodNotAllowed,
}

impl ApiError {
    /// The stable error type (also the metrics outcome label).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::BodyTimeout(_) => "body_timeout",
            Self::BodyRead => "body_read_failed",
            Self::Verify(error) => error.code(),
            Self::Event(_) => "invalid_event",
            Self::ModeMismatch { .. } => "mode_mismatch",
            Self::Overloaded => "overloaded",
            Self::IpNotAllowed(_) => "ip_not_allowed",
            Self::Storage => "storage_unavailable",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead | Self::Event(_) => StatusCode::BAD_REQUEST,
            Self::Verify(error) if error.is_malformed() => StatusCode::BAD_REQUEST,
            Self::Verify(_) | Self::ModeMismatch { .. } => StatusCode::UNAUTHORIZED,
            Self::Storage | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::IpNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        // The rest of an oversized or dripped body is not read: close the connection
        // rather than leave unread bytes in front of the next request.
        // Refusals decided before the body is read (a missing or malformed signature header
        // among them) close the connection too.
        let body_unread = matches!(self, Self::Verify(error) if error.is_malformed());
        if body_unread
            || matches!(
                self,
                Self::PayloadTooLarge(_)
                    | Self::BodyTimeout(_)
                    | Self::BodyRead
                    | Self::Overloaded
                    | Self::IpNotAllowed(_)
            )
        {
            response.force_close();
        }
        if matches!(self, Self::Overloaded) {
            response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
        }
        response.json(json!({"error": {"type": self.code(), "message": self.to_string()}}))
    }
}

/// The message of [`ApiError::IpNotAllowed`]: the address is the requester's own.
fn describe_source(source: Option<std::net::IpAddr>) -> String {
    match source {
        Some(address) => format!("requests from {address} are not allowed at this endpoint"),
        None => "the forwarding headers name a source that cannot be read; it is not allowed at this endpoint".to_owned(),
    }
}
