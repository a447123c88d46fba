//! Brings a data directory written by perfhook 0.1's first layout (trees `events`, `outbox`,
//! `dead`, `expiry`; jobs stamped with the write that stored their event) into the current
//! one, once, at open, before anything is served: dedupe keys, pending and dead jobs are
//! kept. Idempotent: every key it writes is derived from the old one, the old trees are
//! dropped only after the new data is flushed (`events` first), and counts are recounted
//! from the new tree, so a crash midway is finished by the next open.

use std::collections::HashMap;

use serde::Deserialize;

use super::layout::{
    encode_event, job_key, key, JobValue, EVENT, EXPIRY, JOB, LISTING, META_STATE,
};
use super::sled_error;
use crate::store::{event_key, Counts, EventRecord, Job, JobStatus, StoreError};

const OLD_TREES: [&str; 4] = ["events", "outbox", "dead", "expiry"];

/// Counts events, pending and dead jobs by reading the tree (once, after a migration).
fn count(tree: &sled::Tree) -> Result<Counts, StoreError> {
    let mut counts = Counts::default();
    for entry in tree.scan_prefix([EVENT]) {
        entry.map_err(|e| sled_error(&e))?;
        counts.events += 1;
    }
    for entry in tree.scan_prefix([JOB]) {
        let (_, value) = entry.map_err(|e| sled_error(&e))?;
        match JobValue::decode(&value)?.job.status {
            JobStatus::Pending => counts.outbox += 1,
            JobStatus::Dead => counts.dead += 1,
            JobStatus::Delivered | JobStatus::Suppressed => {}
        }
    }
    Ok(counts)
}
/// Events written per batch.
const BATCH: usize = 1000;

#[derive(Deserialize)]
struct OldEvent {
    #[serde(default)]
    writer: u64,
    endpoint: String,
    id: String,
    kind: String,
    livemode: Option<bool>,
    received_at: u64,
    body: String,
}

#[derive(Deserialize)]
struct OldJob {
    endpoint: String,
    event_id: String,
    notifier: String,
    attempts: u32,
    last_error: Option<String>,
    #[serde(default)]
    writer: u64,
}

fn old(value: &[u8]) -> Result<OldEvent, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::corrupt_json(&e))
}

/// Migrates `db`'s old trees into `tree`, if there are any. Returns whether it did.
pub(super) fn migrate(db: &sled::Db, tree: &sled::Tree) -> Result<bool, StoreError> {
    let names = db.tree_names();
    if !OLD_TREES
        .iter()
        .any(|name| names.iter().any(|n| n.as_ref() == name.as_bytes()))
    {
        return Ok(false);
    }
    let open = |name: &str| db.open_tree(name).map_err(|e| sled_error(&e));
    let (events, outbox, dead_tree, expiry) = (
        open("events")?,
        open("outbox")?,
        open("dead")?,
        open("expiry")?,
    );
    let mut expires_at: HashMap<Vec<u8>, u64> = HashMap::new();
    for entry in expiry.iter() {
        let (k, _) = entry.map_err(|e| sled_error(&e))?;
        if let (Some(at), Some(event)) = (k.get(..8), k.get(8..)) {
            let at = <[u8; 8]>::try_from(at)
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            expires_at.insert(event.to_vec(), at);
        }
    }
    // Whatever the new layout already holds (a migration finished by a later open, or an
    // older binary run on the directory after an upgrade) keeps its numbers.
    let mut meta = super::writer::load_meta(tree)?;
    let mut writers: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    for entry in events.iter() {
        let (k, v) = entry.map_err(|e| sled_error(&e))?;
        let stored = old(&v)?;
        let event_key = event_key(&stored.endpoint, &stored.id);
        // An event without an expiry entry was written just before a crash: keep it for the
        // default 30 days from when it arrived.
        let expires = expires_at
            .get(k.as_ref())
            .copied()
            .unwrap_or_else(|| stored.received_at.saturating_add(30 * 86_400));
        writers.insert(event_key.clone(), stored.writer);
        let record = EventRecord {
            endpoint: stored.endpoint,
            id: stored.id,
            kind: stored.kind,
            livemode: stored.livemode,
            received_at: stored.received_at,
            body: stored.body,
        };
        batch.insert(
            key(EXPIRY, &[&expires.to_be_bytes(), &event_key]),
            Vec::new(),
        );
        batch.insert(
            key(LISTING, &[&record.received_at.to_be_bytes(), &event_key]),
            record.kind.as_bytes().to_vec(),
        );
        batch.insert(
            key(EVENT, &[&event_key]),
            encode_event(&record, expires, Vec::new())?,
        );
        pending += 1;
        if pending >= BATCH {
            tree.apply_batch(std::mem::take(&mut batch))
                .map_err(|e| sled_error(&e))?;
            pending = 0;
        }
    }
    for (source, status) in [(&outbox, JobStatus::Pending), (&dead_tree, JobStatus::Dead)] {
        for entry in source.iter() {
            let (k, v) = entry.map_err(|e| sled_error(&e))?;
            let old_job: OldJob =
                serde_json::from_slice(&v).map_err(|e| StoreError::corrupt_json(&e))?;
            let event_key = event_key(&old_job.endpoint, &old_job.event_id);
            // Only the jobs written with the stored event were ever deliverable.
            if writers.get(&event_key) != Some(&old_job.writer) {
                continue;
            }
            let (due, seq) = match (k.get(..8), k.get(8..16)) {
                (Some(due), Some(seq)) => (
                    <[u8; 8]>::try_from(due)
                        .map(u64::from_be_bytes)
                        .unwrap_or(0),
                    <[u8; 8]>::try_from(seq)
                        .map(u64::from_be_bytes)
                        .unwrap_or(0),
                ),
                _ => continue,
            };
            let stored = JobValue {
                job: Job {
                    endpoint: old_job.endpoint,
                    event_id: old_job.event_id,
                    notifier: old_job.notifier.clone(),
                    status,
                    attempts: old_job.attempts,
                    last_error: old_job.last_error,
                    due_ms: due,
                    digest: false,
                },
                batch: 0,
                seq,
            };
            let job_key = job_key(&event_key, &old_job.notifier);
            if status == JobStatus::Pending {
                batch.insert(stored.queue_key(), job_key.clone());
            }
            meta.seq = meta.seq.max(seq);
            batch.insert(job_key, stored.encode()?);
        }
    }
    tree.apply_batch(batch).map_err(|e| sled_error(&e))?;
    // Counted from what is now in the tree, so a migration finished by a later open (after a
    // crash between dropping the old trees) still counts right.
    meta.counts = count(tree)?;
    tree.insert(META_STATE, meta.encode()?)
        .map_err(|e| sled_error(&e))?;
    db.flush().map_err(|e| sled_error(&e))?;
    // The events tree first: a later open that finds the others left over writes no event
    // again (so no expiry is guessed anew) and only drops them.
    for name in ["events", "outbox", "dead", "expiry"] {
        db.drop_tree(name).map_err(|e| sled_error(&e))?;
    }
    db.flush().map_err(|e| sled_error(&e))?;
    tracing::info!(
        events = meta.counts.events,
        pending = meta.counts.outbox,
        dead = meta.counts.dead,
        "store: migrated the first layout's trees"
    );
    Ok(true)
}
