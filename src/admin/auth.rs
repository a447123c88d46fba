//! Who is calling: `Authorization: Bearer <key>`, found by its visible id, matched by hash
//! in constant time, refused alike when malformed, unknown, revoked or expired; then the
//! key's rate limit and the scope the route needs.

use std::net::{IpAddr, Ipv6Addr};

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use super::error::{AdminError, AdminErrorKind};
use super::limits::RateState;
use super::AdminState;
use crate::api_key::{self, KeyState, Scope};
use crate::audit::{ActionKind, NewAuditEntry};
use crate::event::Mode;
use crate::store::ApiKeyRecord;

/// A recorded use is rewritten at most this often per key (unless the address changes), so
/// reads do not each cost a durable write.
const LAST_USED_EVERY_SECS: u64 = 60;

/// An authenticated, admitted caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's record.
    pub key: ApiKeyRecord,
    /// Its limit state, sent with the answer.
    pub rate: RateState,
    /// Where the request came from.
    pub source: IpAddr,
}

impl Caller {
    /// An answer with the caller's rate-limit headers.
    #[must_use]
    pub fn respond(&self, mut response: HttpResponseBuilder) -> HttpResponseBuilder {
        self.rate.write_headers(&mut response);
        response
    }

    /// A JSON `200 OK` with the caller's rate-limit headers.
    #[must_use]
    pub fn json(&self, body: &serde_json::Value) -> HttpResponse {
        self.respond(HttpResponse::Ok()).json(body)
    }

    /// Whether this key may see `endpoint` (a test key sees test-mode endpoints only).
    #[must_use]
    pub fn sees(&self, state: &AdminState, endpoint: &str) -> bool {
        let Some(slot) = state.endpoints.get(endpoint) else {
            return false;
        };
        self.key.mode == Mode::Live || slot.current().mode == Mode::Test
    }

    /// The request's query string as `T`; a malformed one is a 400 with the caller's headers.
    ///
    /// # Errors
    /// [`AdminErrorKind::BadRequest`] naming what does not fit.
    pub fn query<T: serde::de::DeserializeOwned>(
        &self,
        request: &HttpRequest,
    ) -> Result<T, AdminError> {
        actix_web::web::Query::<T>::from_query(request.query_string())
            .map(actix_web::web::Query::into_inner)
            .map_err(|error| self.fail(AdminErrorKind::BadRequest(format!("query: {error}"))))
    }

    /// A failure, answered with the caller's rate-limit headers.
    #[must_use]
    pub fn fail(&self, kind: AdminErrorKind) -> AdminError {
        AdminError::new(kind).with_rate(self.rate)
    }
}

/// The source address (the admin listener takes no forwarding headers).
pub fn source(request: &HttpRequest) -> IpAddr {
    request
        .peer_addr()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |peer| peer.ip())
}

/// What a request presents as its key.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// No key at all.
    Missing,
    /// Something that is not a bearer key.
    Malformed,
    /// A key to check.
    Key(&'a str),
}

impl<'a> Presented<'a> {
    /// The `Authorization: Bearer <key>` header of `request`.
    #[must_use]
    pub fn from_header(request: &'a HttpRequest) -> Self {
        let Some(header) = request.headers().get(AUTHORIZATION) else {
            return Self::Missing;
        };
        header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or(Self::Malformed, |(_, key)| Self::Key(key.trim()))
    }
}

impl AdminState {
    /// Authenticates the request, counts it against its key's limit and checks `scope`.
    ///
    /// # Errors
    /// 401 without a key or with one that is not valid, 429 over a limit (the key's, or
    /// the source's for failed authentications), 403 without the scope.
    pub async fn authorize(
        &self,
        request: &HttpRequest,
        scope: Scope,
    ) -> Result<Caller, AdminError> {
        self.authorize_key(Presented::from_header(request), source(request), scope)
            .await
    }

    /// [`AdminState::authorize`] for a key presented some other way (the inspector's
    /// sign-in form), with the same failure counting and audit.
    ///
    /// # Errors
    /// As [`AdminState::authorize`].
    pub async fn authorize_key(
        &self,
        presented: Presented<'_>,
        source: IpAddr,
        scope: Scope,
    ) -> Result<Caller, AdminError> {
        let key = match self.find_key(presented).await {
            Ok(key) => key,
            // No key at all is not a guess; only failed attempts count against the source.
            Err(error)
                if matches!(
                    error.kind,
                    AdminErrorKind::Storage | AdminErrorKind::AuthenticationRequired
                ) =>
            {
                return Err(error)
            }
            // A source over its failure limit gets 429 for every further failure (a valid key
            // still works: with 208 secret bits the limit is about noise, and one local
            // process must not lock the operator out).
            Err(_) if self.limits.source_blocked(source).is_some() => {
                let after = self.limits.source_blocked(source).unwrap_or(1);
                return Err(AdminErrorKind::RateLimited(after).into());
            }
            Err(error) => {
                self.metrics.admin_auth_failure(error.code());
                tracing::warn!(%source, outcome = error.code(), "admin API: authentication failed");
                if self.limits.first_failure_this_minute(source) {
                    self.audit(
                        None,
                        source,
                        "auth.failed",
                        ActionKind::Auth,
                        None,
                        error.code(),
                    )
                    .await;
                }
                return Err(match self.limits.failed(source) {
                    Some(after) => {
                        self.audit(
                            None,
                            source,
                            "auth.blocked",
                            ActionKind::Auth,
                            None,
                            "refused",
                        )
                        .await;
                        AdminErrorKind::RateLimited(after).into()
                    }
                    None => error,
                });
            }
        };
        self.admit(key, source, scope).await
    }

