//! `GET /admin/v1/overview` (`events:read`): per endpoint, what it answered in the last
//! 24 hours, its outbox, when the sender last delivered and whether it has been silent
//! longer than `expect_delivery_within`.

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::{AdminError, AdminErrorKind, ErrorBody};
use super::{AdminState, Caller};
use crate::api_key::Scope;
use crate::notify::rfc3339;
use crate::store::JobStatus;

/// Jobs counted at most per status (the answer says when it stopped there).
const MAX_JOBS_COUNTED: usize = 10_000;

/// `GET /admin/v1/overview`.
#[utoipa::path(
    tag = "events",
    responses(
        (status = 200, description = "{generated_at, counted_since, endpoints:[{name, path, mode, last_24h:{accepted,duplicate,refused}, outbox_pending, dead_jobs, last_delivery_at, expect_delivery_within_secs, silent}], stored:{events,outbox,dead}}"),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["events:read"]))
)]
#[get("/overview")]
pub async fn show(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::EventsRead).await?;
    Ok(caller.json(&overview(&state, &caller).await?))
}

/// The overview `GET /admin/v1/overview` answers.
///
/// # Errors
/// 503 when the store fails.
pub async fn overview(
    state: &AdminState,
    caller: &Caller,
) -> Result<serde_json::Value, AdminError> {
    let storage = |_| caller.fail(AdminErrorKind::Storage);
    let now = state.clock.now();
    let pending = state
        .store
        .jobs(JobStatus::Pending, None, MAX_JOBS_COUNTED)
        .await
        .map_err(storage)?;
    let dead = state
        .store
        .jobs(JobStatus::Dead, None, MAX_JOBS_COUNTED)
        .await
        .map_err(storage)?;
    let mut names: Vec<&String> = state
        .endpoints
        .keys()
        .filter(|name| caller.sees(state, name))
        .collect();
    names.sort();
    let mut endpoints = Vec::with_capacity(names.len());
    for name in names {
        let Some(slot) = state.endpoints.get(name) else {
            continue;
        };
        let endpoint = slot.current();
        let (last_24h, _) = state.metrics.activity.last_day(name, now);
        // The newest stored event carries the last delivery across restarts.
        let last_delivery =
            crate::silence::last_delivery(state.store.as_ref(), &state.metrics.activity, name, now)
                .await
                .map_err(storage)?;
        let expected = endpoint.expect_delivery_within.map(|span| span.as_secs());
        let silent = expected
            .is_some_and(|span| last_delivery.is_none_or(|at| now.saturating_sub(at) > span));
        endpoints.push(json!({
            "name": name,
            "path": endpoint.path,
            "mode": endpoint.mode,
            "last_24h": last_24h,
            "outbox_pending": pending.iter().filter(|job| &job.endpoint == name).count(),
            "dead_jobs": dead.iter().filter(|job| &job.endpoint == name).count(),
            "last_delivery_at": last_delivery.map(rfc3339),
            "expect_delivery_within_secs": expected,
            "silent": silent,
        }));
    }
    Ok(json!({
        "generated_at": rfc3339(now),
        "counted_since": rfc3339(state.started_at.max(now.saturating_sub(24 * 3600))),
        "jobs_counted_up_to": MAX_JOBS_COUNTED,
        "endpoints": endpoints,
        // Store-wide counts include live data: not for a test key.
        "stored": (caller.key.mode == crate::event::Mode::Live).then(|| state.store.counts()),
    }))
}
