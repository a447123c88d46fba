//! The operator API, on a listener of its own: `/admin/v1/…` in JSON with the receiver's
//! error shape, behind bearer API keys with scopes and per-key rate limits. Each file here
//! holds one part: authentication, limits, errors, and one file per resource.

mod auth;
mod error;
mod events;
mod keys;
mod limits;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::web;

pub use auth::Caller;
pub use error::{AdminError, AdminErrorKind};
pub use limits::{RateLimits, RateState};

use crate::clock::Clock;
use crate::event::Mode;
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
    /// Each endpoint's mode: a test key sees test-mode endpoints only.
    pub endpoint_modes: HashMap<String, Mode>,
}

impl AdminState {
    /// The state for `store` and `clock` over endpoints named with their modes.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        endpoint_modes: HashMap<String, Mode>,
    ) -> Self {
        Self {
            limits: RateLimits::new(Arc::clone(&clock)),
            store,
            clock,
            endpoint_modes,
        }
    }
}

/// The routes under `/admin/v1/`.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/admin/v1")
            .route("/events", web::get().to(events::list))
            .route("/events/{endpoint}/{id}", web::get().to(events::show))
            .route("/keys", web::get().to(keys::list))
            .default_service(web::to(error::not_found)),
    );
}

/// Any other path on the admin listener.
pub use error::not_found;
