//! The embedded store: sled, one tree, one writer thread, one durable write per group of
//! accepted events.
//!
//! # Why a 2xx means the event and its jobs are on disk together
//! Every change goes through one writer thread ([`writer`]). It takes every request waiting
//! in its queue (a group), decides each one against the tree and the group so far, and
//! writes the whole group as **one `sled::Batch`**: each new event with its jobs (arrival
//! entries, see [`layout`]), expiry and listing entry, plus the counts, batch number and
//! arrival cursors (`m state`). sled
//! applies a batch atomically and recovers it all-or-nothing after a crash (a batch manifest
//! in its log), so no crash can leave an event without its jobs or a job without its event.
//! Then the writer flushes once for the group (sled's `flush`, which ends in
//! `sync_file_range`) and, with `durability = "power-loss"`, `fdatasync`s the data file, so
//! the device's cache and the file's size are on stable storage too. Only then are the
//! group's callers answered; a failure answers them all with an error (503).
//!
//! The dedupe decision is a read of the tree followed by a write, which is atomic here
//! because the writer thread is the only writer of event keys and sled's directory lock
//! keeps every other process out; a duplicate inside one group is caught by the group's
//! own set of keys. A duplicate is answered after the same flush as a new event.
//!
//! # Why a job is never delivered for an event that was not durably accepted
//! A job or arrival carries the number of the batch that wrote it, and [`Store::claim`]
//! skips those from batches that are not yet durable. When a write or flush fails (a full disk), sled's
//! in-memory state may hold writes that never reached the disk, so the store stops serving
//! from it: every call fails until the writer reopens the directory, which leaves exactly
//! what is on disk. Reopening is tried at most once a second, on demand ([`Store::check`],
//! which `/readyz` and the outbox call), so the store recovers without a restart.
//!
//! Leases live in memory: this store is one process, and a crash ends every lease anyway.
//! So do the arrivals finished above a notifier's cursor, which are rebuilt at open from
//! their `j` entries: a finish moves the cursor, or writes the `j` entry, in the batch that
//! records it, so after a crash every arrival is exactly as finished as its last applied
//! batch says (a finish lost with an unflushed batch is attempted again: at least once).

mod arrivals;
mod backup;
mod claim;
mod layout;
mod migrate;
mod refused;
mod writer;

pub use self::backup::{CheckReport, Copied};

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::arrivals::{arrival_progress, arrival_status, ArrivalProgress};
use self::claim::{claimable, with_event, Candidates, Source};
use self::layout::{
    arrival_key, decode_event, decode_event_meta, first_attempt, job_key, key, notifier_end,
    parse_arrival_key, split_event_key, Arrival, JobValue, API_KEY, ARRIVAL, AUDIT, EVENT, JOB,
    LISTING, META_AUDIT_ANCHOR,
};
use self::writer::{Op, Writer};
use super::{
    decode_cursor, encode_cursor, event_key, ApiKeyRecord, Claimed, ClaimedJob, Counts,
    EventDetail, EventPage, EventQuery, EventSummary, Finished, Job, JobStatus, JobToken, NewEvent,
    Recorded, RefusedBounds, RefusedDelivery, Store, StoreError,
};

/// sled's page cache unless configured otherwise, in MiB (`storage.cache_mb`). 16 rather
/// than 64: 50–55 MiB less peak memory under load and no slower, on an empty store and with
/// a million events stored (docs/benchmarks.md, "sled's cache").
pub const DEFAULT_CACHE_MB: u64 = 16;

/// What a 2xx survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Power loss: each group flush ends in `fdatasync` of the data file.
    #[default]
    PowerLoss,
    /// A crash of the process only: sled's flush, which writes pages back with
    /// `sync_file_range` but flushes neither the device's cache nor file metadata.
    ProcessCrash,
}

/// How the sled store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SledOptions {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// What a 2xx survives.
    pub durability: Durability,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_MB << 20,
            durability: Durability::default(),
        }
    }
}

/// The open sled database, replaced whole when the store recovers from a failure.
#[derive(Debug, Clone)]
struct Handle {
    db: sled::Db,
    tree: sled::Tree,
}

/// The file sled writes its log and pages to; `fdatasync` on it covers what `flush` wrote.
const DATA_FILE: &str = "db";

