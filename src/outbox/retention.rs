//! Retention: removes expired events (and so their dedupe keys) in small batches, so no
//! purge holds the store for long.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::store::Store;

/// Events removed per store call.
const PURGE_BATCH: usize = 500;

/// Purges expired events every `every`, until `shutdown`.
pub async fn run_retention(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    every: Duration,
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
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => break,
        }
    }
}
