//! The operator API, on a listener of its own: `/admin/v1/…` in JSON with the receiver's
//! error shape, behind bearer API keys with scopes and per-key rate limits. Each file here
//! holds one part: authentication, limits, errors, and one file per resource.

mod audit;
mod auth;
mod error;
mod events;
mod keys;
mod limits;
mod refused;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

pub use audit::AuditFilter;
pub use auth::Caller;
pub use error::{AdminError, AdminErrorKind};
pub use limits::{RateLimits, RateState};

use crate::clock::Clock;
use crate::outbox::Wakers;
use crate::reload::EndpointSlot;
use crate::store::Store;

/// What every admin handler reads.
#[derive(Debug)]
pub struct AdminState {
    /// Events, jobs and API keys.
    pub store: Arc<dyn Store>,
    /// The time (fixed in tests; also the rate limits' clock).
    pub clock: Arc<dyn Clock>,
    /// Per-key limits and the per-source limit on failed authentications.
    pub limits: RateLimits,
    /// The endpoints by name, as the receiver sees them (a reload shows here too): their
    /// modes decide what a test key sees; re-verification uses their verifiers.
    pub endpoints: HashMap<String, Arc<EndpointSlot>>,
    /// Wakes the outbox for events accepted on re-verification.
    pub wakers: Wakers,
    /// How long an event is kept.
    pub retention: Duration,
}

/// The routes under `/admin/v1/`.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/admin/v1")
            .route("/events", web::get().to(events::list))
            .route("/events/{endpoint}/{id}", web::get().to(events::show))
            .route("/keys", web::get().to(keys::list))
            .route("/audit", web::get().to(audit::list))
            .route("/refused", web::get().to(refused::list))
            .route("/refused/reverify", web::post().to(refused::reverify))
            .route("/refused/{id}", web::get().to(refused::show))
            .route(
                "/refused/{id}/request",
                web::get().to(refused::request_file),
            )
            .default_service(web::to(error::not_found)),
    );
}

/// Any other path on the admin listener.
pub use error::not_found;
