//! The outbox: `GET /admin/v1/outbox?status=pending|dead` lists notification jobs
//! (`events:read`); `POST /admin/v1/outbox/{endpoint}/{id}/{notifier}/retry` queues a dead
//! or delivered one again, due now (`events:write`).

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::{AdminError, AdminErrorKind, ErrorBody};
use super::{AdminState, Caller};
use crate::api_key::Scope;
use crate::audit::ActionKind;
use crate::notify::rfc3339;
use crate::store::JobStatus;

/// Jobs an answer holds at most.
const MAX_JOBS: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    notifier: Option<String>,
    limit: Option<usize>,
}

/// `GET /admin/v1/outbox?status=pending|dead&notifier=&limit=`.
#[utoipa::path(
    tag = "outbox",
    params(
        ("status" = Option<String>, Query, description = "pending (default) or dead"),
        ("notifier" = Option<String>, Query, description = "only this notifier"),
        ("limit" = Option<usize>, Query, description = "at most this many (default 100, at most 1,000)"),
    ),
    responses(
        (status = 200, description = "{jobs:[{endpoint,event_id,notifier,status,attempts,last_error,due_at}]}"),
        (status = 400, description = "a malformed query", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["events:read"]))
)]
#[get("/outbox")]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::EventsRead).await?;
    let params: ListParams = caller.query(&request)?;
    let listed = list_jobs(
        &state,
        &caller,
        params.status.as_deref(),
        params.notifier.as_deref(),
        params.limit,
    )
    .await?;
    Ok(caller.json(&listed))
}

/// The jobs `GET /admin/v1/outbox` lists.
///
/// # Errors
/// 400 for a status other than pending or dead, 503 when the store fails.
pub async fn list_jobs(
    state: &AdminState,
    caller: &Caller,
    status: Option<&str>,
    notifier: Option<&str>,
    limit: Option<usize>,
) -> Result<serde_json::Value, AdminError> {
    let status = match status {
        None | Some("pending") => JobStatus::Pending,
        Some("dead") => JobStatus::Dead,
        Some(_) => {
            return Err(caller.fail(AdminErrorKind::BadRequest(
                "status must be pending or dead".to_owned(),
            )))
        }
    };
    let limit = limit.unwrap_or(100).clamp(1, MAX_JOBS);
    let jobs = state
        .store
        .jobs(status, notifier, MAX_JOBS)
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?;
    let jobs: Vec<serde_json::Value> = jobs
        .iter()
        .filter(|job| caller.sees(state, &job.endpoint))
        .take(limit)
        .map(|job| {
            json!({
                "endpoint": job.endpoint,
                "event_id": job.event_id,
                "notifier": job.notifier,
                "status": job.status,
                "attempts": job.attempts,
                "last_error": job.last_error,
                "due_at": rfc3339(job.due_ms / 1000),
                "digest": job.digest,
            })
        })
        .collect();
    Ok(json!({ "jobs": jobs }))
}

/// `POST /admin/v1/outbox/{endpoint}/{id}/{notifier}/retry`.
#[utoipa::path(
    tag = "outbox",
    params(
        ("endpoint" = String, Path, description = "the endpoint's name"),
        ("id" = String, Path, description = "the event id"),
        ("notifier" = String, Path, description = "the notifier's name"),
    ),
    responses(
        (status = 200, description = "{queued: 0 or 1} (0: the job is already pending)"),
        (status = 400, description = "an unknown notifier", body = ErrorBody),
        (status = 404, description = "no such event for this key", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["events:write"]))
)]
#[post("/outbox/{endpoint}/{id}/{notifier}/retry")]
pub async fn retry(
    request: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::EventsWrite).await?;
    let (endpoint, id, notifier) = path.into_inner();
    Ok(caller.json(&retry_job(&state, &caller, &endpoint, &id, notifier).await?))
}

/// Queues one job again, due now, as `POST …/retry` does, audited.
///
/// # Errors
/// 400 for a notifier the endpoint does not route to, 404 for an event the key does not
/// see, 503 when the store fails.
pub async fn retry_job(
    state: &AdminState,
    caller: &Caller,
    endpoint: &str,
    id: &str,
    notifier: String,
) -> Result<serde_json::Value, AdminError> {
    let missing = || {
        caller.fail(AdminErrorKind::NotFound(format!(
            "no event {id:?} at endpoint {endpoint:?}"
        )))
    };
    let routed = match state.endpoints.get(endpoint) {
        Some(slot) if caller.sees(state, endpoint) => slot.current().routes_to(&notifier),
        _ => return Err(missing()),
    };
    // Only a notifier this endpoint routes to: no job the config never asked for.
    if !routed || !state.wakers.knows(&notifier) {
        return Err(caller.fail(AdminErrorKind::BadRequest(format!(
            "endpoint {endpoint:?} has no notifier named {notifier:?}"
        ))));
    }
    let notifiers = [notifier];
    let queued = state
        .store
        .requeue(endpoint, id, &notifiers, state.clock.now_ms())
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?
        .ok_or_else(missing)?;
    state.wakers.wake(&notifiers);
    state
        .audit_by(
            caller,
            "outbox.retry",
            ActionKind::Update,
            &format!("{endpoint}/{id}/{}", notifiers[0]),
            &format!("ok: {queued} queued"),
        )
        .await;
    Ok(json!({ "queued": queued }))
}
