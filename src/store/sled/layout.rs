//! How the sled store lays data out in its one tree: a prefix byte per kind of entry, keys
//! that sort the way they are read, and values that keep the body verbatim.
//!
//! | key | value |
//! |---|---|
//! | `z` endpoint NUL id | event: meta length (u32 BE), meta JSON, body bytes as received |
//! | `j` endpoint NUL id NUL notifier | one notification: [`JobValue`] JSON |
//! | `q` notifier NUL due_ms seq | the `j` key of a pending job (the outbox, in due order) |
//! | `n` notifier NUL arrival (u64 BE) | a first attempt, in the order events were accepted: [`Arrival`] |
//! | `d` notifier NUL arrival (u64 BE) | one move of the cursor that ended past this arrival: the first arrival it delivered and the earliest time (Unix ms, u64 BE each), then each arrival's time after that (ms, u32 BE; `u32::MAX` when the move did not deliver it) |
//! | `x` expires_at endpoint NUL id | empty (retention reads from the front) |
//! | `l` received_at endpoint NUL id | the event type (the listing, read from the back) |
//! | `r` endpoint NUL received_ms sequence | a refused delivery: meta length (u32 BE), meta JSON, the request as received |
//! | `a` seq (u64 BE) | an audit entry's JSON, chained by hash to the one before |
//! | `k` key id | an operator API key's [`crate::store::ApiKeyRecord`] JSON (its hash, never the key) |
//! | `c` budget mark (SHA-256 hex) | [`crate::store::BudgetState`] JSON: thresholds notified (threshold collapse) and the newest usage figures (burn-rate projection) |
//! | `m` `state` | [`MetaState`] JSON: counts, last batch, last sequence number |
//!
//! Numbers in keys are big-endian so byte order is numeric order.
//!
//! # Arrivals: a first attempt costs one small entry
//! A job due at once (not deferred to a digest, not suppressed) is not written as a `j`
//! entry with a `q` entry. It is an arrival: one `n` entry in its notifier's arrival log,
//! numbered without gaps per notifier, and named in its event's meta. Each notifier has a
//! cursor (in `m state`): every arrival below it is finished. A first attempt that is
//! delivered in order moves the cursor and writes nothing of its own; one `d` entry per
//! move keeps when. Only what is not the common case becomes a `j` entry: a retry or a
//! dead job (with a `q` entry while pending), a delivery finished out of order (above the
//! cursor), a re-notified event. So an arrival's status is its `j` entry when it has one,
//! else pending at or above the cursor, else delivered at the first `d` entry at or after
//! it.
//! The event's prefix sorts last; see [`EVENT`].

use serde::{Deserialize, Serialize};

use crate::store::{Counts, EventRecord, Job, JobStatus, StoreError};

/// Sorts after every other prefix: sled applies a batch in key order, and a batch torn by an
/// I/O error (the one case in which sled may recover part of one) then holds jobs without
/// their event, never an event without its jobs.
pub(super) const EVENT: u8 = b'z';
pub(super) const JOB: u8 = b'j';
pub(super) const QUEUE: u8 = b'q';
pub(super) const ARRIVAL: u8 = b'n';
pub(super) const DELIVERED: u8 = b'd';
pub(super) const EXPIRY: u8 = b'x';
pub(super) const LISTING: u8 = b'l';
pub(super) const API_KEY: u8 = b'k';
pub(super) const REFUSED: u8 = b'r';
pub(super) const AUDIT: u8 = b'a';
pub(super) const CROSSING: u8 = b'c';
pub(super) const META_STATE: &[u8] = b"mstate";
pub(super) const META_PROBE: &[u8] = b"mprobe";
/// The (sequence, hash) of the last audit entry retention removed.
pub(super) const META_AUDIT_ANCHOR: &[u8] = b"maudit_anchor";

/// `prefix` then `parts`, concatenated.
pub(super) fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(prefix);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

/// The `q` key prefix of one notifier's queue.
pub(super) fn queue_prefix(notifier: &str) -> Vec<u8> {
    key(QUEUE, &[notifier.as_bytes(), &[0]])
}

/// The `q` key of a job due at `due_ms`.
pub(super) fn queue_key(notifier: &str, due_ms: u64, seq: u64) -> Vec<u8> {
    key(
        QUEUE,
        &[
            notifier.as_bytes(),
            &[0],
            &due_ms.to_be_bytes(),
            &seq.to_be_bytes(),
        ],
    )
}

