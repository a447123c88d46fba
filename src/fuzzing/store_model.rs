//! `store_model`: a sequence of storage-port operations (record, get, claim, finish, purge,
//! list, reopen) run against the sled store on a real directory and against the memory
//! store as the model. Invariant: after every operation they give the same answers (events,
//! claimed jobs with their events, finish verdicts, purge counts, pages) and the same counts,
//! across reopens of the sled directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::store::memory::MemoryStore;
use crate::store::sled::{Durability, SledOptions, SledStore};
use crate::store::{
    ClaimedJob, EventQuery, EventRecord, Finished, NewEvent, Outcome, Store, StoreError,
    StoreErrorKind,
};

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
        /// Seconds after the previous record's receipt: events are received in the order
        /// they are recorded, as in the server (the sled store hands out first attempts in
        /// that order, which is due order only then).
        received_after: u8,
        expires_at: u8,
    },
    Get {
        endpoint: bool,
        id: u8,
    },
    Claim {
        notifier: u8,
        now_ms: u16,
        lease_ms: u8,
        limit: u8,
    },
    Finish {
        which: u8,
        outcome: u8,
        at_ms: u16,
    },
    Purge {
        now: u8,
        batch: u8,
    },
    List {
        endpoint: Option<bool>,
        since: Option<u8>,
        limit: u8,
    },
    Reopen,
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
    let mut sled = Some(open(dir.path()));
    let model = MemoryStore::new();
    // Claims still held: (sled's, the model's), in the order they were made.
    let mut held: Vec<(ClaimedJob, ClaimedJob)> = Vec::new();
    let mut received_at = 0;
    for op in &ops {
        let Some(store) = sled.as_ref() else {
            break;
        };
        if let Op::Reopen = op {
            drop(sled.take());
            sled = Some(open(dir.path()));
            // A restart ends every lease.
            model.forget_leases();
            held.clear();
        } else {
            apply(store, &model, &mut held, &mut received_at, op);
        }
        if let Some(store) = sled.as_ref() {
            assert_eq!(store.counts(), model.counts(), "counts after {op:?}");
        }
    }
    true
}

fn apply(
    sled: &SledStore,
    model: &MemoryStore,
    held: &mut Vec<(ClaimedJob, ClaimedJob)>,
    received_at: &mut u64,
    op: &Op,
) {
    let rt = runtime();
    match *op {
        Op::Record {
            endpoint,
            id,
            notifiers,
            received_after,
            expires_at,
        } => {
            *received_at += u64::from(received_after % 4);
            let event = NewEvent {
                deferred: Default::default(),
                record: record(endpoint, id, *received_at),
                notifiers: NOTIFIERS
                    .iter()
                    .take(usize::from(notifiers % 4))
                    .map(|n| (*n).to_owned())
                    .collect(),
                expires_at: u64::from(expires_at),
                budget: None,
            };
            let stored = rt.block_on(sled.record(event.clone()));
            let expected = rt.block_on(model.record(event));
            assert_eq!(stored, expected, "{op:?}");
        }
        Op::Get { endpoint, id } => {
            let record = record(endpoint, id, 0);
            let stored = rt.block_on(sled.event(&record.endpoint, &record.id));
            let expected = rt.block_on(model.event(&record.endpoint, &record.id));
            assert_eq!(stored, expected, "{op:?}");
        }
        Op::Claim {
            notifier,
            now_ms,
            lease_ms,
            limit,
        } => {
            let notifier = NOTIFIERS[usize::from(notifier) % NOTIFIERS.len()];
            let lease = Duration::from_millis(u64::from(lease_ms));
            let limit = usize::from(limit % 5);
            let now_ms = u64::from(now_ms);
            let stored = rt
                .block_on(sled.claim(notifier, now_ms, lease, limit))
                .expect("sled claim");
            let expected = rt
                .block_on(model.claim(notifier, now_ms, lease, limit))
                .expect("model claim");
            let strip = |jobs: &[ClaimedJob]| {
                jobs.iter()
                    .map(|c| (c.job.clone(), c.event.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&stored.jobs), strip(&expected.jobs), "{op:?}");
            assert_eq!(stored.next_due_ms, expected.next_due_ms, "{op:?}");
            held.extend(stored.jobs.into_iter().zip(expected.jobs));
        }
        Op::Finish {
            which,
            outcome,
            at_ms,
        } => {
            if held.is_empty() {
                return;
            }
            let (ours, theirs) = held.remove(usize::from(which) % held.len());
            let at_ms = u64::from(at_ms);
            let outcome = match outcome % 3 {
                0 => Outcome::Delivered,
                1 => Outcome::Retry {
                    at_ms: at_ms.saturating_add(u64::from(outcome)),
                    error: "refused".into(),
                },
                _ => Outcome::Dead {
                    reason: "gave up".into(),
                },
            };
            let finish = |claim: ClaimedJob| {
                vec![Finished {
                    token: claim.token,
                    outcome: outcome.clone(),
                    at_ms,
                }]
            };
            let stored = rt.block_on(sled.finish(finish(ours)));
            let expected = rt.block_on(model.finish(finish(theirs)));
            assert_eq!(verdict(&stored), verdict(&expected), "{op:?}");
        }
        Op::Purge { now, batch } => {
            let batch = usize::from(batch % 4) + 1;
            let stored = rt.block_on(sled.purge_expired(u64::from(now), batch));
            let expected = rt.block_on(model.purge_expired(u64::from(now), batch));
            assert_eq!(stored, expected, "{op:?}");
        }
        Op::List {
            endpoint,
            since,
            limit,
        } => {
            let mut query = EventQuery {
                endpoint: endpoint.map(|e| ENDPOINTS[usize::from(e)].to_owned()),
                since: since.map(u64::from),
                limit: usize::from(limit % 4) + 1,
                ..EventQuery::default()
            };
            // Walk every page: both must page identically to the end.
            for _ in 0..64 {
                let stored = rt.block_on(sled.list(&query)).expect("sled list");
                let expected = rt.block_on(model.list(&query)).expect("model list");
                assert_eq!(stored, expected, "{op:?}");
                let Some(cursor) = stored.next_cursor else {
                    break;
                };
                query.cursor = Some(cursor);
            }
        }
        Op::Reopen => {}
    }
}

/// What a finish says, without the message wording.
fn verdict(result: &Result<(), StoreError>) -> Option<StoreErrorKind> {
    result.as_ref().err().map(StoreError::kind)
}

fn record(endpoint: bool, id: u8, received_at: u64) -> EventRecord {
    let id = format!("evt_{}", id % IDS);
    EventRecord {
        endpoint: ENDPOINTS[usize::from(endpoint)].to_owned(),
        body: format!(r#"{{"id":"{id}","type":"usage.threshold_reached"}}"#),
        id,
        kind: "usage.threshold_reached".into(),
        livemode: Some(endpoint),
        received_at,
    }
}

/// Opens the store, waiting for sled to let go of a just-dropped handle: sled releases its
/// directory lock from a background thread, so an immediate reopen in the same process can
/// find it still held (a restart is a new process and never does; found by this target).
fn open(path: &Path) -> SledStore {
    let options = SledOptions {
        cache_bytes: 1 << 20,
        durability: Durability::ProcessCrash,
    };
    let mut last = None;
    for _ in 0..200 {
        match SledStore::open(path, options) {
            Ok(store) => return store,
            Err(error) => last = Some(error),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("cannot open a store in {}: {last:?}", path.display());
}

/// One current-thread runtime for the stores' async calls, built once per process.
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
