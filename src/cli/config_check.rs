//! `perfhook config check`: load, validate and print the effective configuration. Secrets
//! show only where they live; their values are read (to check them) but never printed.
//! With `--sample FILE`, it shows instead what an endpoint's `[endpoints.fields]` reads
//! from that body, and the notification it would make.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config::{Overrides, Settings};

/// `config` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config (reading every secret) and print the effective settings.
    Check(CheckArgs),
}

/// Arguments of `config check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// A TOML config file (default: the embedded defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A delivery's body (JSON): show which figures the endpoint's field map finds in it.
    /// Exit 0 when it finds any, 1 when none.
    #[arg(long, value_name = "FILE")]
    pub sample: Option<PathBuf>,
    /// The endpoint whose field map to use (needed when there are several).
    #[arg(long, value_name = "NAME", requires = "sample")]
    pub endpoint: Option<String>,
}

pub(super) fn run(command: &ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check(args) = command;
    let settings = Settings::load(args.config.as_deref(), &Overrides::default())?;
    let resolved = settings.resolve()?;
    for warning in settings.permission_warnings(args.config.as_deref()) {
        eprintln!("perfhook: warning: {warning}");
    }
    let mut out = std::io::stdout().lock();
    if let Some(sample) = &args.sample {
        return check_sample(&mut out, &resolved, sample, args.endpoint.as_deref());
    }
    write!(out, "{}", settings.to_toml()?)?;
    writeln!(
        out,
        "# ok: {} endpoint(s), {} notifier(s); secrets read and long enough",
        resolved.endpoints.len(),
        resolved.notifiers.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Prints each figure the endpoint's map finds in `sample` (or where it looked), then the
/// subject and figures a notification of it would carry.
fn check_sample(
    out: &mut impl Write,
    config: &crate::config::AppConfig,
    sample: &std::path::Path,
    endpoint: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let endpoint = match endpoint {
        Some(name) => config
            .endpoints
            .iter()
            .find(|candidate| candidate.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = config.endpoints.iter().map(|e| e.name.as_str()).collect();
                anyhow::anyhow!("--endpoint {name}: no such endpoint; the config has {names:?}")
            })?,
        None => match config.endpoints.as_slice() {
            [only] => only,
            _ => anyhow::bail!(
                "the config has several endpoints; name one with --endpoint (its [endpoints.fields] is used)"
            ),
        },
    };
    let body = std::fs::read(sample)
        .map_err(|error| anyhow::anyhow!("--sample {}: {error}", sample.display()))?;
    let event = crate::event::parse_event(&body, None)
        .map_err(|error| anyhow::anyhow!("--sample {}: {error}", sample.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&body)?;
    let alert = crate::event::Alert::from_body_with(&body, &endpoint.fields);
    writeln!(
        out,
        "# endpoint {}: [endpoints.fields] on {} ({})",
        endpoint.name,
        sample.display(),
        event.kind
    )?;
    let mut found = 0;
    for (name, pointer) in endpoint.fields.entries() {
        let (shown, hit) = match value.pointer(pointer) {
            _ if pointer.is_empty() => ("(off)".to_owned(), false),
            Some(serde_json::Value::String(text)) => (text.clone(), true),
            Some(serde_json::Value::Number(number)) => (number.to_string(), true),
            Some(other) => (
                format!("(not a string or number: {})", kind_of(other)),
                false,
            ),
            None => ("(nothing there)".to_owned(), false),
        };
        found += usize::from(hit);
        writeln!(out, "{name:<18} {pointer:<28} {shown}")?;
    }
    let record = crate::store::EventRecord {
        endpoint: endpoint.name.clone(),
        id: event.id.as_str().to_owned(),
        kind: event.kind.clone(),
        livemode: event.livemode,
        received_at: 0,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let wording = crate::notify::wording::Wording::of(&record, &alert);
    writeln!(out, "# a notification would say: {}", wording.subject)?;
    for (label, value) in &wording.fields {
        if !matches!(label.as_str(), "Endpoint" | "Received" | "Event" | "Mode") {
            writeln!(out, "#   {label}: {value}")?;
        }
    }
    if found == 0 {
        writeln!(
            out,
            "# no figure found: notifications list every scalar under `data` instead; point [endpoints.fields] at this body's figures"
        )?;
        return Ok(ExitCode::from(1));
    }
    writeln!(
        out,
        "# ok: {found} of {} figures found",
        endpoint.fields.entries().len()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
        serde_json::Value::String(_) | serde_json::Value::Number(_) => "a scalar",
    }
}
