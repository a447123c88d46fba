//! One notifier's worker: claim due jobs under a lease, deliver each, record the outcome,
//! and sleep until the next one is due or an accepted event wakes it. When the store
//! fails it backs off and says so to `/readyz`; it never retries a job sooner than its
//! lease or backoff allows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::{backoff, digest, OutboxHealth, OutboxSettings};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::notify::{Notification, Notifier, NotifyError};
use crate::reload::NotifierSlot;
use crate::store::{ClaimedJob, Finished, Outcome, Store, StoreError, StoreErrorKind};

/// The longest a worker sleeps, so its heartbeat (`/readyz`) stays fresh.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// An outer bound on any one delivery, whatever the notifier's own deadline.
const DELIVERY_GUARD: Duration = Duration::from_secs(120);
/// Outcomes are recorded in groups of this many, or sooner once the oldest waited
/// [`FINISH_WITHIN`]: a crash re-sends at most that much. It also bounds a notifier's
/// [`Notifier::delivery_batch`].
const FINISH_GROUP: usize = 64;
const FINISH_WITHIN: Duration = Duration::from_millis(20);
/// The longest a worker waits after a store failure before trying again, so deliveries
/// resume soon after the store recovers.
const STORE_RETRY_CAP: Duration = Duration::from_secs(5);

/// One notifier's worker.
#[derive(Debug, Clone)]
pub(super) struct Worker {
    pub name: String,
    /// Read once per round, so a reload (SIGHUP) applies from the next round on.
    pub notifier: Arc<NotifierSlot>,
    pub wake: Arc<Notify>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: OutboxSettings,
    pub metrics: Arc<Metrics>,
    pub health: Arc<OutboxHealth>,
    /// Where each endpoint's alerts keep their figures.
    pub fields: crate::fields::EndpointFields,
}

