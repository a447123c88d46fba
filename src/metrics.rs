//! Prometheus metrics through `prometheus-client`: one registry per application (no global
//! recorder, so several servers can run in one test process).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::store::Counts;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    endpoint: String,
    class: &'static str,
}

/// 100 µs to ~3 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Which latency series a request belongs to, so a 10 s body timeout or a fast refusal
/// never blends into the latency of served deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyClass {
    /// Accepted or duplicate.
    Served,
    /// A 4xx other than a timeout.
    Refused,
    /// The body read deadline passed (408).
    Timeout,
    /// A 503: the store or the body budget.
    Unavailable,
}

impl LatencyClass {
    /// The class of a request answered with `status`.
    #[must_use]
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Served,
            408 => Self::Timeout,
            503 => Self::Unavailable,
            _ => Self::Refused,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Served => "served",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    endpoint: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotifyLabels {
    notifier: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminLabels {
    key: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthFailureLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedKeptLabels {
    endpoint: String,
    result: &'static str,
}

/// Every metric perfhook exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    last_delivery: Family<EndpointLabels, Gauge>,
    clock_skew: Family<EndpointLabels, Gauge>,
    /// When each endpoint last warned about skew (Unix s): at most one line a minute.
    skew_warned: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// The last 24 hours per endpoint, for the inspector.
    pub activity: crate::activity::Activity,
    admin_requests: Family<AdminLabels, Counter>,
    admin_auth_failures: Family<AuthFailureLabels, Counter>,
    refused_kept: Family<RefusedKeptLabels, Counter>,
    keys_due_for_rotation: Gauge,
    requests: Family<RequestLabels, Counter>,
    verify_failures: Family<ReasonLabels, Counter>,
    notifications: Family<NotifyLabels, Counter>,
    outbox_depth: Gauge,
    dead_jobs: Gauge,
    stored_events: Gauge,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("perfhook");
        let requests = Family::default();
        let verify_failures = Family::default();
        let notifications = Family::default();
        let outbox_depth = Gauge::default();
        let dead_jobs = Gauge::default();
        let stored_events = Gauge::default();
        let latency: Family<LatencyLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let last_delivery = Family::default();
        let clock_skew = Family::default();
        registry.register(
            "last_delivery_timestamp_seconds",
            "When the endpoint last received a delivery that verified (accepted or duplicate), Unix seconds",
            last_delivery.clone(),
        );
        registry.register(
            "clock_skew_seconds",
            "The receiver's time minus the signed timestamp of the endpoint's last verified delivery",
            clock_skew.clone(),
        );
        let admin_requests = Family::default();
        let admin_auth_failures = Family::default();
        let refused_kept = Family::default();
        let keys_due_for_rotation = Gauge::default();
        registry.register(
            "admin_requests",
            "Operator API requests by key id and outcome (ok, insufficient_scope, rate_limited, auth_failed: the id of a stored key with a wrong secret, or revoked or expired)",
            admin_requests.clone(),
        );
        registry.register(
            "admin_auth_failures",
            "Operator API requests without a valid key, by reason",
            admin_auth_failures.clone(),
        );
        registry.register(
            "refused_deliveries",
            "Refused deliveries by endpoint: kept for the operator API, or dropped over the write limit",
            refused_kept.clone(),
        );
        registry.register(
            "api_keys_due_for_rotation",
            "Active API keys older than 90 days",
            keys_due_for_rotation.clone(),
        );
        registry.register(
            "requests",
            "Webhook requests by endpoint and outcome",
            requests.clone(),
        );
        registry.register(
            "verification_failures",
            "Deliveries refused by signature or timestamp checks, by reason",
            verify_failures.clone(),
        );
        registry.register(
            "notifications",
            "Notification attempts by notifier and result",
            notifications.clone(),
        );
        registry.register(
            "outbox_depth",
            "Notification jobs waiting",
            outbox_depth.clone(),
        );
        registry.register(
            "outbox_dead",
            "Notification jobs that ran out of attempts",
            dead_jobs.clone(),
        );
        registry.register(
            "stored_events",
            "Events kept (each is a dedupe key until retention removes it)",
            stored_events.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Webhook request latency by endpoint and class: served (accepted or duplicate), refused, timeout, unavailable",
            latency.clone(),
        );
        Self {
            registry,
            last_delivery,
            clock_skew,
            skew_warned: std::sync::Mutex::default(),
            activity: crate::activity::Activity::default(),
            admin_requests,
            admin_auth_failures,
            refused_kept,
            keys_due_for_rotation,
            requests,
            verify_failures,
            notifications,
            outbox_depth,
            dead_jobs,
            stored_events,
            latency,
        }
    }
}

impl Metrics {
    /// Counts one request and its latency. Outcomes: `accepted`, `duplicate` or an error type.
    pub fn request(
        &self,
        endpoint: &str,
        outcome: &'static str,
        class: LatencyClass,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_owned(),
                outcome,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                endpoint: endpoint.to_owned(),
                class: class.label(),
            })
            .observe(seconds);
    }

    /// Counts a verification failure.
    pub fn verification_failure(&self, endpoint: &str, reason: &'static str) {
        self.verify_failures
            .get_or_create(&ReasonLabels {
                endpoint: endpoint.to_owned(),
                reason,
            })
            .inc();
    }

    /// Counts a notification attempt: `sent`, `retried` or `dead`.
    pub fn notification(&self, notifier: &str, result: &'static str) {
        self.notifications
            .get_or_create(&NotifyLabels {
                notifier: notifier.to_owned(),
                result,
            })
            .inc();
    }

    /// Records a verified delivery at `now`, signed at `signed` (schemes with a timestamp).
    /// Returns the skew when it is 80% of `tolerance` or more and this endpoint has not
    /// warned in the last minute, so the caller logs it.
    pub fn verified_delivery(
        &self,
        endpoint: &str,
        now: u64,
        signed: Option<u64>,
        tolerance: Option<u64>,
    ) -> Option<i64> {
        let labels = EndpointLabels {
            endpoint: endpoint.to_owned(),
        };
        self.last_delivery
            .get_or_create(&labels)
            .set(i64::try_from(now).unwrap_or(i64::MAX));
        let signed = signed?;
        let skew = i64::try_from(now)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(signed).unwrap_or(i64::MAX));
        self.clock_skew.get_or_create(&labels).set(skew);
        let tolerance = tolerance?;
        if skew.unsigned_abs().saturating_mul(10) < tolerance.saturating_mul(8) {
            return None;
        }
        let mut warned = self
            .skew_warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match warned.get(endpoint) {
            Some(at) if now.saturating_sub(*at) < 60 => None,
            _ => {
                warned.insert(endpoint.to_owned(), now);
                Some(skew)
            }
        }
    }

    /// Counts an operator API request by a known key: `ok`, `insufficient_scope`,
    /// `rate_limited` or `auth_failed`.
    pub fn admin_request(&self, key: &str, outcome: &'static str) {
        self.admin_requests
            .get_or_create(&AdminLabels {
                key: key.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts an operator API request without a valid key.
    pub fn admin_auth_failure(&self, reason: &'static str) {
        self.admin_auth_failures
            .get_or_create(&AuthFailureLabels { reason })
            .inc();
    }

    /// Counts a refused delivery `kept` or `dropped`.
    pub fn refused_delivery(&self, endpoint: &str, result: &'static str) {
        self.refused_kept
            .get_or_create(&RefusedKeptLabels {
                endpoint: endpoint.to_owned(),
                result,
            })
            .inc();
    }

    /// Sets how many active keys are older than 90 days.
    pub fn keys_due_for_rotation(&self, due: usize) {
        self.keys_due_for_rotation
            .set(i64::try_from(due).unwrap_or(i64::MAX));
    }

    /// The text exposition, with the store gauges set from `counts`.
    ///
    /// # Errors
    /// When encoding fails (it writes to a `String`, so only on a formatting bug).
    pub fn render(&self, counts: Counts) -> Result<String, std::fmt::Error> {
        self.outbox_depth
            .set(i64::try_from(counts.outbox).unwrap_or(i64::MAX));
        self.dead_jobs
            .set(i64::try_from(counts.dead).unwrap_or(i64::MAX));
        self.stored_events
            .set(i64::try_from(counts.events).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
