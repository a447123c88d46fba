//! Notifiers: where accepted events go. A small trait with one file per sink, built from
//! the config; the outbox calls them.

pub mod email;
pub mod log;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::NotifierSettings;
use crate::event::Event;
use crate::store::EventRecord;

/// A boxed future, so notifiers can live behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A delivery failure. `retryable` failures are tried again with backoff; the others go
/// straight to the dead-letter tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotifyError {
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// What went wrong, without secrets.
    pub message: String,
}

impl NotifyError {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure that will not change by retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

/// A sink for accepted events.
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// The kind, for metrics (`log`, `email`).
    fn kind(&self) -> &'static str;

    /// Delivers one event. The outbox puts an overall deadline around this call.
    fn deliver<'a>(
        &'a self,
        record: &'a EventRecord,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), NotifyError>>;
}

/// Notifiers by name.
pub type Notifiers = HashMap<String, Arc<dyn Notifier>>;

/// Builds every configured notifier.
///
/// # Errors
/// A message naming the notifier that cannot be built (unreadable log file, bad SMTP host).
pub fn build(settings: &BTreeMap<String, NotifierSettings>) -> Result<Notifiers, String> {
    let mut notifiers: Notifiers = HashMap::new();
    for (name, config) in settings {
        let notifier: Arc<dyn Notifier> = match config {
            NotifierSettings::Log { target } => Arc::new(
                log::LogNotifier::open(target).map_err(|e| format!("notifiers.{name}: {e}"))?,
            ),
            NotifierSettings::Email(email) => Arc::new(
                email::EmailNotifier::build(email).map_err(|e| format!("notifiers.{name}: {e}"))?,
            ),
        };
        notifiers.insert(name.clone(), notifier);
    }
    Ok(notifiers)
}

/// Unix seconds as RFC 3339 UTC, for people.
#[must_use]
pub fn rfc3339(unix: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(time).to_string()
}
