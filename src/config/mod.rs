//! Configuration, read once: embedded defaults, then a TOML file, then `PERFHOOK_…__…`
//! environment variables, then command-line flags; converted into typed parts or refused
//! whole, naming the key. Settings name where each secret lives, never its value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::client_ip::{ForwardingHeader, Networks};
use crate::event::Mode;
use crate::notify::{default_log_mode, default_log_target, NotifierSettings};
use crate::outbox::OutboxSettings;
use crate::schedule::{DigestSchedule, QuietHours};
use crate::secret_source;
use crate::signature::{
    KeyError, Scheme, SecretKey, TimestampPolicy, Tolerance, Verifier, DEFAULT_TOLERANCE_SECS,
};
use crate::store::sled::{Durability, SledOptions, DEFAULT_CACHE_MB};
use crate::tls::{self, TlsSettings};

mod problem;

/// The secret's environment variable when no config file says otherwise.
pub const DEFAULT_SECRET_ENV: &str = "PERFHOOK_SECRET";

/// Everything a config file (and the environment) can say. Defaults are embedded, so a
/// missing file means "run on these".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The HTTP server.
    pub server: ServerSettings,
    /// Where and how long events are kept.
    pub storage: StorageSettings,
    /// Notification retries.
    pub outbox: OutboxSettings,
    /// The webhook endpoints.
    pub endpoints: Vec<EndpointSettings>,
    /// Notifiers by name.
    pub notifiers: BTreeMap<String, NotifierSettings>,
    /// The operator API.
    pub admin: AdminSettings,
    /// `[digests.NOTIFIER]`: notifiers in digest mode, collecting alerts into one message
    /// per interval.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub digests: BTreeMap<String, DigestSettings>,
}

/// One `[digests.NOTIFIER]` entry: when the notifier sends what has collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestSettings {
    /// `hourly` (at the top of each hour, UTC) or `daily` (at `at`).
    pub every: String,
    /// For `daily`: the time of day, `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// For `daily`: the IANA time zone of `at` (`Europe/Berlin`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// `[admin]`: the operator API's own listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Serve the operator API.
    pub enabled: bool,
    /// Where; loopback by default, since the API reads every stored event.
    pub listen: SocketAddr,
    /// Days an audit entry is kept.
    pub audit_retention_days: u64,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            audit_retention_days: 400,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest accepted body in bytes (413 above).
    pub body_limit_bytes: usize,
    /// Total time allowed to read a body, in milliseconds (408 after).
    pub body_read_timeout_ms: u64,
    /// Body bytes all requests together may hold in memory, in MiB; beyond it a delivery is
    /// answered `503 overloaded` with `Retry-After` before any of its body is read.
    pub max_inflight_body_mb: u32,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Open connections per worker.
    pub max_connections: usize,
    /// Source networks every endpoint accepts unless it has its own `allow`; empty: any.
    pub allow: Vec<String>,
    /// Proxies whose forwarding header names the client.
    pub trusted_proxies: Vec<String>,
    /// The header those proxies set: `x-forwarded-for` or `forwarded`. Required with
    /// `trusted_proxies`: most proxies append to one and pass the other through as the
    /// client wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip_header: Option<ForwardingHeader>,
    /// `[server.tls]`: serve HTTPS with this certificate (replaced on SIGHUP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// The sled directory.
    pub path: PathBuf,
    /// Days an event (and so its dedupe key) is kept.
    pub retention_days: u64,
    /// sled's page cache, in MiB: the largest part of the receiver's memory that a setting
    /// controls. sled's own default (1 GiB) grew the receiver past 400 MiB under load; the
    /// default 16 MiB holds it near 75 MiB at c=64 on an empty store, about 165 MiB with a
    /// million events stored (docs/benchmarks.md).
    pub cache_mb: u64,
    /// What a 2xx survives: `power-loss` (each group flush ends in `fdatasync`) or
    /// `process-crash` (sled's flush alone).
    pub durability: Durability,
    /// `sled` (embedded, one machine; the default) or `postgres` (replicas sharing one
    /// database).
    pub backend: StorageBackend,
    /// `[storage.postgres]`, read when `backend = "postgres"`.
    pub postgres: PostgresSettings,
}

/// Where events, jobs and everything else are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// The embedded sled store in `storage.path`.
    #[default]
    Sled,
    /// A PostgreSQL database several replicas share.
    Postgres,
}

/// `[storage.postgres]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// The environment variable holding the connection URL
    /// (`postgres://user:password@host:port/database`); it holds a password, so it never
    /// sits in the file.
    pub url_env: String,
    /// A file holding the URL instead (one trailing newline removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Longest a statement may run, in milliseconds.
    pub statement_timeout_ms: u64,
    /// PEM CA certificates to trust for the database's TLS, besides Mozilla's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// The URL's environment variable when the config names none.
pub const DEFAULT_DATABASE_URL_ENV: &str = "PERFHOOK_DATABASE_URL";

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            url_env: DEFAULT_DATABASE_URL_ENV.to_owned(),
            url_file: None,
            pool_size: 16,
            statement_timeout_ms: 5_000,
            ca_file: None,
        }
    }
}