    /// A caller by the id of a key that authenticated earlier (an inspector session): the
    /// key must still be active, and each request is limited and scoped as an API call.
    ///
    /// # Errors
    /// 401 once the key is revoked or expired, 429 over its limit, 403 without the scope.
    pub async fn authorize_key_id(
        &self,
        id: &str,
        source: IpAddr,
        scope: Scope,
    ) -> Result<Caller, AdminError> {
        let record = self
            .store
            .api_key(id)
            .await
            .map_err(|_| AdminError::new(AdminErrorKind::Storage))?
            .filter(|record| api_key::state(record, self.clock.now()) == KeyState::Active)
            .ok_or_else(|| AdminError::new(AdminErrorKind::InvalidApiKey))?;
        self.admit(record, source, scope).await
    }

    /// Counts an authenticated key's request against its limit and checks `scope`.
    async fn admit(
        &self,
        key: ApiKeyRecord,
        source: IpAddr,
        scope: Scope,
    ) -> Result<Caller, AdminError> {
        let rate = self
            .limits
            .admit_key(&key.id, key.rate_limit_per_minute)
            .map_err(|limited| {
                self.metrics.admin_request(&key.id, "rate_limited");
                AdminError::new(AdminErrorKind::RateLimited(limited.retry_after))
                    .with_rate(limited.state)
            })?;
        let caller = Caller {
            key: self.note_use(key, source).await,
            rate,
            source,
        };
        if !caller.key.scopes.iter().any(|held| held == scope.name()) {
            self.metrics
                .admin_request(&caller.key.id, "insufficient_scope");
            return Err(caller.fail(AdminErrorKind::InsufficientScope(scope)));
        }
        self.metrics.admin_request(&caller.key.id, "ok");
        Ok(caller)
    }

    /// The active key presented.
    async fn find_key(&self, presented: Presented<'_>) -> Result<ApiKeyRecord, AdminError> {
        let invalid = || AdminError::new(AdminErrorKind::InvalidApiKey);
        let presented = match presented {
            Presented::Missing => return Err(AdminErrorKind::AuthenticationRequired.into()),
            Presented::Malformed => return Err(invalid()),
            Presented::Key(key) => key,
        };
        let id = api_key::key_id(presented).ok_or_else(invalid)?;
        let record = self
            .store
            .api_key(id)
            .await
            .map_err(|_| AdminError::new(AdminErrorKind::Storage))?
            .ok_or_else(invalid)?;
        let valid = api_key::matches(&record, presented)
            && api_key::state(&record, self.clock.now()) == KeyState::Active;
        if valid {
            Ok(record)
        } else {
            // A stored key's id with the wrong secret, or a revoked or expired key: counted
            // against that key (an unknown id is not, so no label comes from a caller).
            self.metrics.admin_request(&record.id, "auth_failed");
            Err(invalid())
        }
    }

    /// Audits what `caller` did.
    pub async fn audit_by(
        &self,
        caller: &Caller,
        action: &str,
        kind: ActionKind,
        target: &str,
        outcome: &str,
    ) {
        self.audit(
            Some(&caller.key.id),
            caller.source,
            action,
            kind,
            Some(target),
            outcome,
        )
        .await;
    }

    /// Appends to the audit log; a failure to do so is logged, never hidden.
    pub async fn audit(
        &self,
        key: Option<&str>,
        source: IpAddr,
        action: &str,
        kind: ActionKind,
        target: Option<&str>,
        outcome: &str,
    ) {
        let entry = NewAuditEntry {
            at: self.clock.now(),
            key: key.map(str::to_owned),
            source: source.to_string(),
            action: action.to_owned(),
            kind,
            target: target.map(str::to_owned),
            outcome: outcome.to_owned(),
        };
        if let Err(error) = self.store.append_audit(entry).await {
            tracing::error!(%error, action, "admin API: cannot append to the audit log");
        }
    }

    /// Records when and from where the key was last used (not on every request).
    async fn note_use(&self, mut key: ApiKeyRecord, source: IpAddr) -> ApiKeyRecord {
        let now = self.clock.now();
        let address = source.to_string();
        let stale = key
            .last_used_at
            .is_none_or(|at| now.saturating_sub(at) >= LAST_USED_EVERY_SECS);
        let new_address = key.last_used_from.as_deref() != Some(address.as_str());
        if new_address {
            self.audit(
                Some(&key.id),
                source,
                "key.used_from_new_address",
                ActionKind::Auth,
                Some(&key.id),
                "ok",
            )
            .await;
        }
        if stale || new_address {
            key.last_used_at = Some(now);
            key.last_used_from = Some(address);
            if let Err(error) = self.store.put_api_key(&key).await {
                tracing::warn!(key = %key.id, %error, "admin API: cannot record a key's use");
            }
        }
        key
    }
}
