//! API keys through a running receiver (scope `keys:admin`): list them without their hashes,
//! create one (shown once), revoke, rotate. The same steps as the command line's, audited.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde_json::json;

use std::time::Duration;

use super::auth::Caller;
use super::error::{AdminError, AdminErrorKind, ErrorBody};
use super::AdminState;
use crate::api_key::{self, KeySpec, Scope};
use crate::event::Mode;
use crate::key_lifecycle::{self, Actor, LifecycleError};

/// `GET /admin/v1/keys`.
#[utoipa::path(
    tag = "keys",
    responses(
        (status = 200, description = "every key without its hash: {keys:[{id,name,mode,scopes,created_at,expires_at,revoked_at,last_used_at,last_used_from,rate_limit_per_minute,replaced_by,state,due_for_rotation}]}"),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["keys:admin"]))
)]
#[get("/keys")]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::KeysAdmin).await?;
    Ok(caller.json(&list_keys(&state, &caller).await?))
}

/// Every key this caller may see, without hashes, as `GET /admin/v1/keys` lists them.
///
/// # Errors
/// 503 when the store fails.
pub async fn list_keys(
    state: &AdminState,
    caller: &Caller,
) -> Result<serde_json::Value, AdminError> {
    let now = state.clock.now();
    let keys = state
        .store
        .api_keys()
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?;
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .filter(|key| caller.key.mode == Mode::Live || key.mode == Mode::Test)
        .map(|key| api_key::summary(key, now))
        .collect();
    Ok(json!({ "keys": keys }))
}

/// What `POST /admin/v1/keys` takes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for.
    pub name: String,
    /// Scope names: events:read, events:write, refused:read, refused:write, keys:admin,
    /// audit:read.
    pub scopes: Vec<String>,
    /// Seconds until it expires (default: never).
    pub expires_in_secs: Option<u64>,
    /// A test key (sees test-mode endpoints only).
    #[serde(default)]
    pub test: bool,
    /// Requests a minute (default 60).
    pub rate_limit_per_minute: Option<u32>,
}

fn lifecycle_error(caller: &Caller, error: LifecycleError) -> AdminError {
    caller.fail(match error {
        LifecycleError::Invalid(problem) => AdminErrorKind::BadRequest(problem),
        LifecycleError::NotFound(id) => AdminErrorKind::NotFound(format!("no key with id {id:?}")),
        error @ LifecycleError::NotActive { .. } => AdminErrorKind::BadRequest(error.to_string()),
        LifecycleError::Store(_) => AdminErrorKind::Storage,
    })
}

fn actor(caller: &Caller) -> Actor {
    Actor {
        key: Some(caller.key.id.clone()),
        source: caller.source.to_string(),
    }
}

/// A key never grants more than it holds: every scope asked for must be the caller's own.
fn within_callers_scopes<'a>(
    caller: &Caller,
    scopes: impl IntoIterator<Item = &'a str>,
) -> Result<(), AdminError> {
    let beyond: Vec<&str> = scopes
        .into_iter()
        .filter(|scope| !caller.key.scopes.iter().any(|held| held == scope))
        .collect();
    if beyond.is_empty() {
        Ok(())
    } else {
        Err(caller.fail(AdminErrorKind::NotAllowed(format!(
            "a key can grant only scopes it holds; this one lacks {}",
            beyond.join(", ")
        ))))
    }
}

/// The key `id`, if this caller may act on it: a test key sees test keys only.
async fn target(
    state: &AdminState,
    caller: &Caller,
    id: &str,
) -> Result<crate::store::ApiKeyRecord, AdminError> {
    let missing = || caller.fail(AdminErrorKind::NotFound(format!("no key with id {id:?}")));
    let key = state
        .store
        .api_key(id)
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?
        .ok_or_else(missing)?;
    if caller.key.mode == Mode::Test && key.mode != Mode::Test {
        return Err(missing());
    }
    Ok(key)
}