impl PostgresSettings {
    /// Reads the URL and checks the rest; the message never holds the URL.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable or file, or the key.
    pub fn resolve(&self) -> Result<crate::store::postgres::PostgresOptions, ConfigError> {
        let (bytes, place) = match &self.url_file {
            Some(path) => (
                secret_source::from_file(path),
                format!("file {}", path.display()),
            ),
            None => (
                secret_source::from_env(&self.url_env),
                format!("environment variable {}", self.url_env),
            ),
        };
        let bytes = bytes.map_err(|problem| invalid("storage.postgres", problem))?;
        let url = String::from_utf8(bytes.to_vec()).map_err(|_| {
            invalid(
                "storage.postgres",
                format!("the URL in {place} is not UTF-8"),
            )
        })?;
        let url = Zeroizing::new(url);
        if url.parse::<tokio_postgres::Config>().is_err() {
            return Err(invalid(
                "storage.postgres",
                format!(
                    "the URL in {place} does not parse; it must look like postgres://user:password@host:5432/database"
                ),
            ));
        }
        if self.pool_size == 0 || self.pool_size > 1_000 {
            return Err(invalid("storage.postgres.pool_size", "must be 1 to 1000"));
        }
        if self.statement_timeout_ms < 100 {
            return Err(invalid(
                "storage.postgres.statement_timeout_ms",
                "must be at least 100",
            ));
        }
        Ok(crate::store::postgres::PostgresOptions {
            url,
            pool_size: self.pool_size,
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            ca_file: self.ca_file.clone(),
        })
    }
}

/// One `[[endpoints]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSettings {
    /// Name, used in logs, metrics and the dedupe key.
    pub name: String,
    /// URL path, e.g. `/webhooks/perf`.
    pub path: String,
    /// Signature scheme.
    #[serde(default = "default_scheme")]
    pub scheme: Scheme,
    /// Signature header, when not the scheme's default.
    #[serde(default)]
    pub signature_header: Option<String>,
    /// Secrets, several during rotation.
    pub secrets: Vec<SecretSource>,
    /// Timestamp tolerance in seconds.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
    /// `live` or `test`: events whose `livemode` contradicts it are refused.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Notifier names that get this endpoint's events.
    #[serde(default = "default_endpoint_notifiers")]
    pub notifiers: Vec<String>,
    /// Source networks this endpoint accepts (overrides `server.allow`); empty: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Only these event types are notified (all are stored); empty means all.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Keep deliveries refused for their signature, timestamp or mode (the newest 1,000 or
    /// 10 MiB, for 7 days) for the operator API.
    #[serde(default = "default_keep_refused")]
    pub keep_refused: bool,
    /// How long the sender may stay silent before the inspector warns (`24h`, `90m`); off
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_delivery_within: Option<String>,
    /// Where the alert's figures are in the body (`[endpoints.fields]`).
    #[serde(default)]
    pub fields: crate::fields::FieldMap,
    /// `[[endpoints.routes]]`: the first that matches an alert chooses its notifiers;
    /// `notifiers` is the default when none does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSettings>,
}

/// One `[[endpoints.routes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// Event types it takes (empty: every type).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Alerts whose threshold (or, without one, usage) is at least this percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_percent: Option<u64>,
    /// Alerts whose threshold (or usage) is below this percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below_percent: Option<u64>,
    /// The notifiers of the alerts it takes (empty: stored, not notified).
    pub notifiers: Vec<String>,
    /// At most one notification per project through this route in this span (`6h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
    /// A daily span (`22:00-07:00`) during which this route's alerts wait, and go out
    /// together as one digest when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
    /// The IANA time zone of `quiet_hours` (`Europe/Berlin`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// Where one secret lives: exactly one of `env` and `file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// The name reported when it matches.
    pub name: String,
    /// An environment variable holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file holding it (one trailing newline removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

fn default_scheme() -> Scheme {
    Scheme::Perf
}
fn default_tolerance() -> u64 {
    DEFAULT_TOLERANCE_SECS
}
fn default_mode() -> Mode {
    Mode::Live
}
fn default_keep_refused() -> bool {
    true
}
fn default_endpoint_notifiers() -> Vec<String> {
    vec!["log".into()]
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 256 * 1024,
            body_read_timeout_ms: 10_000,
            max_inflight_body_mb: 64,
            workers: 0,
            max_connections: 25_000,
            allow: Vec::new(),
            trusted_proxies: Vec::new(),
            client_ip_header: None,
            tls: None,
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./perfhook-data"),
            retention_days: 30,
            cache_mb: DEFAULT_CACHE_MB,
            durability: Durability::default(),
            backend: StorageBackend::default(),
            postgres: PostgresSettings::default(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::default(),
            storage: StorageSettings::default(),
            outbox: OutboxSettings::default(),
            endpoints: vec![EndpointSettings {
                name: "perf".into(),
                path: "/webhooks/perf".into(),
                scheme: default_scheme(),
                signature_header: None,
                secrets: vec![SecretSource {
                    name: "primary".into(),
                    env: Some(DEFAULT_SECRET_ENV.into()),
                    file: None,
                }],
                tolerance_secs: DEFAULT_TOLERANCE_SECS,
                mode: default_mode(),
                notifiers: default_endpoint_notifiers(),
                event_types: Vec::new(),
                allow: None,
                keep_refused: true,
                expect_delivery_within: None,
                fields: crate::fields::FieldMap::default(),
                routes: Vec::new(),
            }],
            notifiers: BTreeMap::from([(
                "log".to_owned(),
                NotifierSettings::Log {
                    target: default_log_target(),
                    mode: default_log_mode(),
                },
            )]),
            admin: AdminSettings::default(),
            digests: BTreeMap::new(),
        }
    }
}

/// Command-line overrides, applied last.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--admin-listen`.
    pub admin_listen: Option<SocketAddr>,
}

