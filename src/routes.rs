//! The HTTP adapter: raw bytes in, the core's verdict, one atomic record, a durable flush,
//! and the outcome as a status. The only body extractor is the raw payload stream, read
//! under a size limit and a total deadline.

use crate::activity::Answer;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use actix_http::HttpMessage as _;
use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde_json::json;

use crate::body_budget::Reservation;
use crate::client_ip::client_address;
use crate::config::Endpoint;
use crate::error::ApiError;
use crate::event::{parse_event, Mode};
use crate::metrics::LatencyClass;
use crate::reload::EndpointSlot;
use crate::signature::{HeaderLookup, Lookup, SignatureHeaders};
use crate::state::AppState;
use crate::store::{EventRecord, NewEvent, Recorded, RefusedBounds, RefusedDelivery};

/// actix's header map seen through the core's lookup trait.
struct ActixHeaders<'a>(&'a HeaderMap);

impl HeaderLookup for ActixHeaders<'_> {
    fn lookup(&self, name: &str) -> Lookup<'_> {
        let mut values = self.0.get_all(name);
        match (values.next(), values.next()) {
            (None, _) => Lookup::Missing,
            (Some(value), None) => Lookup::One(value.as_bytes()),
            (Some(_), Some(_)) => Lookup::Repeated,
        }
    }
}

/// `POST <endpoint path>`.
///
/// # Errors
/// An [`ApiError`], which actix renders as the JSON error body and its status.
pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    endpoint: web::Data<EndpointSlot>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    // Read once: a reload (SIGHUP) during this request does not change its rules.
    let endpoint = endpoint.current();
    let outcome = accept(&request, payload, &endpoint, &state).await;
    note_outcome(
        &state,
        &endpoint.name,
        outcome.as_ref().map(|(recorded, _)| *recorded),
        started,
    );
    let (recorded, id) = outcome?;
    let status = if recorded == Recorded::New {
        "accepted"
    } else {
        "duplicate"
    };
    Ok(HttpResponse::Ok().json(json!({"status": status, "id": id})))
}

/// Counts a delivery's outcome in the metrics and the activity record, and logs a refusal.
fn note_outcome(
    state: &AppState,
    endpoint: &str,
    outcome: Result<Recorded, &ApiError>,
    started: Instant,
) {
    let (label, class) = match outcome {
        Ok(Recorded::New) => ("accepted", LatencyClass::Served),
        Ok(Recorded::Duplicate) => ("duplicate", LatencyClass::Served),
        Err(error) => (
            error.code(),
            LatencyClass::of_status(error.status_code().as_u16()),
        ),
    };
    state
        .metrics
        .request(endpoint, label, class, started.elapsed().as_secs_f64());
    let answer = match outcome {
        Ok(Recorded::New) => Answer::Accepted,
        Ok(Recorded::Duplicate) => Answer::Duplicate,
        Err(_) => Answer::Refused,
    };
    state
        .metrics
        .activity
        .note(endpoint, state.clock.now(), answer);
    if let Err(error) = outcome {
        if let ApiError::Verify(verify) = error {
            state.metrics.verification_failure(endpoint, verify.code());
        }
        // The error names the fault; it never holds header values or body bytes.
        tracing::info!(endpoint = %endpoint, error = error.code(), detail = %error, "delivery refused");
    }
}

/// What the receiver knows of a delivery before it reads a body byte.
struct BeforeBody<'h> {
    /// Where the delivery comes from, for the per-source budget and refused deliveries:
    /// the client behind trusted proxies, or the peer when that cannot be read.
    source: IpAddr,
    signature: SignatureHeaders<'h>,
    /// `Content-Length`, when the request declares one.
    declared: Option<usize>,
}

/// The checks that need no body: the source against the allowlist, the signature headers
/// present and well formed, the declared length within the limit. The receiver runs them
/// before it reads the body, and the `Expect: 100-continue` gate before it tells the sender
/// to send one.
fn before_body<'h>(
    peer: Option<SocketAddr>,
    headers: &'h ActixHeaders<'h>,
    endpoint: &Endpoint,
    state: &AppState,
) -> Result<BeforeBody<'h>, ApiError> {
    let peer = peer.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |peer| peer.ip());
    let client = client_address(
        peer,
        &state.trusted_proxies,
        state.client_ip_header,
        headers
            .0
            .get_all(state.client_ip_header.name())
            .map(|v| v.as_bytes()),
    );
    if !endpoint.allow.is_empty() && !client.is_some_and(|c| endpoint.allow.contains(c)) {
        return Err(ApiError::IpNotAllowed(client));
    }
    let signature = endpoint.verifier.parse_headers(headers)?;
    let declared = declared_length(headers.0);
    if declared.is_some_and(|len| len > state.body_limit) {
        return Err(ApiError::PayloadTooLarge(state.body_limit));
    }
    Ok(BeforeBody {
        source: client.unwrap_or(peer),
        signature,
        declared,
    })
}

