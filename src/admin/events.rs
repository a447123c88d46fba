//! Events: a filtered, paged listing, newest first, and one event with its body verbatim and
//! each notifier's delivery state (`events:read`); re-notify and delete (`events:write`).

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::{AdminError, AdminErrorKind, ErrorBody};
use super::{AdminState, Caller};
use crate::api_key::Scope;
use crate::audit::ActionKind;
use crate::event::Mode;
use crate::notify::rfc3339;
use crate::store::EventQuery;

/// Events a page holds unless `limit` says otherwise, and at most.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// Events read at most per listing request while looking for a project's or a mode's; a
/// page may come out shorter than `limit`, and `next_cursor` goes on from where it stopped.
const MAX_SCAN: usize = 5_000;

/// The listing's query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only this project (`data.project`'s id or name).
    pub project: Option<String>,
    /// Only `live` (livemode true) or `test` (livemode false) events.
    pub mode: Option<String>,
    /// Received at or after, Unix seconds.
    pub since: Option<u64>,
    /// Received before, Unix seconds.
    pub until: Option<u64>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<usize>,
}

/// `GET /admin/v1/events?endpoint=&type=&since=&until=&cursor=&limit=`.
#[utoipa::path(
    tag = "events",
    params(
        ("endpoint" = Option<String>, Query, description = "only this endpoint"),
        ("type" = Option<String>, Query, description = "only this event type"),
        ("since" = Option<u64>, Query, description = "received at or after, Unix seconds"),
        ("until" = Option<u64>, Query, description = "received before, Unix seconds"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<usize>, Query, description = "1 to 500, default 50"),
    ),
    responses(
        (status = 200, description = "events newest first: {events:[{endpoint,id,type,livemode,received_at}], next_cursor}"),
        (status = 400, description = "a malformed query", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["events:read"]))
)]
#[get("/events")]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::EventsRead).await?;
    let params: ListParams = caller.query(&request)?;
    Ok(caller.json(&list_events(&state, &caller, params).await?))
}

