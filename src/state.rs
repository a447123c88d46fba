//! What every request handler shares: the store, the clock, metrics, limits and the
//! outbox's signals.

use std::sync::Arc;
use std::time::Duration;

use crate::body_budget::BodyBudget;
use crate::client_ip::{ForwardingHeader, Networks};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::outbox::{OutboxHealth, Wakers};
use crate::store::Store;

/// Shared application state.
#[derive(Debug)]
pub struct AppState {
    /// The event store.
    pub store: Arc<dyn Store>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Wakes the outbox workers when new jobs are stored.
    pub wakers: Wakers,
    /// The outbox workers' health, for `/readyz`.
    pub outbox: Arc<OutboxHealth>,
    /// Largest body.
    pub body_limit: usize,
    /// Total body read deadline.
    pub body_deadline: Duration,
    /// Body bytes in flight, in total and per source: a request reserves its declared
    /// length (or the limit, when chunked) before reading any of it.
    pub body_budget: Arc<BodyBudget>,
    /// Proxies whose forwarding header names the client.
    pub trusted_proxies: Networks,
    /// The header they set.
    pub client_ip_header: ForwardingHeader,
    /// How long events are kept.
    pub retention: Duration,
    /// How many refused deliveries are kept a second: a flood of bad signatures must not
    /// turn into a flood of disk writes.
    pub refused_limiter: Arc<RefusedLimiter>,
}

/// The limiter on keeping refused deliveries.
pub type RefusedLimiter = governor::DefaultDirectRateLimiter;

/// Refused deliveries kept a second, and in a burst.
#[must_use]
pub fn refused_limiter() -> RefusedLimiter {
    let per_second = std::num::NonZeroU32::new(20).unwrap_or(std::num::NonZeroU32::MIN);
    let burst = std::num::NonZeroU32::new(100).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::direct(governor::Quota::per_second(per_second).allow_burst(burst))
}
