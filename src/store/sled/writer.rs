//! The sled store's one writer: takes every waiting request as a group, decides each one,
//! applies the group as one atomic `sled::Batch`, flushes once (and `fdatasync`s for
//! power-loss durability), then answers. On a failed write it drops the database and
//! reopens it on demand, so what the store serves is again exactly what is on disk.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::backup::Copied;
use super::layout::{
    arrival_key, decode_event_meta, encode_delivered, encode_event, first_attempt, job_key, key,
    notifier_end, notifier_prefix, parse_arrival_key, split_event_key, Arrival, JobValue,
    MetaState, ARRIVAL, AUDIT, CROSSING, DELIVERED, EVENT, EXPIRY, JOB, LISTING, META_AUDIT_ANCHOR,
    META_PROBE, META_STATE, QUEUE,
};
use super::{sled_error, ArrivalProgress, Handle, Shared, SledOptions};
use crate::store::{
    event_key, fault, unconfigured_reason, Finished, Job, JobStatus, NewEvent, Outcome, Recorded,
    StoreError, StoreErrorKind,
};

/// The most requests one group takes: bounds one batch's size and the wait of its first.
const MAX_GROUP: usize = 1024;
/// sled writes a value to a file of its own under `blobs/` when its log record would exceed
/// about a quarter of a segment (131,020 bytes with the default 512 KiB segments); any event
/// this large makes the group also sync new blob files, which sled never syncs itself.
const BLOB_CANDIDATE_BYTES: usize = 96 * 1024;
/// How often a failed store tries to reopen.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;
/// Answers a request once its batch is applied, with the failure if it was not.
type AppliedReply = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// A request to the writer.
#[derive(Debug)]
pub(super) enum Op {
    /// Insert-if-absent an event with its jobs; answered once durable.
    Record(Box<NewEvent>, Reply<Recorded>),
    /// Finish claimed jobs; answered once applied (a crash before the next flush delivers
    /// them again: at least once).
    Finish(Vec<Finished>, Reply<()>),
    /// Purge expired events; answered once applied.
    Purge {
        now: u64,
        batch: usize,
        reply: Reply<usize>,
    },
    /// Mark dead the pending jobs of notifiers not configured; answered once applied.
    BuryUnconfigured {
        configured: Vec<String>,
        at_ms: u64,
        reply: Reply<u64>,
    },
    /// Queue jobs of a stored event again; answered once durable.
    Requeue {
        endpoint: String,
        id: String,
        notifiers: Vec<String>,
        now_ms: u64,
        reply: Reply<Option<usize>>,
    },
    /// Remove one event with its jobs and dedupe key; answered once durable.
    Delete {
        endpoint: String,
        id: String,
        reply: Reply<bool>,
    },
    /// Remove audit entries recorded before a time, keeping an anchor; answered once applied.
    PurgeAudit { before: u64, reply: Reply<usize> },
    /// Prove a durable write works, reopening first if an earlier one failed.
    Probe(Reply<()>),
    /// Store one value (an API key's record); answered once durable.
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        reply: Reply<()>,
    },
    /// Copy the tree into a new data directory after this group's flush, before the next
    /// group: a consistent backup while the receiver runs.
    Backup(PathBuf, Reply<Copied>),
    /// Flush and stop.
    Close(Reply<()>),
}

/// Reads the `m state` entry.
pub(super) fn load_meta(tree: &sled::Tree) -> Result<MetaState, StoreError> {
    match tree.get(META_STATE).map_err(|e| sled_error(&e))? {
        Some(value) => MetaState::decode(&value),
        None => Ok(MetaState::default()),
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    path: PathBuf,
    options: SledOptions,
    shared: Arc<Shared>,
    handle: Option<Handle>,
    data_file: Option<File>,
    meta: MetaState,
    /// Each notifier's arrival log as of the last applied batch (claimers read a copy).
    progress: HashMap<String, ArrivalProgress>,
    last_reopen: Option<Instant>,
    /// The newest blob file already synced (blob files are named by sled's log sequence).
    last_synced_blob: u64,
}

/// One group's writes: the batch, and what it wrote so far so later requests in the same
/// group read their predecessors' writes.
struct Group<'t> {
    tree: &'t sled::Tree,
    batch: sled::Batch,
    /// What this group wrote (`None`: removed), as the batch holds it: an `IVec` is shared,
    /// so an event's value is copied once for both.
    written: HashMap<Vec<u8>, Option<sled::IVec>>,
    /// Whether a value may have gone to a blob file.
    large: bool,
    /// Leases to end once the batch is applied (not before: a claimer must not see a job
    /// unleased while the batch that finishes it is still on its way).
    ended_leases: Vec<Vec<u8>>,
    /// Each notifier's arrival log before this group.
    progress: HashMap<String, ArrivalProgress>,
    /// Arrivals this group finished, per notifier: with the `j` entry a delivered one needs
    /// if the cursor cannot move past it, or `None` when nothing more is to be written (a
    /// retry or dead job has its `j` entry already, a removed event needs none).
    finished_arrivals: HashMap<String, BTreeMap<u64, Option<JobValue>>>,
    /// The `j` keys this group wrote, by event key: a removal in the same group must find
    /// them, and the tree does not hold them yet.
    jobs_written: HashMap<Vec<u8>, Vec<Vec<u8>>>,
}

impl Group<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        if let Some(value) = self.written.get(key) {
            return Ok(value.clone());
        }
        self.tree.get(key).map_err(|e| sled_error(&e))
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.large |= value.len() >= BLOB_CANDIDATE_BYTES;
        if key.first() == Some(&JOB) && !self.written.contains_key(&key) {
            if let Some(nul) = key.iter().rposition(|b| *b == 0) {
                let event_key = key.get(1..nul).unwrap_or_default().to_vec();
                self.jobs_written
                    .entry(event_key)
                    .or_default()
                    .push(key.clone());
            }
        }
        let value = sled::IVec::from(value);
        self.batch.insert(key.clone(), value.clone());
        self.written.insert(key, Some(value));
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.batch.remove(key.clone());
        self.written.insert(key, None);
    }

    /// Whether an arrival is still to be attempted, this group's finishes included.
    fn arrival_pending(&self, notifier: &str, arrival: u64) -> bool {
        let finished_now = self
            .finished_arrivals
            .get(notifier)
            .is_some_and(|finished| finished.contains_key(&arrival));
        !finished_now
            && self
                .progress
                .get(notifier)
                .is_none_or(|progress| progress.is_pending(arrival))
    }

    fn finish_arrival(&mut self, notifier: &str, arrival: u64, delivered: Option<JobValue>) {
        self.finished_arrivals
            .entry(notifier.to_owned())
            .or_default()
            .insert(arrival, delivered);
    }
}