/// Reserves the body's bytes in the global budget: the declared length, or the limit for a
/// chunked body.
fn reserve_body(state: &AppState, before: &BeforeBody<'_>) -> Result<Reservation, ApiError> {
    let bytes = before
        .declared
        .unwrap_or(state.body_limit)
        .min(state.body_limit);
    state
        .body_budget
        .try_reserve(before.source, bytes)
        .ok_or(ApiError::Overloaded)
}

/// `Expect: 100-continue` to an endpoint's path: the checks [`before_body`] makes, and
/// whether the budget has room, before the sender is told to send its body. A refusal is answered instead of
/// `100 Continue` and counted like any other; the receiver checks again when it reads the body.
///
/// # Errors
/// The refusal, as the receiver would answer it after the body.
pub fn continue_gate(
    request: &actix_http::Request,
    endpoints: &EndpointPaths,
    state: &AppState,
) -> Result<(), ApiError> {
    // Any other path is the App's to answer (its router decodes paths; this map does not).
    let Some(slot) = endpoints.get(request.path()) else {
        return Ok(());
    };
    if request.method() != actix_web::http::Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let started = Instant::now();
    let endpoint = slot.current();
    let headers = ActixHeaders(request.headers());
    let checked = before_body(request.peer_addr(), &headers, &endpoint, state)
        .and_then(|before| reserve_body(state, &before).map(drop));
    if let Err(error) = &checked {
        note_outcome(state, &endpoint.name, Err(error), started);
    }
    checked
}

/// Endpoints by path, for the `Expect: 100-continue` gate.
pub type EndpointPaths = std::collections::HashMap<String, std::sync::Arc<EndpointSlot>>;

async fn accept(
    request: &HttpRequest,
    payload: web::Payload,
    endpoint: &Endpoint,
    state: &AppState,
) -> Result<(Recorded, String), ApiError> {
    // Before any body byte: a request that cannot verify costs neither memory nor time.
    let headers = ActixHeaders(request.headers());
    let before = before_body(request.peer_addr(), &headers, endpoint, state)?;
    // Held until the answer: the body and its stored copy live that long.
    let _reserved = reserve_body(state, &before)?;
    let source = before.source;
    let body = read_body(
        payload,
        before.declared,
        state.body_limit,
        state.body_deadline,
    )
    .await?;
    let now_ms = state.clock.now_ms();
    let now = now_ms / 1000;
    let verified = match endpoint
        .verifier
        .verify_parsed(&before.signature, &body, now)
    {
        Ok(verified) => verified,
        Err(error) => {
            let error = ApiError::Verify(error);
            keep_refused(request, endpoint, state, source, now_ms, &body, &error).await;
            return Err(error);
        }
    };
    let tolerance = match endpoint.verifier.policy() {
        crate::signature::TimestampPolicy::Enforce(tolerance) => Some(tolerance.secs()),
        crate::signature::TimestampPolicy::Ignore => None,
    };
    if let Some(skew) =
        state
            .metrics
            .verified_delivery(&endpoint.name, now, verified.timestamp, tolerance)
    {
        tracing::warn!(endpoint = %endpoint.name, skew_seconds = skew, tolerance_seconds = tolerance.unwrap_or(0),
            "the sender's clock is near the edge of the timestamp tolerance; deliveries will be refused past it");
    }
    let event = parse_event(&body, verified.id.as_deref())?;
    if let Some(event_mode) = event.livemode.map(Mode::from_livemode) {
        if event_mode != endpoint.mode {
            let error = ApiError::ModeMismatch {
                event: event_mode,
                endpoint: endpoint.mode,
            };
            keep_refused(request, endpoint, state, source, now_ms, &body, &error).await;
            return Err(error);
        }
    }
    // serde_json accepted the body, so it is UTF-8; the check costs one pass and keeps the
    // record type honest.
    let text = String::from_utf8(body).map_err(|_| ApiError::BodyRead)?;
    // The figures decide the route (type and percent) and the budget for collapse.
    let alert = crate::event::Alert::from_body_with(text.as_bytes(), &endpoint.fields);
    let routed = endpoint.route(&event.kind, &alert);
    let notifiers = routed.notifiers;
    // Inside the route's quiet hours, or for a notifier in digest mode, the job waits.
    let deferred = endpoint.deferred(&routed, now);
    // A job held for a digest keeps its event the whole retention after it is due.
    let expires_at = deferred
        .values()
        .map(|due_ms| due_ms / 1000)
        .fold(now, u64::max)
        .saturating_add(state.retention.as_secs());
    let id = event.id.as_str().to_owned();
    let budget = crate::collapse::mark_with(&endpoint.name, &alert, routed.cooldown);
    let recorded = state
        .store
        .record(NewEvent {
            record: EventRecord {
                endpoint: endpoint.name.clone(),
                id: id.clone(),
                kind: event.kind,
                livemode: event.livemode,
                received_at: now,
                body: text,
            },
            notifiers: notifiers.to_vec(),
            deferred,
            expires_at,
            budget,
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, endpoint = %endpoint.name, "store write failed");
            ApiError::Storage
        })?;
    // `record` answers once durable, for a duplicate too: a 2xx means "on disk" either way.
    if recorded == Recorded::New {
        state.wakers.wake(notifiers);
        tracing::info!(endpoint = %endpoint.name, %id, secret = %verified.secret, "event accepted");
    } else {
        tracing::info!(endpoint = %endpoint.name, %id, "duplicate acknowledged");
    }
    Ok((recorded, id))
}

