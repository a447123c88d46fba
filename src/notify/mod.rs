//! Notifiers: where accepted events go. A small trait with one file per sink, built from
//! the config; the outbox calls them.

pub mod command;
pub mod email;
pub mod forward;
pub mod log;
pub mod slack;
pub mod wording;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::Alert;
use crate::store::EventRecord;

/// One `[notifiers.NAME]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum NotifierSettings {
    /// One JSON line per event.
    Log {
        /// `stdout` or a file path to append to.
        #[serde(default = "default_log_target")]
        target: String,
        /// The file's mode, in octal: alerts name organisations, projects and spend.
        #[serde(default = "default_log_mode")]
        mode: String,
    },
    /// A plain-text email over SMTP.
    Email(email::EmailSettings),
    /// The event forwarded to a URL, signed with the Standard Webhooks scheme.
    Webhook(forward::WebhookSettings),
    /// A program run with the event on stdin.
    Command(command::CommandSettings),
    /// A Block Kit message to a Slack incoming webhook.
    Slack(slack::SlackSettings),
}

/// The longest `timeout_ms` a network or command notifier takes: a few claimed jobs at this
/// deadline each must end well inside the outbox's lease.
pub const MAX_SEND_TIMEOUT_MS: u64 = 60_000;

/// The log notifier's default target.
#[must_use]
pub fn default_log_target() -> String {
    "stdout".into()
}

/// The log notifier's default file mode: readable by its owner only.
#[must_use]
pub fn default_log_mode() -> String {
    "0600".into()
}

/// What one delivery tells a person: the stored event and its alert figures, read from
/// the body once per delivery and shared by everything a notifier renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification<'a> {
    /// The stored event.
    pub record: &'a EventRecord,
    /// Its figures.
    pub alert: Alert,
}

impl<'a> Notification<'a> {
    /// Reads the figures of `record` where Perf's fixtures put them.
    #[must_use]
    pub fn of(record: &'a EventRecord) -> Self {
        Self::with_fields(record, &crate::fields::FieldMap::default())
    }

    /// Reads the figures of `record` where its endpoint's `[endpoints.fields]` says.
    #[must_use]
    pub fn with_fields(record: &'a EventRecord, fields: &crate::fields::FieldMap) -> Self {
        Self {
            record,
            alert: Alert::from_body_with(record.body.as_bytes(), fields),
        }
    }
}

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

    /// How many jobs the outbox claims at a time: many for a sink that is fast, few for one
    /// whose every send may wait on a network (a crash re-sends at most that many).
    fn claim_batch(&self) -> usize {
        64
    }

    /// How many claimed jobs the outbox hands [`Notifier::deliver_all`] at once: one for a
    /// sink whose every send may wait on a network, so the worker's heartbeat and its
    /// grouping of outcomes follow each send; more for one that takes many as cheaply as one.
    fn delivery_batch(&self) -> usize {
        1
    }

    /// Whether what this notifier delivers is itself a line in a log (stdout or a file), so
    /// the outbox's own "notification sent" (or "digest sent") line would only say it again:
    /// that line is then at DEBUG instead of INFO. Failures are logged as before whatever
    /// this says.
    fn delivery_is_a_log_line(&self) -> bool {
        false
    }

    /// Delivers one event. The outbox puts an overall deadline around this call.
    fn deliver<'a>(
        &'a self,
        notification: &'a Notification<'a>,
    ) -> BoxFuture<'a, Result<(), NotifyError>>;

    /// Delivers several events: one outcome for each, in order. The default delivers them one
    /// by one; a sink that takes many at once (the log notifier: one write for all the lines)
    /// overrides it. The outbox puts one overall deadline around this call.
    fn deliver_all<'a>(
        &'a self,
        notifications: &'a [Notification<'a>],
    ) -> BoxFuture<'a, Vec<Result<(), NotifyError>>> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(notifications.len());
            for notification in notifications {
                outcomes.push(self.deliver(notification).await);
            }
            outcomes
        })
    }
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
            NotifierSettings::Log { target, mode } => {
                let mode = crate::file_modes::parse_mode(mode)
                    .map_err(|e| format!("notifiers.{name}.mode: {e}"))?;
                Arc::new(
                    log::LogNotifier::open(target, mode)
                        .map_err(|e| format!("notifiers.{name}: {e}"))?,
                )
            }
            NotifierSettings::Email(email) => Arc::new(
                email::EmailNotifier::build(email).map_err(|e| format!("notifiers.{name}: {e}"))?,
            ),
            NotifierSettings::Webhook(webhook) => Arc::new(
                forward::WebhookNotifier::build(webhook)
                    .map_err(|e| format!("notifiers.{name}: {e}"))?,
            ),
            NotifierSettings::Slack(slack) => Arc::new(
                slack::SlackNotifier::build(slack).map_err(|e| format!("notifiers.{name}: {e}"))?,
            ),
            NotifierSettings::Command(command) => Arc::new(
                command::CommandNotifier::build(command)
                    .map_err(|e| format!("notifiers.{name}: {e}"))?,
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