/// The new key once, with its listing.
fn created(caller: &Caller, made: &api_key::NewKey, now: u64) -> HttpResponse {
    let mut body = api_key::summary(&made.record, now);
    if let Some(fields) = body.as_object_mut() {
        fields.insert("key".to_owned(), made.key.as_str().into());
    }
    caller
        .respond(HttpResponse::Created())
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// `POST /admin/v1/keys`: a new key, shown once in the answer.
#[utoipa::path(
    tag = "keys",
    request_body = CreateKey,
    responses(
        (status = 201, description = "the new key (shown only now, in `key`) and its listing"),
        (status = 400, description = "a bad name, scope or limit", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope, or a test key asked for a live key", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["keys:admin"]))
)]
#[post("/keys")]
pub async fn create(
    request: HttpRequest,
    state: web::Data<AdminState>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::KeysAdmin).await?;
    let wanted: CreateKey = serde_json::from_slice(&body).map_err(|error| {
        caller.fail(AdminErrorKind::BadRequest(format!(
            "the body must be a JSON object with name and scopes: {}",
            error
                .to_string()
                .split(" at line")
                .next()
                .unwrap_or_default()
        )))
    })?;
    if !wanted.test && caller.key.mode == Mode::Test {
        return Err(caller.fail(AdminErrorKind::NotAllowed(
            "a test key makes only test keys (\"test\": true)".to_owned(),
        )));
    }
    let scopes = wanted
        .scopes
        .iter()
        .map(|name| {
            <Scope as clap::ValueEnum>::from_str(name, false).map_err(|_| {
                caller.fail(AdminErrorKind::BadRequest(format!(
                    "unknown scope {name:?}"
                )))
            })
        })
        .collect::<Result<Vec<Scope>, AdminError>>()?;
    within_callers_scopes(&caller, wanted.scopes.iter().map(String::as_str))?;
    let now = state.clock.now();
    let spec = KeySpec {
        name: wanted.name,
        scopes,
        mode: if wanted.test { Mode::Test } else { Mode::Live },
        expires_in: wanted.expires_in_secs.map(Duration::from_secs),
        rate_limit_per_minute: wanted
            .rate_limit_per_minute
            .unwrap_or(api_key::DEFAULT_RATE_LIMIT_PER_MINUTE),
    };
    let made = key_lifecycle::create(state.store.as_ref(), &spec, now, &actor(&caller))
        .await
        .map_err(|error| lifecycle_error(&caller, error))?;
    Ok(created(&caller, &made, now))
}

/// `POST /admin/v1/keys/{id}/revoke`.
#[utoipa::path(
    tag = "keys",
    params(("id" = String, Path, description = "the key's id")),
    responses(
        (status = 200, description = "the key's listing, revoked"),
        (status = 404, description = "no such key", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["keys:admin"]))
)]
#[post("/keys/{id}/revoke")]
pub async fn revoke(
    request: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::KeysAdmin).await?;
    target(&state, &caller, &id).await?;
    let now = state.clock.now();
    let key = key_lifecycle::revoke(state.store.as_ref(), &id, now, &actor(&caller))
        .await
        .map_err(|error| lifecycle_error(&caller, error))?;
    Ok(caller.json(&api_key::summary(&key, now)))
}

/// `POST /admin/v1/keys/{id}/rotate?overlap_secs=`: a replacement, shown once; the old key
/// works for the overlap (default 24 h).
#[utoipa::path(
    tag = "keys",
    params(
        ("id" = String, Path, description = "the key's id"),
        ("overlap_secs" = Option<u64>, Query, description = "how long the old key keeps working (default 86400)"),
    ),
    responses(
        (status = 201, description = "the new key (shown only now, in `key`) and its listing"),
        (status = 400, description = "the key is revoked or expired", body = ErrorBody),
        (status = 404, description = "no such key", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["keys:admin"]))
)]
#[post("/keys/{id}/rotate")]
pub async fn rotate(
    request: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        overlap_secs: Option<u64>,
    }
    let caller = state.authorize(&request, Scope::KeysAdmin).await?;
    let params: Params = caller.query(&request)?;
    let overlap = Duration::from_secs(params.overlap_secs.unwrap_or(24 * 3600));
    let old = target(&state, &caller, &id).await?;
    within_callers_scopes(&caller, old.scopes.iter().map(String::as_str))?;
    let now = state.clock.now();
    let (made, _) = key_lifecycle::rotate(state.store.as_ref(), &id, overlap, now, &actor(&caller))
        .await
        .map_err(|error| lifecycle_error(&caller, error))?;
    Ok(created(&caller, &made, now))
}