/// The due time in a `q` key.
pub(super) fn queue_due(queue_key: &[u8], prefix_len: usize) -> u64 {
    queue_key
        .get(prefix_len..prefix_len + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(u64::MAX, u64::from_be_bytes)
}

/// The key prefix (`n` or `d`) of one notifier's entries of `kind`.
pub(super) fn notifier_prefix(kind: u8, notifier: &str) -> Vec<u8> {
    key(kind, &[notifier.as_bytes(), &[0]])
}

/// The key just after every one of a notifier's entries of `kind`.
pub(super) fn notifier_end(kind: u8, notifier: &str) -> Vec<u8> {
    key(kind, &[notifier.as_bytes(), &[1]])
}

/// The `n` or `d` key of one arrival of a notifier.
pub(super) fn arrival_key(kind: u8, notifier: &str, arrival: u64) -> Vec<u8> {
    key(kind, &[notifier.as_bytes(), &[0], &arrival.to_be_bytes()])
}

/// The notifier and arrival number of an `n` or `d` key.
pub(super) fn parse_arrival_key(arrival_key: &[u8]) -> Option<(&str, u64)> {
    let rest = arrival_key.get(1..)?;
    let split = rest.len().checked_sub(9)?;
    let (notifier, number) = rest.split_at(split);
    let (nul, number) = number.split_first()?;
    if *nul != 0 {
        return None;
    }
    let notifier = std::str::from_utf8(notifier).ok()?;
    Some((
        notifier,
        u64::from_be_bytes(<[u8; 8]>::try_from(number).ok()?),
    ))
}

/// One arrival's value: what the claim needs without reading the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Arrival {
    /// The batch that wrote it: claimable once that batch is durable.
    pub batch: u64,
    /// Its place among the notifier's jobs due at the same time (shared with `q` entries).
    pub seq: u64,
    /// When it is due: when its event was received, Unix ms.
    pub due_ms: u64,
    /// Its event's key (`endpoint NUL id`).
    pub event_key: Vec<u8>,
}

impl Arrival {
    pub fn encode(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(24 + self.event_key.len());
        for number in [self.batch, self.seq, self.due_ms] {
            value.extend_from_slice(&number.to_be_bytes());
        }
        value.extend_from_slice(&self.event_key);
        value
    }

    pub fn decode(value: &[u8]) -> Result<Self, StoreError> {
        let number = |at: usize| {
            be_u64(value, at).ok_or_else(|| StoreError::corrupt("an arrival entry is truncated"))
        };
        Ok(Self {
            batch: number(0)?,
            seq: number(8)?,
            due_ms: number(16)?,
            event_key: value.get(24..).unwrap_or_default().to_vec(),
        })
    }

    /// Its first attempt as a job, for `notifier`.
    pub fn job(&self, notifier: &str) -> Result<Job, StoreError> {
        let (endpoint, id) = split_event_key(&self.event_key)?;
        Ok(first_attempt(endpoint, id, notifier, self.due_ms))
    }
}

/// A first attempt as a job: pending, not attempted yet, due when its event was received.
pub(super) fn first_attempt(endpoint: &str, id: &str, notifier: &str, due_ms: u64) -> Job {
    Job {
        endpoint: endpoint.to_owned(),
        event_id: id.to_owned(),
        notifier: notifier.to_owned(),
        status: JobStatus::Pending,
        attempts: 0,
        last_error: None,
        due_ms,
        digest: false,
    }
}

/// The big-endian u64 at `at`, if the value is long enough.
fn be_u64(value: &[u8], at: usize) -> Option<u64> {
    value
        .get(at..at.checked_add(8)?)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}

/// The `d` value of one cursor move that passed deliveries (`delivered_at`: arrival number →
/// its time): the first delivered arrival and the earliest time (u64 BE each), then for each
/// arrival from that one up to the cursor its time after the earliest in ms (u32 BE;
/// `u32::MAX` for one this move did not deliver). `None` without deliveries.
pub(super) fn encode_delivered(
    delivered_at: &std::collections::BTreeMap<u64, u64>,
    cursor: u64,
) -> Option<Vec<u8>> {
    let first = *delivered_at.keys().next()?;
    let earliest = delivered_at.values().copied().min()?;
    let count = usize::try_from(cursor.saturating_sub(first)).ok()?;
    let mut value = Vec::with_capacity(16 + 4 * count);
    value.extend_from_slice(&first.to_be_bytes());
    value.extend_from_slice(&earliest.to_be_bytes());
    for number in first..cursor {
        let after = delivered_at.get(&number).map_or(u32::MAX, |at| {
            u32::try_from(at - earliest)
                .unwrap_or(u32::MAX - 1)
                .min(u32::MAX - 1)
        });
        value.extend_from_slice(&after.to_be_bytes());
    }
    Some(value)
}

