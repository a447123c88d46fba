//! Retention: removes expired events (and so their dedupe keys) in small batches, so no
//! purge holds the store for long; refused deliveries older than a week; audit entries older
//! than their retention (the chain then starts from an anchor).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::store::Store;

/// Events removed per store call.
const PURGE_BATCH: usize = 500;
/// How long a refused delivery is kept.
pub const REFUSED_KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// Purges expired events every `every`, until `shutdown`.
pub async fn run_retention(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    every: Duration,
    audit_retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut removed = 0;
        loop {
            match store.purge_expired(clock.now(), PURGE_BATCH).await {
                Ok(count) => {
                    removed += count;
                    if count < PURGE_BATCH {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::error!(%error, "retention: purge failed; will try again");
                    break;
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "retention: purged expired events");
        }
        let before_ms = clock
            .now_ms()
            .saturating_sub(u64::try_from(REFUSED_KEPT_FOR.as_millis()).unwrap_or(u64::MAX));
        match store.purge_refused(before_ms).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "retention: purged old refused deliveries"),
            Err(error) => tracing::error!(%error, "retention: refused-delivery purge failed"),
        }
        match store
            .purge_audit(clock.now().saturating_sub(audit_retention.as_secs()))
            .await
        {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "retention: purged old audit entries"),
            Err(error) => tracing::error!(%error, "retention: audit purge failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => break,
        }
    }
}
