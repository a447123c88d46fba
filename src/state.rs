//! What every request handler shares: the store, metrics, limits and the outbox's signals.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::store::Store;

/// Shared application state.
#[derive(Debug)]
pub struct AppState {
    /// The event store.
    pub store: Arc<Store>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Wakes the outbox worker when new jobs are stored.
    pub outbox_wake: Arc<Notify>,
    /// The worker's last loop, Unix seconds.
    pub worker_heartbeat: Arc<AtomicU64>,
    /// Largest body.
    pub body_limit: usize,
    /// Total body read deadline.
    pub body_deadline: Duration,
    /// How long events are kept.
    pub retention: Duration,
}
