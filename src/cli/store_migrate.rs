//! `perfhook store migrate [--dry-run]`: the PostgreSQL schema migrations the database has
//! not applied, printed (`--dry-run`) or applied under the same advisory lock the receiver
//! takes at start-up. sled migrates its data directory itself when it opens it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::{Overrides, Settings, StorageBackend};
use crate::store::postgres::PostgresStore;

/// Arguments of `store migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// A TOML config file whose `[storage.postgres]` to use.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the SQL of each pending migration instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) async fn migrate(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(args.config.as_deref(), &Overrides::default())?;
    let mut out = std::io::stdout().lock();
    if settings.storage.backend == StorageBackend::Sled {
        writeln!(
            out,
            "storage.backend is sled: nothing to migrate (sled upgrades its data directory when it opens it)"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let options = settings.storage.postgres.resolve()?;
    if args.dry_run {
        let pending = PostgresStore::pending_migrations(&options).await?;
        if pending.is_empty() {
            writeln!(out, "-- the database is up to date: no migration pending")?;
        }
        for migration in pending {
            writeln!(
                out,
                "-- migration {}: {}\n{}",
                migration.version,
                migration.name,
                migration.sql.trim_end()
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let applied = PostgresStore::migrate(&options).await?;
    if applied.is_empty() {
        writeln!(out, "the database is up to date: no migration pending")?;
    } else {
        let versions: Vec<String> = applied.iter().map(i32::to_string).collect();
        writeln!(out, "applied migrations {}", versions.join(", "))?;
    }
    Ok(ExitCode::SUCCESS)
}
