//! `perfhook store stats|check|backup|restore`: what a data directory holds, whether every
//! record reads back, and consistent copies of it. They run while the receiver is stopped
//! (sled locks the directory). Used by on-call, and by the load benchmark to prove every
//! acknowledged event was stored.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::{Overrides, Settings};
use crate::store::sled::{SledOptions, SledStore};
use crate::store::{Store, StoreErrorKind};

/// `store` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum StoreCommand {
    /// Count what the store holds. The receiver must be stopped: sled locks the directory.
    Stats(StatsArgs),
    /// Read every record back and report damage: exit 0 clean, 1 damaged, 2 cannot check.
    Check(StatsArgs),
    /// Write a consistent copy of the store into a new directory (receiver stopped).
    Backup(BackupArgs),
    /// Replace the data directory with a checked copy of a backup (receiver stopped).
    Restore(RestoreArgs),
    /// Apply the PostgreSQL schema migrations, or print them (--dry-run).
    Migrate(super::store_migrate::MigrateArgs),
}

/// Arguments of `store backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The new directory to write the backup into (must not exist, or be empty).
    #[arg(value_name = "BACKUP_DIR")]
    pub to: PathBuf,
    #[command(flatten)]
    pub store: StatsArgs,
}

/// Arguments of `store restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// A directory written by `store backup`; it is copied, never changed.
    #[arg(value_name = "BACKUP_DIR")]
    pub from: PathBuf,
    /// Move an existing data directory aside (to DIR.before-restore-UNIXTIME) instead of
    /// refusing.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub store: StatsArgs,
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        StoreCommand::Stats(args) => stats(args),
        StoreCommand::Check(args) => runtime.block_on(check(args)),
        StoreCommand::Backup(args) => runtime.block_on(backup(args)),
        StoreCommand::Restore(args) => runtime.block_on(restore(args)),
        StoreCommand::Migrate(args) => runtime.block_on(super::store_migrate::migrate(args)),
    }
}

/// The data directory the arguments name (flag, then config, then the default); a config
/// whose store is PostgreSQL has none.
fn data_dir(args: &StatsArgs, command: &str) -> anyhow::Result<PathBuf> {
    match locate(args.config.as_deref(), args.data_dir.as_ref())? {
        StoreLocation::DataDir(path) => Ok(path),
        StoreLocation::Postgres(_) => anyhow::bail!(
            "storage.backend is postgres: `store {command}` works on a sled data directory; use the operator API (`perfhook events list`) and PostgreSQL's own tools (pg_dump, base backups)"
        ),
    }
}

/// Where a command's store is.
pub(super) enum StoreLocation {
    /// A sled data directory.
    DataDir(PathBuf),
    /// The PostgreSQL database `[storage.postgres]` names.
    Postgres(crate::store::postgres::PostgresOptions),
}

/// The store the arguments name: the PostgreSQL database when the config's backend is
/// postgres (refusing `--data-dir` then), else the sled data directory (`--data-dir`, the
/// config's `storage.path`, or the default).
pub(super) fn locate(
    config: Option<&std::path::Path>,
    data_dir: Option<&PathBuf>,
) -> anyhow::Result<StoreLocation> {
    let overrides = Overrides {
        data_dir: data_dir.cloned(),
        ..Overrides::default()
    };
    let settings = Settings::load(config, &overrides)?;
    if settings.storage.backend == crate::config::StorageBackend::Postgres {
        // A key made in a sled directory would be one the replicas never see.
        if data_dir.is_some() {
            anyhow::bail!(
                "storage.backend is postgres: --data-dir names a sled data directory; leave it out to work on the database, or give a config whose backend is sled"
            );
        }
        return Ok(StoreLocation::Postgres(
            settings.storage.postgres.resolve()?,
        ));
    }
    Ok(StoreLocation::DataDir(settings.storage.path))
}

/// Opens an existing data directory (never creates one).
pub(super) fn open(path: &std::path::Path) -> anyhow::Result<SledStore> {
    if !path.is_dir() {
        anyhow::bail!("{} is not a data directory", path.display());
    }
    SledStore::open(path, SledOptions::default())
        .with_context(|| format!("cannot open the store in {}", path.display()))
}

async fn check(args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let path = data_dir(args, "check")?;
    if !path.is_dir() {
        anyhow::bail!("{} is not a data directory", path.display());
    }
    let report = match SledStore::open(&path, SledOptions::default()) {
        Ok(store) => {
            let report = store.check_records().await;
            store.close().await.ok();
            report?
        }
        // sled could not even recover it: damaged, not a usage error.
        Err(error) if error.kind() == StoreErrorKind::Corrupt => {
            println!("damaged: {error}");
            return Ok(ExitCode::from(1));
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot open the store in {}", path.display()))
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        writeln!(out, "data_dir: {}", path.display())?;
        writeln!(out, "events: {}", report.events)?;
        writeln!(
            out,
            "jobs: {} (pending {}, dead {})",
            report.jobs, report.pending, report.dead
        )?;
        writeln!(out, "index entries: {}", report.index_entries)?;
        for problem in &report.problems {
            writeln!(out, "damaged: {problem}")?;
        }
        if report.more_problems > 0 {
            writeln!(
                out,
                "damaged: {} more problems not listed",
                report.more_problems
            )?;
        }
        if report.is_clean() {
            writeln!(out, "ok: every record reads back")?;
        } else {
            writeln!(
                out,
                "the store is damaged: restore it from a backup (perfhook store restore)"
            )?;
        }
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn backup(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let path = data_dir(&args.store, "backup")?;
    let store = open(&path)?;
    let copied = store.backup(&args.to).await;
    store.close().await.ok();
    let copied = copied.with_context(|| format!("cannot back up {}", path.display()))?;
    println!(
        "backup of {} written to {} ({} entries, {} bytes)",
        path.display(),
        args.to.display(),
        copied.entries,
        copied.bytes
    );
    Ok(ExitCode::SUCCESS)
}

async fn restore(args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let path = data_dir(&args.store, "restore")?;
    let aside = args.force.then(|| {
        let mut name = path.clone().into_os_string();
        name.push(format!(".before-restore-{}", crate::clock::unix_now()));
        PathBuf::from(name)
    });
    let report = SledStore::restore(&args.from, &path, aside.as_deref())
        .await
        .with_context(|| {
            format!(
                "cannot restore {} from {}",
                path.display(),
                args.from.display()
            )
        })?;
    let moved = match aside.filter(|a| a.exists()) {
        Some(aside) => format!("; the previous directory is at {}", aside.display()),
        None => String::new(),
    };
    println!(
        "restored {} from {} ({} events, {} jobs){moved}",
        path.display(),
        args.from.display(),
        report.events,
        report.jobs
    );
    Ok(ExitCode::SUCCESS)
}

fn stats(args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let path = data_dir(args, "stats")?;
    let store = open(&path)?;
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
