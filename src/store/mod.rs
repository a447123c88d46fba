//! The storage port: what the receiver, the outbox, retention and the operator surface ask
//! of storage, as one async trait with one opaque error. Implementations: [`sled`] (the
//! embedded default, one durable write per accepted event) and [`memory`] (tests). One
//! contract suite (`tests/it/store_contract.rs`) runs against every implementation.
//!
//! The promises every implementation keeps:
//! - [`Store::record`] is insert-if-absent on (endpoint, event id), and stores the event,
//!   one job per notifier and the expiry together or not at all. It returns only once that
//!   is durable, for a duplicate too (its first copy may still be on its way to disk), so a
//!   2xx means "on disk" either way and the caller never flushes on its own.
//! - A job is handed out by [`Store::claim`] only once its event is durable, and a claimed
//!   job is invisible to every other claimer until it is finished or its lease expires.
//! - [`Store::counts`] is O(1): metrics read it on every scrape.

pub(crate) mod fault;
pub mod memory;
pub mod postgres;
pub mod sled;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A stored event: what was received and when. The body is kept byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The endpoint that received it.
    pub endpoint: String,
    /// The event id (the dedupe key within the endpoint).
    pub id: String,
    /// The event type.
    pub kind: String,
    /// `livemode`, when the event says.
    pub livemode: Option<bool>,
    /// Unix seconds when perfhook accepted it.
    pub received_at: u64,
    /// The verified body (valid UTF-8 JSON: it parsed), verbatim.
    pub body: String,
}

/// What [`Store::record`] is asked to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event.
    pub record: EventRecord,
    /// One notification job per name, due at once unless deferred.
    pub notifiers: Vec<String>,
    /// Notifiers whose job waits for a digest (quiet hours, or the notifier's digest
    /// schedule): the notifier's name → when it is due, Unix milliseconds.
    pub deferred: std::collections::BTreeMap<String, u64>,
    /// Unix seconds when retention may remove the event and its dedupe key.
    pub expires_at: u64,
    /// The budget the alert is about, for threshold collapse ([`crate::collapse`]).
    pub budget: Option<BudgetMark>,
}

/// Which budget and billing period an alert is about, and what it says of it: the store
/// keeps, per budget, the thresholds already notified, in the same write as the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetMark {
    /// SHA-256 (hex) of the endpoint, organisation, project, budget id and period: the
    /// store keeps no name.
    pub budget: String,
    /// The threshold this alert crossed, percent.
    pub threshold: Option<u64>,
    /// Usage now, percent: thresholds above it are armed again.
    pub usage: Option<u64>,
    /// The cooldown of the route that chose the notifiers, when it has one.
    pub cooldown: Option<CooldownMark>,
}

/// A route's cooldown for one project: at most one notification through it per span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CooldownMark {
    /// SHA-256 (hex) of the endpoint, organisation, project and route.
    pub key: String,
    /// The span, seconds.
    pub secs: u64,
}

/// Applies a route's cooldown to its project's state: suppressed (the reason returned)
/// when the project was notified through the route less than `secs` before `received_at`;
/// else the notification is noted.
pub(crate) fn apply_cooldown(
    state: &mut BudgetState,
    cooldown: &CooldownMark,
    received_at: u64,
) -> Option<String> {
    match state.last_notified_at {
        Some(last) if received_at >= last && received_at - last < cooldown.secs => Some(format!(
            "suppressed: cooldown: this project was notified through this route at {}; the route's cooldown is {} s",
            crate::notify::rfc3339(last),
            cooldown.secs
        )),
        _ => {
            state.last_notified_at = Some(received_at);
            None
        }
    }
}

/// Usage figures kept per budget, the newest (for the burn-rate projection).
pub(crate) const USAGE_KEPT: usize = 100;

/// What the store keeps per budget mark, written with the event that changes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BudgetState {
    /// Threshold percent → the event that notified it.
    #[serde(default)]
    pub notified: std::collections::BTreeMap<u64, String>,
    /// (received at, usage percent), oldest first, at most [`USAGE_KEPT`].
    #[serde(default)]
    pub usage: Vec<(u64, u64)>,
    /// For a cooldown's state: when its project was last notified through its route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notified_at: Option<u64>,
}