/// When `arrival` was delivered, from a `d` value [`encode_delivered`] wrote: `None` when
/// the move did not deliver it or the value is damaged.
pub(super) fn delivered_time(value: &[u8], arrival: u64) -> Option<u64> {
    let (first, earliest) = (be_u64(value, 0)?, be_u64(value, 8)?);
    let index = usize::try_from(arrival.checked_sub(first)?).ok()?;
    let at = index.checked_mul(4)?.checked_add(16)?;
    let after = value
        .get(at..at.checked_add(4)?)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)?;
    (after != u32::MAX).then(|| earliest.saturating_add(u64::from(after)))
}

/// The `j` key of one notifier's job for an event key.
pub(super) fn job_key(event_key: &[u8], notifier: &str) -> Vec<u8> {
    key(JOB, &[event_key, &[0], notifier.as_bytes()])
}

/// What an event's value holds besides the body and what its key says.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EventMeta {
    pub kind: String,
    pub livemode: Option<bool>,
    pub received_at: u64,
    pub expires_at: u64,
    /// The event's arrivals: (notifier, arrival number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrivals: Vec<(String, u64)>,
}

/// Encodes an event: the body is copied once, never escaped.
pub(super) fn encode_event(
    record: &EventRecord,
    expires_at: u64,
    arrivals: Vec<(String, u64)>,
) -> Result<Vec<u8>, StoreError> {
    let meta = serde_json::to_vec(&EventMeta {
        kind: record.kind.clone(),
        livemode: record.livemode,
        received_at: record.received_at,
        expires_at,
        arrivals,
    })
    .map_err(|e| StoreError::corrupt_json(&e))?;
    let meta_len = u32::try_from(meta.len()).map_err(StoreError::corrupt)?;
    let mut value = Vec::with_capacity(4 + meta.len() + record.body.len());
    value.extend_from_slice(&meta_len.to_be_bytes());
    value.extend_from_slice(&meta);
    value.extend_from_slice(record.body.as_bytes());
    Ok(value)
}

/// Decodes an event's meta without its body.
pub(super) fn decode_event_meta(value: &[u8]) -> Result<(EventMeta, &[u8]), StoreError> {
    let corrupt = || StoreError::corrupt("an event record is truncated");
    let len = value
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(corrupt)?;
    let end = usize::try_from(len)
        .map_err(StoreError::corrupt)?
        .saturating_add(4);
    let meta = value.get(4..end).ok_or_else(corrupt)?;
    let body = value.get(end..).ok_or_else(corrupt)?;
    Ok((
        serde_json::from_slice(meta).map_err(|e| StoreError::corrupt_json(&e))?,
        body,
    ))
}

/// Decodes an event stored under `endpoint`/`id`.
pub(super) fn decode_event(
    endpoint: &str,
    id: &str,
    value: &[u8],
) -> Result<(EventRecord, u64), StoreError> {
    let (meta, body) = decode_event_meta(value)?;
    let body = String::from_utf8(body.to_vec())
        .map_err(|_| StoreError::corrupt("an event body is not UTF-8"))?;
    Ok((
        EventRecord {
            endpoint: endpoint.to_owned(),
            id: id.to_owned(),
            kind: meta.kind,
            livemode: meta.livemode,
            received_at: meta.received_at,
            body,
        },
        meta.expires_at,
    ))
}

/// Splits an event key (`endpoint NUL id`, without the prefix) into its parts.
pub(super) fn split_event_key(event_key: &[u8]) -> Result<(&str, &str), StoreError> {
    let corrupt = || StoreError::corrupt("an event key is malformed");
    let nul = event_key.iter().position(|b| *b == 0).ok_or_else(corrupt)?;
    let endpoint = event_key.get(..nul).ok_or_else(corrupt)?;
    let id = event_key.get(nul + 1..).ok_or_else(corrupt)?;
    Ok((
        std::str::from_utf8(endpoint).map_err(|_| corrupt())?,
        std::str::from_utf8(id).map_err(|_| corrupt())?,
    ))
}

/// One notification as stored: the job, the batch that created it (claimable only once
/// that batch is durable) and its queue sequence number while pending.
#[derive(Debug, Clone)]
pub(super) struct JobValue {
    pub job: Job,
    pub batch: u64,
    pub seq: u64,
}