impl Handle {
    fn open(path: &Path, options: SledOptions) -> Result<(Self, Option<File>), StoreError> {
        // sled 0.34 panics while recovering some damaged files (an index out of bounds in its
        // segment code for a `db` cut short); the panic is on this thread, and sled releases
        // its lock when it unwinds, so it becomes an error naming the directory. The binary's
        // panic hook keeps sled's own message off stderr while `RECOVERING` is set.
        RECOVERING.with(|flag| flag.set(true));
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sled::Config::new()
                .path(path)
                .cache_capacity(options.cache_bytes)
                .open()
        }));
        RECOVERING.with(|flag| flag.set(false));
        let db = match opened {
            Err(_) => return Err(damaged(path)),
            Ok(result) => result.map_err(|e| sled_error(&e))?,
        };
        let tree = db.open_tree("perfhook").map_err(|e| sled_error(&e))?;
        migrate::migrate(&db, &tree)?;
        let data_file = match options.durability {
            Durability::PowerLoss => {
                let file = File::open(path.join(DATA_FILE)).map_err(|e| {
                    StoreError::unavailable(format!("cannot open {DATA_FILE} to sync it: {e}"))
                })?;
                // The directory entries of `db` and `blobs/` must survive power loss too.
                sync_dir(path)?;
                Some(file)
            }
            Durability::ProcessCrash => None,
        };
        Ok((Self { db, tree }, data_file))
    }
}

thread_local! {
    /// Set while this thread runs sled's recovery, whose panic the store turns into an error.
    static RECOVERING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside sled's recovery at open: a panic there is reported by the
/// store as a damaged data directory, so a panic hook may keep sled's own text quiet.
#[must_use]
pub fn recovering_on_this_thread() -> bool {
    RECOVERING.with(std::cell::Cell::get)
}

/// The error for a data directory sled cannot read back.
fn damaged(path: &Path) -> StoreError {
    StoreError::corrupt(format!(
        "the data directory {} is damaged (sled could not recover it); restore it from a backup or move it aside",
        path.display()
    ))
}

/// `fsync` of a directory, so the entries created in it are durable.
fn sync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| StoreError::unavailable(format!("cannot sync {}: {e}", path.display())))
}

/// The sequence number in an `a` key.
fn audit_position(key: &[u8]) -> u64 {
    key.get(1..9)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// What a locked data directory reports.
const LOCKED: &str =
    "another perfhook process is using it; stop that process, or give this one its own --data-dir";

/// Whether opening failed because another process holds the data directory.
#[must_use]
pub fn is_locked(error: &StoreError) -> bool {
    error.to_string().contains(LOCKED)
}

/// sled's errors in one line, without Rust debug text.
fn describe_sled(error: &sled::Error) -> String {
    match error {
        // sled words its lock failure as an `Other` error around the OS's `WouldBlock`.
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock") =>
        {
            LOCKED.to_owned()
        }
        sled::Error::Io(io) => format!("I/O error: {io}"),
        sled::Error::Corruption { .. } => "sled found corrupt data".to_owned(),
        other => other.to_string(),
    }
}

/// A sled error as a store error: corruption sled detects is `Corrupt`, the rest
/// `Unavailable` (I/O, a lock), which recovers once its cause is gone.
fn sled_error(error: &sled::Error) -> StoreError {
    match error {
        sled::Error::Corruption { .. } => StoreError::corrupt(describe_sled(error)),
        _ => StoreError::unavailable(describe_sled(error)),
    }
}

/// What the callers and the writer share.
#[derive(Debug)]
struct Shared {
    /// The open database, `None` while failed or closed.
    handle: RwLock<Option<Handle>>,
    /// Set when a write or flush failed; cleared when a reopen succeeds.
    failed: AtomicBool,
    /// The last batch known to be durable.
    durable_batch: AtomicU64,
    counts: Mutex<Counts>,
    claims: Mutex<Claims>,
    lease_numbers: AtomicU64,
}

/// What claimers must see together: the leases, and which arrivals are still pending.
#[derive(Debug, Default)]
struct Claims {
    /// `j` or `n` key → (lease number, lease end in ms).
    leases: HashMap<Vec<u8>, (u64, u64)>,
    /// Each notifier's arrival log, as of the last applied batch.
    arrivals: HashMap<String, ArrivalProgress>,
}

impl Shared {
    fn tree(&self) -> Result<sled::Tree, StoreError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(
                "an earlier write failed; recovering",
            ));
        }
        self.handle
            .read()
            .ok()
            .and_then(|handle| handle.as_ref().map(|h| h.tree.clone()))
            .ok_or_else(|| StoreError::unavailable("the store is closed"))
    }

    fn counts(&self) -> Counts {
        self.counts.lock().map(|c| *c).unwrap_or_default()
    }
}

