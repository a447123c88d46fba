//! `perfhook store stats`: what a data directory holds (events, outbox, dead letters, disk),
//! read while the receiver is stopped (sled locks the directory). Used by on-call to check a
//! store and by the load benchmark to prove every acknowledged event was stored.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::{Overrides, Settings};
use crate::store::sled::{SledOptions, SledStore};
use crate::store::Store;

/// `store` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum StoreCommand {
    /// Count what the store holds. The receiver must be stopped: sled locks the directory.
    Stats(StatsArgs),
}

/// Arguments of `store stats`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// A TOML config file whose `storage.path` to read (default: the embedded defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory, overriding the config.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(command: &StoreCommand) -> anyhow::Result<ExitCode> {
    let StoreCommand::Stats(args) = command;
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    };
    let path = Settings::load(args.config.as_deref(), &overrides)?
        .storage
        .path;
    if !path.is_dir() {
        anyhow::bail!("{} is not a data directory", path.display());
    }
    let store = SledStore::open(&path, SledOptions::default())
        .with_context(|| format!("cannot open the store in {}", path.display()))?;
    let counts = store.counts();
    let stats = serde_json::json!({
        "data_dir": path.display().to_string(),
        "events": counts.events,
        "outbox": counts.outbox,
        "dead": counts.dead,
        "disk_bytes": store.disk_bytes(),
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{stats}")?;
    } else {
        for (key, value) in stats.as_object().into_iter().flatten() {
            writeln!(
                out,
                "{key}: {}",
                value.as_str().map_or(value.to_string(), str::to_owned)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
