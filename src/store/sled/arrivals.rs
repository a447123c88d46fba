//! Where each notifier's arrival log stands (see [`super::layout`]): which first attempts
//! are still pending, and how a finished one reads back.

use std::collections::{BTreeSet, HashMap};

use super::layout::{
    arrival_key, delivered_time, job_key, notifier_end, parse_arrival_key, Arrival, MetaState,
    ARRIVAL, DELIVERED,
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
    Ok(delivered_time(&value, arrival))
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
