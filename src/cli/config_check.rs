//! `perfhook config check`: load, validate and print the effective configuration. Secrets
//! show only where they live; their values are read (to check them) but never printed.

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
}

pub(super) fn run(command: &ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check(args) = command;
    let settings = Settings::load(args.config.as_deref(), &Overrides::default())?;
    let resolved = settings.resolve()?;
    for warning in settings.permission_warnings(args.config.as_deref()) {
        eprintln!("perfhook: warning: {warning}");
    }
    let mut out = std::io::stdout().lock();
    write!(out, "{}", settings.to_toml()?)?;
    writeln!(
        out,
        "# ok: {} endpoint(s), {} notifier(s); secrets read and long enough",
        resolved.endpoints.len(),
        resolved.notifiers.len()
    )?;
    Ok(ExitCode::SUCCESS)
}
