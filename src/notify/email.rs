//! The email notifier: a mail a person can act on (plain text first, a simple HTML table
//! second, both from [`super::wording`]), sent with lettre's async SMTP
//! transport over rustls, under an overall deadline (lettre's own timeout covers only parts
//! of the exchange; a server that accepts and never greets would hang a send).

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::stub::AsyncStubTransport;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::wording::{printable, Wording};
use super::{BoxFuture, Notification, Notifier, NotifyError};
use crate::store::EventRecord;

/// How a built message leaves: SMTP in the service, lettre's stub in tests.
pub trait MailTransport: Send + Sync + 'static {
    /// Sends one message; SMTP's permanent refusals are not retryable.
    fn send_mail(&self, message: Message) -> BoxFuture<'_, Result<(), NotifyError>>;
}

impl MailTransport for AsyncSmtpTransport<Tokio1Executor> {
    fn send_mail(&self, message: Message) -> BoxFuture<'_, Result<(), NotifyError>> {
        Box::pin(async move {
            match self.send(message).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_permanent() => {
                    Err(NotifyError::permanent(describe_smtp_error(&error)))
                }
                Err(error) => match certificate_problem(&error) {
                    Some(problem) => Err(NotifyError::permanent(format!(
                        "configuration error: the SMTP server's certificate is not accepted ({problem}); check host (the name it must carry), roots and ca_file"
                    ))),
                    None => Err(NotifyError::retry(describe_smtp_error(&error))),
                },
            }
        })
    }
}

/// An SMTP failure with what it most likely means in front: the relay cannot be reached,
/// TLS failed, the credentials or an address were refused.
fn describe_smtp_error(error: &lettre::transport::smtp::Error) -> String {
    let code = error.status().map(|code| code.to_string());
    let meaning = match code.as_deref() {
        // RFC 4954: authentication required, too weak, invalid credentials, encryption needed.
        Some("530" | "534" | "535" | "538") => {
            "SMTP refused the credentials (check username_env and password_env)"
        }
        // RFC 5321: mailbox unavailable, not local, name not allowed.
        Some("550" | "551" | "553") => "SMTP refused an address (check from and to)",
        Some(_) if error.is_permanent() => "SMTP refused",
        _ if error.is_tls() => "SMTP TLS failed (check tls, port, roots and ca_file)",
        _ if error.is_timeout() => "SMTP timed out",
        // lettre's connection errors have no predicate of their own, only this wording.
        _ if error.to_string().starts_with("Connection error") => {
            "cannot connect to the SMTP server (check host and port; is the relay running?)"
        }
        _ => "SMTP failed",
    };
    format!("{meaning}: {error}")
}

impl MailTransport for AsyncStubTransport {
    fn send_mail(&self, message: Message) -> BoxFuture<'_, Result<(), NotifyError>> {
        Box::pin(async move {
            self.send(message)
                .await
                .map_err(|error| NotifyError::retry(format!("stub transport: {error}")))
        })
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (a relay on loopback only).
    None,
    /// STARTTLS required (port 587).
    #[default]
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// Which certificate authorities the SMTP client trusts, besides `ca_file`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Roots {
    /// Mozilla's roots, compiled in (the same on every machine).
    #[default]
    Public,
    /// The operating system's store (`/etc/ssl/certs` on Debian), read at start-up and reload.
    System,
    /// None: only `ca_file` (a company relay with a private CA).
    None,
}

/// `[notifiers.NAME]` with `kind = "email"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// SMTP host.
    pub host: String,
    /// SMTP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    #[serde(default)]
    pub tls: TlsMode,
    /// `public`, `system` or `none`: the roots trusted besides `ca_file`.
    #[serde(default)]
    pub roots: Roots,
    /// A PEM file of CA certificates to trust as well (a relay with a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Environment variable holding the SMTP username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_env: Option<String>,
    /// Environment variable holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject prefix.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Overall deadline for one send, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_port() -> u16 {
    587
}
fn default_prefix() -> String {
    "[perf]".into()
}
fn default_timeout_ms() -> u64 {
    30_000
}

