//! Where each notifier's arrival log stands (see [`super::layout`]): which first attempts
//! are still pending, and how a finished one reads back.

use std::collections::{BTreeSet, HashMap};

use super::layout::{
    arrival_key, job_key, notifier_end, parse_arrival_key, Arrival, MetaState, ARRIVAL, DELIVERED,
};
use super::read;
use crate::store::{Job, JobStatus, StoreError};

/// One notifier's finished arrivals: all below the cursor, and those in `done` above it
/// (finished out of order; each has its `j` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ArrivalProgress {
    pub cursor: u64,
    pub done: BTreeSet<u64>,
}

impl ArrivalProgress {
    pub fn is_pending(&self, arrival: u64) -> bool {
        arrival >= self.cursor && !self.done.contains(&arrival)
    }
}

/// Reads where each notifier's arrival log stands: the cursor from `m state`, and as done
/// every arrival above it that has a `j` entry (it was finished out of order, retried,
/// buried or re-notified).
pub(super) fn arrival_progress(
    tree: &sled::Tree,
    meta: &MetaState,
) -> Result<HashMap<String, ArrivalProgress>, StoreError> {
    let mut all = HashMap::new();
    for (notifier, log) in &meta.arrivals {
        let mut progress = ArrivalProgress {
            cursor: log.cursor,
            done: BTreeSet::new(),
        };
        let from = arrival_key(ARRIVAL, notifier, log.cursor);
        for entry in tree.range(from..notifier_end(ARRIVAL, notifier)) {
            let (arrival_key, value) = read(entry)?;
            let Some((_, number)) = parse_arrival_key(&arrival_key) else {
                continue;
            };
            // An unreadable one stays pending: claims skip it and settling passes it.
            let Ok(arrival) = Arrival::decode(&value) else {
                continue;
            };
            if read(tree.get(job_key(&arrival.event_key, notifier)))?.is_some() {
                progress.done.insert(number);
            }
        }
        all.insert(notifier.clone(), progress);
    }
    Ok(all)
}

/// A pending arrival as a job: its first attempt, due when its event was received.
pub(super) fn arrival_job(endpoint: &str, id: &str, notifier: &str, due_ms: u64) -> Job {
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

/// When an arrival below its notifier's cursor was delivered: the first `d` entry at or
/// after it (`None` once retention removed it).
fn delivered_at(
    tree: &sled::Tree,
    notifier: &str,
    arrival: u64,
) -> Result<Option<u64>, StoreError> {
    let from = arrival_key(DELIVERED, notifier, arrival);
    let Some(entry) = tree.range(from..notifier_end(DELIVERED, notifier)).next() else {
        return Ok(None);
    };
    let (_, value) = read(entry)?;
    // See `writer::encode_delivered`.
    let number = |at: usize, len: usize| {
        value
            .get(at..at + len)
            .map(|b| b.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)))
    };
    let (Some(first), Some(earliest)) = (number(0, 8), number(8, 8)) else {
        return Ok(None);
    };
    let Some(index) = arrival
        .checked_sub(first)
        .and_then(|i| usize::try_from(i).ok())
    else {
        return Ok(None);
    };
    let Some(at) = index.checked_mul(4).and_then(|i| i.checked_add(16)) else {
        return Ok(None);
    };
    Ok(number(at, 4)
        .filter(|after| *after != u64::from(u32::MAX))
        .map(|after| earliest.saturating_add(after)))
}

/// How an arrival without a `j` entry stands: pending, or delivered (once, when?).
pub(super) fn arrival_status(
    tree: &sled::Tree,
    progress: Option<&ArrivalProgress>,
    notifier: &str,
    arrival: u64,
    job: Job,
) -> Result<Job, StoreError> {
    if progress.is_none_or(|p| p.is_pending(arrival)) {
        return Ok(job);
    }
    let due_ms = delivered_at(tree, notifier, arrival)?.unwrap_or(job.due_ms);
    Ok(Job {
        status: JobStatus::Delivered,
        attempts: 1,
        due_ms,
        ..job
    })
}