/// A configuration that cannot run: one line naming the file, the key as written there
/// (or the variable) and, where there is one, the fix.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The `--config` file cannot be read.
    #[error("--config {path}: {problem}")]
    Unreadable {
        /// The file as given.
        path: String,
        /// Why, with the fix.
        problem: String,
    },
    /// The `--config` file is not TOML.
    #[error("{path}:{line}:{column}: not valid TOML: {problem}")]
    Syntax {
        /// The file as given.
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// TOML's own words, on one line.
        problem: String,
    },
    /// A key in the file or environment does not fit the settings' shape.
    #[error("{origin}: {key}: {problem}")]
    Shape {
        /// The file, or "environment".
        origin: String,
        /// The key as written (`server.body_limit_bytes`, `PERFHOOK_SERVER__LISTEN`).
        key: String,
        /// What is wrong, with the fix.
        problem: String,
    },
    /// A key has a value that cannot be used.
    #[error("{key}: {problem}")]
    Invalid {
        /// The key, e.g. `endpoints[0].secrets[0]`.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The `--config` file's text, checked as TOML; unreadable and malformed files are refused
/// here, naming the file and the line, before figment would report them twice.
fn read_config_file(file: &Path) -> Result<String, ConfigError> {
    let unreadable = |problem: String| ConfigError::Unreadable {
        path: file.display().to_string(),
        problem,
    };
    let text = std::fs::read(file).map_err(|error| {
        unreadable(match error.kind() {
            std::io::ErrorKind::NotFound => "no such file (`perfhook init` writes one)".to_owned(),
            std::io::ErrorKind::PermissionDenied => {
                "permission denied; run as a user who can read it".to_owned()
            }
            std::io::ErrorKind::IsADirectory => "is a directory, not a file".to_owned(),
            _ => format!("cannot be read: {}", problem::one_line(&error.to_string())),
        })
    })?;
    let text = String::from_utf8(text)
        .map_err(|_| unreadable("is not UTF-8 text; a config file is TOML".to_owned()))?;
    check_syntax(file, &text)?;
    Ok(text)
}

fn check_syntax(file: &Path, text: &str) -> Result<(), ConfigError> {
    let Err(error) = toml::from_str::<toml::Table>(text) else {
        return Ok(());
    };
    let (line, column) = error
        .span()
        .map_or((1, 1), |span| problem::line_and_column(text, span.start));
    Err(ConfigError::Syntax {
        path: file.display().to_string(),
        line,
        column,
        problem: problem::one_line(error.message()),
    })
}

/// The first problem figment found, as one line naming where it was written.
fn shape_error(error: &figment::Error, file: Option<&Path>) -> ConfigError {
    let from_environment = error
        .metadata
        .as_ref()
        .is_some_and(|metadata| metadata.name.contains("environment"));
    let origin = match file {
        _ if from_environment => problem::Origin::Environment,
        Some(file) => problem::Origin::File(file),
        None => problem::Origin::Defaults,
    };
    ConfigError::Shape {
        origin: match origin {
            problem::Origin::File(file) => file.display().to_string(),
            problem::Origin::Environment => "environment".to_owned(),
            problem::Origin::Defaults => "built-in defaults".to_owned(),
        },
        key: match problem::key_name(origin, &error.path) {
            key if key.is_empty() => "top level".to_owned(),
            key => key,
        },
        problem: problem::describe(&error.kind),
    }
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Settings {
    /// Reads defaults, then `file` (if given), then `PERFHOOK_SECTION__KEY` variables, then
    /// `overrides`. Only variables with a `__` are read, so `PERFHOOK_SECRET` and other
    /// secret-holding variables are never mistaken for settings.
    ///
    /// # Errors
    /// [`ConfigError::Shape`] naming the key that does not fit.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::string(&read_config_file(file)?));
        }
        figment = figment.merge(
            Env::prefixed("PERFHOOK_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        if let Some(listen) = &overrides.listen {
            figment = figment.merge(Serialized::default("server.listen", listen));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("storage.path", dir));
        }
        if let Some(listen) = &overrides.admin_listen {
            figment = figment.merge(Serialized::default("admin.listen", listen));
        }
        figment.extract().map_err(|error| shape_error(&error, file))
    }

    /// One warning per file holding secrets or settings (`file`, the config) that group or
    /// others can read; shown at start-up and by `config check`.
    #[must_use]
    pub fn permission_warnings(&self, file: Option<&Path>) -> Vec<String> {
        let mut warnings: Vec<String> = file
            .and_then(|file| crate::file_modes::readable_by_others(file, "config file"))
            .into_iter()
            .collect();
        let secret_files = self
            .endpoints
            .iter()
            .flat_map(|endpoint| &endpoint.secrets)
            .filter_map(|secret| secret.file.as_deref());
        for path in secret_files {
            warnings.extend(crate::file_modes::readable_by_others(path, "secret file"));
        }
        if let Some(tls) = &self.server.tls {
            warnings.extend(crate::file_modes::readable_by_others(
                &tls.key,
                "TLS key file",
            ));
        }
        warnings
    }

    /// Parses TOML text alone (no environment), for tests and fuzzing.
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] or [`ConfigError::Shape`] naming the key that does not fit.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file = Path::new("perfhook.toml");
        check_syntax(file, text)?;
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|error| shape_error(&error, Some(file)))
    }

    /// The operator API's address, when served; a non-loopback one needs HTTPS, since every
    /// request carries an API key.
    fn admin_address(&self, tls: bool) -> Result<Option<SocketAddr>, ConfigError> {
        if self.admin.audit_retention_days == 0 {
            return Err(invalid(
                "admin.audit_retention_days",
                "must be at least 1 (the audit log would be emptied every minute)",
            ));
        }
        if !self.admin.enabled {
            return Ok(None);
        }
        if !self.admin.listen.ip().is_loopback() && !tls {
            return Err(invalid(
                "admin.listen",
                "a non-loopback address needs [server.tls]: API keys would cross the network in clear (keep it on 127.0.0.1, or set [server.tls])",
            ));
        }
        Ok(Some(self.admin.listen))
    }

    /// Checks every value and reads every secret: the typed configuration, or the first
    /// problem by key. The server never starts half-configured.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn resolve(&self) -> Result<AppConfig, ConfigError> {
        if self.server.body_limit_bytes == 0 {
            return Err(invalid("server.body_limit_bytes", "must be at least 1"));
        }
        let budget_bytes = u64::from(self.server.max_inflight_body_mb) << 20;
        if self.server.max_inflight_body_mb == 0 || budget_bytes > u64::from(u32::MAX) {
            return Err(invalid(
                "server.max_inflight_body_mb",
                "must be from 1 to 4095",
            ));
        }
        if (self.server.body_limit_bytes as u64) > budget_bytes {
            return Err(invalid(
                "server.max_inflight_body_mb",
                "must hold at least one body of server.body_limit_bytes",
            ));
        }
        if self.server.body_read_timeout_ms == 0 {
            return Err(invalid("server.body_read_timeout_ms", "must be at least 1"));
        }
        if self.storage.cache_mb == 0 || self.storage.cache_mb > 1 << 20 {
            return Err(invalid("storage.cache_mb", "must be 1 to 1048576"));
        }
        if self.storage.retention_days == 0 {
            return Err(invalid("storage.retention_days", "must be at least 1"));
        }
        if self.outbox.max_attempts == 0 || self.outbox.initial_backoff_ms == 0 {
            return Err(invalid(
                "outbox",
                "max_attempts and initial_backoff_ms must be at least 1",
            ));
        }
        if self.outbox.lease_secs == 0 {
            return Err(invalid("outbox.lease_secs", "must be at least 1"));
        }
        if self.endpoints.is_empty() {
            return Err(invalid("endpoints", "at least one endpoint is required"));
        }
        let mut notifiers = BTreeMap::new();
        for (name, settings) in &self.notifiers {
            let key = format!("notifiers.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    &key,
                    "a notifier name must be letters, digits, - or _",
                ));
            }
            match settings {
                NotifierSettings::Email(email) => {
                    email.validate().map_err(|problem| invalid(&key, problem))?;
                }
                NotifierSettings::Log { mode, .. } => {
                    crate::file_modes::parse_mode(mode)
                        .map_err(|problem| invalid(format!("{key}.mode"), problem))?;
                }
                NotifierSettings::Webhook(webhook) => {
                    // Reads the secret too, so a missing one stops start-up, not the first send.
                    crate::notify::forward::WebhookNotifier::build(webhook)
                        .map_err(|problem| invalid(&key, problem))?;
                }
                NotifierSettings::Command(command) => {
                    command
                        .validate()
                        .map_err(|problem| invalid(&key, problem))?;
                }
                NotifierSettings::Slack(slack) => {
                    crate::notify::slack::SlackNotifier::build(slack)
                        .map_err(|problem| invalid(&key, problem))?;
                }
            }
            notifiers.insert(name.clone(), settings.clone());
        }
        let mut digests = BTreeMap::new();
        for (name, digest) in &self.digests {
            let key = format!("digests.{name}");
            if !notifiers.contains_key(name) {
                return Err(invalid(key, format!("no notifier named {name:?}")));
            }
            let schedule =
                DigestSchedule::parse(&digest.every, digest.at.as_deref(), digest.zone.as_deref())
                    .map_err(|problem| invalid(&key, problem))?;
            digests.insert(name.clone(), schedule);
        }
        let digests = std::sync::Arc::new(digests);
        let mut endpoints = Vec::new();
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let key = format!("endpoints[{index}]");
            endpoints.push(resolve_endpoint(
                endpoint,
                &key,
                &notifiers,
                &self.server.allow,
                &digests,
            )?);
        }
        for (i, a) in endpoints.iter().enumerate() {
            if endpoints
                .iter()
                .skip(i + 1)
                .any(|b| b.name == a.name || b.path == a.path)
            {
                return Err(invalid(
                    "endpoints",
                    format!("endpoint {:?} repeats a name or path", a.name),
                ));
            }
        }
        let tls = match &self.server.tls {
            None => None,
            Some(settings) => Some(ServerTls {
                key: tls::load(settings).map_err(|e| invalid("server.tls", e.to_string()))?,
                hsts: settings.hsts_value(),
            }),
        };
        let admin = self.admin_address(tls.is_some())?;
        Ok(AppConfig {
            listen: self.server.listen,
            tls,
            body_limit_bytes: self.server.body_limit_bytes,
            body_read_timeout: Duration::from_millis(self.server.body_read_timeout_ms),
            max_inflight_body_bytes: u32::try_from(budget_bytes).unwrap_or(u32::MAX),
            trusted_proxies: Networks::parse(&self.server.trusted_proxies)
                .map_err(|problem| invalid("server.trusted_proxies", problem))?,
            client_ip_header: match (self.server.trusted_proxies.is_empty(), self.server.client_ip_header) {
                (true, header) => header.unwrap_or(ForwardingHeader::XForwardedFor),
                (false, Some(header)) => header,
                (false, None) => {
                    return Err(invalid(
                        "server.client_ip_header",
                        "is required with trusted_proxies: \"x-forwarded-for\" or \"forwarded\", whichever your proxy sets (the other one reaches perfhook as the client wrote it)",
                    ))
                }
            },
            workers: self.server.workers,
            max_connections: self.server.max_connections,
            data_dir: self.storage.path.clone(),
            store: SledOptions {
                cache_bytes: self.storage.cache_mb.saturating_mul(1 << 20),
                durability: self.storage.durability,
            },
            postgres: match self.storage.backend {
                StorageBackend::Sled => None,
                StorageBackend::Postgres => Some(self.storage.postgres.resolve()?),
            },
            retention: Duration::from_secs(self.storage.retention_days.saturating_mul(86_400)),
            outbox: self.outbox.clone(),
            endpoints,
            notifiers,
            admin,
            audit_retention: Duration::from_secs(
                self.admin.audit_retention_days.saturating_mul(86_400),
            ),
        })
    }

    /// The settings as TOML, for `config check`. Safe to print: settings hold where secrets
    /// live, never their values.
    ///
    /// # Errors
    /// When TOML cannot represent a value (it always can for these types).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

