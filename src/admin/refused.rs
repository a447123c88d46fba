//! Refused deliveries: list and show them (`refused:read`), download one as the request file
//! `verify-signature --request` reads, and re-verify them after a secret or scheme fix
//! (`refused:write`): those that now verify go through the normal pipeline (dedupe applies)
//! and leave the list; the rest are reported with their reason.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::{AdminError, AdminErrorKind, ErrorBody};
use super::AdminState;
use crate::api_key::Scope;
use crate::audit::ActionKind;
use crate::capture::parse_captured_request;
use crate::event::{parse_event, Mode};
use crate::notify::rfc3339;
use crate::store::{EventRecord, NewEvent, Recorded, RefusedDelivery};

/// Refused deliveries a listing or a re-verification takes at most (an endpoint keeps
/// 1,000).
const MAX_LIST: usize = 5_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    endpoint: Option<String>,
    limit: Option<usize>,
}

fn summary(refused: &RefusedDelivery) -> serde_json::Value {
    json!({
        "id": refused.id,
        "endpoint": refused.endpoint,
        "received_at": rfc3339(refused.received_at_ms / 1000),
        "source": refused.source,
        "reason": refused.reason,
        "message": refused.message,
        "bytes": refused.request.len(),
    })
}

/// The refused deliveries this caller may see, newest first.
async fn visible(
    state: &AdminState,
    caller: &Caller,
    endpoint: Option<&str>,
    limit: usize,
) -> Result<Vec<RefusedDelivery>, AdminError> {
    if let Some(endpoint) = endpoint {
        if !caller.sees(state, endpoint) {
            return Err(caller.fail(AdminErrorKind::NotFound(format!(
                "no endpoint {endpoint:?} for this key"
            ))));
        }
    }
    let found = state
        .store
        .refused_list(endpoint, limit)
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?;
    Ok(found
        .into_iter()
        .filter(|refused| may_see(state, caller, refused))
        .collect())
}

/// A test key sees a test endpoint's refusals, except live events refused there for their
/// mode: those are live data.
fn may_see(state: &AdminState, caller: &Caller, refused: &RefusedDelivery) -> bool {
    caller.sees(state, &refused.endpoint)
        && (caller.key.mode == Mode::Live || refused.reason != "mode_mismatch")
}

/// One refused delivery this caller may see.
async fn one(state: &AdminState, caller: &Caller, id: &str) -> Result<RefusedDelivery, AdminError> {
    let missing = || {
        caller.fail(AdminErrorKind::NotFound(format!(
            "no refused delivery {id:?}"
        )))
    };
    let refused = state
        .store
        .refused(id)
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?
        .ok_or_else(missing)?;
    if may_see(state, caller, &refused) {
        Ok(refused)
    } else {
        Err(missing())
    }
}

/// `GET /admin/v1/refused?endpoint=&limit=`.
#[utoipa::path(
    tag = "refused",
    params(
        ("endpoint" = Option<String>, Query, description = "only this endpoint"),
        ("limit" = Option<usize>, Query, description = "at most this many (default 50)"),
    ),
    responses(
        (status = 200, description = "refused deliveries newest first: {refused:[{id,endpoint,received_at,source,reason,message,bytes}]}"),
        (status = 400, description = "a malformed query", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["refused:read"]))
)]
#[get("/refused")]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::RefusedRead).await?;
    let params = caller.query::<ListParams>(&request)?;
    let listed = list_refused(&state, &caller, params.endpoint.as_deref(), params.limit).await?;
    Ok(caller.json(&listed))
}

/// The listing behind `GET /admin/v1/refused`.
///
/// # Errors
/// 404 for an endpoint the key does not see, 503 when the store fails.
pub async fn list_refused(
    state: &AdminState,
    caller: &Caller,
    endpoint: Option<&str>,
    limit: Option<usize>,
) -> Result<serde_json::Value, AdminError> {
    let limit = limit.unwrap_or(50).clamp(1, MAX_LIST);
    let found = visible(state, caller, endpoint, limit).await?;
    let refused: Vec<serde_json::Value> = found.iter().map(summary).collect();
    Ok(json!({ "refused": refused }))
}