/// Applies `mark`, received at `received_at`, to its budget's state: its usage joins the
/// figures; thresholds above the usage re-arm; a threshold already notified means this
/// crossing is suppressed, and the event that notified it is returned.
pub(crate) fn apply_crossing(
    state: &mut BudgetState,
    mark: &BudgetMark,
    event_id: &str,
    received_at: u64,
) -> Option<String> {
    if let Some(usage) = mark.usage {
        state.notified.retain(|threshold, _| *threshold <= usage);
        let at = state
            .usage
            .partition_point(|(time, _)| *time <= received_at);
        state.usage.insert(at, (received_at, usage));
        if state.usage.len() > USAGE_KEPT {
            state.usage.remove(0);
        }
    }
    let threshold = mark.threshold?;
    match state.notified.get(&threshold) {
        Some(first) => Some(first.clone()),
        None => {
            state.notified.insert(threshold, event_id.to_owned());
            None
        }
    }
}

/// Why a suppressed job was not sent.
pub(crate) fn suppressed_reason(threshold: Option<u64>, first: &str) -> String {
    format!(
        "suppressed: this budget's {}% threshold in this period was already notified by event {first}",
        threshold.unwrap_or_default()
    )
}

/// Whether [`Store::record`] stored a new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time this id was seen: stored with its jobs.
    New,
    /// Already stored: nothing written.
    Duplicate,
}

/// Where one notification of one event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// Delivered.
    Delivered,
    /// Gave up: out of attempts, a permanent failure, or no such notifier.
    Dead,
    /// Never sent: the same threshold of the same budget and period was already notified
    /// (threshold collapse); `last_error` names the event that was.
    Suppressed,
}

/// One notification of one event by one notifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The endpoint of the event.
    pub endpoint: String,
    /// The event id.
    pub event_id: String,
    /// The notifier's name.
    pub notifier: String,
    /// Where it stands.
    pub status: JobStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last failure, without secrets.
    pub last_error: Option<String>,
    /// When it is next due (pending) or was finished, Unix milliseconds.
    pub due_ms: u64,
    /// Whether it goes out in a digest: with the notifier's other digest jobs due at the
    /// same time, as one message.
    #[serde(default)]
    pub digest: bool,
}

impl NewEvent {
    /// When `notifier`'s job is first due (Unix milliseconds) and whether it waits for a
    /// digest.
    #[must_use]
    pub fn first_due(&self, notifier: &str) -> (u64, bool) {
        match self.deferred.get(notifier) {
            Some(due) => (*due, true),
            None => (self.record.received_at.saturating_mul(1000), false),
        }
    }
}

/// A job handed to one claimer, with its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// Names this claim when it is finished.
    pub token: JobToken,
    /// The job as it was when claimed.
    pub job: Job,
    /// The event to notify.
    pub event: EventRecord,
}

/// Names one claim of one job. Finishing with a token whose lease has expired (and which
/// may have been claimed again since) fails with a lost-lease error and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobToken {
    pub(crate) key: Vec<u8>,
    pub(crate) lease: u64,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered: the job is done.
    Delivered,
    /// Failed; try again at `at_ms`.
    Retry {
        /// When, in Unix milliseconds.
        at_ms: u64,
        /// Why it failed.
        error: String,
    },
    /// Failed for good.
    Dead {
        /// Why.
        reason: String,
    },
}

/// One finished claim: every finish counts one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The claim.
    pub token: JobToken,
    /// What happened.
    pub outcome: Outcome,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

/// What [`Store::claim`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// Jobs now leased to the caller, earliest due first.
    pub jobs: Vec<ClaimedJob>,
    /// When the next job that was not handed out becomes claimable (its due time, or the
    /// end of its lease), so the caller knows how long it may sleep.
    pub next_due_ms: Option<u64>,
}

/// An operator API key as stored: its visible id and what it may do, never the key itself,
/// only the key's SHA-256 (see [`crate::api_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The visible start of the key (`phk_live_` and 8 more characters), its identifier.
    pub id: String,
    /// What the operator called it.
    pub name: String,
    /// `live` or `test`: a test key sees only test-mode endpoints.
    pub mode: crate::event::Mode,
    /// Scope names (`events:read`, ...).
    pub scopes: Vec<String>,
    /// SHA-256 of the whole key, hex.
    pub sha256: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds after which the key is refused, if it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Unix seconds when it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
    /// Unix seconds of its last accepted use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
    /// The source address of its last accepted use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_from: Option<String>,
    /// Requests a minute this key may make.
    pub rate_limit_per_minute: u32,
    /// The id of the key that replaced it (`keys rotate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// A delivery refused for its signature, timestamp or mode, kept so an operator can see why,
