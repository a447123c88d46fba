//! `perfhook send`: sign a file with an endpoint's scheme and secret and POST it to a running
//! receiver, printing the answer; the whole path checked in one command.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::clock::unix_now;
use crate::config::{Overrides, Settings};
use crate::signature::{sign_with_header, Delivery, Scheme};

/// Arguments of `send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The JSON body to send (a file from fixtures/events, or your own).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The receiver's config file; its endpoint gives the scheme, secret and URL.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Which endpoint (default: the first).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Where to send (default: the endpoint's path on the configured listen address).
    #[arg(long)]
    pub url: Option<String>,
    /// Unix time to sign (default: now).
    #[arg(long, value_name = "UNIX")]
    pub timestamp: Option<u64>,
    /// Give the event a new id each time (`evt_…`), so a second send is not a duplicate.
    #[arg(long, conflicts_with = "id")]
    pub fresh_id: bool,
    /// Give the event this id.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

pub(super) fn run(args: &SendArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(args.config.as_deref(), &Overrides::default())?;
    let config = settings.resolve()?;
    let endpoint = match &args.endpoint {
        Some(name) => config
            .endpoints
            .iter()
            .find(|e| &e.name == name)
            .with_context(|| format!("no endpoint named {name:?} in the config"))?,
        None => config
            .endpoints
            .first()
            .context("the config has no endpoint")?,
    };
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let new_id = match (&args.id, args.fresh_id) {
        (Some(id), _) => Some(id.clone()),
        (None, true) => Some(fresh_event_id()),
        (None, false) => None,
    };
    let body = match new_id {
        Some(id) => with_id(&body, &id)
            .with_context(|| format!("cannot give {} a new id", args.file.display()))?,
        None => body,
    };
    let body_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned));
    let scheme = endpoint.verifier.scheme();
    let id = match scheme {
        Scheme::Standard | Scheme::Github => {
            Some(body_id.unwrap_or_else(|| format!("msg_{}", unix_now())))
        }
        _ => None,
    };
    let key = endpoint
        .verifier
        .keys()
        .first()
        .context("the endpoint has no secret")?;
    let headers = sign_with_header(
        scheme,
        endpoint.verifier.signature_header(),
        std::slice::from_ref(key),
        Delivery {
            timestamp: args.timestamp.unwrap_or_else(unix_now),
            id: id.as_deref(),
            body: &body,
        },
    )?;
    let protocol = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("{protocol}://{}{}", config.listen, endpoint.path));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.post(&url).header("Content-Type", "application/json");
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut response = request
        .send(&body[..])
        .map_err(|error| anyhow::anyhow!("cannot POST to {url}: {}", explain(&error, &url)))?;
    let status = response.status();
    let answer = response
        .body_mut()
        .read_to_string()
        .context("cannot read the answer")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )?;
    writeln!(out, "{answer}")?;
    if answer.contains("\"mode_mismatch\"") {
        eprintln!(
            "perfhook: hint: endpoint {:?} has mode = \"{}\" and takes only events whose \
             livemode says the same; send a {} fixture, or to an endpoint of the other mode \
             with --endpoint NAME",
            endpoint.name, endpoint.mode, endpoint.mode
        );
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `evt_` and 24 hex digits: the time in nanoseconds and a random part, unique enough that
/// repeated sends are new events.
pub(super) fn fresh_event_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "evt_{:016x}{:08x}",
        nanos & u128::from(u64::MAX),
        fastrand::u32(..)
    )
}

/// The body with its top-level `id` set (numbers are kept as written).
fn with_id(body: &[u8], id: &str) -> anyhow::Result<Vec<u8>> {
    let mut event: serde_json::Value =
        serde_json::from_slice(body).context("the body is not JSON")?;
    let object = event
        .as_object_mut()
        .context("the body is not a JSON object")?;
    object.insert("id".to_owned(), serde_json::Value::String(id.to_owned()));
    Ok(serde_json::to_vec(&event)?)
}

/// A failed request in words that name the likely fix.
fn explain(error: &ureq::Error, url: &str) -> String {
    use std::io::ErrorKind;
    // rustls reports a plain-HTTP answer to its handshake as this; ureq may wrap it in I/O.
    let plain_http = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
    let tls_error = match error {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    match error {
        _ if tls_error == Some(&plain_http) => {
            "the receiver speaks plain HTTP; use an http:// URL, or give it [server.tls]".into()
        }
        ureq::Error::Protocol(_) if url.starts_with("http://") => {
            "the answer is not HTTP; if the receiver has [server.tls], use an https:// URL".into()
        }
        ureq::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => {
            "connection refused; is `perfhook serve` running and listening there?".into()
        }
        ureq::Error::ConnectionFailed => {
            "cannot connect; is `perfhook serve` running and listening there?".into()
        }
        ureq::Error::HostNotFound => "the host name does not resolve".into(),
        ureq::Error::BadUri(_) => "not a URL (http://HOST:PORT/PATH)".into(),
        ureq::Error::Timeout(_) => "no answer within 30 s".into(),
        other => other.to_string(),
    }
}