fn resolve_endpoint(
    endpoint: &EndpointSettings,
    key: &str,
    notifiers: &BTreeMap<String, NotifierSettings>,
    server_allow: &[String],
    digests: &std::sync::Arc<BTreeMap<String, DigestSchedule>>,
) -> Result<Endpoint, ConfigError> {
    let name_ok = !endpoint.name.is_empty()
        && endpoint
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(invalid(
            format!("{key}.name"),
            "must be letters, digits, - or _",
        ));
    }
    if !endpoint.path.starts_with('/') || endpoint.path.bytes().any(|b| !(0x21..=0x7e).contains(&b))
    {
        return Err(invalid(
            format!("{key}.path"),
            "must start with / and be visible ASCII",
        ));
    }
    let scheme = endpoint.scheme;
    let tolerance = Tolerance::from_secs(endpoint.tolerance_secs)
        .map_err(|e| invalid(format!("{key}.tolerance_secs"), e.to_string()))?;
    let mut keys = Vec::new();
    for (i, source) in endpoint.secrets.iter().enumerate() {
        let secret_key = format!("{key}.secrets[{i}]");
        let bytes = read_secret(source).map_err(|p| invalid(&secret_key, p))?;
        let secret = SecretKey::new(&source.name, &bytes, scheme.default_key_reading())
            .map_err(|e| invalid(&secret_key, describe_key_error(&e, source)))?;
        secret
            .check_length()
            .map_err(|e| invalid(&secret_key, describe_key_error(&e, source)))?;
        keys.push(secret);
    }
    let mut verifier = Verifier::new(scheme, keys, TimestampPolicy::Enforce(tolerance))
        .map_err(|e| invalid(format!("{key}.secrets"), e.to_string()))?;
    if let Some(header) = &endpoint.signature_header {
        verifier = verifier
            .with_signature_header(header)
            .map_err(|e| invalid(format!("{key}.signature_header"), e.to_string()))?;
    }
    for (i, notifier) in endpoint.notifiers.iter().enumerate() {
        if endpoint.notifiers.iter().take(i).any(|n| n == notifier) {
            return Err(invalid(
                format!("{key}.notifiers"),
                format!("{notifier:?} is listed twice"),
            ));
        }
        if !notifiers.contains_key(notifier) {
            return Err(invalid(
                format!("{key}.notifiers"),
                format!("no notifier named {notifier:?}"),
            ));
        }
    }
    let expect_delivery_within = endpoint
        .expect_delivery_within
        .as_deref()
        .map(|text| match humantime::parse_duration(text) {
            Ok(span) if span.as_secs() >= 60 => Ok(span),
            _ => Err(invalid(
                format!("{key}.expect_delivery_within"),
                "must be a duration of at least one minute, such as \"24h\" or \"90m\"".to_owned(),
            )),
        })
        .transpose()?;
    endpoint
        .fields
        .validate()
        .map_err(|problem| invalid(format!("{key}.fields"), problem))?;
    let mut routes = Vec::with_capacity(endpoint.routes.len());
    for (index, route) in endpoint.routes.iter().enumerate() {
        let at = format!("{key}.routes[{index}]");
        if let Some(unknown) = route.notifiers.iter().find(|n| !notifiers.contains_key(*n)) {
            return Err(invalid(
                format!("{at}.notifiers"),
                format!("no notifier named {unknown:?}"),
            ));
        }
        if let (Some(min), Some(below)) = (route.min_percent, route.below_percent) {
            if min >= below {
                return Err(invalid(
                    at,
                    "min_percent must be below below_percent".to_owned(),
                ));
            }
        }
        let cooldown = route
            .cooldown
            .as_deref()
            .map(|text| match humantime::parse_duration(text) {
                Ok(span) if span.as_secs() >= 60 => Ok(span),
                _ => Err(invalid(
                    format!("{at}.cooldown"),
                    "must be a duration of at least one minute, such as \"6h\"".to_owned(),
                )),
            })
            .transpose()?;
        let quiet = match (&route.quiet_hours, &route.zone) {
            (Some(span), zone) => Some(
                QuietHours::parse(span, zone.as_deref())
                    .map_err(|problem| invalid(format!("{at}.quiet_hours"), problem))?,
            ),
            (None, Some(_)) => {
                return Err(invalid(
                    format!("{at}.zone"),
                    "is the zone of quiet_hours, which this route does not set".to_owned(),
                ))
            }
            (None, None) => None,
        };
        routes.push(Route {
            types: route.types.clone(),
            min_percent: route.min_percent,
            below_percent: route.below_percent,
            notifiers: route.notifiers.clone(),
            cooldown,
            quiet,
        });
    }
    Ok(Endpoint {
        routes,
        digests: std::sync::Arc::clone(digests),
        fields: std::sync::Arc::new(endpoint.fields.clone()),
        expect_delivery_within,
        name: endpoint.name.clone(),
        path: endpoint.path.clone(),
        verifier,
        mode: endpoint.mode,
        notifiers: endpoint.notifiers.clone(),
        event_types: endpoint.event_types.clone(),
        keep_refused: endpoint.keep_refused,
        allow: Networks::parse(endpoint.allow.as_deref().unwrap_or(server_allow)).map_err(
            |problem| {
                let key = if endpoint.allow.is_some() {
                    format!("{key}.allow")
                } else {
                    "server.allow".to_owned()
                };
                invalid(key, problem)
            },
        )?,
    })
}

