//! perfhook receives webhooks from Perf (usage and budget alerts), proves each one authentic
//! and fresh, keeps each exactly once, and routes it to people.
//!
//! # Layout
//! - [`signature`]: the pure verification core (grammars, tolerance, HMAC); no I/O, no clock.
//! - [`event`]: domain types built from verified bytes.
//! - [`capture`]: reads a captured raw HTTP request (for `verify-signature --request`).
//! - [`config`]: settings (defaults, file, environment, flags) turned into typed parts.
//! - [`store`]: the storage port (record durably, claim with a lease, finish, purge, read,
//!   list, counts) and its implementations: sled (embedded default) and memory (tests).
//! - [`outbox`]: one worker per notifier delivering jobs with retries, and retention.
//! - [`notify`]: the `Notifier` trait and its sinks (log, email).
//! - [`server`], [`routes`], [`state`], [`error`]: the HTTP receiver and its error mapping.
//! - [`metrics`], [`telemetry`]: Prometheus metrics and logs.
//! - [`secret_source`]: reads secret bytes from the environment or a file (config and CLI).
//! - [`cli`]: the command-line interface.
//! - [`reload`]: SIGHUP: new secrets, notifier settings and certificates, all or nothing.
//! - [`tls`]: HTTPS with rustls, and the certificate SIGHUP replaces.
//! - [`clock`]: the `Clock` trait: the system clock, and a fixed one for tests.
//! - `fuzzing` (feature `fuzzing`): the fuzz bodies, shared by `fuzz/` and the replay tests.

pub mod activity;
pub mod admin;
pub mod api_key;
pub mod audit;
pub mod body_budget;
pub mod capture;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod collapse;
pub mod config;
pub mod error;
pub mod event;
pub mod fields;
pub mod file_modes;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http_errors;
pub mod http_server;
pub mod key_lifecycle;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod projection;
pub mod reload;
pub mod routes;
pub mod schedule;
pub mod secret_source;
pub mod server;
pub mod signature;
pub mod silence;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod ui;