/// Headers kept with a refused delivery besides the endpoint's signature header: what any
/// scheme verifies with, and what tells senders apart. Everything else (credentials a proxy
/// may add, cookies) is left out; the body length is written anew.
const KEPT_HEADERS: [&str; 7] = [
    "host",
    "content-type",
    "user-agent",
    "stripe-signature",
    "x-hub-signature-256",
    "x-slack-signature",
    "x-slack-request-timestamp",
];
const KEPT_PREFIXES: [&str; 4] = ["x-perf-", "webhook-", "svix-", "x-github-"];

fn kept_header(name: &str, endpoint: &Endpoint) -> bool {
    name.eq_ignore_ascii_case(endpoint.verifier.signature_header())
        || KEPT_HEADERS.contains(&name)
        || KEPT_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Keeps a delivery refused for its signature, timestamp or mode, as the request file
/// `verify-signature --request` reads (the body as read, with its length; a chunked body is
/// kept de-chunked), unless the endpoint says not to or a flood of refusals is under way.
/// Best effort: a failure is logged and the refusal answered as usual.
async fn keep_refused(
    request: &HttpRequest,
    endpoint: &Endpoint,
    state: &AppState,
    source: IpAddr,
    received_at_ms: u64,
    body: &[u8],
    error: &ApiError,
) {
    if !endpoint.keep_refused {
        return;
    }
    if state.refused_limiter.check().is_err() {
        state.metrics.refused_delivery(&endpoint.name, "dropped");
        return;
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.path().to_owned(), |p| p.as_str().to_owned());
    let mut raw = format!("{} {target} HTTP/1.1\r\n", request.method()).into_bytes();
    for (name, value) in request.headers() {
        if kept_header(name.as_str(), endpoint) {
            raw.extend_from_slice(name.as_str().as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(value.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
    }
    raw.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    raw.extend_from_slice(body);
    let refused = RefusedDelivery {
        id: String::new(),
        endpoint: endpoint.name.clone(),
        received_at_ms,
        source: source.to_string(),
        reason: error.code().to_owned(),
        message: error.to_string(),
        request: raw,
    };
    match state
        .store
        .keep_refused(refused, RefusedBounds::default())
        .await
    {
        Ok(_) => state.metrics.refused_delivery(&endpoint.name, "kept"),
        Err(failure) => {
            state.metrics.refused_delivery(&endpoint.name, "dropped");
            tracing::warn!(endpoint = %endpoint.name, error = %failure, "cannot keep a refused delivery");
        }
    }
}

/// Reads the raw body: refused early by `Content-Length`, cut off at the limit, and under
/// one deadline for the whole read (actix's request timeout covers only the head, so a body
/// dripped a byte at a time would otherwise hold the connection).
async fn read_body(
    mut payload: web::Payload,
    declared: Option<usize>,
    limit: usize,
    deadline: Duration,
) -> Result<Vec<u8>, ApiError> {
    let read = async {
        let mut body = Vec::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| ApiError::BodyRead)?;
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| ApiError::BodyTimeout(deadline.as_millis()))?
}

/// The `Content-Length` a request declares, when it declares a number.
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store takes durable writes (recovering from an earlier failure if it
/// can) and every outbox worker is looping and not backing off from a store failure.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store_ok = state.store.check().await.is_ok();
    let worker_ok = state.outbox.is_ready(state.clock.now_ms(), 10_000);
    let body = json!({"store": store_ok, "outbox_worker": worker_ok});
    if store_ok && worker_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // A handful of keys: read on each scrape, so the gauge is never stale.
    if let Ok(keys) = state.store.api_keys().await {
        let now = state.clock.now();
        let due = keys
            .iter()
            .filter(|key| crate::api_key::due_for_rotation(key, now))
            .count();
        state.metrics.keys_due_for_rotation(due);
    }
    match state.metrics.render(state.store.counts()) {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// Anything else: a JSON 404.
///
/// # Errors
/// Always [`ApiError::NotFound`].
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// A non-POST method on an endpoint path.
///
/// # Errors
/// Always [`ApiError::MethodNotAllowed`].
pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