/// Answers waiting for the group's outcome.
#[derive(Default)]
struct Answers {
    records: Vec<(Reply<Recorded>, Result<Recorded, StoreError>)>,
    probes: Vec<Reply<()>>,
    backups: Vec<(PathBuf, Reply<Copied>)>,
    close: Option<Reply<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Writer {
    pub(super) fn new(
        path: PathBuf,
        options: SledOptions,
        shared: Arc<Shared>,
        handle: Handle,
        data_file: Option<File>,
        meta: MetaState,
        progress: HashMap<String, ArrivalProgress>,
    ) -> Self {
        Self {
            path,
            options,
            shared,
            handle: Some(handle),
            data_file,
            meta,
            progress,
            last_reopen: None,
            last_synced_blob: 0,
        }
    }

    /// Serves requests until a close or until every sender is gone, then flushes.
    pub(super) fn run(mut self, queue: &Receiver<Op>) {
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            // A panic inside sled must not end the writer: the store is marked failed and
            // reopens like after any other failure (the group's callers see an error).
            let served =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve(group)));
            match served {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => {
                    tracing::error!("store writer: sled panicked; the store will reopen");
                    self.fail();
                }
            }
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.db.flush();
        }
        if let Ok(mut shared) = self.shared.handle.write() {
            *shared = None;
        }
    }

    /// Serves one group; false once the store is closed.
    fn serve(&mut self, group: Vec<Op>) -> bool {
        if let Err(error) = self.ensure_open() {
            let mut open = true;
            for op in group {
                open &= fail(op, &error);
            }
            return open;
        }
        let Some(handle) = self.handle.clone() else {
            return true;
        };
        let mut writes = Group {
            tree: &handle.tree,
            batch: sled::Batch::default(),
            written: HashMap::new(),
            large: false,
            ended_leases: Vec::new(),
            progress: self.progress.clone(),
            finished_arrivals: HashMap::new(),
            jobs_written: HashMap::new(),
        };
        let mut meta = self.meta.clone();
        meta.batch += 1;
        let batch_number = meta.batch;
        let mut answers = Answers::default();
        let mut applied_replies: Vec<AppliedReply> = Vec::new();
        // Operator changes (re-notify, delete) are answered only once on disk: their 2xx
        // says it happened.
        let mut durable_replies: Vec<AppliedReply> = Vec::new();
        for op in group {
            match op {
                Op::Record(event, reply) => {
                    let answer = record(&mut writes, &mut meta, *event);
                    answers.records.push((reply, answer));
                }
                Op::Finish(finished, reply) => {
                    let answer = self.finish(&mut writes, &mut meta, finished);
                    applied_replies.push(Box::new(move |failure| {
                        let _ = reply.send(failure.map_or(answer, |e| Err(e.clone())));
                    }));
                }
                Op::Purge { now, batch, reply } => {
                    let answer = purge(&mut writes, &mut meta, now, batch);
                    applied_replies.push(Box::new(move |failure| {
                        let _ = reply.send(failure.map_or(answer, |e| Err(e.clone())));
                    }));
                }
                Op::BuryUnconfigured {
                    configured,
                    at_ms,
                    reply,
                } => {
                    let answer = bury_unconfigured(&mut writes, &mut meta, &configured, at_ms);
                    applied_replies.push(Box::new(move |failure| {
                        let _ = reply.send(failure.map_or(answer, |e| Err(e.clone())));
                    }));
                }
                Op::Requeue {
                    endpoint,
                    id,
                    notifiers,
                    now_ms,
                    reply,
                } => {
                    let answer =
                        requeue(&mut writes, &mut meta, &endpoint, &id, &notifiers, now_ms);
                    durable_replies.push(Box::new(move |failure| {
                        let _ = reply.send(failure.map_or(answer, |e| Err(e.clone())));
                    }));
                }
                Op::Delete {
                    endpoint,
                    id,
                    reply,
                } => {
                    let answer = remove_event(&mut writes, &mut meta, &event_key(&endpoint, &id));
                    durable_replies.push(Box::new(move |failure| {
                        let _ = reply.send(failure.map_or(answer, |e| Err(e.clone())));
                    }));
                }
                Op::PurgeAudit { before, reply } => {
                    let answer = purge_audit(&mut writes, before);
                    applied_replies.push(Box::new(move |failure| {
                        let _ = reply.send(failure.map_or(answer, |e| Err(e.clone())));
                    }));
                }
                Op::Probe(reply) => {
                    writes.insert(META_PROBE.to_vec(), meta.batch.to_be_bytes().to_vec());
                    answers.probes.push(reply);
                }
                // Answered like a probe: with the group's durable outcome.
                Op::Put { key, value, reply } => {
                    writes.insert(key, value);
                    answers.probes.push(reply);
                }
                Op::Backup(to, reply) => answers.backups.push((to, reply)),
                Op::Close(reply) => answers.close = Some(reply),
            }
        }
        let leases = &self.shared.claims;
        let leased = |key: &[u8]| {
            leases
                .lock()
                .map_or(true, |claims| claims.leases.contains_key(key))
        };
        let outcome = settle_arrivals(&mut writes, &mut meta, &leased)
            .and_then(|progress| {
                writes.insert(META_STATE.to_vec(), meta.encode()?);
                let Group {
                    batch,
                    ended_leases,
                    large,
                    ..
                } = writes;
                // Before the batch is in the tree: no claimer may take an arrival this batch
                // finishes, even one whose lease has run out. Should the batch fail, the store
                // fails and reopening reads the logs back from disk.
                if let Ok(mut claims) = self.shared.claims.lock() {
                    claims.arrivals.clone_from(&progress);
                }
                handle.tree.apply_batch(batch).map_err(|e| sled_error(&e))?;
                Ok((ended_leases, large, progress))
            })
            .map(|(ended_leases, large, progress)| {
                if let Ok(mut counts) = self.shared.counts.lock() {
                    *counts = meta.counts;
                }
                self.meta = meta;
                self.progress = progress;
                if let Ok(mut claims) = self.shared.claims.lock() {
                    for key in ended_leases {
                        claims.leases.remove(&key);
                    }
                }
                large
            });
        let records_new = answers
            .records
            .iter()
            .any(|(_, answer)| *answer == Ok(Recorded::New));
        if records_new {
            fault::point("after-apply");
        }
        for reply in applied_replies {
            reply(outcome.as_ref().err());
        }
        let outcome = outcome.and_then(|large| self.make_durable(&handle, large));
        match &outcome {
            Ok(()) => {
                self.shared
                    .durable_batch
                    .store(batch_number, Ordering::SeqCst);
                if records_new {
                    fault::point("after-flush");
                }
            }
            Err(error) => {
                tracing::error!(%error, "store write failed; the store will reopen its data directory");
                // This copy first, so the drop inside `fail` can be sled's last.
                drop(handle);
                self.fail();
            }
        }
        for (reply, answer) in answers.records {
            let _ = reply.send(match &outcome {
                Ok(()) => answer,
                Err(error) => Err(error.clone()),
            });
        }
        for reply in answers.probes {
            let _ = reply.send(outcome.clone());
        }
        for reply in durable_replies {
            reply(outcome.as_ref().err());
        }
        for (to, reply) in answers.backups {
            let copied = match (&outcome, self.handle.as_ref()) {
                (Ok(()), Some(handle)) => super::backup::copy_tree(&handle.tree, &to),
                (Err(error), _) => Err(error.clone()),
                (Ok(()), None) => Err(StoreError::unavailable("the store is closed")),
            };
            let _ = reply.send(copied);
        }
        if let Some(reply) = answers.close {
            let _ = reply.send(outcome);
            return false;
        }
        true
    }

    /// One flush for the whole group, then `fdatasync` for power-loss durability.
    fn make_durable(&mut self, handle: &Handle, large: bool) -> Result<(), StoreError> {
        handle.db.flush().map_err(|e| sled_error(&e))?;
        if let Some(file) = &self.data_file {
            file.sync_data()
                .map_err(|e| StoreError::unavailable(format!("fdatasync failed: {e}")))?;
            if large {
                self.sync_blobs()?;
            }
        }
        Ok(())
    }

    /// `fdatasync` of every blob file newer than the last one synced, then of `blobs/`.
    fn sync_blobs(&mut self) -> Result<(), StoreError> {
        let dir = self.path.join("blobs");
        let failed = |e: std::io::Error| StoreError::unavailable(format!("cannot sync blobs: {e}"));
        let mut newest = self.last_synced_blob;
        for entry in std::fs::read_dir(&dir).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            let Some(number) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if number > self.last_synced_blob {
                File::open(entry.path())
                    .and_then(|file| file.sync_data())
                    .map_err(failed)?;
                newest = newest.max(number);
            }
        }
        File::open(&dir)
            .and_then(|dir| dir.sync_all())
            .map_err(failed)?;
        self.last_synced_blob = newest;
        Ok(())
    }

    /// Drops the database: its in-memory state may hold writes the disk never got.
    fn fail(&mut self) {
        self.shared.failed.store(true, Ordering::SeqCst);
        if let Ok(mut shared) = self.shared.handle.write() {
            *shared = None;
        }
        let handle = self.handle.take();
        self.data_file = None;
        // sled's last handle fsyncs its file on drop and panics if that fails (its
        // `Log::drop` unwraps); the writer must outlive a failing disk to recover from it.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(handle))).is_err() {
            tracing::error!("sled panicked while closing the failed store");
        }
    }

    /// Reopens a failed store, at most once per [`REOPEN_EVERY`].
    fn ensure_open(&mut self) -> Result<(), StoreError> {
        if self.handle.is_some() {
            return Ok(());
        }
        if self
            .last_reopen
            .is_some_and(|at| at.elapsed() < REOPEN_EVERY)
        {
            return Err(StoreError::unavailable(
                "an earlier write failed; recovering",
            ));
        }
        self.last_reopen = Some(Instant::now());
        let (handle, data_file) = Handle::open(&self.path, self.options)?;
        let meta = load_meta(&handle.tree)?;
        let progress = super::arrival_progress(&handle.tree, &meta)?;
        self.shared
            .durable_batch
            .store(meta.batch, Ordering::SeqCst);
        if let Ok(mut counts) = self.shared.counts.lock() {
            *counts = meta.counts;
        }
        if let Ok(mut claims) = self.shared.claims.lock() {
            claims.arrivals.clone_from(&progress);
        }
        self.meta = meta;
        self.progress = progress;
        // Leases are kept: a job being delivered stays invisible to other claimers until its
        // lease ends, reopen or not (lease numbers are never reused).
        if let Ok(mut shared) = self.shared.handle.write() {
            *shared = Some(handle.clone());
        }
        self.handle = Some(handle);
        self.data_file = data_file;
        self.shared.failed.store(false, Ordering::SeqCst);
        tracing::info!(path = %self.path.display(), "store reopened after a failure");
        Ok(())
    }

    fn finish(
        &self,
        writes: &mut Group<'_>,
        meta: &mut MetaState,
        finished: Vec<Finished>,
    ) -> Result<(), StoreError> {
        let claims = self
            .shared
            .claims
            .lock()
            .map_err(|_| StoreError::unavailable("the lease table's lock is poisoned"))?;
        let mut first_error = None;
        for one in finished {
            let held = claims.leases.get(&one.token.key).map(|l| l.0) == Some(one.token.lease)
                && !writes.ended_leases.contains(&one.token.key);
            if !held {
                first_error.get_or_insert(StoreError::new(
                    StoreErrorKind::LeaseLost,
                    "the job's lease expired before it was finished",
                ));
                continue;
            }
            if let Err(error) = finish_one(writes, meta, &one) {
                first_error.get_or_insert(error);
                continue;
            }
            writes.ended_leases.push(one.token.key);
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Answers an op that cannot be served; false for a close.
fn fail(op: Op, error: &StoreError) -> bool {
    match op {
        Op::Record(_, reply) => {
            let _ = reply.send(Err(error.clone()));
        }
        Op::Finish(_, reply) | Op::Probe(reply) | Op::Put { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Op::Purge { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Op::Requeue { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Op::PurgeAudit { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Op::Delete { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Op::Backup(_, reply) => {
            let _ = reply.send(Err(error.clone()));
        }
        Op::BuryUnconfigured { reply, .. } => {
            let _ = reply.send(Err(error.clone()));
        }
        Op::Close(reply) => {
            let _ = reply.send(Ok(()));
            return false;
        }
    }
    true
}

fn record(
    writes: &mut Group<'_>,
    meta: &mut MetaState,
    event: NewEvent,
) -> Result<Recorded, StoreError> {
    let NewEvent {
        record,
        notifiers,
        deferred,
        expires_at,
        budget,
    } = event;
    let event_key = event_key(&record.endpoint, &record.id);
    let stored_key = key(EVENT, &[&event_key]);
    if writes.get(&stored_key)?.is_some() {
        return Ok(Recorded::Duplicate);
    }
    // Threshold collapse, in the same write as the event: a crossing already notified for
    // this budget and period makes this event's jobs suppressed.
    let mut suppressed_by = None;
    let mut crossing_write = None;
    let mut cooldown_write = None;
    if let Some(mark) = &budget {
        let crossing_key = key(CROSSING, &[mark.budget.as_bytes()]);
        let mut notified: crate::store::BudgetState = match writes.get(&crossing_key)? {
            Some(value) => {
                serde_json::from_slice(&value).map_err(|error| StoreError::corrupt_json(&error))?
            }
            None => crate::store::BudgetState::default(),
        };
        suppressed_by =
            crate::store::apply_crossing(&mut notified, mark, &record.id, record.received_at)
                .map(|first| crate::store::suppressed_reason(mark.threshold, &first));
        let value =
            serde_json::to_vec(&notified).map_err(|error| StoreError::corrupt_json(&error))?;
        crossing_write = Some((crossing_key, value));
        if let (None, Some(cooldown)) = (&suppressed_by, &mark.cooldown) {
            let cooldown_key = key(CROSSING, &[cooldown.key.as_bytes()]);
            let mut noted: crate::store::BudgetState = match writes.get(&cooldown_key)? {
                Some(value) => serde_json::from_slice(&value)
                    .map_err(|error| StoreError::corrupt_json(&error))?,
                None => crate::store::BudgetState::default(),
            };
            suppressed_by = crate::store::apply_cooldown(&mut noted, cooldown, record.received_at);
            if suppressed_by.is_none() {
                let value =
                    serde_json::to_vec(&noted).map_err(|error| StoreError::corrupt_json(&error))?;
                cooldown_write = Some((cooldown_key, value));
            }
        }
    }
    // Everything is encoded before anything is written, so a failure leaves no part of the
    // event in the group's batch (and no gap in an arrival log).
    let received_ms = record.received_at.saturating_mul(1000);
    let mut jobs = Vec::with_capacity(notifiers.len());
    let mut arrivals = Vec::new();
    let mut named = std::collections::HashSet::new();
    let mut seq = meta.seq;
    for notifier in notifiers {
        // One job per notifier, however often it is named.
        if !named.insert(notifier.clone()) {
            continue;
        }
        seq += 1;
        let (due_ms, digest) = deferred
            .get(&notifier)
            .map_or((received_ms, false), |due| (*due, true));
        // The common case: due at once, to be attempted. One small entry.
        if !digest && suppressed_by.is_none() {
            let number = meta.arrivals.get(&notifier).map_or(0, |log| log.next);
            let arrival = Arrival {
                batch: meta.batch,
                seq,
                due_ms,
                event_key: event_key.clone(),
            };
            arrivals.push((notifier, number, arrival.encode()));
            continue;
        }
        let stored = JobValue {
            job: Job {
                endpoint: record.endpoint.clone(),
                event_id: record.id.clone(),
                notifier: notifier.clone(),
                status: if suppressed_by.is_some() {
                    JobStatus::Suppressed
                } else {
                    JobStatus::Pending
                },
                attempts: 0,
                last_error: suppressed_by.clone(),
                due_ms,
                digest,
            },
            batch: meta.batch,
            seq,
        };
        jobs.push((
            job_key(&event_key, &notifier),
            stored.queue_key(),
            stored.encode()?,
        ));
    }
    let named_arrivals = arrivals
        .iter()
        .map(|(notifier, number, _)| (notifier.clone(), *number))
        .collect();
    let event_value = encode_event(&record, expires_at, named_arrivals)?;
    meta.seq = seq;
    for (notifier, number, value) in arrivals {
        writes.insert(arrival_key(ARRIVAL, &notifier, number), value);
        meta.arrivals.entry(notifier).or_default().next = number + 1;
        meta.counts.outbox += 1;
    }
    for (job_key, queue_key, value) in jobs {
        // A suppressed job is kept (the event's page says why) but never queued.
        if suppressed_by.is_none() {
            writes.insert(queue_key, job_key.clone());
            meta.counts.outbox += 1;
        }
        writes.insert(job_key, value);
    }
    for (state_key, value) in crossing_write.into_iter().chain(cooldown_write) {
        writes.insert(state_key, value);
    }
    writes.insert(
        key(EXPIRY, &[&expires_at.to_be_bytes(), &event_key]),
        Vec::new(),
    );
    writes.insert(
        key(LISTING, &[&record.received_at.to_be_bytes(), &event_key]),
        record.kind.as_bytes().to_vec(),
    );
    writes.insert(stored_key, event_value);
    meta.counts.events += 1;
    Ok(Recorded::New)
}

fn finish_one(
    writes: &mut Group<'_>,
    meta: &mut MetaState,
    finished: &Finished,
) -> Result<(), StoreError> {
    if finished.token.key.first() == Some(&ARRIVAL) {
        return finish_arrival(writes, meta, finished);
    }
    let Some(value) = writes.get(&finished.token.key)? else {
        // Retention removed the event and its jobs meanwhile: nothing left to record.
        return Ok(());
    };
    let mut stored = JobValue::decode(&value)?;
    if stored.job.status != JobStatus::Pending {
        return Ok(());
    }
    writes.remove(stored.queue_key());
    stored.job.attempts = stored.job.attempts.saturating_add(1);
    stored.job.due_ms = finished.at_ms;
    match &finished.outcome {
        Outcome::Delivered => {
            stored.job.status = JobStatus::Delivered;
            meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
        }
        Outcome::Retry { at_ms, error } => {
            stored.job.last_error = Some(error.clone());
            stored.job.due_ms = *at_ms;
            meta.seq += 1;
            stored.seq = meta.seq;
            writes.insert(stored.queue_key(), finished.token.key.clone());
        }
        Outcome::Dead { reason } => {
            stored.job.status = JobStatus::Dead;
            stored.job.last_error = Some(reason.clone());
            meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
            meta.counts.dead += 1;
        }
    }
    writes.insert(finished.token.key.clone(), stored.encode()?);
    Ok(())
}

/// Finishes a first attempt. A delivery writes nothing now: [`settle_arrivals`] moves the
/// cursor past it, or writes its `j` entry if it cannot. A retry or a dead job becomes a
/// `j` entry (queued again for a retry) and leaves the arrival log.
fn finish_arrival(
    writes: &mut Group<'_>,
    meta: &mut MetaState,
    finished: &Finished,
) -> Result<(), StoreError> {
    let arrival_key = &finished.token.key;
    let Some((notifier, number)) = parse_arrival_key(arrival_key) else {
        return Err(StoreError::corrupt("a claim names a malformed arrival"));
    };
    let Some(value) = writes.get(arrival_key)? else {
        // Retention removed the event meanwhile: nothing left to record.
        return Ok(());
    };
    if !writes.arrival_pending(notifier, number) {
        return Ok(());
    }
    let arrival = Arrival::decode(&value)?;
    let mut stored = JobValue {
        job: Job {
            attempts: 1,
            due_ms: finished.at_ms,
            ..arrival.job(notifier)?
        },
        // The batch that accepted the event: a retry is claimable as soon as it is due.
        batch: arrival.batch,
        seq: 0,
    };
    let job_key = job_key(&arrival.event_key, notifier);
    match &finished.outcome {
        Outcome::Delivered => {
            stored.job.status = JobStatus::Delivered;
            meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
            writes.finish_arrival(notifier, number, Some(stored));
            return Ok(());
        }
        Outcome::Retry { at_ms, error } => {
            stored.job.last_error = Some(error.clone());
            stored.job.due_ms = *at_ms;
            meta.seq += 1;
            stored.seq = meta.seq;
            writes.insert(stored.queue_key(), job_key.clone());
        }
        Outcome::Dead { reason } => {
            stored.job.status = JobStatus::Dead;
            stored.job.last_error = Some(reason.clone());
            meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
            meta.counts.dead += 1;
        }
    }
    writes.insert(job_key, stored.encode()?);
    writes.finish_arrival(notifier, number, None);
    Ok(())
}

/// Moves each notifier's cursor past the arrivals finished so far, in order. A delivery it
/// cannot move past (an earlier arrival is still out) gets its `j` entry, so what it says
/// survives a restart; a move past deliveries writes one `d` entry with their time. Returns
/// the arrival logs as they stand after this group.
fn settle_arrivals(
    writes: &mut Group<'_>,
    meta: &mut MetaState,
    leased: &dyn Fn(&[u8]) -> bool,
) -> Result<HashMap<String, ArrivalProgress>, StoreError> {
    // The group's copy, taken: nothing reads it once the group is settled.
    let mut all = std::mem::take(&mut writes.progress);
    for (notifier, finished) in std::mem::take(&mut writes.finished_arrivals) {
        let log = meta.arrivals.get(&notifier).copied().unwrap_or_default();
        let progress = all
            .entry(notifier.clone())
            .or_insert_with(|| ArrivalProgress {
                cursor: log.cursor,
                ..ArrivalProgress::default()
            });
        let cursor = progress.cursor;
        progress
            .done
            .extend(finished.keys().copied().filter(|n| *n >= cursor));
        loop {
            if progress.done.remove(&progress.cursor) {
                progress.cursor += 1;
                continue;
            }
            // Claims skip an arrival they cannot deliver; it must not hold the log back
            // (and turn every later delivery into a `j` entry). It is looked at once
            // something above it is finished.
            if progress.done.is_empty() || progress.cursor >= log.next {
                break;
            }
            if !pass_undeliverable(writes, meta, &notifier, progress.cursor)?
                && !queue_blocking(writes, &notifier, progress.cursor, leased)?
            {
                break;
            }
            progress.cursor += 1;
        }
        let mut delivered_at = BTreeMap::new();
        for (number, delivered) in finished {
            let Some(stored) = delivered else {
                continue;
            };
            if number < progress.cursor {
                delivered_at.insert(number, stored.job.due_ms);
            } else {
                let job_key = job_key(
                    &event_key(&stored.job.endpoint, &stored.job.event_id),
                    &notifier,
                );
                // A job this group wrote for it already (a re-notify) stands.
                if !writes.written.contains_key(&job_key) {
                    writes.insert(job_key, stored.encode()?);
                }
            }
        }
        if let Some(value) = encode_delivered(&delivered_at, progress.cursor) {
            writes.insert(
                arrival_key(DELIVERED, &notifier, progress.cursor - 1),
                value,
            );
        }
        meta.arrivals.entry(notifier).or_default().cursor = progress.cursor;
    }
    // A notifier's first arrival starts its log: listings must see it before any finish.
    for (notifier, log) in &meta.arrivals {
        if !all.contains_key(notifier) {
            all.insert(
                notifier.clone(),
                ArrivalProgress {
                    cursor: log.cursor,
                    ..ArrivalProgress::default()
                },
            );
        }
    }
    Ok(all)
}

/// Moves a pending arrival that holds its log back (claims passed it: it is not due yet,
/// because the clock stepped back after it was received) to the queue, as a job with the
/// same due time and sequence, so later deliveries pass it. Not while a claim holds it,
/// even an expired one: that claimer's finish names the arrival. Whether it was moved.
fn queue_blocking(
    writes: &mut Group<'_>,
    notifier: &str,
    number: u64,
    leased: &dyn Fn(&[u8]) -> bool,
) -> Result<bool, StoreError> {
    let at = arrival_key(ARRIVAL, notifier, number);
    if leased(&at) {
        return Ok(false);
    }
    let Some(value) = writes.get(&at)? else {
        return Ok(false);
    };
    let arrival = Arrival::decode(&value)?;
    let stored = JobValue {
        job: arrival.job(notifier)?,
        batch: arrival.batch,
        seq: arrival.seq,
    };
    let job_key = job_key(&arrival.event_key, notifier);
    writes.insert(stored.queue_key(), job_key.clone());
    // Still pending, now as a queued job: the outbox count stays.
    writes.insert(job_key, stored.encode()?);
    Ok(true)
}

/// Ends an arrival that can never be delivered, if it is one: its entry or its event is
/// gone or unreadable (damage; [`super::backup::check`] reports it). An unreadable event's
/// job becomes dead with the reason, so the operator sees it; a dangling entry is removed.
/// Whether it was ended.
fn pass_undeliverable(
    writes: &mut Group<'_>,
    meta: &mut MetaState,
    notifier: &str,
    number: u64,
) -> Result<bool, StoreError> {
    let at = arrival_key(ARRIVAL, notifier, number);
    let Some(value) = writes.get(&at)? else {
        return Ok(true);
    };
    let dangling = |writes: &mut Group<'_>, meta: &mut MetaState| {
        writes.remove(at.clone());
        meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
        Ok(true)
    };
    let Ok(arrival) = Arrival::decode(&value) else {
        return dangling(writes, meta);
    };
    let Ok((endpoint, id)) = split_event_key(&arrival.event_key) else {
        return dangling(writes, meta);
    };
    let Some(event) = writes.get(&key(EVENT, &[&arrival.event_key]))? else {
        return dangling(writes, meta);
    };
    if super::layout::decode_event(endpoint, id, &event).is_ok() {
        return Ok(false);
    }
    let stored = JobValue {
        job: Job {
            status: JobStatus::Dead,
            last_error: Some("its event cannot be read back (see `perfhook store check`)".into()),
            ..first_attempt(endpoint, id, notifier, arrival.due_ms)
        },
        batch: arrival.batch,
        seq: 0,
    };
    writes.insert(job_key(&arrival.event_key, notifier), stored.encode()?);
    meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
    meta.counts.dead += 1;
    Ok(true)
}

fn purge(
    writes: &mut Group<'_>,
    meta: &mut MetaState,
    now: u64,
    batch: usize,
) -> Result<usize, StoreError> {
    let end = key(EXPIRY, &[&now.saturating_add(1).to_be_bytes()]);
    // An iterator error ends the purge with it: sled's iterator does not move past a
    // damaged page, so skipping errors would spin on the same one forever.
    let mut expired: Vec<Vec<u8>> = Vec::new();
    for expiry_key in writes.tree.range(vec![EXPIRY]..end).keys() {
        if expired.len() >= batch {
            break;
        }
        let expiry_key = expiry_key.map_err(|e| sled_error(&e))?;
        if !matches!(writes.written.get(expiry_key.as_ref()), Some(None)) {
            expired.push(expiry_key.to_vec());
        }
    }
    for expiry_key in &expired {
        let event_key = expiry_key.get(9..).unwrap_or_default().to_vec();
        if !remove_event(writes, meta, &event_key)? {
            writes.remove(expiry_key.clone());
        }
    }
    if !expired.is_empty() {
        forget_old_deliveries(writes, meta)?;
    }
    Ok(expired.len())
}

/// Removes the `d` entries that only cover arrivals retention has removed: those below each
/// notifier's oldest arrival still kept.
fn forget_old_deliveries(writes: &mut Group<'_>, meta: &MetaState) -> Result<(), StoreError> {
    for (notifier, log) in &meta.arrivals {
        let mut oldest = log.next;
        for arrival_key in writes
            .tree
            .scan_prefix(notifier_prefix(ARRIVAL, notifier))
            .keys()
        {
            let arrival_key = arrival_key.map_err(|e| sled_error(&e))?;
            if matches!(writes.written.get(arrival_key.as_ref()), Some(None)) {
                continue;
            }
            if let Some((_, number)) = parse_arrival_key(&arrival_key) {
                oldest = oldest.min(number);
            }
            break;
        }
        let mut covered = Vec::new();
        for delivered_key in writes
            .tree
            .range(notifier_prefix(DELIVERED, notifier)..arrival_key(DELIVERED, notifier, oldest))
            .keys()
        {
            covered.push(delivered_key.map_err(|e| sled_error(&e))?.to_vec());
        }
        for delivered_key in covered {
            writes.remove(delivered_key);
        }
    }
    Ok(())
}

/// Removes an event with its jobs, queue entries, expiry and listing entries; whether it was
/// there. Everything is read and decoded before anything is removed, so a read error or an
/// undecodable job leaves the event whole (the group's other writes still commit).
fn remove_event(
    writes: &mut Group<'_>,
    meta: &mut MetaState,
    event_key: &[u8],
) -> Result<bool, StoreError> {
    let stored_key = key(EVENT, &[event_key]);
    let Some(value) = writes.get(&stored_key)? else {
        return Ok(false);
    };
    let (event_meta, _) = decode_event_meta(&value)?;
    let mut jobs = Vec::new();
    for entry in writes.tree.scan_prefix(key(JOB, &[event_key, &[0]])) {
        let (job_key, value) = entry.map_err(|e| sled_error(&e))?;
        // A job this group already changed is read as changed, and one it removed is gone.
        match writes.get(&job_key)? {
            Some(value) => jobs.push((job_key.to_vec(), JobValue::decode(&value)?)),
            None if writes.written.contains_key(job_key.as_ref()) => {}
            None => jobs.push((job_key.to_vec(), JobValue::decode(&value)?)),
        }
    }
    for job_key in writes
        .jobs_written
        .get(event_key)
        .cloned()
        .unwrap_or_default()
    {
        if jobs.iter().any(|(seen, _)| *seen == job_key) {
            continue;
        }
        if let Some(value) = writes.get(&job_key)? {
            jobs.push((job_key, JobValue::decode(&value)?));
        }
    }
    writes.remove(key(
        EXPIRY,
        &[&event_meta.expires_at.to_be_bytes(), event_key],
    ));
    writes.remove(stored_key);
    writes.remove(key(
        LISTING,
        &[&event_meta.received_at.to_be_bytes(), event_key],
    ));
    meta.counts.events = meta.counts.events.saturating_sub(1);
    for (notifier, number) in &event_meta.arrivals {
        let arrival_key = arrival_key(ARRIVAL, notifier, *number);
        let finished_now = writes
            .finished_arrivals
            .get_mut(notifier)
            .and_then(|finished| finished.get_mut(number));
        if let Some(delivered) = finished_now {
            // Finished earlier in this group: a delivery must not leave a `j` entry behind.
            *delivered = None;
        } else if writes.arrival_pending(notifier, *number) {
            meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
            writes.finish_arrival(notifier, *number, None);
        }
        writes.remove(arrival_key.clone());
        writes.ended_leases.push(arrival_key);
    }
    for (job_key, stored) in jobs {
        match stored.job.status {
            JobStatus::Pending => {
                writes.remove(stored.queue_key());
                meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
            }
            JobStatus::Dead => meta.counts.dead = meta.counts.dead.saturating_sub(1),
            JobStatus::Delivered | JobStatus::Suppressed => {}
        }
        writes.remove(job_key.clone());
        writes.ended_leases.push(job_key);
    }
    Ok(true)
}

/// Queues `notifiers`' jobs of a stored event again, due now with no attempts; a pending job
/// is left alone. `None` when the event is not stored.
fn requeue(
    writes: &mut Group<'_>,
    meta: &mut MetaState,
    endpoint: &str,
    id: &str,
    notifiers: &[String],
    now_ms: u64,
) -> Result<Option<usize>, StoreError> {
    let event_key = event_key(endpoint, id);
    let Some(value) = writes.get(&key(EVENT, &[&event_key]))? else {
        return Ok(None);
    };
    let (event_meta, _) = decode_event_meta(&value)?;
    let mut queued = 0;
    let mut named = std::collections::HashSet::new();
    for notifier in notifiers {
        if !named.insert(notifier.as_str()) {
            continue;
        }
        let job_key = job_key(&event_key, notifier);
        if let Some(value) = writes.get(&job_key)? {
            match JobValue::decode(&value)?.job.status {
                JobStatus::Pending => continue,
                JobStatus::Dead => meta.counts.dead = meta.counts.dead.saturating_sub(1),
                JobStatus::Delivered | JobStatus::Suppressed => {}
            }
        } else if let Some((_, number)) = event_meta
            .arrivals
            .iter()
            .find(|(name, _)| name == notifier)
        {
            if writes.arrival_pending(notifier, *number) {
                // Its first attempt is still to come.
                continue;
            }
            // Delivered earlier in this group: the job written here replaces what settling
            // would have written for it.
            if let Some(delivered) = writes
                .finished_arrivals
                .get_mut(notifier.as_str())
                .and_then(|finished| finished.get_mut(number))
            {
                *delivered = None;
            }
        }
        meta.seq += 1;
        let stored = JobValue {
            job: Job {
                endpoint: endpoint.to_owned(),
                event_id: id.to_owned(),
                notifier: notifier.clone(),
                status: JobStatus::Pending,
                attempts: 0,
                last_error: None,
                due_ms: now_ms,
                digest: false,
            },
            batch: meta.batch,
            seq: meta.seq,
        };
        writes.insert(stored.queue_key(), job_key.clone());
        writes.insert(job_key, stored.encode()?);
        meta.counts.outbox += 1;
        queued += 1;
    }
    Ok(Some(queued))
}

/// At most this many audit entries go in one purge (the rest in the next round).
const AUDIT_PURGE_BATCH: usize = 1_000;

/// Removes the oldest audit entries recorded before `before`, keeping the last one's
/// (sequence, hash) as the anchor. An entry that cannot be read stops the purge there, so
/// `audit verify` still reports it.
fn purge_audit(writes: &mut Group<'_>, before: u64) -> Result<usize, StoreError> {
    let mut removed = Vec::new();
    let mut anchor = None;
    for entry in writes.tree.scan_prefix([AUDIT]).take(AUDIT_PURGE_BATCH) {
        let (entry_key, value) = entry.map_err(|e| sled_error(&e))?;
        let Ok(entry) = serde_json::from_slice::<crate::audit::AuditEntry>(&value) else {
            break;
        };
        if entry.at >= before {
            break;
        }
        anchor = Some((entry.seq, entry.hash));
        removed.push(entry_key.to_vec());
    }
    if let Some(anchor) = anchor {
        let value = serde_json::to_vec(&anchor)
            .map_err(|e| StoreError::unavailable(format!("cannot encode the audit anchor: {e}")))?;
        writes.insert(META_AUDIT_ANCHOR.to_vec(), value);
    }
    for entry_key in &removed {
        writes.remove(entry_key.clone());
    }
    Ok(removed.len())
}

fn bury_unconfigured(
    writes: &mut Group<'_>,
    meta: &mut MetaState,
    configured: &[String],
    at_ms: u64,
) -> Result<u64, StoreError> {
    let mut queued = Vec::new();
    for entry in writes.tree.scan_prefix([QUEUE]) {
        let (queue_key, job_key) = entry.map_err(|e| sled_error(&e))?;
        let notifier = queue_key
            .get(1..)
            .and_then(|rest| rest.split(|b| *b == 0).next())
            .and_then(|name| std::str::from_utf8(name).ok())
            .unwrap_or_default();
        if !configured.iter().any(|c| c == notifier) {
            queued.push((queue_key.to_vec(), job_key.to_vec()));
        }
    }
    let mut buried = 0;
    for (queue_key, job_key) in queued {
        let Some(value) = writes.get(&job_key)? else {
            writes.remove(queue_key);
            continue;
        };
        let mut stored = JobValue::decode(&value)?;
        writes.remove(queue_key);
        if stored.job.status != JobStatus::Pending {
            continue;
        }
        stored.job.status = JobStatus::Dead;
        stored.job.last_error = Some(unconfigured_reason(&stored.job.notifier));
        stored.job.due_ms = at_ms;
        writes.insert(job_key.clone(), stored.encode()?);
        writes.ended_leases.push(job_key);
        meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
        meta.counts.dead += 1;
        buried += 1;
    }
    let logs: Vec<String> = meta
        .arrivals
        .keys()
        .filter(|notifier| !configured.contains(notifier))
        .cloned()
        .collect();
    for notifier in logs {
        let cursor = writes.progress.get(&notifier).map_or(0, |p| p.cursor);
        let mut pending = Vec::new();
        let from = arrival_key(ARRIVAL, &notifier, cursor);
        for entry in writes.tree.range(from..notifier_end(ARRIVAL, &notifier)) {
            let (arrival_key, value) = entry.map_err(|e| sled_error(&e))?;
            let Some((_, number)) = parse_arrival_key(&arrival_key) else {
                continue;
            };
            if writes.arrival_pending(&notifier, number) {
                pending.push((arrival_key.to_vec(), number, Arrival::decode(&value)?));
            }
        }
        for (arrival_key, number, arrival) in pending {
            let stored = JobValue {
                job: Job {
                    status: JobStatus::Dead,
                    last_error: Some(unconfigured_reason(&notifier)),
                    due_ms: at_ms,
                    ..arrival.job(&notifier)?
                },
                batch: arrival.batch,
                seq: 0,
            };
            writes.insert(job_key(&arrival.event_key, &notifier), stored.encode()?);
            writes.finish_arrival(&notifier, number, None);
            writes.ended_leases.push(arrival_key);
            meta.counts.outbox = meta.counts.outbox.saturating_sub(1);
            meta.counts.dead += 1;
            buried += 1;
        }
    }
    Ok(buried)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{SledOptions, SledStore};
    use super::*;
    use crate::store::{test_event, Claimed, Finished, NewEvent, Outcome, Store};

    fn new_event(id: &str) -> NewEvent {
        received(id, 1)
    }

    fn received(id: &str, received_at: u64) -> NewEvent {
        test_event(id, "log", received_at)
    }

    /// A store holding evt_0 and evt_1, their `log` first attempts claimed.
    async fn two_claimed(dir: &std::path::Path) -> (SledStore, Claimed) {
        let store = SledStore::open(dir, SledOptions::default()).expect("open");
        for id in ["evt_0", "evt_1"] {
            store.record(new_event(id)).await.expect("record");
        }
        let claimed = store
            .claim("log", 1_000, Duration::from_secs(30), 10)
            .await
            .expect("claim");
        (store, claimed)
    }

    /// The group the writer would serve next, driven by hand: finishes and removals in one
    /// group, in an order the test chooses.
    fn next_group<'t>(store: &SledStore, tree: &'t sled::Tree) -> (Group<'t>, MetaState) {
        let mut meta = load_meta(tree).expect("meta");
        meta.batch += 1;
        let progress = store.shared.claims.lock().expect("claims").arrivals.clone();
        let group = Group {
            tree,
            batch: sled::Batch::default(),
            written: HashMap::new(),
            large: false,
            ended_leases: Vec::new(),
            progress,
            finished_arrivals: HashMap::new(),
            jobs_written: HashMap::new(),
        };
        (group, meta)
    }

    /// Whether a claim holds a key, as the writer asks while settling.
    fn leased_in(store: &SledStore) -> impl Fn(&[u8]) -> bool + '_ {
        |key| {
            store
                .shared
                .claims
                .lock()
                .is_ok_and(|claims| claims.leases.contains_key(key))
        }
    }

    /// An arrival whose event cannot be read back is skipped by claims and, once a later
    /// one is delivered, ends as a dead job with the reason: it never holds the log back.
    #[tokio::test]
    async fn an_arrival_whose_event_is_unreadable_becomes_dead_and_the_cursor_moves_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), SledOptions::default()).expect("open");
        for id in ["evt_a", "evt_b"] {
            store.record(new_event(id)).await.expect("record");
        }
        let tree = store.shared.tree().expect("tree");
        tree.insert(
            key(EVENT, &[&event_key("perf", "evt_a")]),
            &b"\x00\x00\x00\x02{}"[..],
        )
        .expect("garble");
        let lease = Duration::from_secs(30);
        let claimed = store.claim("log", 1_000, lease, 10).await.expect("claim");
        let ids: Vec<&str> = claimed.jobs.iter().map(|c| c.event.id.as_str()).collect();
        assert_eq!(ids, ["evt_b"]);
        store
            .finish(vec![Finished {
                token: claimed.jobs[0].token.clone(),
                outcome: Outcome::Delivered,
                at_ms: 1_001,
            }])
            .await
            .expect("finish");
        let counts = store.counts();
        assert_eq!((counts.outbox, counts.dead), (0, 1));
        let dead = store.jobs(JobStatus::Dead, None, 10).await.expect("jobs");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].event_id, "evt_a");
        assert!(
            dead[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("cannot be read back")),
            "{dead:?}"
        );
        let cursor = store.shared.claims.lock().expect("claims").arrivals["log"].clone();
        assert_eq!((cursor.cursor, cursor.done.len()), (2, 0));
        assert!(store
            .claim("log", 100_000_000, lease, 10)
            .await
            .expect("claim")
            .jobs
            .is_empty());
        store.close().await.expect("close");
    }

    /// One group may finish a first attempt and then remove its event (an operator's delete,
    /// retention): whatever the finish wrote for it goes with the event, and the counts are
    /// those of the event never having been there.
    #[tokio::test]
    async fn removing_an_event_in_the_group_that_finished_its_first_attempt_leaves_nothing() {
        let outcomes = [
            Outcome::Delivered,
            Outcome::Retry {
                at_ms: 9_000,
                error: "refused".into(),
            },
            Outcome::Dead {
                reason: "gave up".into(),
            },
        ];
        for outcome in outcomes {
            let dir = tempfile::tempdir().expect("tempdir");
            let (store, claimed) = two_claimed(dir.path()).await;
            let tree = store.shared.tree().expect("tree");
            let (mut group, mut meta) = next_group(&store, &tree);
            // evt_0 stays out, so a delivery of evt_1 is out of order.
            let finished = Finished {
                token: claimed.jobs[1].token.clone(),
                outcome: outcome.clone(),
                at_ms: 1_001,
            };
            finish_one(&mut group, &mut meta, &finished).expect("finish");
            let removed = event_key("perf", "evt_1");
            assert!(remove_event(&mut group, &mut meta, &removed).expect("remove"));
            settle_arrivals(&mut group, &mut meta, &leased_in(&store)).expect("settle");
            let job_prefix = key(JOB, &[&removed]);
            let left: Vec<&Vec<u8>> = group
                .written
                .iter()
                .filter(|(written_key, value)| {
                    value.as_ref().is_some_and(|value| {
                        written_key.starts_with(&job_prefix) || value.starts_with(&job_prefix)
                    })
                })
                .map(|(written_key, _)| written_key)
                .collect();
            assert!(left.is_empty(), "{outcome:?}: {left:?}");
            let counts = (meta.counts.events, meta.counts.outbox, meta.counts.dead);
            assert_eq!(counts, (1, 1, 0), "{outcome:?}");
            drop(group);
            store.close().await.expect("close");
        }
    }

    /// A group that delivers a first attempt out of order and then re-notifies the same
    /// event keeps the re-notify: a pending queued job, counted.
    #[tokio::test]
    async fn a_renotify_in_the_group_that_delivered_out_of_order_stands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, claimed) = two_claimed(dir.path()).await;
        let tree = store.shared.tree().expect("tree");
        let (mut group, mut meta) = next_group(&store, &tree);
        let finished = Finished {
            token: claimed.jobs[1].token.clone(),
            outcome: Outcome::Delivered,
            at_ms: 1_001,
        };
        finish_one(&mut group, &mut meta, &finished).expect("finish");
        let log = ["log".to_owned()];
        let queued = requeue(&mut group, &mut meta, "perf", "evt_1", &log, 2_000).expect("requeue");
        assert_eq!(queued, Some(1));
        settle_arrivals(&mut group, &mut meta, &leased_in(&store)).expect("settle");
        let job_key = job_key(&event_key("perf", "evt_1"), "log");
        let stored = group.get(&job_key).expect("read").expect("a job");
        let stored = JobValue::decode(&stored).expect("decode");
        assert_eq!(
            (stored.job.status, stored.job.attempts),
            (JobStatus::Pending, 0)
        );
        assert!(
            group.get(&stored.queue_key()).expect("read").is_some(),
            "queued"
        );
        assert_eq!(
            meta.counts.outbox, 2,
            "evt_0's first attempt and evt_1's re-notify"
        );
        drop(group);
        store.close().await.expect("close");
    }

    /// After the clock stepped back, a first attempt received "later" is not due yet; claims
    /// pass it, and the delivery after it moves it to the queue so the log moves on.
    #[tokio::test]
    async fn an_arrival_not_yet_due_is_queued_so_the_log_moves_past_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), SledOptions::default()).expect("open");
        store
            .record(received("evt_late", 10))
            .await
            .expect("record");
        store
            .record(received("evt_early", 1))
            .await
            .expect("record");
        let lease = Duration::from_secs(30);
        let claimed = store.claim("log", 5_000, lease, 10).await.expect("claim");
        let ids: Vec<&str> = claimed.jobs.iter().map(|c| c.event.id.as_str()).collect();
        assert_eq!(ids, ["evt_early"]);
        store
            .finish(vec![Finished {
                token: claimed.jobs[0].token.clone(),
                outcome: Outcome::Delivered,
                at_ms: 5_001,
            }])
            .await
            .expect("finish");
        let progress = store.shared.claims.lock().expect("claims").arrivals["log"].clone();
        assert_eq!((progress.cursor, progress.done.len()), (2, 0));
        assert_eq!(store.counts().outbox, 1);
        let due = store.claim("log", 10_000, lease, 10).await.expect("claim");
        assert_eq!(due.jobs.len(), 1);
        assert_eq!(
            (due.jobs[0].event.id.as_str(), due.jobs[0].job.attempts),
            ("evt_late", 0)
        );
        store
            .finish(vec![Finished {
                token: due.jobs[0].token.clone(),
                outcome: Outcome::Delivered,
                at_ms: 10_001,
            }])
            .await
            .expect("finish");
        assert_eq!(store.counts().outbox, 0);
        let detail = store
            .event("perf", "evt_late")
            .await
            .expect("read")
            .expect("stored");
        let job = &detail.notifications[0];
        assert_eq!(
            (job.status, job.attempts, job.due_ms),
            (JobStatus::Delivered, 1, 10_001)
        );
        store.close().await.expect("close");
    }
}
