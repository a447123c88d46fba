//! `store_model`: a sequence of store operations (record-if-new, read, deliver, retry, bury,
//! purge, reopen) run against the sled store on a real directory and against a model made of
//! `BTreeMap`s and a sorted `Vec`. Invariant: after every operation they agree on every
//! answer, every event, the outbox depth and the dead-letter count, across reopens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::{Arbitrary, Unstructured};

use crate::store::{EventRecord, Job, JobEvent, Recorded, Store};

const ENDPOINTS: [&str; 2] = ["perf", "perf-test"];
const IDS: u8 = 12;
const NOTIFIERS: [&str; 3] = ["log", "oncall", "finance"];
const MAX_OPS: usize = 48;

#[derive(Debug, Arbitrary)]
enum Op {
    Record {
        endpoint: bool,
        id: u8,
        notifiers: u8,
        now_ms: u8,
        expires_at: u8,
    },
    Get {
        endpoint: bool,
        id: u8,
    },
    Deliver {
        now_ms: u8,
    },
    Retry {
        now_ms: u8,
        delay_ms: u8,
    },
    Bury {
        now_ms: u8,
    },
    Purge {
        now: u8,
        batch: u8,
    },
    Reopen,
}

/// What the store should hold.
#[derive(Debug, Default)]
struct Model {
    /// Event key bytes → (record, expires_at, the write that stored it).
    events: BTreeMap<Vec<u8>, (EventRecord, u64, u64)>,
    /// (due_ms, order) → job; `order` grows like the store's sequence numbers.
    outbox: BTreeMap<(u64, u64), Job>,
    dead: usize,
    order: u64,
}

/// Runs the body on one input.
pub fn run(data: &[u8]) -> bool {
    let mut input = Unstructured::new(data);
    let Ok(ops) = input
        .arbitrary_iter::<Op>()
        .and_then(|ops| ops.take(MAX_OPS).collect::<Result<Vec<_>, _>>())
    else {
        return false;
    };
    if ops.is_empty() {
        return false;
    }
    let dir = ScratchDir::new();
    let mut store = open(dir.path());
    let mut model = Model::default();
    for op in &ops {
        if let Op::Reopen = op {
            drop(store);
            store = open(dir.path());
        } else {
            apply(&store, &mut model, op);
        }
        assert_eq!(store.outbox_depth(), model.outbox.len(), "after {op:?}");
        assert_eq!(store.dead_count(), model.dead, "after {op:?}");
    }
    for endpoint in ENDPOINTS {
        for id in 0..IDS {
            let id = format!("evt_{id}");
            let stored = store.event(endpoint, &id).ok().flatten();
            let expected = model
                .events
                .get(&key(endpoint, &id))
                .map(|(r, _, _)| r.clone());
            assert_eq!(stored, expected, "event {endpoint}/{id} after {ops:?}");
        }
    }
    true
}

