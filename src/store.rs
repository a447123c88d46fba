//! Durable storage in sled: each event recorded once (jobs first, then an atomic
//! insert-if-absent of the event), the outbox those jobs wait in, and expiry by retention.
//!
//! Trees: `events` (`endpoint \0 id` → record and the write that stored it), `outbox`
//! (`due_ms ‖ seq` → job, so the first key is the next job due), `dead` (jobs that ran out of
//! attempts), `expiry` (`expires_at ‖ event key` → (), so purging reads from the front).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};
use thiserror::Error;

/// A stored event: what was received and when. The body is kept byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The verified body (valid UTF-8 JSON: it parsed).
    pub body: String,
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
    /// Attempts made so far.
    pub attempts: u32,
    /// The last failure, for the dead-letter log.
    pub last_error: Option<String>,
    /// The write that created this job; it is delivered only while the stored event carries
    /// the same number (see [`Store::record_if_new`]). 0 in jobs written before it existed.
    #[serde(default)]
    pub writer: u64,
    /// When the job was written, in Unix milliseconds (0 in jobs written before it existed).
    #[serde(default)]
    pub created_ms: u64,
}

/// What the `events` tree holds: the record and the write that stored it.
#[derive(Serialize)]
struct StoredEvent<'a> {
    writer: u64,
    #[serde(flatten)]
    record: &'a EventRecord,
}

#[derive(Deserialize)]
struct LoadedEvent {
    #[serde(default)]
    writer: u64,
    #[serde(flatten)]
    record: EventRecord,
}

/// Where a job sits in the outbox: due time then a unique sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobKey([u8; 16]);

impl JobKey {
    fn new(due_ms: u64, seq: u64) -> Self {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&due_ms.to_be_bytes());
        key[8..].copy_from_slice(&seq.to_be_bytes());
        Self(key)
    }

    fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// When the job is due, in Unix milliseconds.
    #[must_use]
    pub fn due_ms(&self) -> u64 {
        let mut due = [0u8; 8];
        due.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(due)
    }
}

/// What a job finds when it looks up its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    /// The event, stored by the write that created the job: deliver.
    Own(EventRecord),
    /// The event was stored by another write: the job is an orphan of a losing duplicate or
    /// of a crash; drop it.
    Orphan,
    /// No such event: not stored yet (its write is between the jobs and the event), a
    /// crash lost it, or retention purged it.
    Absent,
}

/// Whether `record_if_new` stored a new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time this id was seen: stored with its jobs.
    New,
    /// Already stored: nothing written.
    Duplicate,
}

/// A storage failure. The server answers 503 so the sender retries.
#[derive(Debug, Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption, or another process holds the directory).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("stored value is unreadable: {0}")]
    Decode(#[from] serde_json::Error),
}

/// sled's page cache unless configured otherwise, in MiB (`storage.cache_mb`).
pub const DEFAULT_CACHE_MB: u64 = 64;

/// How the store uses memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_MB << 20,
        }
    }
}

/// The sled-backed store.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    events: Tree,
    outbox: Tree,
    dead: Tree,
    expiry: Tree,
    flush: GroupFlush,
}