/// The sled-backed store.
#[derive(Debug)]
pub struct SledStore {
    shared: Arc<Shared>,
    refused: refused::Refused,
    /// The audit log's last (sequence, hash), read on first append; held across the write
    /// so entries chain in order.
    audit_head: tokio::sync::Mutex<Option<(u64, String)>>,
    ops: std::sync::mpsc::Sender<Op>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    path: PathBuf,
}

impl SledStore {
    /// Opens (or creates) the store in `path`. sled locks the directory: one process at a
    /// time.
    ///
    /// # Errors
    /// A [`StoreError`] when the directory cannot be opened or locked, or holds unreadable
    /// data.
    pub fn open(path: &Path, options: SledOptions) -> Result<Self, StoreError> {
        Self::open_checked(path, options).map_err(|error| match error.kind() {
            // Whichever read found it (recovery, the first tree read, the migration), the
            // operator is told the same thing and what to do.
            super::StoreErrorKind::Corrupt => damaged(path),
            _ => error,
        })
    }

    fn open_checked(path: &Path, options: SledOptions) -> Result<Self, StoreError> {
        // Before sled creates anything: events hold what organisations spend.
        let privacy = crate::file_modes::make_private_dir(path).map_err(|e| {
            StoreError::unavailable(format!("cannot prepare the data directory: {e}"))
        })?;
        for path in &privacy.tightened {
            tracing::warn!(path = %path.display(), "restricted to its owner (it was open to group or others)");
        }
        if privacy.shared_dir_left_open {
            tracing::warn!(path = %path.display(), "the data directory is open to group or others and holds other files, so its mode is left alone; give perfhook a directory of its own");
        }
        let (handle, data_file) = Handle::open(path, options)?;
        let meta = writer::load_meta(&handle.tree)?;
        let progress = arrival_progress(&handle.tree, &meta)?;
        let shared = Arc::new(Shared {
            handle: RwLock::new(Some(handle.clone())),
            failed: AtomicBool::new(false),
            durable_batch: AtomicU64::new(meta.batch),
            counts: Mutex::new(meta.counts),
            claims: Mutex::new(Claims {
                leases: HashMap::new(),
                arrivals: progress.clone(),
            }),
            lease_numbers: AtomicU64::new(0),
        });
        let (ops, queue) = std::sync::mpsc::channel();
        let writer = Writer::new(
            path.to_path_buf(),
            options,
            Arc::clone(&shared),
            handle,
            data_file,
            meta,
            progress,
        );
        let thread = std::thread::Builder::new()
            .name("perfhook-store-writer".into())
            .spawn(move || writer.run(&queue))
            .map_err(|e| StoreError::unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            shared,
            refused: refused::Refused::default(),
            audit_head: tokio::sync::Mutex::new(None),
            ops,
            writer: Mutex::new(Some(thread)),
            path: path.to_path_buf(),
        })
    }

    async fn send<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(op(reply))
            .map_err(|_| StoreError::unavailable("the store is closed"))?;
        answer
            .await
            .map_err(|_| StoreError::unavailable("the store's writer stopped"))?
    }

    /// Each notifier's arrival log as of the last applied batch.
    fn arrival_progress(&self) -> Result<HashMap<String, ArrivalProgress>, StoreError> {
        self.shared
            .claims
            .lock()
            .map(|claims| claims.arrivals.clone())
            .map_err(|_| StoreError::unavailable("the lease table's lock is poisoned"))
    }

    /// The tree for a read, recovering first when an earlier write failed.
    async fn tree(&self) -> Result<sled::Tree, StoreError> {
        if self.shared.failed.load(Ordering::SeqCst) {
            self.check().await?;
        }
        self.shared.tree()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // The writer flushes and releases the directory once its queue is closed.
        let (stop, _) = oneshot::channel();
        let _ = self.ops.send(Op::Close(stop));
        if let Some(thread) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = thread.join();
        }
    }
}

