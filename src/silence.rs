//! Sender silence: an endpoint with `expect_delivery_within` gets one notification when
//! nothing has arrived for that long, and one more when deliveries resume. Both are events
//! perfhook records itself (`perfhook.sender_silent`, `perfhook.sender_resumed`) with ids
//! derived from the silence they describe, so insert-if-absent makes each one exactly once,
//! across restarts too, and the durable outbox delivers them like any alert.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::activity::Activity;
use crate::clock::Clock;
use crate::event::Mode;
use crate::notify::rfc3339;
use crate::outbox::Wakers;
use crate::reload::EndpointSlot;
use crate::store::{EventQuery, EventRecord, NewEvent, Recorded, Store, StoreError};

/// The type of the event recorded when a sender goes silent.
pub const SILENT: &str = "perfhook.sender_silent";
/// The type of the event recorded when it delivers again.
pub const RESUMED: &str = "perfhook.sender_resumed";
/// How often the endpoints are looked at (a few store reads each, for those with
/// `expect_delivery_within` only).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Newest stored events looked through for the last real delivery (perfhook's own silence
/// events come between deliveries at most twice).
const NEWEST_LOOKED_AT: usize = 8;

/// Whether an event type is one perfhook records itself.
#[must_use]
pub fn is_own(kind: &str) -> bool {
    kind.starts_with("perfhook.")
}

/// When `endpoint` last took a verified delivery: the newest stored event that is not
/// perfhook's own, or a duplicate this process answered later.
///
/// # Errors
/// When the store cannot list.
pub async fn last_delivery(
    store: &dyn Store,
    activity: &Activity,
    endpoint: &str,
    now: u64,
) -> Result<Option<u64>, StoreError> {
    let stored = store
        .list(&EventQuery {
            endpoint: Some(endpoint.to_owned()),
            limit: NEWEST_LOOKED_AT,
            ..EventQuery::default()
        })
        .await?
        .events
        .into_iter()
        .find(|event| !is_own(&event.kind))
        .map(|event| event.received_at);
    let (_, seen) = activity.last_day(endpoint, now);
    Ok(stored.max(seen))
}

/// What the watcher needs.
#[derive(Debug, Clone)]
pub struct SilenceWatch {
    /// Events and the outbox.
    pub store: Arc<dyn Store>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The endpoints as configured now (a reload shows here).
    pub endpoints: Vec<Arc<EndpointSlot>>,
    /// Duplicates answered, which count as deliveries.
    pub activity: Arc<crate::metrics::Metrics>,
    /// Wakes the notifiers when a silence event is recorded.
    pub wakers: Wakers,
    /// How long events are kept.
    pub retention: Duration,
    /// When this process started: a sender never heard from is silent from then.
    pub started_at: u64,
}

impl SilenceWatch {
    /// Checks every endpoint each [`CHECK_EVERY`] until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            for slot in &self.endpoints {
                if let Err(error) = self.check(slot).await {
                    tracing::warn!(%error, "silence: cannot check an endpoint; will try again");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(CHECK_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Records the silence or resumption event `slot`'s endpoint is due, if any.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn check(&self, slot: &EndpointSlot) -> Result<(), StoreError> {
        let endpoint = slot.current();
        let Some(expected) = endpoint.expect_delivery_within else {
            return Ok(());
        };
        let now = self.clock.now();
        let last = last_delivery(
            self.store.as_ref(),
            &self.activity.activity,
            &endpoint.name,
            now,
        )
        .await?;
        let newest_silence = self
            .store
            .list(&EventQuery {
                endpoint: Some(endpoint.name.clone()),
                kind: Some(SILENT.to_owned()),
                limit: 1,
                ..EventQuery::default()
            })
            .await?
            .events
            .into_iter()
            .next();
        if let Some(silence) = &newest_silence {
            if last.is_none_or(|at| at <= silence.received_at) {
                // Still silent, and already said so.
                return Ok(());
            }
            // Delivering again: say so, once for this silence (read first, so the
            // common case writes nothing); then watch for the next silence.
            let id = format!("perfhook-resumed-{}", silence.id);
            if self.store.event(&endpoint.name, &id).await?.is_none() {
                let body = json!({
                "id": id,
                "type": RESUMED,
                "livemode": endpoint.mode == Mode::Live,
                "data": {
                    "endpoint": endpoint.name,
                    "silence_notified_at": rfc3339(silence.received_at),
                    "resumed_at": last.map(rfc3339),
                    "expect_delivery_within_secs": expected.as_secs(),
                },
                });
                self.record(&endpoint, body, now).await?;
            }
        }
        let anchor = last.unwrap_or(self.started_at);
        if now.saturating_sub(anchor) <= expected.as_secs() {
            return Ok(());
        }
        let body = json!({
            "id": format!("perfhook-silent-{anchor}"),
            "type": SILENT,
            "livemode": endpoint.mode == Mode::Live,
            "data": {
                "endpoint": endpoint.name,
                "last_delivery_at": last.map(rfc3339),
                "silent_for_secs": now.saturating_sub(anchor),
                "expect_delivery_within_secs": expected.as_secs(),
            },
        });
        self.record(&endpoint, body, now).await
    }

    /// Records one of perfhook's own events for every notifier of the endpoint.
    async fn record(
        &self,
        endpoint: &crate::config::Endpoint,
        body: serde_json::Value,
        now: u64,
    ) -> Result<(), StoreError> {
        let id = body
            .get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let kind = body
            .get("type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let recorded = self
            .store
            .record(NewEvent {
                deferred: Default::default(),
                record: EventRecord {
                    endpoint: endpoint.name.clone(),
                    id: id.clone(),
                    kind: kind.clone(),
                    livemode: Some(endpoint.mode == Mode::Live),
                    received_at: now,
                    body: body.to_string(),
                },
                // Every notifier of the endpoint: asking for silence alerts is asking for them.
                notifiers: endpoint.notifiers.clone(),
                expires_at: now.saturating_add(self.retention.as_secs()),
                budget: None,
            })
            .await?;
        if recorded == Recorded::New {
            self.wakers.wake(&endpoint.notifiers);
            tracing::warn!(endpoint = %endpoint.name, %id, kind, "sender silence: notified");
        }
        Ok(())
    }
}