impl Store {
    /// Opens (or creates) the store in `path`. sled locks the directory: one process at a time.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when the directory cannot be opened or locked.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens (or creates) the store in `path` with `options`.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when the directory cannot be opened or locked.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .open()?;
        Ok(Self {
            events: db.open_tree("events")?,
            outbox: db.open_tree("outbox")?,
            dead: db.open_tree("dead")?,
            expiry: db.open_tree("expiry")?,
            flush: GroupFlush::default(),
            db,
        })
    }

    /// Stores `record` and one job per notifier, unless an event with the same endpoint and
    /// id is already stored.
    ///
    /// Atomic without a multi-tree transaction (sled's cost 2.5 times the whole request on
    /// one core: 8.5k against 22k requests/s in the load benchmark). The jobs are written
    /// first, each stamped with a fresh writer number, and made durable; then one
    /// `compare_and_swap` stores the event, stamped the same, only if its key is absent. That
    /// swap is the dedupe decision. The flush in between makes the order certain: sled
    /// promises no order for separate writes across a crash, and an event on disk without
    /// its jobs would be acknowledged and never notified. Jobs whose
    /// writer is not the stored event's are orphans (a losing concurrent duplicate, or a
    /// crash between the two writes) and the outbox drops them ([`Store::event_for_job`]),
    /// so an event is notified exactly by the jobs written with it. A loser removes its jobs
    /// at once. The expiry key follows the event. The caller still flushes before it answers.
    ///
    /// # Errors
    /// [`StoreError`] when sled fails; an event is then not stored.
    pub async fn record_if_new(
        &self,
        record: &EventRecord,
        notifiers: &[String],
        now_ms: u64,
        expires_at: u64,
    ) -> Result<Recorded, StoreError> {
        let key = event_key(&record.endpoint, &record.id);
        // Most duplicates are retries long after the first copy: answer them without writing.
        if self.events.contains_key(&key)? {
            return Ok(Recorded::Duplicate);
        }
        let writer = self.db.generate_id()?;
        let value = serde_json::to_vec(&StoredEvent { writer, record })?;
        let mut job_keys = Vec::with_capacity(notifiers.len());
        for notifier in notifiers {
            let job = Job {
                endpoint: record.endpoint.clone(),
                event_id: record.id.clone(),
                notifier: notifier.clone(),
                attempts: 0,
                last_error: None,
                writer,
                created_ms: now_ms,
            };
            let job_key = JobKey::new(now_ms, self.db.generate_id()?);
            self.outbox
                .insert(&job_key.0[..], serde_json::to_vec(&job)?)?;
            job_keys.push(job_key);
        }
        if !job_keys.is_empty() {
            self.flush().await?;
        }
        let swapped = self
            .events
            .compare_and_swap(&key, None as Option<&[u8]>, Some(value))?;
        if swapped.is_err() {
            for job_key in job_keys {
                self.outbox.remove(&job_key.0[..])?;
            }
            return Ok(Recorded::Duplicate);
        }
        let mut expiry_key = expires_at.to_be_bytes().to_vec();
        expiry_key.extend_from_slice(&key);
        self.expiry.insert(expiry_key, &[][..])?;
        Ok(Recorded::New)
    }

    /// Makes every write that completed before this call durable. Concurrent callers share
    /// flushes (group commit): one flush covers every write made before it started.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when the flush fails.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.flush.flush(&self.db).await
    }

    /// The stored event for an endpoint and id.
    ///
    /// # Errors
    /// [`StoreError`] on a read or decode failure.
    pub fn event(&self, endpoint: &str, id: &str) -> Result<Option<EventRecord>, StoreError> {
        Ok(self.load(endpoint, id)?.map(|loaded| loaded.record))
    }

    /// The event a job notifies, if the job is the event's own.
    ///
    /// # Errors
    /// [`StoreError`] on a read or decode failure.
    pub fn event_for_job(&self, job: &Job) -> Result<JobEvent, StoreError> {
        Ok(match self.load(&job.endpoint, &job.event_id)? {
            Some(loaded) if loaded.writer == job.writer => JobEvent::Own(loaded.record),
            Some(_) => JobEvent::Orphan,
            None => JobEvent::Absent,
        })
    }

    fn load(&self, endpoint: &str, id: &str) -> Result<Option<LoadedEvent>, StoreError> {
        self.events
            .get(event_key(endpoint, id))?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(StoreError::from))
            .transpose()
    }

    /// Up to `limit` jobs due at or before `now_ms`, earliest first.
    ///
    /// # Errors
    /// [`StoreError`] on a read or decode failure.
    pub fn due_jobs(&self, now_ms: u64, limit: usize) -> Result<Vec<(JobKey, Job)>, StoreError> {
        let end = JobKey::new(now_ms, u64::MAX);
        let mut due = Vec::new();
        for entry in self.outbox.range(..=&end.0[..]).take(limit) {
            let (key, value) = entry?;
            if let Some(key) = JobKey::from_slice(&key) {
                due.push((key, serde_json::from_slice(&value)?));
            }
        }
        Ok(due)
    }

    /// When the earliest job is due, if any.
    ///
    /// # Errors
    /// [`StoreError::Sled`] on a read failure.
    pub fn next_due_ms(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .outbox
            .first()?
            .and_then(|(key, _)| JobKey::from_slice(&key))
            .map(|key| key.due_ms()))
    }

    /// Removes a delivered job.
    ///
    /// # Errors
    /// [`StoreError::Sled`] on a write failure.
    pub fn complete(&self, key: JobKey) -> Result<(), StoreError> {
        self.outbox.remove(&key.0[..])?;
        Ok(())
    }

    /// Moves a job to a later due time, in one transaction so it is never lost or doubled.
    ///
    /// # Errors
    /// [`StoreError`] on a write failure.
    pub fn reschedule(&self, key: JobKey, job: &Job, due_ms: u64) -> Result<(), StoreError> {
        let new_key = JobKey::new(due_ms, self.db.generate_id()?);
        let value = serde_json::to_vec(job)?;
        self.outbox
            .transaction(|outbox| {
                outbox.remove(&key.0[..])?;
                outbox.insert(&new_key.0[..], value.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_error)
    }

    /// Moves a job that ran out of attempts to the dead-letter tree.
    ///
    /// # Errors
    /// [`StoreError`] on a write failure.
    pub fn bury(&self, key: JobKey, job: &Job) -> Result<(), StoreError> {
        let value = serde_json::to_vec(job)?;
        (&self.outbox, &self.dead)
            .transaction(|(outbox, dead)| {
                outbox.remove(&key.0[..])?;
                dead.insert(&key.0[..], value.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_error)
    }

    /// Removes up to `batch` events whose retention ended at or before `now`, with their
    /// dedupe keys. Returns how many were removed.
    ///
    /// # Errors
    /// [`StoreError::Sled`] on a read or write failure.
    pub fn purge_expired(&self, now: u64, batch: usize) -> Result<usize, StoreError> {
        let end = now.saturating_add(1).to_be_bytes();
        let expired: Vec<sled::IVec> = self
            .expiry
            .range(..&end[..])
            .keys()
            .take(batch)
            .collect::<Result<_, _>>()?;
        for expiry_key in &expired {
            if let Some(event_key) = expiry_key.get(8..) {
                self.events.remove(event_key)?;
            }
            self.expiry.remove(expiry_key)?;
        }
        Ok(expired.len())
    }

    /// Writes and flushes a probe key: proof the store accepts durable writes (`/readyz`).
    ///
    /// # Errors
    /// [`StoreError::Sled`] when it does not.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.db
            .insert("readyz-probe", &crate::clock::unix_now().to_be_bytes()[..])?;
        self.flush().await
    }

    /// Events stored (a full scan: for `store stats`, not the request path).
    #[must_use]
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Bytes the store's files take on disk.
    ///
    /// # Errors
    /// [`StoreError::Sled`] when the files cannot be measured.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Jobs waiting in the outbox.
    #[must_use]
    pub fn outbox_depth(&self) -> usize {
        self.outbox.len()
    }

    /// Jobs that ran out of attempts.
    #[must_use]
    pub fn dead_count(&self) -> usize {
        self.dead.len()
    }
}

/// Our transactions never abort on purpose, so an abort is reported as a storage fault.
fn transaction_error(error: TransactionError<()>) -> StoreError {
    match error {
        TransactionError::Storage(error) => StoreError::Sled(error),
        TransactionError::Abort(()) => {
            StoreError::Sled(sled::Error::Unsupported("transaction aborted".into()))
        }
    }
}

fn event_key(endpoint: &str, id: &str) -> Vec<u8> {
    // Endpoint names cannot contain NUL (config check), so the key is unambiguous.
    let mut key = Vec::with_capacity(endpoint.len() + 1 + id.len());
    key.extend_from_slice(endpoint.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Group commit over sled's flush. A caller takes a ticket after its write; a flush that
/// starts after a ticket was taken covers that write, so callers whose ticket is already
/// covered return without flushing again.
#[derive(Debug, Default)]
struct GroupFlush {
    tickets: AtomicU64,
    covered: AtomicU64,
    running: tokio::sync::Mutex<()>,
}

impl GroupFlush {
    async fn flush(&self, db: &sled::Db) -> Result<(), StoreError> {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.running.lock().await;
        if self.covered.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Every ticket up to here was taken after its write, and this flush starts now.
        let upto = self.tickets.load(Ordering::SeqCst);
        db.flush_async().await?;
        self.covered.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> EventRecord {
        EventRecord {
            endpoint: "perf".into(),
            id: id.into(),
            kind: "usage.threshold_reached".into(),
            livemode: Some(true),
            received_at: 1_700_000_000,
            body: "{}".into(),
        }
    }

    #[tokio::test]
    async fn a_second_record_with_the_same_id_is_a_duplicate_and_adds_no_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let notifiers = vec!["log".to_owned(), "email".to_owned()];
        assert_eq!(
            store
                .record_if_new(&record("a"), &notifiers, 1, 100)
                .await
                .expect("rec"),
            Recorded::New
        );
        assert_eq!(
            store
                .record_if_new(&record("a"), &notifiers, 2, 100)
                .await
                .expect("rec"),
            Recorded::Duplicate
        );
        assert_eq!(store.outbox_depth(), 2);
        assert_eq!(store.event("perf", "a").expect("get"), Some(record("a")));
    }

    #[tokio::test]
    async fn only_the_jobs_written_with_the_stored_event_are_deliverable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store
            .record_if_new(&record("a"), &["log".to_owned()], 1, 100)
            .await
            .expect("rec");
        let (_, job) = store.due_jobs(1, 10).expect("due").remove(0);
        assert_eq!(
            store.event_for_job(&job).expect("get"),
            JobEvent::Own(record("a"))
        );
        // A job from a write that lost the swap, or whose event a crash lost.
        let orphan = Job {
            writer: job.writer + 1,
            ..job.clone()
        };
        assert_eq!(store.event_for_job(&orphan).expect("get"), JobEvent::Orphan);
        store.purge_expired(100, 10).expect("purge");
        assert_eq!(store.event_for_job(&job).expect("get"), JobEvent::Absent);
    }

    #[tokio::test]
    async fn jobs_come_due_in_order_and_move_when_rescheduled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store
            .record_if_new(&record("a"), &["log".to_owned()], 10, 100)
            .await
            .expect("rec");
        assert!(store.due_jobs(9, 10).expect("due").is_empty());
        let due = store.due_jobs(10, 10).expect("due");
        assert_eq!(due.len(), 1);
        let (key, job) = &due[0];
        store.reschedule(*key, job, 50).expect("reschedule");
        assert_eq!(store.next_due_ms().expect("next"), Some(50));
        assert_eq!(store.outbox_depth(), 1);
        let (key, job) = store.due_jobs(50, 10).expect("due").remove(0);
        store.bury(key, &job).expect("bury");
        assert_eq!((store.outbox_depth(), store.dead_count()), (0, 1));
    }

    #[tokio::test]
    async fn purge_removes_expired_events_and_their_dedupe_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store
            .record_if_new(&record("old"), &[], 1, 100)
            .await
            .expect("rec");
        store
            .record_if_new(&record("new"), &[], 1, 200)
            .await
            .expect("rec");
        assert_eq!(store.purge_expired(150, 10).expect("purge"), 1);
        assert_eq!(store.event("perf", "old").expect("get"), None);
        assert!(store.event("perf", "new").expect("get").is_some());
        assert_eq!(
            store
                .record_if_new(&record("old"), &[], 1, 300)
                .await
                .expect("rec"),
            Recorded::New
        );
    }
}