fn read<T>(result: Result<T, sled::Error>) -> Result<T, StoreError> {
    result.map_err(|e| sled_error(&e))
}

/// Sorts jobs in the order of their `j` keys: (endpoint, event id, notifier).
fn sort_jobs(jobs: &mut [Job]) {
    jobs.sort_by(|a, b| {
        (event_key(&a.endpoint, &a.event_id), &a.notifier)
            .cmp(&(event_key(&b.endpoint, &b.event_id), &b.notifier))
    });
}

#[async_trait]
impl Store for SledStore {
    async fn record(&self, event: NewEvent) -> Result<Recorded, StoreError> {
        self.send(|reply| Op::Record(Box::new(event), reply)).await
    }

    async fn claim(
        &self,
        notifier: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Claimed, StoreError> {
        let tree = self.tree().await?;
        let durable = self.shared.durable_batch.load(Ordering::SeqCst);
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let mut claimed = Claimed::default();
        let later = |at: u64, claimed: &mut Claimed| {
            claimed.next_due_ms = Some(claimed.next_due_ms.map_or(at, |n| n.min(at)));
        };
        let mut claims = self
            .shared
            .claims
            .lock()
            .map_err(|_| StoreError::unavailable("the lease table's lock is poisoned"))?;
        let Claims { leases, arrivals } = &mut *claims;
        let mut due = Candidates::new(&tree, notifier, arrivals.get(notifier));
        while let Some(candidate) = due.next()? {
            if candidate.due_ms > now_ms {
                later(candidate.due_ms, &mut claimed);
                match candidate.source {
                    // The queue is in due order: nothing after this one is due either.
                    Source::Queued => due.end_queue(),
                    // The log is in acceptance order: one received "later" (the clock
                    // stepped back) must not hold back those after it.
                    Source::Arrival(_) => {}
                }
                continue;
            }
            if let Some(until) = leases
                .get(&candidate.lease_key)
                .map(|l| l.1)
                .filter(|u| *u > now_ms)
            {
                later(until, &mut claimed);
                continue;
            }
            if claimed.jobs.len() >= limit {
                later(candidate.due_ms, &mut claimed);
                break;
            }
            let Some(job) = claimable(&tree, notifier, &candidate, durable)? else {
                continue;
            };
            let Some((job, event)) = with_event(&tree, notifier, job)? else {
                continue;
            };
            let lease_number = self.shared.lease_numbers.fetch_add(1, Ordering::SeqCst) + 1;
            leases.insert(
                candidate.lease_key.clone(),
                (lease_number, now_ms.saturating_add(lease_ms)),
            );
            claimed.jobs.push(ClaimedJob {
                token: JobToken {
                    key: candidate.lease_key,
                    lease: lease_number,
                },
                job,
                event,
            });
        }
        Ok(claimed)
    }

    async fn finish(&self, finished: Vec<Finished>) -> Result<(), StoreError> {
        if finished.is_empty() {
            return Ok(());
        }
        self.send(|reply| Op::Finish(finished, reply)).await
    }

    async fn bury_unconfigured(
        &self,
        configured: &[String],
        at_ms: u64,
    ) -> Result<u64, StoreError> {
        let configured = configured.to_vec();
        self.send(|reply| Op::BuryUnconfigured {
            configured,
            at_ms,
            reply,
        })
        .await
    }

    async fn purge_expired(&self, now: u64, batch: usize) -> Result<usize, StoreError> {
        self.send(|reply| Op::Purge { now, batch, reply }).await
    }

    async fn event(&self, endpoint: &str, id: &str) -> Result<Option<EventDetail>, StoreError> {
        let tree = self.tree().await?;
        let event_key = event_key(endpoint, id);
        let Some(value) = read(tree.get(key(EVENT, &[&event_key])))? else {
            return Ok(None);
        };
        let (record, expires_at) = decode_event(endpoint, id, &value)?;
        let (meta, _) = decode_event_meta(&value)?;
        let mut notifications = Vec::new();
        for entry in tree.scan_prefix(key(JOB, &[&event_key, &[0]])) {
            let (_, value) = read(entry)?;
            notifications.push(JobValue::decode(&value)?.job);
        }
        let progress = self.arrival_progress()?;
        for (notifier, arrival) in meta.arrivals {
            // A `j` entry, when there is one, says how the arrival ended.
            if notifications.iter().any(|job| job.notifier == notifier) {
                continue;
            }
            let pending = first_attempt(
                endpoint,
                id,
                &notifier,
                record.received_at.saturating_mul(1000),
            );
            notifications.push(arrival_status(
                &tree,
                progress.get(&notifier),
                &notifier,
                arrival,
                pending,
            )?);
        }
        notifications.sort_by(|a, b| a.notifier.cmp(&b.notifier));
        Ok(Some(EventDetail {
            record,
            expires_at,
            notifications,
        }))
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let tree = self.tree().await?;
        let upper = match &query.cursor {
            Some(cursor) => key(LISTING, &[&decode_cursor(cursor)?]),
            None => match query.until {
                Some(until) => key(LISTING, &[&until.to_be_bytes()]),
                None => vec![LISTING + 1],
            },
        };
        let mut page = EventPage::default();
        let mut last_position: Option<Vec<u8>> = None;
        for entry in tree.range(vec![LISTING]..upper).rev() {
            let (listing_key, kind) = read(entry)?;
            let position = listing_key.get(1..).unwrap_or_default();
            let received_at = position
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            if query.since.is_some_and(|since| received_at < since) {
                break;
            }
            let event_key = position.get(8..).unwrap_or_default();
            let (endpoint, id) = split_event_key(event_key)?;
            if query.endpoint.as_deref().is_some_and(|e| e != endpoint)
                || query
                    .kind
                    .as_deref()
                    .is_some_and(|k| k.as_bytes() != kind.as_ref())
            {
                continue;
            }
            if page.events.len() >= query.limit.max(1) {
                page.next_cursor = last_position.as_deref().map(encode_cursor);
                break;
            }
            let Some(value) = read(tree.get(key(EVENT, &[event_key])))? else {
                continue;
            };
            let (meta, _) = decode_event_meta(&value)?;
            page.events.push(EventSummary {
                endpoint: endpoint.to_owned(),
                id: id.to_owned(),
                kind: meta.kind,
                livemode: meta.livemode,
                received_at: meta.received_at,
            });
            last_position = Some(position.to_vec());
        }
        Ok(page)
    }

    async fn put_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let value = serde_json::to_vec(record)
            .map_err(|e| StoreError::unavailable(format!("cannot encode an API key: {e}")))?;
        let key = key(API_KEY, &[record.id.as_bytes()]);
        self.send(|reply| Op::Put { key, value, reply }).await
    }