/// export it for `verify-signature --request`, and re-verify it after a fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDelivery {
    /// `endpoint.received_ms.sequence`: unique, and sorted by time within an endpoint.
    pub id: String,
    /// The endpoint it was sent to.
    pub endpoint: String,
    /// When it arrived, Unix milliseconds.
    pub received_at_ms: u64,
    /// The client address.
    pub source: String,
    /// The refusal's error type (`invalid_signature`, `timestamp_too_old`, ...).
    pub reason: String,
    /// The refusal's message.
    pub message: String,
    /// The request as received: request line, headers, blank line, body (the file
    /// `verify-signature --request` reads).
    #[serde(skip)]
    pub request: Vec<u8>,
}

/// How many refused deliveries an endpoint keeps: the newest, within both bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedBounds {
    /// At most this many.
    pub max_count: usize,
    /// At most this many request bytes.
    pub max_bytes: u64,
}

impl Default for RefusedBounds {
    fn default() -> Self {
        Self {
            max_count: 1_000,
            max_bytes: 10 << 20,
        }
    }
}

/// The id of a refused delivery.
#[must_use]
pub fn refused_id(endpoint: &str, received_at_ms: u64, sequence: u64) -> String {
    format!("{endpoint}.{received_at_ms}.{sequence}")
}

/// The parts of a refused delivery's id, or `None` for a string that is not one (only the
/// canonical spelling is: no sign, no leading zeros).
#[must_use]
pub fn parse_refused_id(id: &str) -> Option<(&str, u64, u64)> {
    let (endpoint, rest) = id.split_once('.')?;
    let (ms, sequence) = rest.split_once('.')?;
    let parts = (endpoint, ms.parse().ok()?, sequence.parse().ok()?);
    (refused_id(parts.0, parts.1, parts.2) == id).then_some(parts)
}

/// Where a refused delivery sorts: by arrival, then endpoint, then sequence, as numbers.
#[must_use]
pub fn refused_order(refused: &RefusedDelivery) -> (u64, String, u64) {
    let sequence = parse_refused_id(&refused.id).map_or(0, |(_, _, sequence)| sequence);
    (refused.received_at_ms, refused.endpoint.clone(), sequence)
}

/// An event with the state of each of its notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDetail {
    /// The event.
    pub record: EventRecord,
    /// When retention removes it, Unix seconds.
    pub expires_at: u64,
    /// One per notifier, by notifier name.
    pub notifications: Vec<Job>,
}

/// Which events [`Store::list`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// Only this event type.
    pub kind: Option<String>,
    /// Received at or after, Unix seconds.
    pub since: Option<u64>,
    /// Received before, Unix seconds.
    pub until: Option<u64>,
    /// Where the previous page ended ([`EventPage::next_cursor`]).
    pub cursor: Option<String>,
    /// At most this many (at least 1 is returned when there are any).
    pub limit: usize,
}

/// One event in a listing (without its body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventSummary {
    /// The endpoint.
    pub endpoint: String,
    /// The event id.
    pub id: String,
    /// The event type.
    pub kind: String,
    /// `livemode`, when the event says.
    pub livemode: Option<bool>,
    /// Unix seconds when it was accepted.
    pub received_at: u64,
}

/// A page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPage {
    /// The events, newest first.
    pub events: Vec<EventSummary>,
    /// Pass back as [`EventQuery::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// What the store holds, kept as it changes (never counted by a scan).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events kept (each is also a dedupe key).
    pub events: u64,
    /// Jobs waiting for delivery.
    pub outbox: u64,
    /// Jobs given up on.
    pub dead: u64,
}

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The storage cannot take or return data now (I/O error, disk full, locked); the
    /// store recovers by itself once the cause is gone.
    Unavailable,
    /// Stored data could not be decoded.
    Corrupt,
    /// A finish came after the claim's lease expired.
    LeaseLost,
    /// The caller asked for something malformed (a cursor that is not one of ours).
    BadRequest,
}

/// A storage failure: the receiver answers 503 so the sender retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

impl StoreError {
    /// A failure of `kind`, described for an operator (never holding body bytes).
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Storage is unavailable now.
    pub fn unavailable(message: impl fmt::Display) -> Self {
        Self::new(
            StoreErrorKind::Unavailable,
            format!("storage unavailable: {message}"),
        )
    }