fn read_secret(source: &SecretSource) -> Result<Zeroizing<Vec<u8>>, String> {
    match (&source.env, &source.file) {
        (Some(var), None) => {
            secret_source::from_env(var).map_err(|e| format!("{e} (secret {:?})", source.name))
        }
        (None, Some(path)) => secret_source::from_file(path),
        _ => Err(format!(
            "secret {:?} needs exactly one of env and file",
            source.name
        )),
    }
}

/// Names the variable or file along with the key problem, so the fix is obvious.
fn describe_key_error(error: &KeyError, source: &SecretSource) -> String {
    let place = match (&source.env, &source.file) {
        (Some(var), _) => format!("environment variable {var}"),
        (_, Some(path)) => format!("file {}", path.display()),
        _ => "its source".to_owned(),
    };
    format!("{error} (from {place})")
}

/// The certificate HTTPS serves, read and checked, and the HSTS header that goes with it.
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate chain and its signing key.
    pub key: rustls::sign::CertifiedKey,
    /// The `Strict-Transport-Security` value.
    pub hsts: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Holds a signing key: show only what is public and short.
        f.debug_struct("ServerTls")
            .field("certificates", &self.key.cert.len())
            .field("hsts", &self.hsts)
            .finish_non_exhaustive()
    }
}

