//! `GET /admin/v1/keys`: every API key without its hash, with its state. Scope `keys:admin`.

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::{AdminError, AdminErrorKind, ErrorBody};
use super::AdminState;
use crate::api_key::{self, Scope};

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
    let now = state.clock.now();
    let keys = state
        .store
        .api_keys()
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?;
    let keys: Vec<serde_json::Value> = keys.iter().map(|key| api_key::summary(key, now)).collect();
    Ok(caller.json(&json!({ "keys": keys })))
}
