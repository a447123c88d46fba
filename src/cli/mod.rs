//! The command line: argument definitions and one function per subcommand, all calling the
//! same core as the server.

pub(crate) mod admin_client;
mod audit;
mod config_check;
mod events;
mod generate;
mod init;
mod input;
mod keys;
mod notify_test;
mod refused;
mod send;
mod serve;
mod sign;
mod store_migrate;
mod store_stats;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub use audit::AuditCommand;
pub use config_check::ConfigCommand;
pub use events::{EventsCommand, OutboxCommand};
pub use generate::CompletionsArgs;
pub use init::InitArgs;
pub use keys::KeysCommand;
pub use notify_test::NotifyCommand;
pub use refused::RefusedCommand;
pub use send::SendArgs;
pub use serve::ServeArgs;
pub use sign::SignArgs;
pub use store_stats::StoreCommand;
pub use verify::VerifyArgs;

const EXIT_CODES: &str = "\
Exit codes:
  0  valid (verify-signature) or success (send: a 2xx answer)
  1  invalid: the delivery did not verify (send: a non-2xx answer; store check: damaged)
  2  usage or I/O error (bad flags, unreadable file, missing or short secret)";

/// perfhook: receive Perf webhooks, prove them authentic and fresh, keep each exactly once.
#[derive(Debug, Parser)]
#[command(name = "perfhook", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a config that runs as written, a fresh secret file and a sample alert.
    Init(InitArgs),
    /// Run the webhook receiver.
    Serve(ServeArgs),
    /// Sign a JSON file with an endpoint's scheme and secret and POST it to a receiver.
    #[command(after_help = EXIT_CODES)]
    Send(SendArgs),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Try the notifiers: send a sample alert through them now.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Inspect, check, back up or restore the data directory (with the receiver stopped).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Operator API keys: create, list, revoke, rotate (with the receiver stopped).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Stored events through the operator API: list, show, re-notify, delete.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Notification jobs through the operator API: list waiting or dead ones, retry one.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The operator audit log: list it, or verify its hash chain (receiver stopped).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Deliveries refused for their signature, timestamp or mode, through the operator API:
    /// list, show, export as a request file, re-verify.
    #[command(subcommand)]
    Refused(RefusedCommand),
    /// Check a delivery's signature and timestamp by hand.
    #[command(after_help = EXIT_CODES)]
    VerifySignature(VerifyArgs),
    /// Print the signature headers a sender would attach to a body.
    #[command(after_help = EXIT_CODES)]
    Sign(SignArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the man page (roff): `perfhook man > perfhook.1`, or `perfhook man | man -l -`.
    Man,
}

/// A command-line mistake as one line: clap's own first line and tip, then where to look.
/// `None` for `--help` and `--version`, which are answers, not errors.
#[must_use]
pub fn usage_error_line(error: &clap::Error, args: &[String]) -> Option<String> {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return None;
    }
    let rendered = error.render().to_string();
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    let mut usage = None;
    for rest in lines {
        if let Some(tip) = rest.strip_prefix("tip: ") {
            line.push_str("; ");
            line.push_str(tip);
        } else if let Some(text) = rest.strip_prefix("Usage: ") {
            usage = Some(text);
        } else if usage.is_none() && !rest.starts_with("For more information") {
            // The arguments a "not provided" error lists, one per line.
            line.push_str(if line.ends_with(':') { " " } else { ", " });
            line.push_str(rest);
        }
    }
    // `perfhook verify-signature --body <FILE> [OPTIONS]` -> `perfhook verify-signature`; without
    // a usage line (a bad value), the subcommand words as typed.
    let command: Vec<&str> = match usage {
        Some(usage) => usage
            .split_whitespace()
            .take_while(|word| !word.starts_with(['-', '<', '[']))
            .collect(),
        None => std::iter::once("perfhook")
            .chain(
                args.iter()
                    .skip(1)
                    .map(String::as_str)
                    .take_while(|word| !word.starts_with('-'))
                    .take(2)
                    .filter(|word| {
                        Cli::command()
                            .get_subcommands()
                            .flat_map(|sub| {
                                std::iter::once(sub.get_name().to_owned()).chain(
                                    sub.get_subcommands()
                                        .map(|inner| inner.get_name().to_owned()),
                                )
                            })
                            .any(|name| name == *word)
                    }),
            )
            .collect(),
    };
    line.push_str(&format!("; see `{} --help`", command.join(" ")));
    Some(line)
}

/// Runs a parsed command line.
///
/// # Errors
/// Any usage or I/O error; `main` prints it as one line and exits with 2.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init(args) => init::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Send(args) => send::run(&args),
        Command::Config(command) => config_check::run(&command),
        Command::Notify(command) => notify_test::run(&command),
        Command::Store(command) => store_stats::run(&command),
        Command::Keys(command) => keys::run(&command),
        Command::Refused(command) => refused::run(&command),
        Command::Audit(command) => audit::run(&command),
        Command::Events(command) => events::run_events(&command),
        Command::Outbox(command) => events::run_outbox(&command),
        Command::VerifySignature(args) => verify::run(&args),
        Command::Sign(args) => sign::run(&args),
        Command::Completions(args) => generate::completions(&args),
        Command::Man => generate::man(),
    }
}