impl EmailSettings {
    /// Checks addresses, the deadline and the credential variables.
    ///
    /// # Errors
    /// The problem, in words.
    pub fn validate(&self) -> Result<(), String> {
        self.from
            .parse::<Mailbox>()
            .map_err(|e| format!("from {:?} is not an address: {e}", self.from))?;
        if self.to.is_empty() {
            return Err("to needs at least one address".into());
        }
        for to in &self.to {
            to.parse::<Mailbox>()
                .map_err(|e| format!("to {to:?} is not an address: {e}"))?;
        }
        if self.timeout_ms == 0 {
            return Err("timeout_ms must be at least 1".into());
        }
        if self.tls == TlsMode::None && (self.ca_file.is_some() || self.roots != Roots::Public) {
            return Err(
                "ca_file and roots apply to tls = \"starttls\" or \"tls\", not \"none\"".into(),
            );
        }
        if let Some(path) = &self.ca_file {
            read_ca_file(path)?;
        }
        if self.roots == Roots::None && self.ca_file.is_none() && self.tls != TlsMode::None {
            return Err(
                "roots = \"none\" needs a ca_file, or no certificate could be trusted".into(),
            );
        }
        match (&self.username_env, &self.password_env) {
            (None, None) => {}
            (Some(user), Some(pass)) => {
                for var in [user, pass] {
                    if std::env::var_os(var).is_none() {
                        return Err(format!("environment variable {var} is not set"));
                    }
                }
            }
            _ => return Err("username_env and password_env go together".into()),
        }
        Ok(())
    }
}

/// Sends one mail per event.
pub struct EmailNotifier<T = AsyncSmtpTransport<Tokio1Executor>> {
    transport: T,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
    deadline: Duration,
}

impl<T> std::fmt::Debug for EmailNotifier<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds credentials; show only who mails whom.
        f.debug_struct("EmailNotifier")
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    /// Builds the SMTP transport. Nothing connects until the first send.
    ///
    /// # Errors
    /// A bad address or TLS set-up, in words.
    pub fn build(settings: &EmailSettings) -> Result<Self, String> {
        settings.validate()?;
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host);
        let builder = match settings.tls {
            TlsMode::None => builder,
            TlsMode::Starttls => builder.tls(Tls::Required(tls_parameters(settings)?)),
            TlsMode::Tls => builder.tls(Tls::Wrapper(tls_parameters(settings)?)),
        };
        let deadline = Duration::from_millis(settings.timeout_ms);
        let mut builder = builder.port(settings.port).timeout(Some(deadline));
        if let (Some(user), Some(pass)) = (&settings.username_env, &settings.password_env) {
            let user = std::env::var(user)
                .map_err(|_| format!("environment variable {user} is not set"))?;
            let pass = std::env::var(pass)
                .map_err(|_| format!("environment variable {pass} is not set"))?;
            builder = builder.credentials(Credentials::new(user, pass));
        }
        EmailNotifier::with_transport(settings, builder.build())
    }
}

/// The client's TLS: the host name to verify, the chosen roots and `ca_file`.
fn tls_parameters(settings: &EmailSettings) -> Result<TlsParameters, String> {
    let store = match settings.roots {
        Roots::Public => CertificateStore::WebpkiRoots,
        // With lettre's `rustls-native-certs`, its default store is the system's.
        Roots::System => CertificateStore::Default,
        Roots::None => CertificateStore::None,
    };
    let mut builder = TlsParameters::builder(settings.host.clone()).certificate_store(store);
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        let certificate = Certificate::from_pem(&pem)
            .map_err(|_| format!("ca_file {}: not a PEM file of certificates", path.display()))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| format!("TLS set-up for {}: {e}", settings.host))
}

/// The certificates of a `ca_file`: at least one, or the file is refused by name.
fn read_ca_file(path: &std::path::Path) -> Result<Certificate, String> {
    let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "ca_file {}: holds no CERTIFICATE block",
            path.display()
        ));
    }
    Certificate::from_pem(&pem)
        .map_err(|_| format!("ca_file {}: not a PEM file of certificates", path.display()))
}

