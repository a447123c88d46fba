//! `GET /admin/v1/keys`: every API key without its hash, with its state. Scope `keys:admin`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::{AdminError, AdminErrorKind};
use super::AdminState;
use crate::api_key::{self, Scope};

/// `GET /admin/v1/keys`.
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