fn apply(store: &Store, model: &mut Model, op: &Op) {
    match *op {
        Op::Record {
            endpoint,
            id,
            notifiers,
            now_ms,
            expires_at,
        } => {
            let record = record(endpoint, id, now_ms);
            let names: Vec<String> = NOTIFIERS
                .iter()
                .take(usize::from(notifiers % 4))
                .map(|n| (*n).to_owned())
                .collect();
            let answer = runtime()
                .block_on(store.record_if_new(
                    &record,
                    &names,
                    u64::from(now_ms),
                    u64::from(expires_at),
                ))
                .ok();
            let event_key = key(&record.endpoint, &record.id);
            let expected = if model.events.contains_key(&event_key) {
                Recorded::Duplicate
            } else {
                model.order += 1;
                let writer = model.order;
                for notifier in names {
                    model.order += 1;
                    model.outbox.insert(
                        (u64::from(now_ms), model.order),
                        Job {
                            endpoint: record.endpoint.clone(),
                            event_id: record.id.clone(),
                            notifier,
                            attempts: 0,
                            last_error: None,
                            writer,
                            created_ms: u64::from(now_ms),
                        },
                    );
                }
                model
                    .events
                    .insert(event_key, (record, u64::from(expires_at), writer));
                Recorded::New
            };
            assert_eq!(answer, Some(expected), "{op:?}");
        }
        Op::Get { endpoint, id } => {
            let record = record(endpoint, id, 0);
            let stored = store.event(&record.endpoint, &record.id).ok().flatten();
            let expected = model
                .events
                .get(&key(&record.endpoint, &record.id))
                .map(|(r, _, _)| r.clone());
            assert_eq!(stored, expected, "{op:?}");
        }
        Op::Deliver { now_ms } => {
            if let Some((key, _)) = next_due(store, model, now_ms) {
                assert!(store.complete(key).is_ok());
                model.outbox.pop_first();
            }
        }
        Op::Retry { now_ms, delay_ms } => {
            if let Some((key, mut job)) = next_due(store, model, now_ms) {
                job.attempts += 1;
                job.last_error = Some("refused".into());
                let due = u64::from(now_ms) + u64::from(delay_ms);
                assert!(store.reschedule(key, &job, due).is_ok());
                let writer = model.outbox.pop_first().map_or(0, |(_, j)| j.writer);
                model.order += 1;
                model
                    .outbox
                    .insert((due, model.order), Job { writer, ..job });
            }
        }
        Op::Bury { now_ms } => {
            if let Some((key, job)) = next_due(store, model, now_ms) {
                assert!(store.bury(key, &job).is_ok());
                model.outbox.pop_first();
                model.dead += 1;
            }
        }
        Op::Purge { now, batch } => {
            let batch = usize::from(batch % 4) + 1;
            let purged = store.purge_expired(u64::from(now), batch).ok();
            // The store purges in (expires_at, event key) order.
            let mut expired: Vec<(u64, Vec<u8>)> = model
                .events
                .iter()
                .filter(|(_, (_, expires, _))| *expires <= u64::from(now))
                .map(|(k, (_, expires, _))| (*expires, k.clone()))
                .collect();
            expired.sort();
            expired.truncate(batch);
            for (_, k) in &expired {
                model.events.remove(k);
            }
            assert_eq!(purged, Some(expired.len()), "{op:?}");
        }
        Op::Reopen => {}
    }
}

/// The store's next due job, checked against the model's.
fn next_due(store: &Store, model: &Model, now_ms: u8) -> Option<(crate::store::JobKey, Job)> {
    let due = store
        .due_jobs(u64::from(now_ms), 1)
        .ok()?
        .into_iter()
        .next();
    let expected = model
        .outbox
        .first_key_value()
        .filter(|((due, _), _)| *due <= u64::from(now_ms))
        .map(|(_, job)| job.clone());
    // Writer numbers are the store's own; the model checks what they mean instead: a job is
    // deliverable exactly when the stored event is the one written with it.
    let without_writer = |job: &Job| Job {
        writer: 0,
        ..job.clone()
    };
    assert_eq!(
        due.as_ref().map(|(_, job)| without_writer(job)),
        expected.as_ref().map(without_writer)
    );
    if let (Some((_, job)), Some(modelled)) = (&due, &expected) {
        let own = model
            .events
            .get(&key(&job.endpoint, &job.event_id))
            .is_some_and(|(_, _, writer)| *writer == modelled.writer);
        let deliverable = matches!(store.event_for_job(job), Ok(JobEvent::Own(_)));
        assert_eq!(deliverable, own, "job {job:?}");
    }
    if let Some((key, _)) = &due {
        assert_eq!(Some(key.due_ms()), model.outbox.keys().next().map(|k| k.0));
    }
    due
}

fn record(endpoint: bool, id: u8, now_ms: u8) -> EventRecord {
    EventRecord {
        endpoint: if endpoint { ENDPOINTS[1] } else { ENDPOINTS[0] }.to_owned(),
        id: format!("evt_{}", id % IDS),
        kind: "usage.threshold_reached".into(),
        livemode: Some(true),
        received_at: u64::from(now_ms),
        body: "{}".into(),
    }
}

fn key(endpoint: &str, id: &str) -> Vec<u8> {
    let mut key = endpoint.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Opens the store, waiting for sled to let go of a just-dropped handle: sled releases its
/// directory lock from a background thread, so an immediate reopen in the same process can
/// find it still held (a restart is a new process and never does; found by this target).
fn open(path: &Path) -> Store {
    let mut last = None;
    for _ in 0..200 {
        match Store::open(path) {
            Ok(store) => return store,
            Err(error) => last = Some(error),
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("cannot open a store in {}: {last:?}", path.display());
}

/// One current-thread runtime for the store's async calls, built once per process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => panic!("no tokio runtime: {error}"),
        }
    })
}

/// A fresh directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("perfhook-store-model-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
