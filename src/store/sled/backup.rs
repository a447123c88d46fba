//! Reading the whole store back (`store check`), and consistent copies of it (`store
//! backup`, `store restore`).
//!
//! A backup is taken by the writer thread between two groups, after the last group's
//! flush: no write is half in the copy, and every job in it belongs to an event in it. It is
//! written into `.NAME.partial` beside the target, flushed and `fsync`ed, then renamed into
//! place, so a backup directory is whole or absent. A backup is itself a data directory:
//! `store restore` copies it (never opening the backup itself, which stays untouched),
//! checks the copy record by record, and only then swaps it in.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::layout::{
    decode_event, job_key, parse_arrival_key, split_event_key, Arrival, JobValue, MetaState,
    API_KEY, ARRIVAL, DELIVERED, EVENT, EXPIRY, JOB, LISTING, META_STATE, QUEUE, REFUSED,
};
use super::{read, sync_dir};
use crate::store::{JobStatus, StoreError};

/// Entries copied per `sled::Batch`, so a large store is not one huge batch in memory.
const COPY_BATCH: usize = 1_000;
/// The most problems a check lists one by one (it still counts them all).
const LISTED_PROBLEMS: usize = 50;

/// What a backup wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Copied {
    /// Entries copied (events, jobs and their index entries).
    pub entries: u64,
    /// Their keys' and values' bytes.
    pub bytes: u64,
}

/// What `store check` found, record by record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Events that decode.
    pub events: u64,
    /// Jobs that decode (pending, done and dead).
    pub jobs: u64,
    /// Pending jobs: what the stored counts call the outbox.
    pub pending: u64,
    /// Dead jobs.
    pub dead: u64,
    /// Index entries (queue, expiry, listing) read.
    pub index_entries: u64,
    /// Problems found, in key order: what is wrong and where, never stored content.
    pub problems: Vec<String>,
    /// Problems beyond those listed.
    pub more_problems: u64,
}

impl CheckReport {
    /// True when nothing is wrong.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, text: String) {
        if self.problems.len() < LISTED_PROBLEMS {
            self.problems.push(text);
        } else {
            self.more_problems = self.more_problems.saturating_add(1);
        }
    }
}

/// Where a key is, for a problem's text: its kind and, for event-related keys, the
/// endpoint and event id (which the operator needs to find it); no values.
fn place(kind: u8, rest: &[u8]) -> String {
    let name = match kind {
        EVENT => "event",
        JOB => "job",
        QUEUE => "queue entry",
        ARRIVAL => "arrival entry",
        EXPIRY => "expiry entry",
        LISTING => "listing entry",
        API_KEY => "API key",
        _ => "entry",
    };
    let ids = match kind {
        EVENT => split_event_key(rest).ok(),
        JOB => rest
            .iter()
            .rposition(|b| *b == 0)
            .and_then(|nul| rest.get(..nul))
            .and_then(|event_key| split_event_key(event_key).ok()),
        _ => None,
    };
    match ids {
        Some((endpoint, id)) => format!("{name} {endpoint}/{}", printable(id)),
        None => name.to_owned(),
    }
}

