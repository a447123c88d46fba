//! `perfhook audit list|verify`: the operator audit log on a stopped receiver's data
//! directory. `verify` walks the hash chain and names every edited, missing or moved entry.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::keys::KeyStore;
use crate::admin::AuditFilter;
use crate::audit::{self, ActionKind, AuditEntry};
use crate::notify::rfc3339;
use crate::store::Store;

/// `audit` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Entries, newest first, filtered.
    List(ListArgs),
    /// Check the hash chain: exit 0 intact (the head hash printed), 1 tampered.
    Verify(KeyStore),
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
}

pub(super) fn run(command: &AuditCommand) -> anyhow::Result<ExitCode> {
    let location = match command {
        AuditCommand::List(args) => &args.store,
        AuditCommand::Verify(store) => store,
    };
    let path = super::store_stats::resolve_data_dir(
        location.config.as_deref(),
        location.data_dir.as_ref(),
    )?;
    let store = super::store_stats::open(&path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let log = runtime.block_on(store.audit_log());
    runtime
        .block_on(store.close())
        .context("cannot close the store")?;
    let log = log.context("cannot read the audit log")?;
    let mut out = std::io::stdout().lock();
    match command {
        AuditCommand::Verify(_) => {
            let problems = audit::verify(&log, (0, audit::GENESIS));
            if problems.is_empty() {
                let head = log
                    .last()
                    .and_then(|stored| stored.entry.as_ref().ok())
                    .map_or(audit::GENESIS, |entry| entry.hash.as_str());
                writeln!(out, "intact: {} entries; head {head}", log.len())?;
                return Ok(ExitCode::SUCCESS);
            }
            for problem in &problems {
                writeln!(out, "tampered: {problem}")?;
            }
            Ok(ExitCode::from(1))
        }
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
            let entries: Vec<&AuditEntry> = log
                .iter()
                .rev()
                .filter_map(|stored| stored.entry.as_ref().ok())
                .filter(|entry| filter.admits(entry))
                .collect();
            if args.json {
                writeln!(out, "{}", serde_json::to_string(&entries)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            for entry in entries {
                writeln!(
                    out,
                    "{} {} {} {} {} {} {}",
                    entry.seq,
                    rfc3339(entry.at),
                    entry.key.as_deref().unwrap_or("-"),
                    entry.source,
                    entry.action,
                    entry.target.as_deref().unwrap_or("-"),
                    entry.outcome
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