/// `GET /admin/v1/refused/{id}`: the summary, the headers and the body (as text, with
/// bytes that are not UTF-8 replaced; the request file has them exactly).
#[utoipa::path(
    tag = "refused",
    params(("id" = String, Path, description = "the refused delivery's id")),
    responses(
        (status = 200, description = "the summary with request_line, headers and body"),
        (status = 404, description = "no such refused delivery for this key", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["refused:read"]))
)]
#[get("/refused/{id}")]
pub async fn show(
    request: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::RefusedRead).await?;
    let refused = one(&state, &caller, &id).await?;
    let mut shown = summary(&refused);
    if let (Ok(captured), Some(fields)) = (
        parse_captured_request(&refused.request),
        shown.as_object_mut(),
    ) {
        let headers: Vec<serde_json::Value> = captured
            .headers
            .iter()
            .map(|(name, value)| json!([name, String::from_utf8_lossy(value)]))
            .collect();
        fields.insert("request_line".into(), captured.request_line.into());
        fields.insert("headers".into(), headers.into());
        fields.insert(
            "body".into(),
            String::from_utf8_lossy(captured.body).into_owned().into(),
        );
    }
    Ok(caller.json(&shown))
}

/// `GET /admin/v1/refused/{id}/request`: the request exactly as received.
#[utoipa::path(
    tag = "refused",
    params(("id" = String, Path, description = "the refused delivery's id")),
    responses(
        (status = 200, description = "the request as received (message/http), for verify-signature --request", content_type = "message/http"),
        (status = 404, description = "no such refused delivery for this key", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["refused:read"]))
)]
#[get("/refused/{id}/request")]
pub async fn request_file(
    request: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::RefusedRead).await?;
    let refused = export_refused(&state, &caller, &id).await?;
    Ok(caller
        .respond(HttpResponse::Ok())
        .content_type("message/http")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{}.http\"", refused.id),
        ))
        .body(refused.request))
}

/// One refused delivery to download as a request file, audited as an export.
///
/// # Errors
/// 404 for one the key does not see, 503 when the store fails.
pub async fn export_refused(
    state: &AdminState,
    caller: &Caller,
    id: &str,
) -> Result<RefusedDelivery, AdminError> {
    let refused = one(state, caller, id).await?;
    state
        .audit_by(
            caller,
            "refused.export",
            ActionKind::Read,
            &refused.id,
            "ok",
        )
        .await;
    Ok(refused)
}

/// `POST /admin/v1/refused/reverify?endpoint=`: every refused delivery the caller may see,
/// verified again with the endpoint's current secrets and scheme at the time it arrived.
#[utoipa::path(
    tag = "refused",
    params(("endpoint" = Option<String>, Query, description = "only this endpoint")),
    responses(
        (status = 200, description = "{accepted:[{id,event}], duplicate:[{id,event}], still_refused:[{id,reason,message}]}"),
        (status = 400, description = "a malformed query", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["refused:write"]))
)]
#[post("/refused/reverify")]
pub async fn reverify(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::RefusedWrite).await?;
    let params = caller.query::<ListParams>(&request)?;
    Ok(caller.json(&reverify_refused(&state, &caller, params.endpoint.as_deref()).await?))
}