/// An id as text safe for one line (ids are verified input, but may hold anything).
fn printable(id: &str) -> String {
    id.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Reads every entry and decodes it; checks that jobs have their events, queue entries
/// their jobs, and that the stored counts match what is there. Stops at the first entry
/// sled cannot read (its iterators do not get past a damaged page).
pub(super) fn check(tree: &sled::Tree) -> CheckReport {
    let mut report = CheckReport::default();
    let mut events: HashSet<Vec<u8>> = HashSet::new();
    let mut jobs: HashSet<Vec<u8>> = HashSet::new();
    let mut job_events: Vec<(Vec<u8>, String)> = Vec::new();
    let mut queue_targets: Vec<Vec<u8>> = Vec::new();
    // (notifier, arrival number, event key)
    let mut arrivals: Vec<(String, u64, Vec<u8>)> = Vec::new();
    let mut meta: Option<MetaState> = None;
    let mut last_key: Option<Vec<u8>> = None;
    for entry in tree.iter() {
        let (key, value) = match read(entry) {
            Ok(entry) => entry,
            Err(error) => {
                let after = last_key
                    .as_deref()
                    .map_or("the first entry".to_owned(), |k| {
                        let (kind, rest) = k.split_first().unwrap_or((&0, &[]));
                        format!("after the {}", place(*kind, rest))
                    });
                report.problem(format!("sled cannot read on {after}: {error}"));
                return report;
            }
        };
        let (kind, rest) = key.split_first().unwrap_or((&0, &[]));
        match *kind {
            EVENT => match split_event_key(rest)
                .and_then(|(endpoint, id)| decode_event(endpoint, id, &value))
            {
                Ok(_) => {
                    report.events += 1;
                    events.insert(rest.to_vec());
                }
                Err(error) => report.problem(format!("{}: {error}", place(*kind, rest))),
            },
            JOB => match JobValue::decode(&value) {
                Ok(stored) => {
                    report.jobs += 1;
                    match stored.job.status {
                        JobStatus::Pending => report.pending += 1,
                        JobStatus::Dead => report.dead += 1,
                        JobStatus::Delivered | JobStatus::Suppressed => {}
                    }
                    let event_key =
                        crate::store::event_key(&stored.job.endpoint, &stored.job.event_id);
                    job_events.push((event_key, place(*kind, rest)));
                    jobs.insert(key.to_vec());
                }
                Err(error) => report.problem(format!("{}: {error}", place(*kind, rest))),
            },
            QUEUE => {
                report.index_entries += 1;
                queue_targets.push(value.to_vec());
            }
            ARRIVAL => match (parse_arrival_key(&key), Arrival::decode(&value)) {
                (Some((notifier, number)), Ok(arrival)) => {
                    report.index_entries += 1;
                    arrivals.push((notifier.to_owned(), number, arrival.event_key));
                }
                _ => report.problem("an arrival entry: undecodable".to_owned()),
            },
            EXPIRY | LISTING | DELIVERED => report.index_entries += 1,
            REFUSED if super::refused::decode(&value).is_err() => {
                report.problem("a refused delivery: undecodable".to_owned());
            }
            API_KEY if serde_json::from_slice::<crate::store::ApiKeyRecord>(&value).is_err() => {
                let id = String::from_utf8_lossy(rest);
                report.problem(format!("API key {}: undecodable", printable(&id)));
            }
            _ if key.as_ref() == META_STATE => match MetaState::decode(&value) {
                Ok(state) => meta = Some(state),
                Err(error) => report.problem(format!("the store's counts: {error}")),
            },
            _ => {}
        }
        last_key = Some(key.to_vec());
    }
    for (event_key, job) in job_events {
        if !events.contains(&event_key) {
            report.problem(format!("{job}: its event is missing"));
        }
    }
    let orphans = queue_targets
        .iter()
        .filter(|job| !jobs.contains(*job))
        .count();
    if orphans > 0 {
        report.problem(format!("{orphans} queue entries point to no job"));
    }
    for (notifier, number, event_key) in arrivals {
        // A first attempt is a job of its own until a `j` entry takes its place.
        if jobs.contains(&job_key(&event_key, &notifier)) {
            continue;
        }
        report.jobs += 1;
        if !events.contains(&event_key) {
            let job = match split_event_key(&event_key) {
                Ok((endpoint, id)) => format!("job {endpoint}/{}", printable(id)),
                Err(_) => "a job".to_owned(),
            };
            report.problem(format!("{job}: its event is missing"));
            continue;
        }
        // Pending until its notifier's cursor passes it.
        let cursor = meta
            .as_ref()
            .and_then(|meta| meta.arrivals.get(&notifier))
            .map_or(0, |log| log.cursor);
        if number >= cursor {
            report.pending += 1;
        }
    }
    if let Some(meta) = meta {
        let counted = (report.events, report.pending, report.dead);
        let stored = (meta.counts.events, meta.counts.outbox, meta.counts.dead);
        if counted != stored {
            report.problem(format!(
                "the stored counts (events, outbox, dead) are {stored:?} but the records hold {counted:?}"
            ));
        }
    }
    report
}

/// The temporary name a copy is written under before it is renamed to `to`.
pub(super) fn partial(to: &Path) -> Result<PathBuf, StoreError> {
    let name = to
        .file_name()
        .ok_or_else(|| StoreError::unavailable(format!("{} names no directory", to.display())))?;
    Ok(to.with_file_name(format!(".{}.partial", name.to_string_lossy())))
}

/// Refuses a target that exists and is not empty: a backup never overwrites anything.
fn ensure_absent_or_empty(to: &Path) -> Result<(), StoreError> {
    if std::fs::read_dir(to).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(StoreError::unavailable(format!(
            "{} exists and is not empty; choose a new directory",
            to.display()
        )));
    }
    Ok(())
}

fn io_error(path: &Path, what: &str, error: &std::io::Error) -> StoreError {
    StoreError::unavailable(format!("cannot {what} {}: {error}", path.display()))
}

/// `fsync` of every file under `dir`, then of the directories themselves.
fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, "list", &e))? {
        let path = entry.map_err(|e| io_error(dir, "list", &e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|file| file.sync_all())
                .map_err(|e| io_error(&path, "sync", &e))?;
        }
    }
    sync_dir(dir)
}

