//! The webhook notifier: forwards the event's body to a URL, signed with the Standard
//! Webhooks scheme and a secret of its own, so a downstream system verifies it with any
//! Standard Webhooks library. The event id is the message id, so a retry is recognisable.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BoxFuture, Notification, Notifier, NotifyError};
use crate::clock::unix_now;
use crate::signature::{sign, Delivery, Scheme, SecretKey};

/// `kind = "webhook"` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where to POST (http:// or https://).
    pub url: String,
    /// Environment variable holding the signing secret (`whsec_` and base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// File holding the signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Overall deadline for one POST.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl WebhookSettings {
    /// Checks the URL and that exactly one secret source is named.
    ///
    /// # Errors
    /// What is wrong, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err("url must start with http:// or https://".into());
        }
        if self.secret_env.is_some() == self.secret_file.is_some() {
            return Err("give exactly one of secret_env and secret_file".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > super::MAX_SEND_TIMEOUT_MS {
            return Err(format!(
                "timeout_ms must be 1 to {}",
                super::MAX_SEND_TIMEOUT_MS
            ));
        }
        self.url
            .parse::<ureq::http::Uri>()
            .map_err(|_| "url is not a valid URL".to_owned())?;
        Ok(())
    }
}

/// Forwards events, signed.
#[derive(Debug)]
pub struct WebhookNotifier {
    url: String,
    key: SecretKey,
    agent: ureq::Agent,
}

impl WebhookNotifier {
    /// Reads the secret and prepares the client.
    ///
    /// # Errors
    /// A bad setting, or a secret that is missing or not `whsec_` base64 of 24 to 64 bytes.
    pub fn build(settings: &WebhookSettings) -> Result<Self, String> {
        settings.validate()?;
        let secret = match (&settings.secret_env, &settings.secret_file) {
            (Some(var), _) => crate::secret_source::from_env(var)?,
            (None, Some(path)) => crate::secret_source::from_file(path)?,
            (None, None) => return Err("give exactly one of secret_env and secret_file".into()),
        };
        let key = SecretKey::new("forward", &secret, Scheme::Standard.default_key_reading())
            .map_err(|error| format!("the signing secret: {error}"))?;
        key.check_length()
            .map_err(|error| format!("the signing secret: {error}"))?;
        // No redirects: a POST redirected with 301-303 turns into a GET, whose 200 would
        // count as delivered, and the signature would go to another place.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_millis(settings.timeout_ms)))
            .build()
            .into();
        Ok(Self {
            url: settings.url.clone(),
            key,
            agent,
        })
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn claim_batch(&self) -> usize {
        8
    }

    fn deliver<'a>(
        &'a self,
        notification: &'a Notification<'a>,
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        let record = notification.record;
        let body = record.body.clone().into_bytes();
        let id = record.id.clone();
        let headers = sign(
            Scheme::Standard,
            std::slice::from_ref(&self.key),
            Delivery {
                timestamp: unix_now(),
                id: Some(&id),
                body: &body,
            },
        );
        let agent = self.agent.clone();
        let url = self.url.clone();
        Box::pin(async move {
            let headers =
                headers.map_err(|error| NotifyError::permanent(format!("cannot sign: {error}")))?;
            // ureq blocks: off the async workers.
            tokio::task::spawn_blocking(move || post(&agent, &url, &headers, &body))
                .await
                .map_err(|_| NotifyError::retry("the forwarding task stopped"))?
        })
    }
}

/// A URL for messages: scheme, host and path only.
fn shown(url: &str) -> String {
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) => {
            format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or("http"),
                uri.host().unwrap_or_default(),
                uri.port()
                    .map_or_else(String::new, |port| format!(":{port}"))
            ) + uri.path()
        }
        Err(_) => "the configured URL".to_owned(),
    }
}

/// One POST, and what its answer means for the job.
fn post(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), NotifyError> {
    let mut request = agent.post(url).header("Content-Type", "application/json");
    // Errors name the URL without credentials or a query, which may hold a token.
    let url = &shown(url);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let status = match request.send(body) {
        Ok(response) => response.status().as_u16(),
        Err(error) => return Err(NotifyError::retry(format!("cannot POST to {url}: {error}"))),
    };
    match status {
        200..=299 => Ok(()),
        // The receiver may take it later: rate limits, timeouts and its own failures.
        408 | 425 | 429 | 500..=599 => Err(NotifyError::retry(format!("{url} answered {status}"))),
        300..=399 => Err(NotifyError::permanent(format!(
            "{url} answered {status} (a redirect, not followed); configure the final URL"
        ))),
        // It will never take this one: a bad URL or a signature it refuses.
        _ => Err(NotifyError::permanent(format!("{url} answered {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn a_url_in_a_message_carries_no_credentials_or_query() {
        assert_eq!(
            shown("https://user:pw@ops.example.com:8443/hooks/perf?token=abc"),
            "https://ops.example.com:8443/hooks/perf"
        );
        assert_eq!(shown("http://127.0.0.1/x"), "http://127.0.0.1/x");
    }
}
