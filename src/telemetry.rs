//! Logging: `tracing` to stderr as JSON lines or pretty text. Stdout is left to the `log`
//! notifier's alert lines. Nothing logged carries a secret, a signature or a raw header, and
//! anyone's malformed HTTP cannot flood the error log.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Pretty,
}

/// The filter without `RUST_LOG`: perfhook at info, actix-server's per-worker start and
/// stop lines (one per core, twice) only when they warn.
pub const DEFAULT_FILTER: &str = "info,actix_server=warn";

/// Installs the global subscriber. `RUST_LOG` filters (default [`DEFAULT_FILTER`]).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // ureq prints whole URLs (a Slack webhook's token) and request bytes at trace, whatever
    // RUST_LOG says: its lines stop at info.
    let filter = ["ureq=info", "ureq_proto=info"]
        .into_iter()
        .filter_map(|directive| directive.parse().ok())
        .fold(filter, EnvFilter::add_directive);
    // Colour only for a person at a terminal; a file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let limiter = MalformedHttpLimiter::default();
    // A second init (tests) is not an error worth stopping for.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(limiter)
            .try_init(),
        LogFormat::Pretty => builder.finish().with(limiter).try_init(),
    };
}

/// How often a malformed-request error from actix-http reaches the log.
const MALFORMED_LOG_EVERY: Duration = Duration::from_secs(60);

/// actix-http logs every request it cannot parse (a bad request line or header, a head over
/// its size limit) at ERROR, before any perfhook code runs, so anyone could flood the error
/// log. This layer lets one such line through per [`MALFORMED_LOG_EVERY`] and drops the rest.
#[derive(Debug, Default)]
struct MalformedHttpLimiter {
    last: Mutex<Option<Instant>>,
}

/// actix-http's target for these lines, and their message's start.
const ACTIX_DISPATCHER: &str = "actix_http::h1::dispatcher";
const PARSE_ERROR: &str = "stream error: request parse error";

impl<S: Subscriber> Layer<S> for MalformedHttpLimiter {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || meta.target() != ACTIX_DISPATCHER {
            return true;
        }
        let mut message = String::new();
        event.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                if field.name() == "message" {
                    let _ = write!(message, "{value:?}");
                }
            },
        );
        if !message.starts_with(PARSE_ERROR) {
            return true;
        }
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < MALFORMED_LOG_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}