/// Renames the finished `partial` directory to `to` and makes the rename durable.
fn publish(partial: &Path, to: &Path) -> Result<(), StoreError> {
    sync_tree(partial)?;
    std::fs::rename(partial, to).map_err(|e| io_error(to, "create", &e))?;
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Copies every entry of `tree` into a new data directory `to` (whole or not at all).
pub(super) fn copy_tree(tree: &sled::Tree, to: &Path) -> Result<Copied, StoreError> {
    ensure_absent_or_empty(to)?;
    let partial = partial(to)?;
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| io_error(&partial, "remove", &e))?;
    }
    crate::file_modes::make_private_dir(&partial)
        .map_err(|e| StoreError::unavailable(format!("cannot prepare the backup: {e}")))?;
    let db = sled::Config::new()
        .path(&partial)
        .open()
        .map_err(|e| super::sled_error(&e))?;
    let out = db
        .open_tree("perfhook")
        .map_err(|e| super::sled_error(&e))?;
    let mut copied = Copied::default();
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    for entry in tree.iter() {
        let (key, value) = read(entry)?;
        copied.entries += 1;
        copied.bytes += (key.len() + value.len()) as u64;
        batch.insert(key, value);
        pending += 1;
        if pending >= COPY_BATCH {
            out.apply_batch(std::mem::take(&mut batch))
                .map_err(|e| super::sled_error(&e))?;
            pending = 0;
        }
    }
    out.apply_batch(batch).map_err(|e| super::sled_error(&e))?;
    db.flush().map_err(|e| super::sled_error(&e))?;
    drop(out);
    drop(db);
    publish(&partial, to)?;
    Ok(copied)
}

/// Copies the files of a closed data directory (a backup) into `to`'s partial name.
pub(super) fn copy_files(from: &Path, to: &Path) -> Result<(), StoreError> {
    crate::file_modes::make_private_dir(to)
        .map_err(|e| StoreError::unavailable(format!("cannot prepare {}: {e}", to.display())))?;
    for entry in std::fs::read_dir(from).map_err(|e| io_error(from, "list", &e))? {
        let path = entry.map_err(|e| io_error(from, "list", &e))?.path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_files(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| io_error(&path, "copy", &e))?;
        }
    }
    Ok(())
}

/// Swaps the checked copy in: `data_dir` (if any) is moved to `aside`, then the copy is
/// renamed to `data_dir`.
pub(super) fn swap_in(
    partial: &Path,
    data_dir: &Path,
    aside: Option<&Path>,
) -> Result<(), StoreError> {
    if let Some(aside) = aside {
        std::fs::rename(data_dir, aside).map_err(|e| io_error(data_dir, "move aside", &e))?;
    }
    publish(partial, data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::{SledOptions, SledStore};
    use crate::store::{EventRecord, NewEvent, Store};

    fn record(id: &str) -> NewEvent {
        NewEvent {
            deferred: Default::default(),
            record: EventRecord {
                endpoint: "perf".into(),
                id: id.into(),
                kind: "usage.threshold_reached".into(),
                livemode: Some(true),
                received_at: 1,
                body: "{\"card\":\"4111-1111\"}".into(),
            },
            notifiers: vec!["log".into()],
            expires_at: u64::MAX,
            budget: None,
        }
    }

    #[tokio::test]
    async fn check_names_an_undecodable_event_and_a_job_without_its_event_never_their_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), SledOptions::default()).expect("open");
        for id in ["evt_a", "evt_b"] {
            store.record(record(id)).await.expect("record");
        }
        let clean = store.check_records().await.expect("check");
        assert!(clean.is_clean(), "{clean:?}");
        assert_eq!((clean.events, clean.jobs, clean.pending), (2, 2, 2));

        // Damage two records behind the store's back.
        let tree = store.shared.tree().expect("tree");
        let event_a = crate::store::event_key("perf", "evt_a");
        tree.insert(
            super::super::layout::key(EVENT, &[&event_a]),
            &b"\x00\x00\x00\x09{\"card\":"[..],
        )
        .expect("garble");
        tree.remove(super::super::layout::key(
            EVENT,
            &[&crate::store::event_key("perf", "evt_b")],
        ))
        .expect("remove");
        let report = store.check_records().await.expect("check");
        assert!(!report.is_clean());
        let text = report.problems.join("\n");
        assert!(
            text.contains("event perf/evt_a: stored data is unreadable"),
            "{text}"
        );
        assert!(
            text.contains("job perf/evt_b: its event is missing"),
            "{text}"
        );
        assert!(text.contains("stored counts"), "{text}");
        assert!(!text.contains("4111"), "{text}");
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_backup_taken_while_open_holds_every_record_and_refuses_an_existing_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let store = SledStore::open(&data, SledOptions::default()).expect("open");
        for i in 0..50 {
            store
                .record(record(&format!("evt_{i}")))
                .await
                .expect("record");
        }
        let to = dir.path().join("backup");
        let copied = store.backup(&to).await.expect("backup");
        assert!(copied.entries > 100, "{copied:?}");
        assert!(!dir.path().join(".backup.partial").exists());
        let again = store.backup(&to).await.expect_err("exists");
        assert!(again.to_string().contains("not empty"), "{again}");
        store.close().await.expect("close");
        drop(store);

        let copy = SledStore::open(&to, SledOptions::default()).expect("open backup");
        let report = copy.check_records().await.expect("check");
        assert!(report.is_clean(), "{report:?}");
        assert_eq!((report.events, report.pending), (50, 50));
        copy.close().await.expect("close");
    }
}
