//! `perfhook serve`: run the receiver on the embedded defaults, a config file, the
//! environment and flags, in that order.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::{Overrides, Settings};
use crate::reload::Reloader;
use crate::server::{Application, Stopper};
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
    /// Address of the operator API (overrides `[admin] listen`).
    #[arg(long, value_name = "IP:PORT")]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

pub(super) fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    telemetry::init(args.log_format);
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        admin_listen: args.admin_listen,
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
        // Registered before the store opens (which can take a while, or wait on another
        // replica's migration): from here on a stop signal ends start-up cleanly instead of
        // killing the process half-started, and SIGHUP reloads instead of ending the process
        // (one sent during start-up waits for the loop). The stop signals come first, so a
        // process seen catching SIGHUP already catches them (a test relies on it).
        let mut stops = StopSignals::listen()?;
        let hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        // sled opens without yielding, so only a PostgreSQL connection or migration is ever
        // dropped here, which rolls back and releases its lock.
        let app = tokio::select! {
            biased;
            app = Application::build(&config) => app?,
            signal = stops.next() => {
                tracing::info!(signal = signal.name(), "stop signal received while starting; not serving");
                return Ok(());
            }
        };
        tokio::spawn(stops.forward(app.stopper()));
        tokio::spawn(reload_on_hangup(
            hangups,
            args.config.clone(),
            overrides,
            settings,
            app.reloader(),
        ));
        let address = format!("{}:{}", config.listen.ip(), app.port());
        let endpoints: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| format!("{} {} ({})", e.name, e.path, e.verifier.scheme()))
            .collect();
        let storage = match &config.postgres {
            Some(_) => "postgres".to_owned(),
            None => format!("sled in {}", config.data_dir.display()),
        };
        tracing::info!(%address, endpoints = ?endpoints, %storage, "listening");
        if let Some(admin) = app.admin_address() {
            tracing::info!(address = %admin, "admin API listening");
        }
        app.run_until_stopped().await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The signals that stop the server: SIGTERM and SIGINT gracefully, SIGQUIT (or a second
/// signal while a graceful stop waits) at once.
struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
    quit: Signal,
}

/// One of the [`StopSignals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopSignal {
    Terminate,
    Interrupt,
    Quit,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
            Self::Quit => "SIGQUIT",
        }
    }
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot listen for {name}"))
        };
        Ok(Self {
            terminate: listen(SignalKind::terminate(), "SIGTERM")?,
            interrupt: listen(SignalKind::interrupt(), "SIGINT")?,
            quit: listen(SignalKind::quit(), "SIGQUIT")?,
        })
    }

    /// The next stop signal.
    async fn next(&mut self) -> StopSignal {
        tokio::select! {
            _ = self.terminate.recv() => StopSignal::Terminate,
            _ = self.interrupt.recv() => StopSignal::Interrupt,
            _ = self.quit.recv() => StopSignal::Quit,
        }
    }

    /// Passes the signals on to the running application: the first SIGTERM or SIGINT starts
    /// a graceful stop; SIGQUIT, or any signal after that first one, stops it at once.
    async fn forward(mut self, stopper: Stopper) {
        let mut stopping = false;
        loop {
            let signal = self.next().await;
            if signal != StopSignal::Quit && !stopping {
                stopping = true;
                tracing::info!(
                    signal = signal.name(),
                    "stopping: finishing in-flight requests (SIGQUIT or a second signal stops at once)"
                );
                stopper.gracefully();
            } else {
                tracing::warn!(
                    signal = signal.name(),
                    "stopping at once: in-flight requests are cut short"
                );
                stopper.at_once();
                return;
            }
        }
    }
}

/// On each SIGHUP, reads the configuration again (the file, the secret files and
/// certificates it names; the process's environment and flags are those it started with)
/// and applies it whole, or logs why not and keeps the running one.
async fn reload_on_hangup(
    mut hangups: Signal,
    file: Option<PathBuf>,
    overrides: Overrides,
    started: Settings,
    reloader: Reloader,
) {
    while hangups.recv().await.is_some() {
        // File reads, the system's certificate store: off the async workers.
        let (file, overrides, reloader) = (file.clone(), overrides.clone(), reloader.clone());
        let reloaded =
            tokio::task::spawn_blocking(move || reload(file.as_deref(), &overrides, &reloader))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the reload stopped unexpectedly")));
        match reloaded {
            Ok(settings) => {
                // Against what started: those sections keep their start-up values until a
                // restart, whatever later reloads said.
                let later = restart_only_changes(&started, &settings);
                tracing::info!("SIGHUP: configuration reloaded (secrets, endpoint rules, notifiers, certificate)");
                if !later.is_empty() {
                    tracing::warn!(sections = ?later, "SIGHUP: these changes take effect at the next restart");
                }
            }
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "SIGHUP: reload refused; the running configuration stays");
            }
        }
    }
}

fn reload(
    file: Option<&std::path::Path>,
    overrides: &Overrides,
    reloader: &Reloader,
) -> anyhow::Result<Settings> {
    let settings = Settings::load(file, overrides)?;
    for warning in settings.permission_warnings(file) {
        tracing::warn!("{warning}");
    }
    let config = settings.resolve()?;
    let notifiers = crate::notify::build(&config.notifiers).map_err(anyhow::Error::msg)?;
    reloader.apply(&config, notifiers)?;
    Ok(settings)
}

/// Sections whose changes a reload cannot apply to a running receiver (listeners, limits,
/// storage, retry policy); the certificate files in `[server.tls]` and the default
/// allowlist `server.allow` are reloaded.
fn restart_only_changes(running: &Settings, new: &Settings) -> Vec<&'static str> {
    let without_tls = |settings: &Settings| {
        let mut server = settings.server.clone();
        server.tls = None;
        server.allow = Vec::new();
        server
    };
    let mut sections = Vec::new();
    if without_tls(running) != without_tls(new)
        || running.server.tls.as_ref().map(|t| t.hsts_max_age_secs)
            != new.server.tls.as_ref().map(|t| t.hsts_max_age_secs)
    {
        sections.push("server");
    }
    if running.storage != new.storage {
        sections.push("storage");
    }
    if running.outbox != new.outbox {
        sections.push("outbox");
    }
    if running.admin != new.admin {
        sections.push("admin");
    }
    sections
}
