//! `perfhook serve`: run the receiver on the embedded defaults, a config file, the
//! environment and flags, in that order.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::{Overrides, Settings};
use crate::server::Application;
use crate::telemetry::{self, LogFormat};

/// Arguments of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// A TOML config file (optional: the defaults serve one `perf` endpoint).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides the config).
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Data directory (overrides the config).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

pub(super) fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    telemetry::init(args.log_format);
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
    };
    let settings = Settings::load(args.config.as_deref(), &overrides)?;
    for warning in settings.permission_warnings(args.config.as_deref()) {
        tracing::warn!("{warning}");
    }
    let config = settings.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(&config)?;
        let address = format!("{}:{}", config.listen.ip(), app.port());
        let endpoints: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| format!("{} {} ({})", e.name, e.path, e.verifier.scheme()))
            .collect();
        tracing::info!(%address, endpoints = ?endpoints, data_dir = %config.data_dir.display(), "listening");
        app.run_until_stopped().await
    })?;
    Ok(ExitCode::SUCCESS)
}
