//! `GET /admin/v1/audit?since=&until=&key=&kind=&action=&outcome=`: the audit log, newest
//! first, filtered. Scope `audit:read`.

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::{AdminError, AdminErrorKind, ErrorBody};
use super::{AdminState, Caller};
use crate::api_key::Scope;
use crate::audit::{ActionKind, AuditEntry};
use crate::event::Mode;

/// Entries an answer holds at most.
const MAX_ENTRIES: usize = 1_000;

/// What to return.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// At or after, Unix seconds.
    pub since: Option<u64>,
    /// Before, Unix seconds.
    pub until: Option<u64>,
    /// Only this key's actions.
    pub key: Option<String>,
    /// Only this kind.
    pub kind: Option<ActionKind>,
    /// Only actions starting with this (`key.`, `refused.reverify`).
    pub action: Option<String>,
    /// `ok`, or `failed` for everything else.
    pub outcome: Option<String>,
    /// At most this many (default and most: 1,000).
    pub limit: Option<usize>,
}

impl AuditFilter {
    /// Whether `entry` passes.
    #[must_use]
    pub fn admits(&self, entry: &AuditEntry) -> bool {
        self.since.is_none_or(|since| entry.at >= since)
            && self.until.is_none_or(|until| entry.at < until)
            && self
                .key
                .as_ref()
                .is_none_or(|key| entry.key.as_ref() == Some(key))
            && self.kind.is_none_or(|kind| entry.kind == kind)
            && self
                .action
                .as_ref()
                .is_none_or(|action| entry.action.starts_with(action.as_str()))
            && self.outcome.as_deref().is_none_or(|outcome| match outcome {
                "ok" => entry.outcome == "ok" || entry.outcome.starts_with("ok:"),
                _ => entry.outcome != "ok" && !entry.outcome.starts_with("ok:"),
            })
    }
}

/// `GET /admin/v1/audit`.
#[utoipa::path(
    tag = "audit",
    params(
        ("since" = Option<u64>, Query, description = "at or after, Unix seconds"),
        ("until" = Option<u64>, Query, description = "before, Unix seconds"),
        ("key" = Option<String>, Query, description = "only this key's actions"),
        ("kind" = Option<String>, Query, description = "create, read, update, delete or auth"),
        ("action" = Option<String>, Query, description = "actions starting with this"),
        ("outcome" = Option<String>, Query, description = "ok, or failed for the rest"),
        ("limit" = Option<usize>, Query, description = "at most this many (1,000)"),
    ),
    responses(
        (status = 200, description = "entries newest first, each with seq, at, key, source, action, kind, target, outcome, prev and hash"),
        (status = 400, description = "a malformed query", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["audit:read"]))
)]
#[get("/audit")]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::AuditRead).await?;
    let filter: AuditFilter = caller.query(&request)?;
    Ok(caller.json(&list_audit(&state, &caller, &filter).await?))
}

/// The entries `GET /admin/v1/audit` returns, newest first.
///
/// # Errors
/// 503 when the store fails.
pub async fn list_audit(
    state: &AdminState,
    caller: &Caller,
    filter: &AuditFilter,
) -> Result<serde_json::Value, AdminError> {
    let log = state
        .store
        .audit_log()
        .await
        .map_err(|_| caller.fail(AdminErrorKind::Storage))?;
    let limit = filter.limit.unwrap_or(MAX_ENTRIES).clamp(1, MAX_ENTRIES);
    let entries: Vec<&AuditEntry> = log
        .iter()
        .rev()
        .filter_map(|stored| stored.entry.as_ref().ok())
        .filter(|entry| filter.admits(entry))
        // A test key reads only what test keys did.
        .filter(|entry| {
            caller.key.mode == Mode::Live
                || entry
                    .key
                    .as_deref()
                    .is_some_and(|key| key.starts_with(crate::api_key::TEST_PREFIX))
        })
        .take(limit)
        .collect();
    Ok(json!({ "entries": entries }))
}

/// `GET /admin/v1/audit/verify`: the hash chain checked from its anchor.
#[utoipa::path(
    tag = "audit",
    responses(
        (status = 200, description = "{intact, entries, head, problems:[…]}: each problem names an entry edited, missing or moved"),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["audit:read"]))
)]
#[get("/audit/verify")]
pub async fn verify(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::AuditRead).await?;
    let storage = |_| caller.fail(AdminErrorKind::Storage);
    let log = state.store.audit_log().await.map_err(storage)?;
    let anchor = state.store.audit_anchor().await.map_err(storage)?;
    Ok(caller.json(&verification(&log, &anchor)))
}

/// A verification as JSON: the command line prints the same for the data directory.
#[must_use]
pub fn verification(
    log: &[crate::audit::StoredEntry],
    anchor: &(u64, String),
) -> serde_json::Value {
    let problems = crate::audit::verify(log, (anchor.0, &anchor.1));
    let head = log
        .last()
        .and_then(|stored| stored.entry.as_ref().ok())
        .map_or(anchor.1.as_str(), |entry| entry.hash.as_str());
    json!({
        "intact": problems.is_empty(),
        "entries": log.len(),
        "head": head,
        "problems": problems,
    })
}
