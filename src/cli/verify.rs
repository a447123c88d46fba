//! `perfhook verify-signature`: check one delivery by hand and say exactly why it passes or fails.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::input::{keys_for, push_header_args, read_body, reading_name, SecretArgs};
use crate::capture::parse_captured_request;
use crate::clock::unix_now;
use crate::signature::{
    age_secs, detect, Detection, Freshness, HeaderList, KeyReading, Scheme, TimestampPolicy,
    Tolerance, Verified, Verifier, VerifyError, DEFAULT_TOLERANCE_SECS,
};

/// A scheme, or `auto` to try them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeChoice {
    /// Try every scheme and both readings of each secret.
    Auto,
    /// One scheme.
    Fixed(Scheme),
}

impl FromStr for SchemeChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(Self::Auto);
        }
        s.parse()
            .map(Self::Fixed)
            .map_err(|e| format!("{e} or auto"))
    }
}

impl fmt::Display for SchemeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Fixed(scheme) => scheme.fmt(f),
        }
    }
}

/// Arguments of `verify-signature`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// perf, stripe, standard, github, slack, or auto (try all, both secret readings).
    #[arg(long, default_value = "perf")]
    pub scheme: SchemeChoice,
    /// Where the secrets come from.
    #[command(flatten)]
    pub secrets: SecretArgs,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// A captured raw HTTP request: request line, headers, blank line, body.
    #[arg(long, value_name = "FILE", conflicts_with = "body")]
    pub request: Option<String>,
    /// The exact body bytes: a file, or - for standard input.
    #[arg(long, value_name = "FILE|-", required_unless_present = "request")]
    pub body: Option<String>,
    /// Read the signature from this header instead of the scheme's default.
    #[arg(long, value_name = "NAME")]
    pub signature_header: Option<String>,
    /// Verify as if the time were this (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX")]
    pub now: Option<u64>,
    /// Accepted distance from now, either direction, in seconds (1 to 86400).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TOLERANCE_SECS)]
    pub tolerance: u64,
    /// Check only the signature (to re-check old captures); the output says so.
    #[arg(long)]
    pub ignore_timestamp: bool,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if args.body.as_deref() == Some("-") && args.secrets.stdin {
        anyhow::bail!("--body - and --secret-stdin both want standard input; put one in a file");
    }
    let secrets = args.secrets.load()?;
    let policy = if args.ignore_timestamp {
        TimestampPolicy::Ignore
    } else {
        TimestampPolicy::Enforce(Tolerance::from_secs(args.tolerance)?)
    };
    let capture_bytes = args
        .request
        .as_deref()
        .map(|path| std::fs::read(path).with_context(|| format!("cannot read request file {path}")))
        .transpose()?;
    let (mut headers, body) = match (&capture_bytes, &args.body) {
        (Some(bytes), _) => {
            let captured = parse_captured_request(bytes).with_context(|| {
                format!(
                    "cannot read {} as an HTTP request",
                    args.request.as_deref().unwrap_or_default()
                )
            })?;
            (captured.headers, captured.body.to_vec())
        }
        (None, Some(source)) => (HeaderList::new(), read_body(source)?),
        (None, None) => {
            anyhow::bail!("give the body with --body FILE or a whole request with --request FILE")
        }
    };
    push_header_args(&mut headers, &args.headers)?;
    let now = args.now.unwrap_or_else(unix_now);

    let report = match args.scheme {
        SchemeChoice::Fixed(scheme) => {
            let mut verifier = Verifier::new(scheme, keys_for(scheme, &secrets)?, policy)?;
            if let Some(name) = &args.signature_header {
                verifier = verifier.with_signature_header(name)?;
            }
            match verifier.verify(&headers, &body, now) {
                Ok(verified) => Report::Valid(verified, scheme.default_key_reading()),
                Err(error) => Report::Invalid(error),
            }
        }
        SchemeChoice::Auto => match detect(&headers, &body, &secrets, now, policy) {
            Detection::Valid { verified, reading } => Report::Valid(verified, reading),
            Detection::Invalid(attempts) => Report::NoSchemeMatched(attempts),
        },
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report.to_json(now))?;
    } else {
        writeln!(
            out,
            "{}",
            report.to_line(now, args.scheme == SchemeChoice::Auto)
        )?;
    }
    Ok(if matches!(report, Report::Valid(..)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

enum Report {
    Valid(Verified, KeyReading),
    Invalid(VerifyError),
    NoSchemeMatched(Vec<(Scheme, VerifyError)>),
}

const ALL_SIGNATURE_HEADERS: &str =
    "X-Perf-Signature, Stripe-Signature, webhook-signature, svix-signature, X-Hub-Signature-256, X-Slack-Signature";

impl Report {
    fn to_line(&self, now: u64, auto: bool) -> String {
        match self {
            Self::Valid(v, reading) => {
                let mut line = format!("valid: scheme {}, secret \"{}\"", v.scheme, v.secret);
                if auto {
                    line.push_str(&format!(" ({})", reading.describe()));
                }
                match (v.timestamp, v.freshness) {
                    (Some(t), Freshness::Checked) => {
                        line.push_str(&format!(", {}", describe_age(t, now)))
                    }
                    (Some(t), _) => line.push_str(&format!(
                        ", {} (timestamp not checked: --ignore-timestamp)",
                        describe_age(t, now)
                    )),
                    (None, _) => line.push_str(", no timestamp in this scheme"),
                }
                if let Some(id) = &v.id {
                    line.push_str(&format!(", id {id}"));
                }
                line
            }
            Self::Invalid(VerifyError::NoValidSignature) => format!(
                "invalid: {}: matched no configured secret; if the sender's format is \
                 unknown, run `perfhook verify-signature --scheme auto` on a captured delivery",
                VerifyError::NoValidSignature
            ),
            Self::Invalid(error) => format!("invalid: {error}"),
            Self::NoSchemeMatched(attempts) if attempts.is_empty() => {
                format!(
                    "invalid: no signature header of any known scheme ({ALL_SIGNATURE_HEADERS})"
                )
            }
            Self::NoSchemeMatched(attempts) => {
                let parts: Vec<String> =
                    attempts.iter().map(|(s, e)| format!("{s}: {e}")).collect();
                format!("invalid: no scheme verified ({})", parts.join("; "))
            }
        }
    }

    fn to_json(&self, now: u64) -> serde_json::Value {
        match self {
            Self::Valid(v, reading) => json!({
                "valid": true,
                "scheme": v.scheme.name(),
                "secret": &*v.secret,
                "key_reading": reading_name(*reading),
                "timestamp": v.timestamp,
                "age_seconds": v.timestamp.map(|t| age_secs(t, now)),
                "timestamp_checked": v.freshness == Freshness::Checked,
                "id": v.id,
            }),
            Self::Invalid(error) => json!({"valid": false, "error": error_json(error)}),
            Self::NoSchemeMatched(attempts) => json!({
                "valid": false,
                "error": {
                    "type": "no_scheme_matched",
                    "message": self.to_line(now, true).trim_start_matches("invalid: "),
                },
                "attempts": attempts
                    .iter()
                    .map(|(scheme, error)| json!({"scheme": scheme.name(), "error": error_json(error)}))
                    .collect::<Vec<_>>(),
            }),
        }
    }
}

fn error_json(error: &VerifyError) -> serde_json::Value {
    json!({"type": error.code(), "message": error.to_string()})
}

fn describe_age(timestamp: u64, now: u64) -> String {
    let age = age_secs(timestamp, now);
    if age >= 0 {
        format!("signed {age} s ago")
    } else {
        format!("signed {} s in the future", age.unsigned_abs())
    }
}