/// The listing behind `GET /admin/v1/events` (the inspector's timeline reads it too).
///
/// # Errors
/// 400 for a bad mode or cursor, 404 for an endpoint the key does not see, 503 when the
/// store fails.
pub async fn list_events(
    state: &AdminState,
    caller: &Caller,
    params: ListParams,
) -> Result<serde_json::Value, AdminError> {
    if let Some(endpoint) = &params.endpoint {
        if !caller.sees(state, endpoint) {
            return Err(caller.fail(AdminErrorKind::NotFound(format!(
                "no endpoint {endpoint:?} for this key"
            ))));
        }
    }
    let livemode = match params.mode.as_deref() {
        None | Some("") => None,
        Some("live") => Some(true),
        Some("test") => Some(false),
        Some(_) => {
            return Err(caller.fail(AdminErrorKind::BadRequest(
                "mode must be live or test".to_owned(),
            )))
        }
    };
    let project = params.project.filter(|project| !project.is_empty());
    let limit = params.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let storage = |error: crate::store::StoreError| {
        if error.kind() == crate::store::StoreErrorKind::BadRequest {
            caller.fail(AdminErrorKind::BadRequest(error.to_string()))
        } else {
            caller.fail(AdminErrorKind::Storage)
        }
    };
    let mut events = Vec::new();
    let mut cursor = params.cursor;
    let mut scanned = 0;
    let next_cursor = loop {
        let page = state
            .store
            .list(&EventQuery {
                endpoint: params.endpoint.clone(),
                kind: params.kind.clone(),
                since: params.since,
                until: params.until,
                cursor: cursor.take(),
                limit: if project.is_some() || livemode.is_some() {
                    SCAN_PAGE
                } else {
                    limit
                },
            })
            .await
            .map_err(storage)?;
        let mut stopped_at = None;
        for (index, summary) in page.events.iter().enumerate() {
            scanned += 1;
            // A test key's page holds only test-mode endpoints' events (it may come out shorter).
            if !caller.sees(state, &summary.endpoint)
                || livemode.is_some_and(|mode| summary.livemode != Some(mode))
            {
                continue;
            }
            let Some(detail) = state
                .store
                .event(&summary.endpoint, &summary.id)
                .await
                .map_err(storage)?
            else {
                continue;
            };
            let alert = crate::event::Alert::from_body_with(
                detail.record.body.as_bytes(),
                &state.fields_of(&summary.endpoint),
            );
            if let Some(project) = &project {
                let body = serde_json::from_str::<serde_json::Value>(&detail.record.body);
                // The endpoint's mapped project name, or `data.project`'s id or name.
                if alert.project.as_deref() != Some(project.as_str())
                    && !body.is_ok_and(|body| names(&body, "project", project))
                {
                    continue;
                }
            }
            events.push(json!({
                "endpoint": summary.endpoint,
                "id": summary.id,
                "type": summary.kind,
                "livemode": summary.livemode,
                "received_at": rfc3339(summary.received_at),
                "organization": alert.organization,
                "project": alert.project,
                "usage_percent": alert.usage_percent,
                "threshold_percent": alert.threshold_percent,
            }));
            if events.len() == limit {
                stopped_at = Some((summary, index + 1 == page.events.len()));
                break;
            }
        }
        match (stopped_at, page.next_cursor) {
            // The page filled with the store's last: the store knows whether more follow.
            (Some((_, true)), next) => break next,
            // The page filled part-way through the store's page: go on after the last one.
            (Some((last, false)), _) => {
                break Some(crate::store::encode_cursor(
                    &crate::store::listing_position(last.received_at, &last.endpoint, &last.id),
                ))
            }
            (None, None) => break None,
            (None, Some(next)) if scanned >= MAX_SCAN => break Some(next),
            (None, Some(next)) => cursor = Some(next),
        }
    };
    Ok(json!({"events": events, "next_cursor": next_cursor}))
}

/// `GET /admin/v1/events/{endpoint}/{id}`.
#[utoipa::path(
    tag = "events",
    params(
        ("endpoint" = String, Path, description = "the endpoint's name"),
        ("id" = String, Path, description = "the event id"),
    ),
    responses(
        (status = 200, description = "the event: body verbatim, received_at, expires_at, notifications per notifier"),
        (status = 404, description = "no such event for this key", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["events:read"]))
)]
#[get("/events/{endpoint}/{id}")]
pub async fn show(
    request: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::EventsRead).await?;
    let (endpoint, id) = path.into_inner();
    Ok(caller.json(&event_detail(&state, &caller, &endpoint, &id).await?))
}

/// One event, as `GET /admin/v1/events/{endpoint}/{id}` shows it.
///
/// # Errors
/// 404 for an event the key does not see, 503 when the store fails.
pub async fn event_detail(
    state: &AdminState,
    caller: &Caller,
    endpoint: &str,
    id: &str,
) -> Result<serde_json::Value, AdminError> {
    let missing = || {
        caller.fail(AdminErrorKind::NotFound(format!(
            "no event {id:?} at endpoint {endpoint:?}"
        )))
    };
    if !caller.sees(state, endpoint) {
        return Err(missing());
    }
    let detail = state
        .store
        .event(endpoint, id)
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?
        .ok_or_else(missing)?;
    let notifications: Vec<serde_json::Value> = detail
        .notifications
        .iter()
        .map(|job| {
            json!({
                "notifier": job.notifier,
                "status": job.status,
                "attempts": job.attempts,
                "last_error": job.last_error,
                "due_at": rfc3339(job.due_ms / 1000),
                "digest": job.digest,
            })
        })
        .collect();
    let record = &detail.record;
    Ok(json!({
        "endpoint": record.endpoint,
        "id": record.id,
        "type": record.kind,
        "livemode": record.livemode,
        "received_at": rfc3339(record.received_at),
        "expires_at": rfc3339(detail.expires_at),
        "body": record.body,
        "alert": crate::event::Alert::from_body_with(
            record.body.as_bytes(),
            &state.fields_of(&record.endpoint),
        ),
        "notifications": notifications,
    }))
}