/// The typed, checked configuration the server runs on.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// HTTPS, when configured.
    pub tls: Option<ServerTls>,
    /// Largest body.
    pub body_limit_bytes: usize,
    /// Total body read deadline.
    pub body_read_timeout: Duration,
    /// Body bytes all requests together may hold.
    pub max_inflight_body_bytes: u32,
    /// Proxies whose forwarding header names the client.
    pub trusted_proxies: Networks,
    /// The header they set (read only from them).
    pub client_ip_header: ForwardingHeader,
    /// Worker threads (0: one per core).
    pub workers: usize,
    /// Connections per worker.
    pub max_connections: usize,
    /// sled directory.
    pub data_dir: PathBuf,
    /// How the store is opened.
    pub store: SledOptions,
    /// With `backend = "postgres"`: the database to use instead of `data_dir`.
    pub postgres: Option<crate::store::postgres::PostgresOptions>,
    /// How long events and their dedupe keys are kept.
    pub retention: Duration,
    /// Retry policy.
    pub outbox: OutboxSettings,
    /// Endpoints, each with its verifier.
    pub endpoints: Vec<Endpoint>,
    /// Notifier settings by name.
    pub notifiers: BTreeMap<String, NotifierSettings>,
    /// The operator API's address, when it is served.
    pub admin: Option<SocketAddr>,
    /// How long audit entries are kept.
    pub audit_retention: Duration,
}

/// One endpoint, ready to serve.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Name.
    pub name: String,
    /// URL path.
    pub path: String,
    /// The verifier holding its scheme, secrets and tolerance.
    pub verifier: Verifier,
    /// Live or test: events of the other mode are refused.
    pub mode: Mode,
    /// Notifier names.
    pub notifiers: Vec<String>,
    /// Notified event types (empty: all).
    pub event_types: Vec<String>,
    /// Whether refused deliveries are kept.
    pub keep_refused: bool,
    /// Source networks accepted (empty: any).
    pub allow: Networks,
    /// How long the sender may stay silent before the inspector warns.
    pub expect_delivery_within: Option<Duration>,
    /// Where the alert's figures are in the body.
    pub fields: std::sync::Arc<crate::fields::FieldMap>,
    /// Routes by type and percent, in order.
    pub routes: Vec<Route>,
    /// Notifiers in digest mode and their schedules (the same for every endpoint).
    pub digests: std::sync::Arc<BTreeMap<String, DigestSchedule>>,
}

/// A resolved route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Event types it takes (empty: every type).
    pub types: Vec<String>,
    /// Threshold (or usage) percent at least this.
    pub min_percent: Option<u64>,
    /// Threshold (or usage) percent below this.
    pub below_percent: Option<u64>,
    /// Its notifiers.
    pub notifiers: Vec<String>,
    /// At most one notification per project through it in this span.
    pub cooldown: Option<Duration>,
    /// When its alerts wait for the end of quiet hours.
    pub quiet: Option<QuietHours>,
}

impl Route {
    /// Whether it takes an alert of type `kind` at `percent`.
    fn takes(&self, kind: &str, percent: Option<u64>) -> bool {
        let typed = self.types.is_empty() || self.types.iter().any(|t| t == kind);
        let bounded = self.min_percent.is_none() && self.below_percent.is_none();
        typed
            && (bounded
                || percent.is_some_and(|percent| {
                    self.min_percent.is_none_or(|min| percent >= min)
                        && self.below_percent.is_none_or(|below| percent < below)
                }))
    }
}

/// Where an alert goes: its notifiers, and the cooldown of the route that chose them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed<'a> {
    /// The notifiers.
    pub notifiers: &'a [String],
    /// The route's position and cooldown, when it has one.
    pub cooldown: Option<(usize, Duration)>,
    /// The route's quiet hours, when it has them.
    pub quiet: Option<&'a QuietHours>,
}