    async fn budget_usage(&self, budget: &str) -> Result<Vec<(u64, u64)>, StoreError> {
        let tree = self.tree().await?;
        read(tree.get(key(layout::CROSSING, &[budget.as_bytes()])))?
            .map(|value| {
                serde_json::from_slice::<crate::store::BudgetState>(&value)
                    .map(|state| state.usage)
                    .map_err(|e| StoreError::corrupt_json(&e))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let tree = self.tree().await?;
        read(tree.get(key(API_KEY, &[id.as_bytes()])))?
            .map(|value| serde_json::from_slice(&value).map_err(|e| StoreError::corrupt_json(&e)))
            .transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let tree = self.tree().await?;
        tree.scan_prefix([API_KEY])
            .map(|entry| {
                let (_, value) = read(entry)?;
                serde_json::from_slice(&value).map_err(|e| StoreError::corrupt_json(&e))
            })
            .collect()
    }

    async fn requeue(
        &self,
        endpoint: &str,
        id: &str,
        notifiers: &[String],
        now_ms: u64,
    ) -> Result<Option<usize>, StoreError> {
        let (endpoint, id, notifiers) = (endpoint.to_owned(), id.to_owned(), notifiers.to_vec());
        self.send(|reply| Op::Requeue {
            endpoint,
            id,
            notifiers,
            now_ms,
            reply,
        })
        .await
    }

    async fn delete_event(&self, endpoint: &str, id: &str) -> Result<bool, StoreError> {
        let (endpoint, id) = (endpoint.to_owned(), id.to_owned());
        self.send(|reply| Op::Delete {
            endpoint,
            id,
            reply,
        })
        .await
    }

    async fn jobs(
        &self,
        status: JobStatus,
        notifier: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let tree = self.tree().await?;
        let mut found = Vec::new();
        for entry in tree.scan_prefix([JOB]) {
            if found.len() >= limit {
                break;
            }
            let (_, value) = read(entry)?;
            let job = JobValue::decode(&value)?.job;
            if job.status == status && notifier.is_none_or(|n| job.notifier == n) {
                found.push(job);
            }
        }
        // Arrivals are only ever pending or delivered; a finished one with a `j` entry was
        // listed above.
        if matches!(status, JobStatus::Pending | JobStatus::Delivered) {
            let progress = self.arrival_progress()?;
            let mut arrived = Vec::new();
            for (name, progress) in &progress {
                if notifier.is_some_and(|n| n != name) {
                    continue;
                }
                let from = match status {
                    JobStatus::Pending => progress.cursor,
                    _ => 0,
                };
                for entry in
                    tree.range(arrival_key(ARRIVAL, name, from)..notifier_end(ARRIVAL, name))
                {
                    let (arrival_key, value) = read(entry)?;
                    let Some((_, number)) = parse_arrival_key(&arrival_key) else {
                        continue;
                    };
                    if (status == JobStatus::Pending) != progress.is_pending(number) {
                        continue;
                    }
                    let Ok(arrival) = Arrival::decode(&value) else {
                        continue;
                    };
                    if status == JobStatus::Delivered
                        && read(tree.get(job_key(&arrival.event_key, name)))?.is_some()
                    {
                        continue;
                    }
                    let Ok(job) = arrival.job(name) else {
                        continue;
                    };
                    arrived.push(arrival_status(&tree, Some(progress), name, number, job)?);
                    // Only the first `limit` in key order are kept.
                    if arrived.len() >= limit.saturating_mul(2).max(64) {
                        sort_jobs(&mut arrived);
                        arrived.truncate(limit);
                    }
                }
            }
            found.extend(arrived);
            sort_jobs(&mut found);
            found.truncate(limit);
        }
        Ok(found)
    }

    async fn keep_refused(
        &self,
        refused: RefusedDelivery,
        bounds: RefusedBounds,
    ) -> Result<String, StoreError> {
        let tree = self.tree().await?;
        self.refused.keep(&tree, refused, bounds)
    }

    async fn refused_list(
        &self,
        endpoint: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RefusedDelivery>, StoreError> {
        refused::Refused::list(&self.tree().await?, endpoint, limit)
    }

    async fn refused(&self, id: &str) -> Result<Option<RefusedDelivery>, StoreError> {
        refused::Refused::get(&self.tree().await?, id)
    }

    async fn remove_refused(&self, id: &str) -> Result<bool, StoreError> {
        self.refused.remove(&self.tree().await?, id)
    }

    async fn purge_refused(&self, before_ms: u64) -> Result<usize, StoreError> {
        self.refused.purge(&self.tree().await?, before_ms)
    }

    async fn append_audit(
        &self,
        entry: crate::audit::NewAuditEntry,
    ) -> Result<crate::audit::AuditEntry, StoreError> {
        let mut head = self.audit_head.lock().await;
        let (seq, hash) = match head.as_ref() {
            Some(head) => head.clone(),
            None => {
                let tree = self.tree().await?;
                match read(tree.scan_prefix([AUDIT]).next_back().transpose())? {
                    Some((key, value)) => {
                        let position = audit_position(&key);
                        let hash = serde_json::from_slice::<crate::audit::AuditEntry>(&value)
                            .map_or_else(|_| "unreadable".to_owned(), |last| last.hash);
                        (position, hash)
                    }
                    // Everything purged: the chain goes on from the anchor.
                    None => self.audit_anchor().await?,
                }
            }
        };
        let entry = crate::audit::AuditEntry::chain(entry, seq, &hash);
        let value = serde_json::to_vec(&entry)
            .map_err(|e| StoreError::unavailable(format!("cannot encode an audit entry: {e}")))?;
        let key = key(AUDIT, &[&entry.seq.to_be_bytes()]);
        self.send(|reply| Op::Put { key, value, reply }).await?;
        *head = Some((entry.seq, entry.hash.clone()));
        Ok(entry)
    }

    async fn purge_audit(&self, before: u64) -> Result<usize, StoreError> {
        self.send(|reply| Op::PurgeAudit { before, reply }).await
    }

    async fn audit_anchor(&self) -> Result<(u64, String), StoreError> {
        let tree = self.tree().await?;
        match read(tree.get(META_AUDIT_ANCHOR))? {
            Some(value) => serde_json::from_slice(&value).map_err(|e| StoreError::corrupt_json(&e)),
            None => Ok((0, crate::audit::GENESIS.to_owned())),
        }
    }

    async fn audit_log(&self) -> Result<Vec<crate::audit::StoredEntry>, StoreError> {
        let tree = self.tree().await?;
        tree.scan_prefix([AUDIT])
            .map(|entry| {
                let (key, value) = read(entry)?;
                Ok(crate::audit::StoredEntry {
                    position: audit_position(&key),
                    entry: serde_json::from_slice(&value).map_err(|e| e.to_string()),
                })
            })
            .collect()
    }

    fn counts(&self) -> Counts {
        self.shared.counts()
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.send(Op::Probe).await?;
        // A read probe as well: the counts and the newest event read back and decode.
        let tree = self.shared.tree()?;
        writer::load_meta(&tree)?;
        if let Some(newest) = tree.range(vec![LISTING]..vec![LISTING + 1]).next_back() {
            let (listing_key, _) = read(newest)?;
            let event_key = listing_key.get(9..).unwrap_or_default();
            let (endpoint, id) = split_event_key(event_key)?;
            if let Some(value) = read(tree.get(key(EVENT, &[event_key])))? {
                decode_event(endpoint, id, &value)?;
            }
        }
        Ok(())
    }

    fn disk_bytes(&self) -> Option<u64> {
        let handle = self.shared.handle.read().ok()?;
        handle.as_ref()?.db.size_on_disk().ok()
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.send(Op::Close).await
    }
}

impl SledStore {
    /// The data directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a consistent copy of the store into the new directory `to` (whole or not at
    /// all), between two of the writer's groups: safe while deliveries arrive.
    ///
    /// # Errors
    /// When `to` exists and is not empty, or the copy cannot be written.
    pub async fn backup(&self, to: &Path) -> Result<Copied, StoreError> {
        let to = to.to_path_buf();
        self.send(|reply| Op::Backup(to, reply)).await
    }

    /// Reads every record back and reports what does not decode or does not fit together.
    ///
    /// # Errors
    /// When the store is closed or failed.
    pub async fn check_records(&self) -> Result<CheckReport, StoreError> {
        let tree = self.tree().await?;
        tokio::task::spawn_blocking(move || backup::check(&tree))
            .await
            .map_err(|_| StoreError::unavailable("the check stopped unexpectedly"))
    }

    /// Replaces `data_dir` with a copy of `backup` (a directory `backup` wrote), after
    /// checking the copy record by record. An existing `data_dir` is moved to `aside`, or
    /// the restore is refused when `aside` is `None`. The backup itself is never opened.
    ///
    /// # Errors
    /// When the backup is damaged or unreadable, or `data_dir` exists and `aside` is `None`.
    pub async fn restore(
        backup: &Path,
        data_dir: &Path,
        aside: Option<&Path>,
    ) -> Result<CheckReport, StoreError> {
        let occupied = std::fs::read_dir(data_dir).is_ok_and(|mut e| e.next().is_some());
        if occupied && aside.is_none() {
            return Err(StoreError::unavailable(format!(
                "{} exists and is not empty; pass --force to move it aside first",
                data_dir.display()
            )));
        }
        if !backup.join(DATA_FILE).is_file() {
            return Err(StoreError::unavailable(format!(
                "{} is not a perfhook backup (no {DATA_FILE} file)",
                backup.display()
            )));
        }
        let partial = backup::partial(data_dir)?;
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| {
                StoreError::unavailable(format!("cannot remove {}: {e}", partial.display()))
            })?;
        }
        backup::copy_files(backup, &partial)?;
        let store = Self::open(&partial, SledOptions::default())?;
        let report = store.check_records().await?;
        store.close().await?;
        drop(store);
        if !report.is_clean() {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(StoreError::corrupt(format!(
                "the backup {} is damaged: {}",
                backup.display(),
                report.problems.join("; ")
            )));
        }
        backup::swap_in(&partial, data_dir, aside.filter(|_| occupied))?;
        Ok(report)
    }
}