/// `POST /admin/v1/events/{endpoint}/{id}/renotify?notifier=`.
#[utoipa::path(
    tag = "events",
    params(
        ("endpoint" = String, Path, description = "the endpoint's name"),
        ("id" = String, Path, description = "the event id"),
        ("notifier" = Option<String>, Query, description = "only this notifier (default: every one the endpoint routes this type to)"),
    ),
    responses(
        (status = 200, description = "{queued: N}: jobs queued again, due now (a job still pending is left alone)"),
        (status = 400, description = "an unknown notifier", body = ErrorBody),
        (status = 404, description = "no such event for this key", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["events:write"]))
)]
#[post("/events/{endpoint}/{id}/renotify")]
pub async fn renotify(
    request: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        notifier: Option<String>,
    }
    let caller = state.authorize(&request, Scope::EventsWrite).await?;
    let params: Params = caller.query(&request)?;
    let (endpoint, id) = path.into_inner();
    Ok(caller.json(&renotify_event(&state, &caller, &endpoint, &id, params.notifier).await?))
}

/// Queues an event's notifications again, as `POST …/renotify` does, audited.
///
/// # Errors
/// 400 for a notifier the endpoint does not route to, 404 for an event the key does not
/// see, 503 when the store fails.
pub async fn renotify_event(
    state: &AdminState,
    caller: &Caller,
    endpoint: &str,
    id: &str,
    notifier: Option<String>,
) -> Result<serde_json::Value, AdminError> {
    let missing = || {
        caller.fail(AdminErrorKind::NotFound(format!(
            "no event {id:?} at endpoint {endpoint:?}"
        )))
    };
    let slot = match state.endpoints.get(endpoint) {
        Some(slot) if caller.sees(state, endpoint) => slot.current(),
        _ => return Err(missing()),
    };
    let detail = state
        .store
        .event(endpoint, id)
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?
        .ok_or_else(missing)?;
    let notifiers = match notifier {
        // Only a notifier this endpoint routes to: no job the config never asked for.
        Some(name) if state.wakers.knows(&name) && slot.routes_to(&name) => vec![name],
        Some(name) => {
            return Err(caller.fail(AdminErrorKind::BadRequest(format!(
                "endpoint {endpoint:?} has no notifier named {name:?}"
            ))))
        }
        None => slot
            .route(
                &detail.record.kind,
                &crate::event::Alert::from_body_with(detail.record.body.as_bytes(), &slot.fields),
            )
            .notifiers
            .to_vec(),
    };
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
            "event.renotify",
            ActionKind::Update,
            &format!("{endpoint}/{id}"),
            &format!("ok: {queued} queued"),
        )
        .await;
    Ok(json!({ "queued": queued }))
}

/// `DELETE /admin/v1/events/{endpoint}/{id}`: the event, its notifications and its dedupe
/// key (the sender's next delivery of this id is new again).
#[utoipa::path(
    tag = "events",
    params(
        ("endpoint" = String, Path, description = "the endpoint's name"),
        ("id" = String, Path, description = "the event id"),
    ),
    responses(
        (status = 200, description = "{deleted: true}"),
        (status = 404, description = "no such event for this key", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["events:write"]))
)]
#[delete("/events/{endpoint}/{id}")]
pub async fn remove(
    request: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::EventsWrite).await?;
    let (endpoint, id) = path.into_inner();
    let missing = || {
        caller.fail(AdminErrorKind::NotFound(format!(
            "no event {id:?} at endpoint {endpoint:?}"
        )))
    };
    if !caller.sees(&state, &endpoint) {
        return Err(missing());
    }
    let deleted = state
        .store
        .delete_event(&endpoint, &id)
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?;
    if !deleted {
        return Err(missing());
    }
    state
        .audit_by(
            &caller,
            "event.delete",
            ActionKind::Delete,
            &format!("{endpoint}/{id}"),
            "ok",
        )
        .await;
    Ok(caller.json(&json!({ "deleted": true })))
}