/// [`JobValue`] on disk: one flat JSON object. Spelled out rather than `#[serde(flatten)]`,
/// which buffers numbers through `deserialize_any` and so cannot read them back under
/// serde_json's `arbitrary_precision`.
#[derive(Serialize, Deserialize)]
struct JobWire<S> {
    endpoint: S,
    event_id: S,
    notifier: S,
    status: JobStatus,
    attempts: u32,
    last_error: Option<S>,
    due_ms: u64,
    /// Absent in jobs stored before digests existed.
    #[serde(default)]
    digest: bool,
    batch: u64,
    seq: u64,
}

impl JobValue {
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let job = &self.job;
        serde_json::to_vec(&JobWire {
            endpoint: job.endpoint.as_str(),
            event_id: job.event_id.as_str(),
            notifier: job.notifier.as_str(),
            status: job.status,
            attempts: job.attempts,
            last_error: job.last_error.as_deref(),
            due_ms: job.due_ms,
            digest: job.digest,
            batch: self.batch,
            seq: self.seq,
        })
        .map_err(|e| StoreError::corrupt_json(&e))
    }

    pub fn decode(value: &[u8]) -> Result<Self, StoreError> {
        let wire: JobWire<String> =
            serde_json::from_slice(value).map_err(|e| StoreError::corrupt_json(&e))?;
        Ok(Self {
            job: Job {
                endpoint: wire.endpoint,
                event_id: wire.event_id,
                notifier: wire.notifier,
                status: wire.status,
                attempts: wire.attempts,
                last_error: wire.last_error,
                due_ms: wire.due_ms,
                digest: wire.digest,
            },
            batch: wire.batch,
            seq: wire.seq,
        })
    }

    /// Its `q` key while pending.
    pub fn queue_key(&self) -> Vec<u8> {
        queue_key(&self.job.notifier, self.job.due_ms, self.seq)
    }
}

/// Written with every batch, so counts, batch and sequence numbers are exactly as durable as
/// the data they describe.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct MetaState {
    pub counts: Counts,
    pub batch: u64,
    pub seq: u64,
    /// Each notifier's arrival log.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub arrivals: std::collections::BTreeMap<String, ArrivalLog>,
}

/// Where one notifier's arrival log stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ArrivalLog {
    /// The number the next arrival gets.
    pub next: u64,
    /// Every arrival below it is finished.
    pub cursor: u64,
}

impl MetaState {
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|e| StoreError::corrupt_json(&e))
    }

    pub fn decode(value: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(value).map_err(|e| StoreError::corrupt_json(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arrival_key_and_value_read_back_and_a_damaged_one_is_refused() {
        let arrival_key = arrival_key(ARRIVAL, "oncall", 258);
        assert_eq!(parse_arrival_key(&arrival_key), Some(("oncall", 258)));
        // Keys sort by notifier, then number, and stay inside the notifier's range.
        assert!(arrival_key < super::arrival_key(ARRIVAL, "oncall", 259));
        assert!(notifier_prefix(ARRIVAL, "oncall") < arrival_key);
        assert!(arrival_key < notifier_end(ARRIVAL, "oncall"));
        assert_eq!(parse_arrival_key(b"n"), None);
        assert_eq!(parse_arrival_key(b"nlog\x01\0\0\0\0\0\0\0\x01"), None);
        let arrival = Arrival {
            batch: 7,
            seq: 9,
            due_ms: 1_700_000_000_000,
            event_key: b"perf\0evt_1".to_vec(),
        };
        assert_eq!(Arrival::decode(&arrival.encode()), Ok(arrival));
        assert!(Arrival::decode(&[0; 23]).is_err());
    }

    #[test]
    fn an_event_reads_back_verbatim_and_a_damaged_one_never_quotes_its_content() {
        let record = EventRecord {
            endpoint: "perf".into(),
            id: "evt_1".into(),
            kind: "usage.threshold_reached".into(),
            livemode: Some(true),
            received_at: 7,
            body: "{\"note\":\"quote \\\" caf\u{e9}\"}".into(),
        };
        let value = encode_event(&record, 99, Vec::new()).expect("encode");
        assert_eq!(
            decode_event("perf", "evt_1", &value).expect("decode"),
            (record, 99)
        );
        let meta = br#"{"kind":"x","livemode":"card 4111-1111","received_at":1,"expires_at":2}"#;
        let mut damaged = u32::try_from(meta.len())
            .expect("len")
            .to_be_bytes()
            .to_vec();
        damaged.extend_from_slice(meta);
        let error = decode_event_meta(&damaged).expect_err("wrong type");
        assert!(!error.to_string().contains("4111"), "{error}");
        assert!(decode_event_meta(&[0, 0, 9]).is_err(), "truncated");
    }
}
