//! `perfhook refused list|show|export|reverify`: deliveries the receiver refused for their
//! signature, timestamp or mode, through the operator API of a running receiver.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::admin_client::{encode, refusal_line, AdminArgs, AdminClient, Answer};
use crate::file_modes::PRIVATE_FILE;

/// `refused` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum RefusedCommand {
    /// The newest refused deliveries: id, endpoint, time, source, reason.
    List(ListArgs),
    /// One refused delivery with its headers and body.
    Show(IdArgs),
    /// Write one as the request file `verify-signature --request` reads.
    Export(ExportArgs),
    /// Verify them again (after a secret or scheme fix); those that verify are accepted.
    Reverify(ReverifyArgs),
}

/// Arguments of `refused list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only this endpoint.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// One refused delivery.
#[derive(Debug, Clone, Args)]
pub struct IdArgs {
    /// Its id, as `refused list` shows it.
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Arguments of `refused export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Its id, as `refused list` shows it.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Where to write it (default: ID.http here); `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Arguments of `refused reverify`.
#[derive(Debug, Clone, Args)]
pub struct ReverifyArgs {
    /// Only this endpoint.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// The API's JSON instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

pub(super) fn run(command: &RefusedCommand) -> anyhow::Result<ExitCode> {
    match command {
        RefusedCommand::List(args) => list(args),
        RefusedCommand::Show(args) => show(args),
        RefusedCommand::Export(args) => export(args),
        RefusedCommand::Reverify(args) => reverify(args),
    }
}

/// The answer, or the API's refusal on stderr and exit 2.
fn accepted(answer: Answer) -> Result<Answer, ExitCode> {
    if (200..300).contains(&answer.status) {
        Ok(answer)
    } else {
        eprintln!("perfhook: error: {}", refusal_line(&answer));
        Err(ExitCode::from(2))
    }
}

fn query(endpoint: Option<&String>, limit: Option<usize>) -> String {
    let mut parts = Vec::new();
    if let Some(endpoint) = endpoint {
        parts.push(format!("endpoint={}", encode(endpoint)));
    }
    if let Some(limit) = limit {
        parts.push(format!("limit={limit}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The entries of the array `key` in an answer (none when it is absent).
fn items<'a>(
    body: &'a serde_json::Value,
    key: &str,
) -> impl Iterator<Item = &'a serde_json::Value> {
    body.get(key)
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin)?;
    let answer = match accepted(client.get(&format!(
        "refused{}",
        query(args.endpoint.as_ref(), Some(args.limit))
    ))?) {
        Ok(answer) => answer,
        Err(code) => return Ok(code),
    };
    let body = answer.json()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{body}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "ID\tRECEIVED\tSOURCE\tREASON\tMESSAGE")?;
    for refused in items(&body, "refused") {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            refused["id"].as_str().unwrap_or_default(),
            refused["received_at"].as_str().unwrap_or_default(),
            refused["source"].as_str().unwrap_or_default(),
            refused["reason"].as_str().unwrap_or_default(),
            refused["message"].as_str().unwrap_or_default(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(args: &IdArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin)?;
    match accepted(client.get(&format!("refused/{}", encode(&args.id)))?) {
        Ok(answer) => {
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string_pretty(&answer.json()?)?
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin)?;
    let answer = match accepted(client.get(&format!("refused/{}/request", encode(&args.id)))?) {
        Ok(answer) => answer,
        Err(code) => return Ok(code),
    };
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.http", args.id)));
    if path.as_os_str() == "-" {
        std::io::stdout().lock().write_all(&answer.body)?;
        return Ok(ExitCode::SUCCESS);
    }
    // The request holds what the sender signed: private, like the data directory.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(&path)
        .with_context(|| format!("cannot create {} (it must not exist)", path.display()))?;
    file.write_all(&answer.body)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {}; check it with: perfhook verify-signature --request {} --secret-env VAR",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn reverify(args: &ReverifyArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin)?;
    let answer = match accepted(client.post(&format!(
        "refused/reverify{}",
        query(args.endpoint.as_ref(), None)
    ))?) {
        Ok(answer) => answer,
        Err(code) => return Ok(code),
    };
    let body = answer.json()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{body}")?;
        return Ok(ExitCode::SUCCESS);
    }
    for (group, word) in [("accepted", "accepted"), ("duplicate", "duplicate")] {
        for entry in items(&body, group) {
            writeln!(
                out,
                "{word}: {} (event {})",
                entry["id"].as_str().unwrap_or_default(),
                entry["event"].as_str().unwrap_or_default()
            )?;
        }
    }
    for entry in items(&body, "still_refused") {
        writeln!(
            out,
            "still refused: {} ({}: {})",
            entry["id"].as_str().unwrap_or_default(),
            entry["reason"].as_str().unwrap_or_default(),
            entry["message"].as_str().unwrap_or_default()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
