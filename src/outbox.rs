//! The outbox worker: delivers each stored job to its notifier, retries failures with
//! exponential backoff and jitter, and buries jobs that run out of attempts. Jobs live in
//! sled, so they survive a restart and resume. Delivery is at-least-once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::clock::{unix_now, unix_now_ms};
use crate::config::OutboxSettings;
use crate::event::parse_event;
use crate::metrics::Metrics;
use crate::notify::{Notifiers, NotifyError};
use crate::store::{Job, JobEvent, JobKey, Store, StoreError};

/// The longest the worker sleeps, so its heartbeat (`/readyz`) stays fresh.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Jobs read per batch.
const BATCH: usize = 32;
/// How long a job waits for its event to appear: far longer than the gap between a
/// request's two writes, far shorter than any retention.
const ABSENT_GRACE_MS: u64 = 60_000;
/// How soon a job whose event is not there yet looks again.
const ABSENT_RECHECK_MS: u64 = 200;
/// An outer bound on any one delivery, whatever the notifier's own deadline.
const DELIVERY_GUARD: Duration = Duration::from_secs(120);

/// The worker and what it shares with the server.
#[derive(Debug)]
pub struct OutboxWorker {
    /// The store holding the jobs.
    pub store: Arc<Store>,
    /// Notifiers by name.
    pub notifiers: Notifiers,
    /// Retry policy.
    pub settings: OutboxSettings,
    /// Woken when a request stores new jobs.
    pub wake: Arc<Notify>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Unix seconds of the last loop, for `/readyz`.
    pub heartbeat: Arc<AtomicU64>,
}

impl OutboxWorker {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.heartbeat.store(unix_now(), Ordering::Relaxed);
            if let Err(error) = self.deliver_due().await {
                tracing::error!(%error, "outbox: storage error; will retry");
            }
            let wait = match self.store.next_due_ms() {
                Ok(Some(due)) => {
                    Duration::from_millis(due.saturating_sub(unix_now_ms())).min(IDLE_WAKE)
                }
                _ => IDLE_WAKE,
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
    }

    async fn deliver_due(&self) -> Result<(), StoreError> {
        loop {
            let jobs = self.store.due_jobs(unix_now_ms(), BATCH)?;
            if jobs.is_empty() {
                return Ok(());
            }
            for (key, job) in jobs {
                self.attempt(key, job).await?;
                self.heartbeat.store(unix_now(), Ordering::Relaxed);
            }
        }
    }

    async fn attempt(&self, key: JobKey, mut job: Job) -> Result<(), StoreError> {
        let record = match self.store.event_for_job(&job)? {
            JobEvent::Own(record) => record,
            // A write that did not store the event (see `Store::record_if_new`).
            JobEvent::Orphan => return self.store.complete(key),
            // A new job may be seen between its write and its event's: look again shortly.
            // Past the grace period the event is not coming (a crash lost it, or retention
            // purged it): nothing to notify.
            JobEvent::Absent => {
                let now = unix_now_ms();
                if job.created_ms.saturating_add(ABSENT_GRACE_MS) > now {
                    return self
                        .store
                        .reschedule(key, &job, now.saturating_add(ABSENT_RECHECK_MS));
                }
                return self.store.complete(key);
            }
        };
        let Some(notifier) = self.notifiers.get(&job.notifier) else {
            job.last_error = Some(format!(
                "no notifier named {:?} is configured",
                job.notifier
            ));
            return self.bury(key, &job);
        };
        let event = match parse_event(record.body.as_bytes(), Some(&record.id)) {
            Ok(event) => event,
            Err(error) => {
                job.last_error = Some(error.to_string());
                return self.bury(key, &job);
            }
        };
        job.attempts = job.attempts.saturating_add(1);
        let outcome = tokio::time::timeout(DELIVERY_GUARD, notifier.deliver(&record, &event))
            .await
            .unwrap_or_else(|_| {
                Err(NotifyError::retry(
                    "delivery exceeded the outbox's guard deadline",
                ))
            });
        match outcome {
            Ok(()) => {
                self.metrics.notification(&job.notifier, "sent");
                tracing::info!(notifier = %job.notifier, endpoint = %job.endpoint, id = %job.event_id, attempts = job.attempts, "notification sent");
                self.store.complete(key)
            }
            Err(error) if error.retryable && job.attempts < self.settings.max_attempts => {
                let delay = backoff(&self.settings, job.attempts);
                self.metrics.notification(&job.notifier, "retried");
                tracing::warn!(notifier = %job.notifier, endpoint = %job.endpoint, id = %job.event_id,
                    attempts = job.attempts, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), error = %error.message, "notification failed; will retry");
                job.last_error = Some(error.message);
                let due = unix_now_ms()
                    .saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                self.store.reschedule(key, &job, due)
            }
            Err(error) => {
                job.last_error = Some(error.message);
                self.bury(key, &job)
            }
        }
    }

    fn bury(&self, key: JobKey, job: &Job) -> Result<(), StoreError> {
        self.metrics.notification(&job.notifier, "dead");
        tracing::error!(notifier = %job.notifier, endpoint = %job.endpoint, id = %job.event_id,
            attempts = job.attempts, error = job.last_error.as_deref().unwrap_or(""), "notification dead: giving up");
        self.store.bury(key, job)
    }
}

/// `initial * 2^(attempts-1)`, capped, then "equal jitter": a uniform draw from the upper
/// half, so retries from many jobs spread out but never come sooner than half the delay.
#[must_use]
pub fn backoff(settings: &OutboxSettings, attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(40);
    let full = settings
        .initial_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(settings.max_backoff_ms.max(settings.initial_backoff_ms));
    let half = full / 2;
    Duration::from_millis(half + fastrand::u64(0..=full - half))
}

/// Removes expired events in small batches every `every`, until `shutdown`.
pub async fn run_retention(
    store: Arc<Store>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        loop {
            match store.purge_expired(unix_now(), 500) {
                Ok(500) => tokio::task::yield_now().await,
                Ok(removed) => {
                    if removed > 0 {
                        tracing::info!(removed, "retention: purged expired events");
                    }
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, "retention: purge failed");
                    break;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let settings = OutboxSettings {
            initial_backoff_ms: 5_000,
            max_backoff_ms: 3_600_000,
            max_attempts: 12,
        };
        for _ in 0..100 {
            let first = backoff(&settings, 1).as_millis();
            assert!((2_500..=5_000).contains(&first), "{first}");
            let third = backoff(&settings, 3).as_millis();
            assert!((10_000..=20_000).contains(&third), "{third}");
            let late = backoff(&settings, 40).as_millis();
            assert!((1_800_000..=3_600_000).contains(&late), "{late}");
        }
    }
}