/// A certificate the relay presented that no retry can make acceptable (an issuer this
/// client does not trust, a name that is not the configured host): a configuration error.
/// Expired or not-yet-valid certificates are retried: a relay's renewal or a clock fixes them.
fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        let rustls_error = error.downcast_ref::<rustls::Error>().or_else(|| {
            error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(problem)) = rustls_error {
            use rustls::CertificateError::{
                NotValidForName, NotValidForNameContext, UnknownIssuer,
            };
            if matches!(
                problem,
                UnknownIssuer | NotValidForName | NotValidForNameContext { .. }
            ) {
                return Some(format!("{problem:?}"));
            }
            return None;
        }
        cause = error.source();
    }
    None
}

impl<T: MailTransport> EmailNotifier<T> {
    /// A notifier that sends through `transport` (lettre's stub transport in tests).
    ///
    /// # Errors
    /// A bad address, in words.
    pub fn with_transport(settings: &EmailSettings, transport: T) -> Result<Self, String> {
        settings.validate()?;
        Ok(Self {
            transport,
            from: settings.from.parse().map_err(|e| format!("from: {e}"))?,
            to: settings
                .to
                .iter()
                .map(|to| to.parse().map_err(|e| format!("to: {e}")))
                .collect::<Result<_, String>>()?,
            subject_prefix: settings.subject_prefix.clone(),
            deadline: Duration::from_millis(settings.timeout_ms),
        })
    }

    /// `[perf] Acme Robotics / support-bot: 80% of monthly budget reached`.
    #[must_use]
    pub fn subject(&self, notification: &Notification<'_>) -> String {
        let wording = Wording::of(notification.record, &notification.alert);
        printable(&format!("{} {}", self.subject_prefix, wording.subject))
    }

    fn message(&self, notification: &Notification<'_>) -> Result<Message, NotifyError> {
        let record = notification.record;
        let wording = Wording::of(record, &notification.alert);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(printable(&format!(
                "{} {}",
                self.subject_prefix, wording.subject
            )))
            .message_id(Some(message_id(record)));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        // A digest's own JSON holds every raw event it stands for: too much for a mail that
        // already lists them; each one is on the inspector's event page.
        let raw = if record.kind == crate::outbox::DIGEST {
            ""
        } else {
            record.body.as_str()
        };
        builder
            .multipart(MultiPart::alternative_plain_html(
                wording.plain_text(raw),
                wording.html(raw),
            ))
            .map_err(|e| NotifyError::permanent(format!("cannot build the message: {e}")))
    }
}

impl<T: MailTransport> Notifier for EmailNotifier<T> {
    fn kind(&self) -> &'static str {
        "email"
    }

    /// A few at a time: each send may wait on the network.
    fn claim_batch(&self) -> usize {
        4
    }

    fn deliver<'a>(
        &'a self,
        notification: &'a Notification<'a>,
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let message = self.message(notification)?;
            tokio::time::timeout(self.deadline, self.transport.send_mail(message))
                .await
                .unwrap_or_else(|_| {
                    Err(NotifyError::retry(format!(
                        "SMTP send did not finish within {} ms",
                        self.deadline.as_millis()
                    )))
                })
        })
    }
}

/// A Message-ID derived from the endpoint and event id, so a re-send after a crash carries
/// the same id and mail clients can recognise it.
#[must_use]
pub fn message_id(record: &EventRecord) -> String {
    let digest = Sha256::new()
        .chain_update(record.endpoint.as_bytes())
        .chain_update([0])
        .chain_update(record.id.as_bytes())
        .finalize();
    format!(
        "<{}.{}@perfhook>",
        record.endpoint,
        hex::encode(digest.get(..16).unwrap_or_default())
    )
}

/// The plain-text part: what happened, the figures, what to do, then the raw event.
#[must_use]
pub fn body(notification: &Notification<'_>) -> String {
    Wording::of(notification.record, &notification.alert).plain_text(&notification.record.body)
}

/// The HTML part: the same, as a table, with the raw event escaped in a `<pre>`.
#[must_use]
pub fn html_body(notification: &Notification<'_>) -> String {
    Wording::of(notification.record, &notification.alert).html(&notification.record.body)
}
