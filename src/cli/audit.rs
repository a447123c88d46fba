//! `perfhook audit list|verify`: the operator audit log, on a stopped receiver's data
//! directory or through a running one's operator API. `verify` walks the hash chain from its
//! anchor and names every edited, missing or moved entry.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::admin_client::{encode, refusal_line};
use super::keys::{route, KeyStore, KeysApi};
use crate::admin::{verification, AuditFilter};
use crate::audit::ActionKind;
use crate::notify::rfc3339;

/// `audit` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Entries, newest first, filtered.
    List(ListArgs),
    /// Check the hash chain: exit 0 intact (the head hash printed), 1 tampered.
    Verify(VerifyArgs),
}

/// Arguments of `audit verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: KeyStore,
    #[command(flatten)]
    pub api: KeysApi,
}

/// Arguments of `audit list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// At or after this Unix time.
    #[arg(long, value_name = "UNIX")]
    pub since: Option<u64>,
    /// Before this Unix time.
    #[arg(long, value_name = "UNIX")]
    pub until: Option<u64>,
    /// Only this key's actions (its id).
    #[arg(long, value_name = "ID")]
    pub key: Option<String>,
    /// Only this kind of action.
    #[arg(long, value_enum)]
    pub kind: Option<ActionKind>,
    /// Only actions starting with this (`key.`, `auth.failed`).
    #[arg(long)]
    pub action: Option<String>,
    /// `ok`, or `failed` for everything else.
    #[arg(long)]
    pub outcome: Option<String>,
    /// One JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: KeyStore,
    #[command(flatten)]
    pub api: KeysApi,
}

pub(super) fn run(command: &AuditCommand) -> anyhow::Result<ExitCode> {
    let (location, api) = match command {
        AuditCommand::List(args) => (&args.store, &args.api),
        AuditCommand::Verify(args) => (&args.store, &args.api),
    };
    let route = route(location, api, "audit:read", false)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let Some(store) = runtime.block_on(route.open())? else {
        return through_api(command, location, api);
    };
    let read = runtime.block_on(async {
        Ok::<_, crate::store::StoreError>((store.audit_log().await?, store.audit_anchor().await?))
    });
    runtime
        .block_on(store.close())
        .context("cannot close the store")?;
    let (log, anchor) = read.context("cannot read the audit log")?;
    match command {
        AuditCommand::Verify(_) => print_verification(&verification(&log, &anchor)),
        AuditCommand::List(args) => {
            let filter = AuditFilter {
                since: args.since,
                until: args.until,
                key: args.key.clone(),
                kind: args.kind,
                action: args.action.clone(),
                outcome: args.outcome.clone(),
                limit: None,
            };
            let entries: Vec<serde_json::Value> = log
                .iter()
                .rev()
                .filter_map(|stored| stored.entry.as_ref().ok())
                .filter(|entry| filter.admits(entry))
                .filter_map(|entry| serde_json::to_value(entry).ok())
                .collect();
            print_entries(&entries, args.json)
        }
    }
}

/// `intact: N entries; head H` (exit 0) or one `tampered: …` line per problem (exit 1).
fn print_verification(result: &serde_json::Value) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let problems = result
        .get("problems")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    if problems.is_empty() {
        writeln!(
            out,
            "intact: {} entries; head {}",
            result
                .get("entries")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            result
                .get("head")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for problem in problems {
        writeln!(out, "tampered: {}", problem.as_str().unwrap_or_default())?;
    }
    Ok(ExitCode::from(1))
}

fn print_entries(entries: &[serde_json::Value], json: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::Value::Array(entries.to_vec()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = |entry: &serde_json::Value, field: &str| {
        entry
            .get(field)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    for entry in entries {
        writeln!(
            out,
            "{} {} {} {} {} {} {}",
            entry
                .get("seq")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            rfc3339(
                entry
                    .get("at")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
            ),
            text(entry, "key"),
            text(entry, "source"),
            text(entry, "action"),
            text(entry, "target"),
            text(entry, "outcome"),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The same through the operator API (an `audit:read` key).
fn through_api(
    command: &AuditCommand,
    location: &KeyStore,
    api: &KeysApi,
) -> anyhow::Result<ExitCode> {
    let client = api.client(location)?;
    let answer = match command {
        AuditCommand::Verify(_) => client.get("audit/verify")?,
        AuditCommand::List(args) => {
            let mut query = Vec::new();
            if let Some(since) = args.since {
                query.push(format!("since={since}"));
            }
            if let Some(until) = args.until {
                query.push(format!("until={until}"));
            }
            if let Some(key) = &args.key {
                query.push(format!("key={}", encode(key)));
            }
            if let Some(kind) = args.kind {
                query.push(format!(
                    "kind={}",
                    serde_json::to_value(kind)?.as_str().unwrap_or_default()
                ));
            }
            if let Some(action) = &args.action {
                query.push(format!("action={}", encode(action)));
            }
            if let Some(outcome) = &args.outcome {
                query.push(format!("outcome={}", encode(outcome)));
            }
            client.get(&format!("audit?{}", query.join("&")))?
        }
    };
    if !(200..300).contains(&answer.status) {
        eprintln!("perfhook: error: {}", refusal_line(&answer));
        return Ok(ExitCode::from(2));
    }
    let body = answer.json()?;
    match command {
        AuditCommand::Verify(_) => print_verification(&body),
        AuditCommand::List(args) => {
            let entries = body
                .get("entries")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            print_entries(&entries, args.json)
        }
    }
}