    /// Stored data is unreadable.
    pub fn corrupt(message: impl fmt::Display) -> Self {
        Self::new(
            StoreErrorKind::Corrupt,
            format!("stored data is unreadable: {message}"),
        )
    }

    /// A stored JSON value that does not decode. serde's message may quote the value (an
    /// event's type comes from its body), so only the category and position are kept.
    pub fn corrupt_json(error: &serde_json::Error) -> Self {
        Self::corrupt(format!(
            "a stored value does not decode ({:?} at line {} column {})",
            error.classify(),
            error.line(),
            error.column()
        ))
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

/// The storage port. Time is always passed in; implementations never read a clock.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Stores the event with its jobs and expiry unless (endpoint, id) is already stored;
    /// returns once the answer is durable.
    ///
    /// # Errors
    /// A [`StoreError`]; nothing of the event is then acknowledged as stored.
    async fn record(&self, event: NewEvent) -> Result<Recorded, StoreError>;

    /// Leases up to `limit` of `notifier`'s jobs due at or before `now_ms`, with their
    /// events, for `lease`: earliest due first, ties in the order the jobs were made. A
    /// first attempt is due when its event was received; the sled store hands first
    /// attempts out in the order it accepted their events, which is due order whenever
    /// events are accepted in the order they were received.
    ///
    /// # Errors
    /// A [`StoreError`]; nothing is leased then.
    async fn claim(
        &self,
        notifier: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Claimed, StoreError>;

    /// Records what became of claimed jobs. Each is applied on its own: one lost lease does
    /// not stop the others.
    ///
    /// # Errors
    /// A [`StoreError`] (the first one met); a job whose finish failed is claimable again
    /// once its lease expires.
    async fn finish(&self, finished: Vec<Finished>) -> Result<(), StoreError>;

    /// Marks dead every pending job of a notifier not in `configured` (one removed from the
    /// config since its jobs were stored), so none waits forever. Returns how many.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn bury_unconfigured(&self, configured: &[String], at_ms: u64)
        -> Result<u64, StoreError>;

    /// Removes up to `batch` events whose retention ended at or before `now`, with their
    /// dedupe keys and notification history. Returns how many.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn purge_expired(&self, now: u64, batch: usize) -> Result<usize, StoreError>;

    /// Queues `notifiers`' jobs for a stored event again, due at `now_ms` with no attempts
    /// (re-notify; retry of a dead job). A job already pending is left as it is. `None` when
    /// there is no such event; else how many were queued.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn requeue(
        &self,
        endpoint: &str,
        id: &str,
        notifiers: &[String],
        now_ms: u64,
    ) -> Result<Option<usize>, StoreError>;

    /// Removes one event with its jobs and dedupe key (a later delivery of the same id is
    /// new again); whether it was there.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn delete_event(&self, endpoint: &str, id: &str) -> Result<bool, StoreError>;

    /// Jobs in `status` (pending or dead), of one notifier or all, at most `limit`, in key
    /// order.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn jobs(
        &self,
        status: JobStatus,
        notifier: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError>;

    /// One event with its notification history.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn event(&self, endpoint: &str, id: &str) -> Result<Option<EventDetail>, StoreError>;

    /// Events by endpoint, type and time range, newest first, a page at a time.
    ///
    /// # Errors
    /// A [`StoreError`]; [`StoreErrorKind::BadRequest`] for a cursor that is not ours.
    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError>;

    /// The usage figures recorded for a budget mark ([`BudgetMark::budget`]): (received at,
    /// usage percent), oldest first, the newest 100 at most.
    ///
    /// # Errors
    /// When the store cannot be read.
    async fn budget_usage(&self, budget: &str) -> Result<Vec<(u64, u64)>, StoreError>;

    /// Stores an API key's record, new or changed (revoked, rotated, used), durably.
    ///
    /// # Errors
    /// A [`StoreError`]; the record is then as it was.
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;

    /// One API key's record by its id.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Every API key's record, in id order.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Keeps a refused delivery (not made durable on its own: it rides on the next durable
    /// write), then drops the endpoint's oldest ones beyond `bounds`. Returns its id.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn keep_refused(
        &self,
        refused: RefusedDelivery,
        bounds: RefusedBounds,
    ) -> Result<String, StoreError>;