/// Re-verifies what `POST /admin/v1/refused/reverify` does, audited.
///
/// # Errors
/// 404 for an endpoint the key does not see, 503 when the store fails.
pub async fn reverify_refused(
    state: &AdminState,
    caller: &Caller,
    endpoint: Option<&str>,
) -> Result<serde_json::Value, AdminError> {
    let found = visible(state, caller, endpoint, MAX_LIST).await?;
    let mut accepted = Vec::new();
    let mut duplicate = Vec::new();
    let mut still_refused = Vec::new();
    for refused in found.iter().rev() {
        match reverify_one(state, refused).await {
            Ok((recorded, event_id)) => {
                // Dealt with: stored now, or it already was.
                if let Err(error) = state.store.remove_refused(&refused.id).await {
                    tracing::warn!(id = %refused.id, %error, "cannot forget a re-verified delivery");
                }
                let entry = json!({"id": refused.id, "event": event_id});
                if recorded == Recorded::New {
                    accepted.push(entry);
                } else {
                    duplicate.push(entry);
                }
            }
            Err(Outcome::Storage) => return Err(caller.fail(AdminErrorKind::Storage)),
            Err(Outcome::Refused { reason, message }) => {
                still_refused.push(json!({"id": refused.id, "reason": reason, "message": message}))
            }
        }
    }
    state
        .audit_by(
            caller,
            "refused.reverify",
            ActionKind::Update,
            endpoint.unwrap_or("all endpoints"),
            &format!(
                "ok: {} accepted, {} duplicate, {} still refused",
                accepted.len(),
                duplicate.len(),
                still_refused.len()
            ),
        )
        .await;
    tracing::info!(
        key = %caller.key.id,
        accepted = accepted.len(),
        duplicate = duplicate.len(),
        still_refused = still_refused.len(),
        "admin API: refused deliveries re-verified"
    );
    Ok(json!({
        "accepted": accepted,
        "duplicate": duplicate,
        "still_refused": still_refused,
    }))
}

enum Outcome {
    Refused { reason: String, message: String },
    Storage,
}

fn refused_for(code: &str, message: impl ToString) -> Outcome {
    Outcome::Refused {
        reason: code.to_owned(),
        message: message.to_string(),
    }
}

/// One refused delivery through verification, parsing, the mode rule and the store, as the
/// receiver would have taken it when it arrived.
async fn reverify_one(
    state: &AdminState,
    refused: &RefusedDelivery,
) -> Result<(Recorded, String), Outcome> {
    let Some(slot) = state.endpoints.get(&refused.endpoint) else {
        return Err(refused_for(
            "not_found",
            "the endpoint is no longer configured",
        ));
    };
    let endpoint = slot.current();
    let arrived = refused.received_at_ms / 1000;
    // Older than retention: a retry Perf made may have been stored and purged since, and
    // accepting this one would notify a second time.
    if state.clock.now().saturating_sub(arrived) >= state.retention.as_secs() {
        return Err(refused_for(
            "expired",
            "it arrived longer ago than the retention period; send it again from Perf",
        ));
    }
    let captured = parse_captured_request(&refused.request)
        .map_err(|error| refused_for("unreadable", error))?;
    let verified = endpoint
        .verifier
        .verify(&captured.headers, captured.body, arrived)
        .map_err(|error| refused_for(error.code(), &error))?;
    let event = parse_event(captured.body, verified.id.as_deref())
        .map_err(|error| refused_for("invalid_event", error))?;
    if let Some(event_mode) = event.livemode.map(Mode::from_livemode) {
        if event_mode != endpoint.mode {
            return Err(refused_for(
                "mode_mismatch",
                format!(
                    "a {event_mode} event was sent to a {} endpoint",
                    endpoint.mode
                ),
            ));
        }
    }
    let body = String::from_utf8(captured.body.to_vec())
        .map_err(|_| refused_for("invalid_event", "the body is not UTF-8"))?;
    let alert = crate::event::Alert::from_body_with(body.as_bytes(), &endpoint.fields);
    let routed = endpoint.route(&event.kind, &alert);
    let notifiers = routed.notifiers.to_vec();
    let id = event.id.as_str().to_owned();
    let budget = crate::collapse::mark_with(&endpoint.name, &alert, routed.cooldown);
    let recorded = state
        .store
        .record(NewEvent {
            deferred: Default::default(),
            record: EventRecord {
                endpoint: endpoint.name.clone(),
                id: id.clone(),
                kind: event.kind,
                livemode: event.livemode,
                received_at: arrived,
                body,
            },
            notifiers: notifiers.clone(),
            expires_at: state.clock.now().saturating_add(state.retention.as_secs()),
            budget,
        })
        .await
        .map_err(|_| Outcome::Storage)?;
    if recorded == Recorded::New {
        state.wakers.wake(&notifiers);
        tracing::info!(endpoint = %endpoint.name, %id, secret = %verified.secret, "event accepted on re-verification");
    }
    Ok((recorded, id))
}
