//! The Slack notifier: the alert as a Block Kit message to an incoming-webhook URL. The URL
//! holds Slack's token, so it is read like a secret (from the environment or a file) and
//! never appears in a log line or an error.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::wording::Wording;
use super::{BoxFuture, Notification, Notifier, NotifyError};

/// `kind = "slack"` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// Environment variable holding the incoming-webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// File holding the incoming-webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// Overall deadline for one POST.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// Posts alerts to Slack.
pub struct SlackNotifier {
    url: Zeroizing<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for SlackNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackNotifier")
            .field("url", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl SlackNotifier {
    /// Reads the URL.
    ///
    /// # Errors
    /// No or two URL sources, an unreadable one, or a URL that is not http(s).
    pub fn build(settings: &SlackSettings) -> Result<Self, String> {
        let bytes = match (&settings.url_env, &settings.url_file) {
            (Some(var), None) => crate::secret_source::from_env(var)?,
            (None, Some(path)) => crate::secret_source::from_file(path)?,
            _ => return Err("give exactly one of url_env and url_file".into()),
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| "the webhook URL is not UTF-8 text".to_owned())?;
        let url = Zeroizing::new(text.trim().to_owned());
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.parse::<ureq::http::Uri>().is_err()
        {
            return Err("the webhook URL must be an https:// (or http://) URL".into());
        }
        if settings.timeout_ms == 0 || settings.timeout_ms > super::MAX_SEND_TIMEOUT_MS {
            return Err(format!(
                "timeout_ms must be 1 to {}",
                super::MAX_SEND_TIMEOUT_MS
            ));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_millis(settings.timeout_ms)))
            .build()
            .into();
        Ok(Self { url, agent })
    }

    /// The Block Kit message for one alert: the subject as header, the summary, the figures
    /// as fields, the advice; `text` is the fallback for notifications.
    #[must_use]
    pub fn message(notification: &Notification<'_>) -> serde_json::Value {
        let wording = Wording::of(notification.record, &notification.alert);
        // Slack's limit for a section's fields is 10: beyond it, 9 and a count of the rest.
        let shown = if wording.fields.len() > 10 { 9 } else { 10 };
        let mut fields: Vec<serde_json::Value> = wording
            .fields
            .iter()
            .take(shown)
            .map(|(label, value)| {
                json!({"type": "mrkdwn", "text": truncate(&format!("*{}*\n{}", escape(label), escape(value)), 2000)})
            })
            .collect();
        if wording.fields.len() > shown {
            let rest = wording.fields.len() - shown;
            fields.push(json!({"type": "mrkdwn", "text": format!("*And {rest} more*\nin the inspector and the raw event")}));
        }
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&wording.subject, 150)}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&escape(&wording.summary), 3000)}}),
            json!({"type": "section", "fields": fields}),
        ];
        if let Some(advice) = &wording.advice {
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(&escape(advice), 2000)}]}));
        }
        json!({"text": wording.subject, "blocks": blocks})
    }
}

/// Slack's three markup characters, escaped as its documentation asks.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn claim_batch(&self) -> usize {
        8
    }

    fn deliver<'a>(
        &'a self,
        notification: &'a Notification<'a>,
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        let body = Self::message(notification).to_string();
        let agent = self.agent.clone();
        let url = self.url.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let status = agent
                    .post(url.as_str())
                    .header("Content-Type", "application/json")
                    .send(body.as_bytes())
                    .map(|response| response.status().as_u16())
                    // The error text may carry the URL: only its kind is kept.
                    .map_err(|error| {
                        NotifyError::retry(format!("cannot reach Slack: {}", error_kind(&error)))
                    })?;
                match status {
                    200..=299 => Ok(()),
                    408 | 429 | 500..=599 => {
                        Err(NotifyError::retry(format!("Slack answered {status}")))
                    }
                    _ => Err(NotifyError::permanent(format!(
                        "Slack answered {status}; check the webhook URL"
                    ))),
                }
            })
            .await
            .map_err(|_| NotifyError::retry("the Slack task stopped"))?
        })
    }
}

/// What went wrong, in words that cannot hold the URL.
fn error_kind(error: &ureq::Error) -> &'static str {
    match error {
        ureq::Error::Timeout(_) => "timed out",
        ureq::Error::HostNotFound => "the host does not resolve",
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) => "the connection failed",
        _ => "the request failed",
    }
}