/// Events read per page while looking for an organisation's or project's.
const SCAN_PAGE: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteMatching {
    organization: Option<String>,
    project: Option<String>,
    endpoint: Option<String>,
}

/// Whether the body's `data.<field>` has this id or name.
fn names(body: &serde_json::Value, field: &str, wanted: &str) -> bool {
    ["id", "name"].iter().any(|part| {
        body.pointer(&format!("/data/{field}/{part}"))
            .and_then(serde_json::Value::as_str)
            == Some(wanted)
    })
}

/// `DELETE /admin/v1/events?organization=&project=&endpoint=`: every event of an
/// organisation or project (by id or name), with its notifications and dedupe key.
#[utoipa::path(
    tag = "events",
    params(
        ("organization" = Option<String>, Query, description = "the organisation's id or name (data.organization)"),
        ("project" = Option<String>, Query, description = "the project's id or name (data.project)"),
        ("endpoint" = Option<String>, Query, description = "only this endpoint"),
    ),
    responses(
        (status = 200, description = "{deleted: N}"),
        (status = 400, description = "neither organization nor project given", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["events:write"]))
)]
#[delete("/events")]
pub async fn remove_matching(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::EventsWrite).await?;
    let wanted: DeleteMatching = caller.query(&request)?;
    if wanted.organization.is_none() && wanted.project.is_none() {
        return Err(caller.fail(AdminErrorKind::BadRequest(
            "give organization or project (or both)".to_owned(),
        )));
    }
    let storage = |_| caller.fail(AdminErrorKind::Storage);
    // Collected first, deleted after: deleting while paging would move the cursor's ground.
    let mut matching = Vec::new();
    let mut cursor = None;
    loop {
        let page = state
            .store
            .list(&EventQuery {
                endpoint: wanted.endpoint.clone(),
                kind: None,
                since: None,
                until: None,
                cursor: cursor.take(),
                limit: SCAN_PAGE,
            })
            .await
            .map_err(storage)?;
        // A live key reaches every stored event, endpoints since removed from the config too.
        for summary in page
            .events
            .iter()
            .filter(|e| caller.key.mode == Mode::Live || caller.sees(&state, &e.endpoint))
        {
            let Some(detail) = state
                .store
                .event(&summary.endpoint, &summary.id)
                .await
                .map_err(storage)?
            else {
                continue;
            };
            let Ok(body) = serde_json::from_str::<serde_json::Value>(&detail.record.body) else {
                continue;
            };
            let organization = wanted
                .organization
                .as_deref()
                .is_none_or(|wanted| names(&body, "organization", wanted));
            let project = wanted
                .project
                .as_deref()
                .is_none_or(|wanted| names(&body, "project", wanted));
            if organization && project {
                matching.push((summary.endpoint.clone(), summary.id.clone()));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut deleted = 0;
    for (endpoint, id) in &matching {
        if state
            .store
            .delete_event(endpoint, id)
            .await
            .map_err(storage)?
        {
            deleted += 1;
        }
    }
    let target = [
        wanted
            .organization
            .as_ref()
            .map(|o| format!("organization={o}")),
        wanted.project.as_ref().map(|p| format!("project={p}")),
        wanted.endpoint.as_ref().map(|e| format!("endpoint={e}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    state
        .audit_by(
            &caller,
            "event.delete_matching",
            ActionKind::Delete,
            &target,
            &format!("ok: {deleted} deleted"),
        )
        .await;
    Ok(caller.json(&json!({ "deleted": deleted })))
}
