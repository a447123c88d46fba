//! The outbox: one worker per notifier delivers that notifier's jobs from the store with
//! retries (so a hanging SMTP server never delays the log), and retention purges expired
//! events. It speaks only the storage port and the notifiers. Delivery is at least once.

mod backoff;
mod digest;
mod retention;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

pub use self::backoff::backoff;
pub use self::digest::{DIGEST, SEVERAL};
pub use self::retention::run_retention;
use self::worker::Worker;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::notify::Notifiers;
use crate::reload::NotifierSlot;
use crate::store::Store;

/// `[outbox]`: the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// First retry delay in milliseconds; doubles each attempt.
    pub initial_backoff_ms: u64,
    /// Largest retry delay in milliseconds.
    pub max_backoff_ms: u64,
    /// Attempts before a job is dead.
    pub max_attempts: u32,
    /// How long a claimed job stays invisible to other claimers, in seconds: with several
    /// replicas on PostgreSQL, how soon the jobs of a replica that died are sent by the others.
    /// Longer than two claim batches at the notifiers' longest deadline (60 s each) by
    /// default, so a slow but live delivery is never sent twice.
    pub lease_secs: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 5_000,
            max_backoff_ms: 3_600_000,
            max_attempts: 12,
            lease_secs: 1_200,
        }
    }
}

/// Wakes the workers of the notifiers an accepted event has jobs for.
#[derive(Debug, Clone, Default)]
pub struct Wakers(Arc<HashMap<String, Arc<Notify>>>);

impl Wakers {
    /// Whether `notifier` is configured (has a worker to wake).
    #[must_use]
    pub fn knows(&self, notifier: &str) -> bool {
        self.0.contains_key(notifier)
    }

    /// Wakes `notifiers`' workers (a wake that finds a worker busy is kept for its next wait).
    pub fn wake(&self, notifiers: &[String]) {
        for name in notifiers {
            if let Some(notify) = self.0.get(name) {
                notify.notify_one();
            }
        }
    }

    /// Wakes every worker (jobs came due elsewhere: a restart, another replica).
    pub fn all(&self) {
        for notify in self.0.values() {
            notify.notify_one();
        }
    }
}

/// What `/readyz` reads of the outbox.
#[derive(Debug, Default)]
pub struct OutboxHealth {
    /// Each worker's last loop, Unix milliseconds.
    heartbeats: HashMap<String, AtomicU64>,
    /// Whether each worker's last store call succeeded.
    store_ok: HashMap<String, AtomicBool>,
}

impl OutboxHealth {
    /// True when every worker looped within `within_ms` of `now_ms` and none is backing off
    /// from a store failure.
    #[must_use]
    pub fn is_ready(&self, now_ms: u64, within_ms: u64) -> bool {
        self.store_ok.values().all(|ok| ok.load(Ordering::SeqCst))
            && self
                .heartbeats
                .values()
                .all(|beat| now_ms.saturating_sub(beat.load(Ordering::SeqCst)) <= within_ms)
    }

    fn beat(&self, notifier: &str, now_ms: u64) {
        if let Some(beat) = self.heartbeats.get(notifier) {
            beat.store(now_ms, Ordering::SeqCst);
        }
    }

    fn store(&self, notifier: &str, ok: bool) {
        if let Some(flag) = self.store_ok.get(notifier) {
            flag.store(ok, Ordering::SeqCst);
        }
    }
}

/// The workers, built and not yet running.
#[derive(Debug)]
pub struct Outbox {
    workers: Vec<Worker>,
    slots: BTreeMap<String, Arc<NotifierSlot>>,
    wakers: Wakers,
    health: Arc<OutboxHealth>,
}

impl Outbox {
    /// One worker per notifier; `fields` says where each endpoint's figures are.
    #[must_use]
    pub fn new(
        store: &Arc<dyn Store>,
        notifiers: &Notifiers,
        settings: &OutboxSettings,
        clock: &Arc<dyn Clock>,
        metrics: &Arc<Metrics>,
        fields: &crate::fields::EndpointFields,
    ) -> Self {
        let now_ms = clock.now_ms();
        let wakers: HashMap<String, Arc<Notify>> = notifiers
            .keys()
            .map(|name| (name.clone(), Arc::new(Notify::new())))
            .collect();
        let health = Arc::new(OutboxHealth {
            heartbeats: notifiers
                .keys()
                .map(|name| (name.clone(), AtomicU64::new(now_ms)))
                .collect(),
            store_ok: notifiers
                .keys()
                .map(|name| (name.clone(), AtomicBool::new(true)))
                .collect(),
        });
        let slots: BTreeMap<String, Arc<NotifierSlot>> = notifiers
            .iter()
            .map(|(name, notifier)| {
                (
                    name.clone(),
                    Arc::new(NotifierSlot::new(Arc::clone(notifier))),
                )
            })
            .collect();
        let workers = slots
            .iter()
            .filter_map(|(name, slot)| {
                Some(Worker {
                    name: name.clone(),
                    notifier: Arc::clone(slot),
                    wake: Arc::clone(wakers.get(name)?),
                    store: Arc::clone(store),
                    clock: Arc::clone(clock),
                    settings: settings.clone(),
                    metrics: Arc::clone(metrics),
                    health: Arc::clone(&health),
                    fields: fields.clone(),
                })
            })
            .collect();
        Self {
            workers,
            slots,
            wakers: Wakers(Arc::new(wakers)),
            health,
        }
    }

    /// Wakes workers when events are accepted.
    #[must_use]
    pub fn wakers(&self) -> Wakers {
        self.wakers.clone()
    }

    /// Each worker's notifier, for a reload to replace.
    #[must_use]
    pub fn notifier_slots(&self) -> BTreeMap<String, Arc<NotifierSlot>> {
        self.slots.clone()
    }

    /// What `/readyz` reads.
    #[must_use]
    pub fn health(&self) -> Arc<OutboxHealth> {
        Arc::clone(&self.health)
    }

    /// Starts every worker; each stops when `shutdown` turns true.
    #[must_use]
    pub fn spawn(self, shutdown: &watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        // Jobs stored before a restart are due already.
        self.wakers.all();
        self.workers
            .into_iter()
            .map(|worker| {
                let shutdown = shutdown.clone();
                // A panic in one round (a bug, or sled panicking on a failing disk) restarts
                // the worker instead of silently ending that notifier's deliveries.
                tokio::spawn(async move {
                    loop {
                        let round = tokio::spawn(worker.clone().run(shutdown.clone()));
                        match round.await {
                            Err(error) if error.is_panic() => {
                                tracing::error!(notifier = %worker.name, "outbox worker panicked; restarting it");
                                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            }
                            _ => break,
                        }
                    }
                })
            })
            .collect()
    }
}
