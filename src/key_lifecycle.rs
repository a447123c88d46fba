//! Making, revoking and rotating API keys on any store, each action audited: the same steps
//! whether the command line works on a stopped receiver's data directory or the operator API
//! does it for a running one.

use std::time::Duration;

use crate::api_key::{self, KeySpec, KeyState, NewKey, Scope};
use crate::audit::{ActionKind, NewAuditEntry};
use crate::store::{ApiKeyRecord, Store, StoreError};

/// Who acts: a key through the API, or the command line on the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The acting key's id (`None`: the command line).
    pub key: Option<String>,
    /// Its source address, or `cli`.
    pub source: String,
}

impl Actor {
    /// The command line, working on the data directory.
    #[must_use]
    pub fn cli() -> Self {
        Self {
            key: None,
            source: "cli".to_owned(),
        }
    }
}

/// Why a key action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The request was not acceptable (a bad name, no scope, ...).
    #[error("{0}")]
    Invalid(String),
    /// No key with that id.
    #[error("no key with id {0:?}")]
    NotFound(String),
    /// The key is revoked or expired.
    #[error("{id} is {state}; create a new key instead")]
    NotActive {
        /// The key's id.
        id: String,
        /// `revoked` or `expired`.
        state: &'static str,
    },
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

async fn audit(
    store: &dyn Store,
    actor: &Actor,
    now: u64,
    action: &str,
    kind: ActionKind,
    target: &str,
) -> Result<(), StoreError> {
    store
        .append_audit(NewAuditEntry {
            at: now,
            key: actor.key.clone(),
            source: actor.source.clone(),
            action: action.to_owned(),
            kind,
            target: Some(target.to_owned()),
            outcome: "ok".to_owned(),
        })
        .await
        .map(|_| ())
}

/// Makes and stores a key.
///
/// # Errors
/// [`LifecycleError::Invalid`] for a bad spec; a store failure.
pub async fn create(
    store: &dyn Store,
    spec: &KeySpec,
    now: u64,
    actor: &Actor,
) -> Result<NewKey, LifecycleError> {
    let made =
        api_key::generate(spec, now).map_err(|error| LifecycleError::Invalid(error.to_string()))?;
    store.put_api_key(&made.record).await?;
    audit(
        store,
        actor,
        now,
        "key.create",
        ActionKind::Create,
        &made.record.id,
    )
    .await?;
    Ok(made)
}

async fn existing(store: &dyn Store, id: &str) -> Result<ApiKeyRecord, LifecycleError> {
    store
        .api_key(id)
        .await?
        .ok_or_else(|| LifecycleError::NotFound(id.to_owned()))
}

/// Revokes a key (again: no change).
///
/// # Errors
/// [`LifecycleError::NotFound`]; a store failure.
pub async fn revoke(
    store: &dyn Store,
    id: &str,
    now: u64,
    actor: &Actor,
) -> Result<ApiKeyRecord, LifecycleError> {
    let mut key = existing(store, id).await?;
    if key.revoked_at.is_none() {
        key.revoked_at = Some(now);
        store.put_api_key(&key).await?;
        audit(store, actor, now, "key.revoke", ActionKind::Delete, &key.id).await?;
    }
    Ok(key)
}

/// Makes a replacement for an active key with the same name, scopes, mode, limit and
/// lifetime; the old key keeps working for `overlap` (or until its own expiry, if sooner).
/// Returns the new key and the old record.
///
/// # Errors
/// [`LifecycleError::NotFound`], [`LifecycleError::NotActive`]; a store failure.
pub async fn rotate(
    store: &dyn Store,
    id: &str,
    overlap: Duration,
    now: u64,
    actor: &Actor,
) -> Result<(NewKey, ApiKeyRecord), LifecycleError> {
    let mut old = existing(store, id).await?;
    let state = api_key::state(&old, now);
    if state != KeyState::Active {
        return Err(LifecycleError::NotActive {
            id: old.id,
            state: state.name(),
        });
    }
    // Once: a second rotation would shorten the replacement's lifetime to the overlap and
    // let an expiring key renew itself for ever.
    if let Some(replacement) = &old.replaced_by {
        return Err(LifecycleError::Invalid(format!(
            "{} was already rotated; rotate its replacement {replacement} instead",
            old.id
        )));
    }
    let scopes = old
        .scopes
        .iter()
        .map(|name| {
            <Scope as clap::ValueEnum>::from_str(name, false).map_err(|_| {
                LifecycleError::Invalid(format!("{}: unknown scope {name:?} in the store", old.id))
            })
        })
        .collect::<Result<Vec<Scope>, LifecycleError>>()?;
    let made = api_key::generate(
        &KeySpec {
            name: old.name.clone(),
            scopes,
            mode: old.mode,
            // The replacement lives as long as the original was meant to.
            expires_in: old
                .expires_at
                .map(|at| Duration::from_secs(at.saturating_sub(old.created_at))),
            rate_limit_per_minute: old.rate_limit_per_minute,
        },
        now,
    )
    .map_err(|error| LifecycleError::Invalid(error.to_string()))?;
    store.put_api_key(&made.record).await?;
    let overlap_ends = now.saturating_add(overlap.as_secs());
    old.expires_at = Some(
        old.expires_at
            .map_or(overlap_ends, |at| at.min(overlap_ends)),
    );
    old.replaced_by = Some(made.record.id.clone());
    store.put_api_key(&old).await?;
    let target = format!("{} -> {}", old.id, made.record.id);
    audit(store, actor, now, "key.rotate", ActionKind::Update, &target).await?;
    Ok((made, old))
}
