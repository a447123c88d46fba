//! How a claim finds a notifier's due jobs: its queue of retries and deferred jobs merged
//! with its arrival log of first attempts, in (due, sequence) order.

use super::arrivals::ArrivalProgress;
use super::layout::{
    arrival_key, decode_event, key, notifier_end, parse_arrival_key, queue_due, queue_prefix,
    Arrival, JobValue, ARRIVAL, EVENT,
};
use super::read;
use crate::store::{event_key, EventRecord, Job, JobStatus, StoreError};

/// A job a claim may hand out, in the order claims take them: (due, sequence).
pub(super) struct Candidate {
    pub due_ms: u64,
    seq: u64,
    /// The key its lease is held under (and its token names): `j` for a queued job, `n`
    /// for an arrival.
    pub lease_key: Vec<u8>,
    pub source: Source,
}

pub(super) enum Source {
    /// A `q` entry: the job is read from its `j` entry.
    Queued,
    /// A pending arrival.
    Arrival(Arrival),
}

/// One notifier's pending jobs in (due, sequence) order: its queue merged with its arrival
/// log. Arrivals are due when received, so the log is in due order as long as events are
/// accepted in the order they were received (to within a second, the clock's resolution
/// in `received_at`); a later arrival received earlier comes in acceptance order.
pub(super) struct Candidates<'a> {
    queue: sled::Iter,
    arrivals: sled::Iter,
    progress: Option<&'a ArrivalProgress>,
    queue_prefix_len: usize,
    queued: Option<Candidate>,
    arrived: Option<Candidate>,
    queue_ended: bool,
    arrivals_ended: bool,
}

impl<'a> Candidates<'a> {
    pub fn new(tree: &sled::Tree, notifier: &str, progress: Option<&'a ArrivalProgress>) -> Self {
        let prefix = queue_prefix(notifier);
        let from = arrival_key(ARRIVAL, notifier, progress.map_or(0, |p| p.cursor));
        Self {
            queue_prefix_len: prefix.len(),
            queue: tree.scan_prefix(prefix),
            arrivals: tree.range(from..notifier_end(ARRIVAL, notifier)),
            progress,
            queued: None,
            arrived: None,
            queue_ended: false,
            arrivals_ended: false,
        }
    }

    fn next_queued(&mut self) -> Result<Option<Candidate>, StoreError> {
        if self.queue_ended {
            return Ok(None);
        }
        let Some(entry) = self.queue.next() else {
            // sled's iterators are not fused: each call past the end searches the tree again.
            self.queue_ended = true;
            return Ok(None);
        };
        let (queue_key, job_key) = read(entry)?;
        let due_ms = queue_due(&queue_key, self.queue_prefix_len);
        let seq = queue_key
            .get(self.queue_prefix_len + 8..)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(u64::MAX, u64::from_be_bytes);
        Ok(Some(Candidate {
            due_ms,
            seq,
            lease_key: job_key.to_vec(),
            source: Source::Queued,
        }))
    }

    fn next_arrival(&mut self) -> Result<Option<Candidate>, StoreError> {
        if self.arrivals_ended {
            return Ok(None);
        }
        for entry in self.arrivals.by_ref() {
            let (arrival_key, value) = read(entry)?;
            let Some((_, number)) = parse_arrival_key(&arrival_key) else {
                continue;
            };
            if !self.progress.is_none_or(|p| p.is_pending(number)) {
                continue;
            }
            // Skipped, not allowed to stop the whole log; settling passes it.
            let arrival = match Arrival::decode(&value) {
                Ok(arrival) => arrival,
                Err(error) => {
                    tracing::error!(%error, "outbox: skipping an unreadable arrival entry");
                    continue;
                }
            };
            return Ok(Some(Candidate {
                due_ms: arrival.due_ms,
                seq: arrival.seq,
                lease_key: arrival_key.to_vec(),
                source: Source::Arrival(arrival),
            }));
        }
        self.arrivals_ended = true;
        Ok(None)
    }

    /// Reads no more of the queue.
    pub fn end_queue(&mut self) {
        self.queue_ended = true;
        self.queued = None;
    }

    /// The earliest (due, sequence) of the two heads.
    pub fn next(&mut self) -> Result<Option<Candidate>, StoreError> {
        if self.queued.is_none() {
            self.queued = self.next_queued()?;
        }
        if self.arrived.is_none() {
            self.arrived = self.next_arrival()?;
        }
        let queued_first = match (&self.queued, &self.arrived) {
            (Some(q), Some(a)) => (q.due_ms, q.seq) <= (a.due_ms, a.seq),
            (Some(_), None) => true,
            (None, _) => false,
        };
        Ok(if queued_first {
            self.queued.take()
        } else {
            self.arrived.take()
        })
    }
}

/// The job a candidate stands for, if it may be handed out: its batch is durable and it is
/// still pending (a `q` entry that is not its job's current one is not).
pub(super) fn claimable(
    tree: &sled::Tree,
    notifier: &str,
    candidate: &Candidate,
    durable: u64,
) -> Result<Option<Job>, StoreError> {
    match &candidate.source {
        Source::Queued => {
            let Some(value) = read(tree.get(&candidate.lease_key))? else {
                return Ok(None);
            };
            // An undecodable job is skipped, not allowed to stop the whole queue.
            let stored = match JobValue::decode(&value) {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::error!(%error, %notifier, "outbox: skipping an unreadable job");
                    return Ok(None);
                }
            };
            // Written by a batch whose flush has not finished: its event is not accepted yet.
            let current = stored.batch <= durable
                && stored.seq == candidate.seq
                && stored.job.due_ms == candidate.due_ms
                && stored.job.status == JobStatus::Pending;
            Ok(current.then_some(stored.job))
        }
        Source::Arrival(arrival) => {
            if arrival.batch > durable {
                return Ok(None);
            }
            let Ok(job) = arrival.job(notifier) else {
                tracing::error!(%notifier, "outbox: skipping an arrival with a malformed event key");
                return Ok(None);
            };
            Ok(Some(job))
        }
    }
}

/// A job with its event, or `None` (logged) when the event is gone or unreadable.
pub(super) fn with_event(
    tree: &sled::Tree,
    notifier: &str,
    job: Job,
) -> Result<Option<(Job, EventRecord)>, StoreError> {
    let event_key = event_key(&job.endpoint, &job.event_id);
    let Some(value) = read(tree.get(key(EVENT, &[&event_key])))? else {
        return Ok(None);
    };
    match decode_event(&job.endpoint, &job.event_id, &value) {
        Ok((event, _)) => Ok(Some((job, event))),
        Err(error) => {
            tracing::error!(%error, %notifier, "outbox: skipping a job whose event is unreadable");
            Ok(None)
        }
    }
}