impl Worker {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut store_failures = 0u32;
        loop {
            self.health.beat(&self.name, self.clock.now_ms());
            let wait = match self.round().await {
                Ok(wait) => {
                    if store_failures > 0 {
                        tracing::info!(notifier = %self.name, "outbox: the store works again; delivering");
                    }
                    store_failures = 0;
                    self.health.store(&self.name, true);
                    wait
                }
                Err(error) => {
                    store_failures = store_failures.saturating_add(1);
                    self.health.store(&self.name, false);
                    let wait = backoff(&self.settings, store_failures).min(STORE_RETRY_CAP);
                    tracing::error!(notifier = %self.name, %error, retry_in_ms = millis(wait), "outbox: storage error; backing off");
                    wait
                }
            };
            if *shutdown.borrow() {
                break;
            }
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
        }
    }

    /// How long a claim holds its jobs (`[outbox] lease_secs`).
    fn lease(&self) -> Duration {
        Duration::from_secs(self.settings.lease_secs)
    }

    /// Claims and delivers one batch; returns how long to wait before the next.
    async fn round(&self) -> Result<Duration, StoreError> {
        let now_ms = self.clock.now_ms();
        let notifier = self.notifier.current();
        let claimed = self
            .store
            .claim(&self.name, now_ms, self.lease(), notifier.claim_batch())
            .await?;
        if claimed.jobs.is_empty() {
            let until = claimed.next_due_ms.map_or(IDLE_WAKE, |due| {
                Duration::from_millis(due.saturating_sub(now_ms))
            });
            return Ok(until.clamp(Duration::from_millis(1), IDLE_WAKE));
        }
        let (digest, single): (Vec<ClaimedJob>, Vec<ClaimedJob>) = claimed
            .jobs
            .into_iter()
            .partition(|claimed| claimed.job.digest);
        let (digest, single) = self
            .gather_digest(notifier.as_ref(), digest, single, now_ms)
            .await;
        let mut finished = Vec::new();
        for group in digest::groups(digest) {
            if group.len() > 1 {
                let outcomes = self.attempt_digest(notifier.as_ref(), group).await;
                self.health.beat(&self.name, self.clock.now_ms());
                self.record(outcomes).await?;
            } else if !group.is_empty() {
                // A digest of one is the alert itself.
                finished.extend(self.attempt(notifier.as_ref(), group).await);
            }
        }
        let mut oldest = Instant::now();
        let mut single = single.into_iter().peekable();
        while single.peek().is_some() {
            let jobs: Vec<ClaimedJob> = single
                .by_ref()
                .take(notifier.delivery_batch().clamp(1, FINISH_GROUP))
                .collect();
            if finished.is_empty() {
                oldest = Instant::now();
            }
            finished.extend(self.attempt(notifier.as_ref(), jobs).await);
            // Per delivery call (one send, for a network sink), so a slow sink (SMTP at its
            // deadline) never looks like a dead worker.
            self.health.beat(&self.name, self.clock.now_ms());
            if finished.len() >= FINISH_GROUP || oldest.elapsed() >= FINISH_WITHIN {
                self.record(std::mem::take(&mut finished)).await?;
            }
        }
        self.record(finished).await?;
        Ok(Duration::ZERO)
    }

    /// Every digest job of this notifier due now, so the alerts that waited together go out
    /// together: claims again while claims bring only digest jobs, up to
    /// [`digest::MAX_GATHERED`]. Other jobs met on the way are delivered on their own (at most
    /// one more claim batch of them, so the round stays inside its lease).
    async fn gather_digest(
        &self,
        notifier: &dyn Notifier,
        mut digest: Vec<ClaimedJob>,
        mut single: Vec<ClaimedJob>,
        now_ms: u64,
    ) -> (Vec<ClaimedJob>, Vec<ClaimedJob>) {
        let batch = notifier.claim_batch().max(1);
        while !digest.is_empty() && digest.len() < digest::MAX_GATHERED {
            let limit = batch.min(digest::MAX_GATHERED - digest.len());
            // What is claimed already is delivered whatever a further claim does.
            let more = match self
                .store
                .claim(&self.name, now_ms, self.lease(), limit)
                .await
            {
                Ok(claimed) => claimed.jobs,
                Err(error) => {
                    tracing::warn!(notifier = %self.name, %error, "outbox: cannot gather more of a digest; sending what is claimed");
                    break;
                }
            };
            let found = more.len();
            let mut others = false;
            for claimed in more {
                if claimed.job.digest {
                    digest.push(claimed);
                } else {
                    others = true;
                    single.push(claimed);
                }
            }
            if others || found < limit {
                break;
            }
        }
        (digest, single)
    }

    /// One digest for `jobs` (at least two), its outcome applied to each: one message, so
    /// one verdict; a retry or the end of attempts is decided per job by its own count.
    async fn attempt_digest(
        &self,
        notifier: &dyn Notifier,
        jobs: Vec<ClaimedJob>,
    ) -> Vec<Finished> {
        let now = self.clock.now();
        let record = digest::compose(&self.name, &jobs, &self.fields, now);
        let notification = Notification::with_fields(&record, &crate::fields::FieldMap::default());
        let outcome = tokio::time::timeout(DELIVERY_GUARD, notifier.deliver(&notification))
            .await
            .unwrap_or_else(|_| {
                Err(NotifyError::retry(
                    "delivery exceeded the outbox's guard deadline",
                ))
            });
        let now_ms = self.clock.now_ms();
        let count = jobs.len();
        match &outcome {
            Ok(()) => {
                self.metrics.notification(&self.name, "sent");
                // A log notifier's digest line is itself the record, as for one alert.
                if notifier.delivery_is_a_log_line() {
                    tracing::debug!(notifier = %self.name, digest = %record.id, alerts = count, "digest sent");
                } else {
                    tracing::info!(notifier = %self.name, digest = %record.id, alerts = count, "digest sent");
                }
            }
            Err(error) => {
                self.metrics
                    .notification(&self.name, if error.retryable { "retried" } else { "dead" });
                tracing::warn!(notifier = %self.name, digest = %record.id, alerts = count, error = %error.message, "digest failed");
            }
        }
        jobs.into_iter()
            .map(|claimed| {
                let attempts = claimed.job.attempts.saturating_add(1);
                let outcome = match &outcome {
                    Ok(()) => Outcome::Delivered,
                    Err(error) if error.retryable && attempts < self.settings.max_attempts => {
                        Outcome::Retry {
                            at_ms: now_ms.saturating_add(millis(backoff(&self.settings, attempts))),
                            error: format!("in digest {}: {}", record.id, error.message),
                        }
                    }
                    Err(error) => Outcome::Dead {
                        reason: format!("in digest {}: {}", record.id, error.message),
                    },
                };
                Finished {
                    token: claimed.token,
                    outcome,
                    at_ms: now_ms,
                }
            })
            .collect()
    }

    /// When the event's budget runs out at the rate of its period's figures up to the event
    /// (so a retry says what the first attempt said); none when it cannot be told. The
    /// budget is named from the figures already read for the notification.
    async fn projection(
        &self,
        event: &crate::store::EventRecord,
        alert: &crate::event::Alert,
    ) -> Option<String> {
        let mark = crate::collapse::mark_with(&event.endpoint, alert, None)?;
        let points = match self.store.budget_usage(&mark.budget).await {
            Ok(points) => points,
            Err(error) => {
                tracing::warn!(%error, "outbox: cannot read a budget's figures; notifying without a projection");
                return None;
            }
        };
        let until_event: Vec<(u64, u64)> = points
            .into_iter()
            .filter(|(at, _)| *at <= event.received_at)
            .collect();
        crate::projection::runs_out_at(&until_event).map(crate::notify::rfc3339)
    }

    /// Records outcomes. A lost lease only means another claimer has the job now.
    async fn record(&self, finished: Vec<Finished>) -> Result<(), StoreError> {
        match self.store.finish(finished).await {
            Err(error) if error.kind() == StoreErrorKind::LeaseLost => {
                tracing::warn!(notifier = %self.name, %error, "outbox: a job's lease ended before its outcome was recorded");
                Ok(())
            }
            other => other,
        }
    }

    /// Delivers `jobs` in one call to the notifier (see [`Notifier::delivery_batch`]), each
    /// one's figures read once, under the guard deadline.
    async fn attempt(&self, notifier: &dyn Notifier, jobs: Vec<ClaimedJob>) -> Vec<Finished> {
        let mut notifications = Vec::with_capacity(jobs.len());
        for claimed in &jobs {
            let fields = self.fields.of(&claimed.event.endpoint);
            let mut notification = Notification::with_fields(&claimed.event, &fields);
            notification.alert.runs_out_at =
                self.projection(&claimed.event, &notification.alert).await;
            notifications.push(notification);
        }
        let delivered =
            tokio::time::timeout(DELIVERY_GUARD, notifier.deliver_all(&notifications)).await;
        drop(notifications);
        // A job the notifier gave no outcome for is not delivered.
        let (outcomes, missing) = match delivered {
            Ok(outcomes) => (
                outcomes,
                "the notifier reported no outcome for this delivery",
            ),
            Err(_) => (Vec::new(), "delivery exceeded the outbox's guard deadline"),
        };
        let outcomes = outcomes
            .into_iter()
            .chain(std::iter::repeat_with(|| Err(NotifyError::retry(missing))));
        let now_ms = self.clock.now_ms();
        let log_line = notifier.delivery_is_a_log_line();
        jobs.into_iter()
            .zip(outcomes)
            .map(|(claimed, outcome)| self.conclude(claimed, outcome, now_ms, log_line))
            .collect()
    }

    /// What one delivery's outcome means for its job: delivered, retried after its backoff,
    /// or dead; counted and logged: a delivery at INFO (DEBUG when `delivery_is_a_log_line`),
    /// a retry at WARN, giving up at ERROR.
    fn conclude(
        &self,
        claimed: ClaimedJob,
        outcome: Result<(), NotifyError>,
        now_ms: u64,
        delivery_is_a_log_line: bool,
    ) -> Finished {
        let ClaimedJob { token, job, .. } = claimed;
        let attempts = job.attempts.saturating_add(1);
        let outcome = match outcome {
            Ok(()) => {
                self.metrics.notification(&self.name, "sent");
                // The log notifier's alert line is the record of its delivery: the same
                // again on stderr would double what a busy receiver logs (README, Logs).
                if delivery_is_a_log_line {
                    tracing::debug!(notifier = %self.name, endpoint = %job.endpoint, id = %job.event_id, attempts, "notification sent");
                } else {
                    tracing::info!(notifier = %self.name, endpoint = %job.endpoint, id = %job.event_id, attempts, "notification sent");
                }
                Outcome::Delivered
            }
            Err(error) if error.retryable && attempts < self.settings.max_attempts => {
                let delay = backoff(&self.settings, attempts);
                self.metrics.notification(&self.name, "retried");
                tracing::warn!(notifier = %self.name, endpoint = %job.endpoint, id = %job.event_id,
                    attempts, retry_in_ms = millis(delay), error = %error.message, "notification failed; will retry");
                Outcome::Retry {
                    at_ms: now_ms.saturating_add(millis(delay)),
                    error: error.message,
                }
            }
            Err(error) => {
                self.metrics.notification(&self.name, "dead");
                tracing::error!(notifier = %self.name, endpoint = %job.endpoint, id = %job.event_id,
                    attempts, error = %error.message, "notification dead: giving up");
                Outcome::Dead {
                    reason: error.message,
                }
            }
        };
        Finished {
            token,
            outcome,
            at_ms: now_ms,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::clock::FixedClock;
    use crate::notify::{BoxFuture, Notifiers};
    use crate::store::memory::MemoryStore;
    use crate::store::{test_event, JobStatus};

    const T0: u64 = 1_764_600_000;

    /// Takes three jobs a call, keeps each call's event ids, and reports an outcome for all
    /// but the last job of a call (a notifier's own fault).
    #[derive(Debug, Default)]
    struct OneOutcomeShort {
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl Notifier for OneOutcomeShort {
        fn kind(&self) -> &'static str {
            "test"
        }

        fn delivery_batch(&self) -> usize {
            3
        }

        fn deliver<'a>(
            &'a self,
            _: &'a Notification<'a>,
        ) -> BoxFuture<'a, Result<(), NotifyError>> {
            Box::pin(async { Err(NotifyError::permanent("deliver_all is the one called")) })
        }

        fn deliver_all<'a>(
            &'a self,
            notifications: &'a [Notification<'a>],
        ) -> BoxFuture<'a, Vec<Result<(), NotifyError>>> {
            Box::pin(async move {
                let ids = notifications.iter().map(|n| n.record.id.clone()).collect();
                self.calls.lock().expect("lock").push(ids);
                vec![Ok(()); notifications.len().saturating_sub(1)]
            })
        }
    }

    /// The outbox's workers for `notifiers` over `store`, on a clock fixed at `now`.
    fn outbox_at(now: u64, store: &Arc<dyn Store>, notifiers: &Notifiers) -> super::super::Outbox {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::at(now));
        super::super::Outbox::new(
            store,
            notifiers,
            &OutboxSettings::default(),
            &clock,
            &Arc::new(Metrics::default()),
            &crate::fields::EndpointFields::default(),
        )
    }

    /// Delivers every notification.
    #[derive(Debug)]
    struct Delivers;

    impl Notifier for Delivers {
        fn kind(&self) -> &'static str {
            "test"
        }

        fn deliver<'a>(
            &'a self,
            _: &'a Notification<'a>,
        ) -> BoxFuture<'a, Result<(), NotifyError>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// What a test's subscriber writes, shared with the test.
    #[derive(Debug, Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// One alert sent on its own and two that waited for a digest, to a log notifier and to
    /// another: only the other's "sent" lines are at INFO.
    #[tokio::test]
    async fn a_log_notifiers_deliveries_and_digests_are_logged_at_debug_and_others_at_info() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alerts.log");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        for (id, deferred) in [("a", false), ("b", true), ("c", true)] {
            let mut event = test_event(id, "file", T0);
            event.notifiers.push("other".into());
            if deferred {
                for notifier in ["file", "other"] {
                    event.deferred.insert(notifier.into(), (T0 + 5) * 1000);
                }
            }
            store.record(event).await.expect("record");
        }
        let mut notifiers = Notifiers::new();
        let file = crate::notify::log::LogNotifier::open(path.to_str().expect("path"), 0o600);
        notifiers.insert(
            "file".into(),
            Arc::new(file.expect("open")) as Arc<dyn Notifier>,
        );
        notifiers.insert("other".into(), Arc::new(Delivers) as Arc<dyn Notifier>);
        let outbox = outbox_at(T0 + 10, &store, &notifiers);

        // tracing decides once per call site, for every thread, whether it is enabled. With
        // one dispatcher registered it asks the deciding thread's own subscriber, so a test
        // on another thread (with none) reaching "notification sent" first would switch it
        // off for this test too. A second dispatcher kept alive makes tracing ask per event.
        let _every_event_asked =
            tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(captured.clone())
            .finish();
        {
            let _logging = tracing::subscriber::set_default(subscriber);
            for worker in &outbox.workers {
                worker.round().await.expect("a round");
            }
        }

        let written = std::fs::read_to_string(&path).expect("the alert lines");
        assert_eq!(
            written.lines().count(),
            2,
            "the alert and the digest: {written}"
        );
        let logged = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("UTF-8");
        let mut sent: Vec<[String; 3]> = logged
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON"))
            .filter(|line| {
                line["message"] == "notification sent" || line["message"] == "digest sent"
            })
            .map(|line| {
                let field = |name: &str| line[name].as_str().unwrap_or_default().to_owned();
                [field("message"), field("notifier"), field("level")]
            })
            .collect();
        sent.sort();
        let expected = [
            ["digest sent", "file", "DEBUG"],
            ["digest sent", "other", "INFO"],
            ["notification sent", "file", "DEBUG"],
            ["notification sent", "other", "INFO"],
        ]
        .map(|line| line.map(str::to_owned));
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn jobs_go_in_delivery_batches_and_one_without_an_outcome_is_retried() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        for (n, id) in (0..).zip(["a", "b", "c", "d", "e"]) {
            let recorded = store.record(test_event(id, "test", T0 + n)).await;
            recorded.expect("record");
        }
        let notifier = Arc::new(OneOutcomeShort::default());
        let mut notifiers = Notifiers::new();
        notifiers.insert("test".into(), Arc::clone(&notifier) as Arc<dyn Notifier>);
        let mut outbox = outbox_at(T0 + 10, &store, &notifiers);
        let worker = outbox.workers.remove(0);
        worker.round().await.expect("a round");

        let calls = notifier.calls.lock().expect("lock").clone();
        assert_eq!(calls, [vec!["a", "b", "c"], vec!["d", "e"]]);
        for (id, delivered) in [
            ("a", true),
            ("b", true),
            ("c", false),
            ("d", true),
            ("e", false),
        ] {
            let detail = store
                .event("perf", id)
                .await
                .expect("read")
                .expect("stored");
            let job = &detail.notifications[0];
            if delivered {
                assert_eq!(
                    (job.status, job.attempts),
                    (JobStatus::Delivered, 1),
                    "{id}"
                );
            } else {
                assert_eq!((job.status, job.attempts), (JobStatus::Pending, 1), "{id}");
                assert_eq!(
                    job.last_error.as_deref(),
                    Some("the notifier reported no outcome for this delivery"),
                    "{id}"
                );
            }
        }
    }
}