    /// Refused deliveries, newest first, of one endpoint or all, at most `limit`.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn refused_list(
        &self,
        endpoint: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RefusedDelivery>, StoreError>;

    /// One refused delivery.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn refused(&self, id: &str) -> Result<Option<RefusedDelivery>, StoreError>;

    /// Forgets a refused delivery; whether it was there.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn remove_refused(&self, id: &str) -> Result<bool, StoreError>;

    /// Forgets refused deliveries that arrived before `before_ms`; how many.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn purge_refused(&self, before_ms: u64) -> Result<usize, StoreError>;

    /// Appends an audit entry chained to the last one, durably; returns it as stored.
    ///
    /// # Errors
    /// A [`StoreError`]; nothing is appended then.
    async fn append_audit(
        &self,
        entry: crate::audit::NewAuditEntry,
    ) -> Result<crate::audit::AuditEntry, StoreError>;

    /// The whole audit log in storage order, each entry as found (for listing and
    /// [`crate::audit::verify`]).
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn audit_log(&self) -> Result<Vec<crate::audit::StoredEntry>, StoreError>;

    /// Removes audit entries recorded before `before` (Unix seconds), oldest first, keeping
    /// the last removed entry's (sequence, hash) as the anchor the rest chains from. Returns
    /// how many.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn purge_audit(&self, before: u64) -> Result<usize, StoreError>;

    /// The (sequence, hash) the oldest kept audit entry follows: `(0, GENESIS)` until
    /// retention has removed any.
    ///
    /// # Errors
    /// A [`StoreError`].
    async fn audit_anchor(&self) -> Result<(u64, String), StoreError>;

    /// What the store holds, in O(1).
    fn counts(&self) -> Counts;

    /// Proves the store takes durable writes now, recovering from an earlier failure if the
    /// cause is gone (for `/readyz` and the outbox's back-off).
    ///
    /// # Errors
    /// A [`StoreError`] while it does not.
    async fn check(&self) -> Result<(), StoreError>;

    /// Bytes on disk, when the store has a disk.
    fn disk_bytes(&self) -> Option<u64> {
        None
    }

    /// Makes everything durable and stops background work; the store answers errors after.
    ///
    /// # Errors
    /// A [`StoreError`] when the final flush fails.
    async fn close(&self) -> Result<(), StoreError>;
}

/// Why a job of an unconfigured notifier is dead.
pub(crate) fn unconfigured_reason(notifier: &str) -> String {
    format!("no notifier named {notifier:?} is configured")
}

/// A listing cursor: the position after which the next page starts. Opaque to callers.
pub(crate) fn encode_cursor(position: &[u8]) -> String {
    hex::encode(position)
}

/// Decodes a cursor made by [`encode_cursor`].
pub(crate) fn decode_cursor(cursor: &str) -> Result<Vec<u8>, StoreError> {
    hex::decode(cursor).map_err(|_| {
        StoreError::new(
            StoreErrorKind::BadRequest,
            "the cursor is not one this store gave out",
        )
    })
}

/// The key that orders events newest first in a listing: received time, then endpoint and
/// id, so equal times still have one order. Shared by the implementations so cursors mean
/// the same everywhere.
pub(crate) fn listing_position(received_at: u64, endpoint: &str, id: &str) -> Vec<u8> {
    let mut position = Vec::with_capacity(8 + endpoint.len() + 1 + id.len());
    position.extend_from_slice(&received_at.to_be_bytes());
    position.extend_from_slice(&event_key(endpoint, id));
    position
}

/// `endpoint \0 id`: endpoint names cannot contain NUL (config check), so it is unambiguous.
pub(crate) fn event_key(endpoint: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(endpoint.len() + 1 + id.len());
    key.extend_from_slice(endpoint.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// An accepted alert `id` on endpoint `perf`, received at `received_at`, with one job for
/// `notifier` due at once and kept for ever: the event the store's and the outbox's unit
/// tests start from.
#[cfg(test)]
pub(crate) fn test_event(id: &str, notifier: &str, received_at: u64) -> NewEvent {
    NewEvent {
        record: EventRecord {
            endpoint: "perf".into(),
            id: id.into(),
            kind: "usage.threshold_reached".into(),
            livemode: Some(true),
            received_at,
            body: "{}".into(),
        },
        notifiers: vec![notifier.into()],
        deferred: std::collections::BTreeMap::new(),
        expires_at: u64::MAX,
        budget: None,
    }
}
