//! The operator API, on a listener of its own: `/admin/v1/…` in JSON with the receiver's
//! error shape, behind bearer API keys with scopes and per-key rate limits. Each file here
//! holds one part: authentication, limits, errors, and one file per resource.

mod audit;
mod auth;
mod budgets;
mod error;
mod events;
mod keys;
mod limits;
mod outbox;
mod overview;
mod refused;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{get, web};

pub use audit::{list_audit, verification, AuditFilter};
pub use auth::{source, Caller, Presented};
pub use budgets::{budgets, BudgetParams};
pub use error::{AdminError, AdminErrorKind};
pub use events::{event_detail, list_events, renotify_event, ListParams};
pub use keys::list_keys;
pub use limits::{RateLimits, RateState};
pub use outbox::{list_jobs, retry_job};
pub use overview::overview;
pub use refused::{export_refused, list_refused, reverify_refused};

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
    /// The receiver's metrics, which count admin requests per key too.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// When this process started, Unix seconds (the overview counts from then at most).
    pub started_at: u64,
}

impl AdminState {
    /// Where `endpoint`'s alerts keep their figures (the default for one no longer
    /// configured).
    #[must_use]
    pub fn fields_of(&self, endpoint: &str) -> Arc<crate::fields::FieldMap> {
        self.endpoints
            .get(endpoint)
            .map(|slot| Arc::clone(&slot.current().fields))
            .unwrap_or_default()
    }
}

/// The routes under `/admin/v1/`. Each handler carries its own OpenAPI description, so the
/// document served at `/admin/v1/openapi.json` lists exactly the routes registered here.
pub fn configure(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config.service(
        utoipa_actix_web::scope("/admin/v1")
            .service(events::list)
            .service(events::show)
            .service(events::renotify)
            .service(events::remove)
            .service(events::remove_matching)
            .service(overview::show)
            .service(budgets::list)
            .service(outbox::list)
            .service(outbox::retry)
            .service(keys::list)
            .service(keys::create)
            .service(keys::revoke)
            .service(keys::rotate)
            .service(audit::list)
            .service(audit::verify)
            .service(refused::list)
            .service(refused::reverify)
            .service(refused::show)
            .service(refused::request_file)
            .service(openapi_json)
            .default_service(web::to(error::not_found)),
    );
}

/// The document's fixed parts; the paths come from [`configure`].
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "perfhook operator API",
        description = "Events, refused deliveries, API keys and the audit log of a perfhook receiver. Every route but this document needs `Authorization: Bearer <key>` with the scope it names; every answer to a known key carries X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset."
    ),
    modifiers(&BearerKeys),
    components(schemas(error::ErrorBody, error::ErrorDetail, keys::CreateKey))
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The `api_key` security scheme: a bearer key.
struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("phk_live_… or phk_test_…")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, rendered once when the listener starts.
#[derive(Debug, Clone)]
pub struct OpenApiJson(pub String);

/// `GET /admin/v1/openapi.json`: the document (no key needed: it holds no data).
#[utoipa::path(tag = "meta", responses((status = 200, description = "this document")))]
#[get("/openapi.json")]
pub async fn openapi_json(document: web::Data<OpenApiJson>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// Any other path on the admin listener.
pub use error::not_found;