impl Endpoint {
    /// Where an alert of type `kind` with figures `alert` goes: nowhere when `event_types`
    /// leaves it out; else the first route that takes it (by type, then by its threshold
    /// percent, or its usage without one); else the endpoint's `notifiers`.
    #[must_use]
    pub fn route(&self, kind: &str, alert: &crate::event::Alert) -> Routed<'_> {
        let default = Routed {
            notifiers: self.notifiers_for(kind),
            cooldown: None,
            quiet: None,
        };
        if !self.event_types.is_empty() && !self.event_types.iter().any(|t| t == kind) {
            return default;
        }
        let percent = alert.threshold_percent.or(alert.usage_percent);
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.takes(kind, percent))
            .map_or(default, |(index, route)| Routed {
                notifiers: &route.notifiers,
                cooldown: route.cooldown.map(|span| (index, span)),
                quiet: route.quiet.as_ref(),
            })
    }

    /// Which of `routed`'s notifiers wait rather than send at once for an alert received at
    /// `now` (Unix seconds), and until when (Unix milliseconds): inside the route's quiet
    /// hours, until they end; for a notifier in digest mode, until its next digest (the
    /// first one after the quiet hours, when both apply). Such jobs go out as one digest.
    #[must_use]
    pub fn deferred(&self, routed: &Routed<'_>, now: u64) -> BTreeMap<String, u64> {
        let quiet_end = routed.quiet.and_then(|quiet| quiet.end_if_quiet(now));
        routed
            .notifiers
            .iter()
            .filter_map(|notifier| {
                let due = match (self.digests.get(notifier), quiet_end) {
                    (Some(schedule), end) => {
                        Some(schedule.next_after(end.map_or(now, |end| end.saturating_sub(1))))
                    }
                    (None, end) => end,
                }?;
                Some((notifier.clone(), due.saturating_mul(1000)))
            })
            .collect()
    }

    /// Whether `notifier` is one this endpoint may notify: its default or a route's.
    #[must_use]
    pub fn routes_to(&self, notifier: &str) -> bool {
        self.notifiers.iter().any(|n| n == notifier)
            || self
                .routes
                .iter()
                .any(|route| route.notifiers.iter().any(|n| n == notifier))
    }

    /// The notifiers this event type goes to.
    #[must_use]
    pub fn notifiers_for(&self, kind: &str) -> &[String] {
        if self.event_types.is_empty() || self.event_types.iter().any(|t| t == kind) {
            &self.notifiers
        } else {
            &[]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = Settings::from_toml("[server]\nlisten_on = \"x\"\n").expect_err("unknown");
        assert!(err.to_string().contains("listen_on"), "{err}");
    }

    #[test]
    fn a_bad_listen_address_names_the_key() {
        let err = Settings::from_toml("[server]\nlisten = \"nowhere\"\n").expect_err("invalid");
        assert!(err.to_string().contains("server.listen"), "{err}");
    }

    #[test]
    fn a_missing_secret_variable_is_named() {
        let text = "[[endpoints]]\nname = \"a\"\npath = \"/a\"\nsecrets = [{ name = \"k\", env = \"PERFHOOK_TEST_UNSET_VAR\" }]\n";
        let err = Settings::from_toml(text)
            .expect("shape")
            .resolve()
            .expect_err("unset");
        let message = err.to_string();
        assert!(message.starts_with("endpoints[0].secrets[0]:"), "{message}");
        assert!(message.contains("PERFHOOK_TEST_UNSET_VAR"), "{message}");
    }

    #[test]
    fn a_short_secret_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, "short\n").expect("write");
        let text = format!(
            "[[endpoints]]\nname = \"a\"\npath = \"/a\"\nsecrets = [{{ name = \"k\", file = {:?} }}]\n",
            path.display().to_string()
        );
        let err = Settings::from_toml(&text)
            .expect("shape")
            .resolve()
            .expect_err("short");
        assert!(err.to_string().contains("5 bytes; at least 16"), "{err}");
    }

    /// A review finding: reading whichever forwarding header is present let a client's own
    /// `Forwarded` win behind a proxy that sets only `X-Forwarded-For`. The header is named.
    #[test]
    fn trusted_proxies_need_the_header_they_set_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, "0123456789abcdef").expect("write");
        let text = |header: &str| {
            format!(
                "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n{header}\n[[endpoints]]\nname = \"a\"\npath = \"/a\"\nsecrets = [{{ name = \"k\", file = {:?} }}]\n",
                path.display().to_string()
            )
        };
        let err = Settings::from_toml(&text(""))
            .expect("shape")
            .resolve()
            .expect_err("no header named");
        assert!(
            err.to_string().starts_with("server.client_ip_header:"),
            "{err}"
        );
        let config = Settings::from_toml(&text("client_ip_header = \"forwarded\""))
            .expect("shape")
            .resolve()
            .expect("named");
        assert_eq!(config.client_ip_header, ForwardingHeader::Forwarded);
    }

    #[test]
    fn an_endpoint_naming_an_unknown_notifier_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, "0123456789abcdef").expect("write");
        let text = format!(
            "[[endpoints]]\nname = \"a\"\npath = \"/a\"\nnotifiers = [\"pager\"]\nsecrets = [{{ name = \"k\", file = {:?} }}]\n",
            path.display().to_string()
        );
        let err = Settings::from_toml(&text)
            .expect("shape")
            .resolve()
            .expect_err("unknown");
        assert!(
            err.to_string().contains("no notifier named \"pager\""),
            "{err}"
        );
    }

    #[test]
    fn expect_delivery_within_is_a_duration_of_a_minute_or_more() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, "0123456789abcdef").expect("write");
        let with = |value: &str| {
            Settings::from_toml(&format!(
                "[[endpoints]]\nname = \"a\"\npath = \"/a\"\nexpect_delivery_within = {value:?}\nsecrets = [{{ name = \"k\", file = {:?} }}]\n",
                path.display().to_string()
            ))
            .expect("shape")
            .resolve()
        };
        let config = with("24h").expect("valid");
        assert_eq!(
            config
                .endpoints
                .first()
                .and_then(|e| e.expect_delivery_within),
            Some(Duration::from_secs(86_400))
        );
        for bad in ["30s", "soon", "0m"] {
            let err = with(bad).expect_err(bad);
            assert!(
                err.to_string()
                    .contains("endpoints[0].expect_delivery_within"),
                "{bad}: {err}"
            );
            assert!(
                !err.to_string().contains(&format!("{bad:?}")),
                "the value is not echoed: {err}"
            );
        }
    }

    #[test]
    fn a_route_names_real_notifiers_a_sane_range_and_cooldown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, "0123456789abcdef").expect("write");
        let with = |route: &str| {
            Settings::from_toml(&format!(
                "[[endpoints]]\nname = \"a\"\npath = \"/a\"\nsecrets = [{{ name = \"k\", file = {:?} }}]\n[[endpoints.routes]]\n{route}\n",
                path.display().to_string()
            ))
            .expect("shape")
            .resolve()
        };
        let config =
            with("min_percent = 80\nnotifiers = [\"log\"]\ncooldown = \"6h\"").expect("valid");
        let route = config
            .endpoints
            .first()
            .and_then(|e| e.routes.first())
            .expect("route");
        assert_eq!(route.cooldown, Some(Duration::from_secs(6 * 3600)));
        for (route, says) in [
            (
                "notifiers = [\"pager\"]",
                "endpoints[0].routes[0].notifiers: no notifier named \"pager\"",
            ),
            (
                "min_percent = 80\nbelow_percent = 80\nnotifiers = []",
                "endpoints[0].routes[0]: min_percent must be below below_percent",
            ),
            (
                "notifiers = []\ncooldown = \"5s\"",
                "endpoints[0].routes[0].cooldown: must be a duration",
            ),
            (
                "notifiers = []\nquiet_hours = \"22:00\"",
                "endpoints[0].routes[0].quiet_hours: \"22:00\" is not HH:MM-HH:MM",
            ),
            (
                "notifiers = []\nquiet_hours = \"22:00-07:00\"\nzone = \"Mars/Olympus\"",
                "endpoints[0].routes[0].quiet_hours: \"Mars/Olympus\" is not a time zone",
            ),
            (
                "notifiers = []\nzone = \"Europe/Berlin\"",
                "endpoints[0].routes[0].zone: is the zone of quiet_hours",
            ),
        ] {
            let err = with(route).expect_err(route);
            assert!(err.to_string().contains(says), "{route}: {err}");
        }
    }

    #[test]
    fn digests_name_a_notifier_and_defer_its_jobs_to_the_next_boundary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, "0123456789abcdef").expect("write");
        let with = |extra: &str| {
            Settings::from_toml(&format!(
                "[[endpoints]]\nname = \"a\"\npath = \"/a\"\nsecrets = [{{ name = \"k\", file = {:?} }}]\n\
                 [[endpoints.routes]]\nbelow_percent = 100\nnotifiers = [\"log\"]\nquiet_hours = \"22:00-07:00\"\n{extra}\n",
                path.display().to_string()
            ))
            .expect("shape")
            .resolve()
        };
        let err = with("[digests.pager]\nevery = \"hourly\"").expect_err("unknown notifier");
        assert!(
            err.to_string().contains("digests.pager: no notifier named"),
            "{err}"
        );
        let err = with("[digests.log]\nevery = \"weekly\"").expect_err("unknown interval");
        assert!(err.to_string().contains("digests.log: every"), "{err}");

        // 2026-11-23 23:30 UTC, inside the quiet hours.
        let late = 1_795_476_600;
        let alert = crate::event::Alert {
            threshold_percent: Some(50),
            ..crate::event::Alert::default()
        };
        let quiet_only = with("").expect("valid");
        let endpoint = quiet_only.endpoints.first().expect("endpoint");
        let routed = endpoint.route("usage.threshold_reached", &alert);
        let seven = 1_795_503_600; // 07:00 UTC the next morning
        assert_eq!(
            endpoint.deferred(&routed, late),
            BTreeMap::from([("log".to_owned(), seven * 1000)])
        );
        assert!(
            endpoint.deferred(&routed, seven + 60).is_empty(),
            "daytime: at once"
        );
        // In digest mode too: the first digest after the quiet hours.
        let daily =
            with("[digests.log]\nevery = \"daily\"\nat = \"08:00\"\nzone = \"Europe/Berlin\"")
                .expect("valid");
        let endpoint = daily.endpoints.first().expect("endpoint");
        let routed = endpoint.route("usage.threshold_reached", &alert);
        assert_eq!(
            endpoint.deferred(&routed, late),
            BTreeMap::from([("log".to_owned(), 1_795_503_600 * 1000)]),
            "08:00 in Berlin is 07:00 UTC"
        );
        assert_eq!(
            endpoint.deferred(&routed, seven + 60),
            BTreeMap::from([("log".to_owned(), (1_795_503_600 + 86_400) * 1000)]),
            "07:01 UTC is past that morning's 08:00 in Berlin: the next day's"
        );
    }

    #[test]
    fn a_notifier_listed_twice_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, "0123456789abcdef").expect("write");
        let text = format!(
            "[[endpoints]]\nname = \"a\"\npath = \"/a\"\nnotifiers = [\"log\", \"log\"]\nsecrets = [{{ name = \"k\", file = {:?} }}]\n",
            path.display().to_string()
        );
        let err = Settings::from_toml(&text)
            .expect("shape")
            .resolve()
            .expect_err("twice");
        assert!(err.to_string().contains("\"log\" is listed twice"), "{err}");
    }

    #[test]
    fn defaults_print_as_toml_without_secret_values() {
        let text = Settings::default().to_toml().expect("toml");
        assert!(text.contains("PERFHOOK_SECRET"));
        assert_eq!(
            Settings::from_toml(&text).expect("round trip"),
            Settings::default()
        );
    }
}
