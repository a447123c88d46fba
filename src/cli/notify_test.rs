//! `perfhook notify test`: send a sample alert through configured notifiers now, and say for
//! each whether it went out or exactly why not (connection, TLS, authentication, a refused
//! address), without waiting for a real alert or reading the outbox's logs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::clock::unix_now;
use crate::config::{Overrides, Settings};
use crate::notify::Notification;
use crate::store::EventRecord;

/// One notifier's whole attempt, connection included.
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(60);

/// `notify` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum NotifyCommand {
    /// Send a sample alert (test mode, marked as a test) through notifiers now.
    Test(NotifyTestArgs),
}

/// Arguments of `notify test`.
#[derive(Debug, Clone, Args)]
pub struct NotifyTestArgs {
    /// The config file whose notifiers to try.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only this notifier (default: every configured one).
    #[arg(long, value_name = "NAME")]
    pub notifier: Option<String>,
}

pub(super) fn run(command: &NotifyCommand) -> anyhow::Result<ExitCode> {
    let NotifyCommand::Test(args) = command;
    let settings = Settings::load(args.config.as_deref(), &Overrides::default())?;
    let config = settings.resolve()?;
    let mut notifiers: Vec<_> = crate::notify::build(&config.notifiers)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .collect();
    notifiers.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(name) = &args.notifier {
        notifiers.retain(|(candidate, _)| candidate == name);
        if notifiers.is_empty() {
            let known: Vec<&String> = config.notifiers.keys().collect();
            anyhow::bail!("--notifier {name}: no such notifier; the config has {known:?}");
        }
    }
    let record = sample_record()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for (name, notifier) in &notifiers {
        let notification = Notification::of(&record);
        let outcome = runtime.block_on(async {
            tokio::time::timeout(ATTEMPT_DEADLINE, notifier.deliver(&notification)).await
        });
        match outcome {
            Ok(Ok(())) => writeln!(out, "{name}: sent sample alert {}", record.id)?,
            Ok(Err(error)) => {
                failed += 1;
                writeln!(out, "{name}: failed: {error}")?;
            }
            Err(_) => {
                failed += 1;
                writeln!(
                    out,
                    "{name}: failed: no answer within {} s",
                    ATTEMPT_DEADLINE.as_secs()
                )?;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The sample alert from `perfhook init`, with a fresh id, in test mode, its organisation
/// named so nobody mistakes it for a real crossing.
fn sample_record() -> anyhow::Result<EventRecord> {
    let mut event: serde_json::Value = serde_json::from_slice(super::init::SAMPLE_ALERT)?;
    let id = super::send::fresh_event_id();
    let mut set = |pointer: &str, value: serde_json::Value| {
        if let Some(slot) = event.pointer_mut(pointer) {
            *slot = value;
        }
    };
    set("/id", id.clone().into());
    set("/livemode", false.into());
    set("/data/organization/name", "perfhook notify test".into());
    let kind = event
        .get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(EventRecord {
        endpoint: "notify-test".into(),
        id,
        kind,
        livemode: Some(false),
        received_at: unix_now(),
        body: serde_json::to_string_pretty(&event)?,
    })
}
