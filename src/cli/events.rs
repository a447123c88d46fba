//! `perfhook events list|show|renotify|delete` and `perfhook outbox list|retry`: stored
//! events and their notifications, through the operator API of a running receiver.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::admin_client::{encode, refusal_line, AdminArgs, AdminClient, Answer};

/// `events` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// Events newest first: endpoint, id, type, mode, time.
    List(EventListArgs),
    /// One event: its body verbatim and each notifier's state.
    Show(EventArgs),
    /// Queue its notifications again (events:write).
    Renotify(RenotifyArgs),
    /// Delete it with its notifications and dedupe key (events:write).
    Delete(EventArgs),
    /// Delete every event of an organisation or project, by id or name (events:write).
    Purge(PurgeArgs),
}

/// Arguments of `events purge`.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// The organisation's id or name.
    #[arg(long, required_unless_present = "project")]
    pub organization: Option<String>,
    /// The project's id or name.
    #[arg(long)]
    pub project: Option<String>,
    /// Only this endpoint.
    #[arg(long)]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `outbox` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum OutboxCommand {
    /// Notification jobs waiting, or dead.
    List(OutboxListArgs),
    /// Queue one dead (or delivered) job again (events:write).
    Retry(RetryArgs),
}

/// Arguments of `events list`.
#[derive(Debug, Clone, Args)]
pub struct EventListArgs {
    /// Only this endpoint.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Only this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// One event.
#[derive(Debug, Clone, Args)]
pub struct EventArgs {
    /// Its endpoint.
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: String,
    /// Its id.
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Arguments of `events renotify`.
#[derive(Debug, Clone, Args)]
pub struct RenotifyArgs {
    #[command(flatten)]
    pub event: EventArgs,
    /// Only this notifier.
    #[arg(long)]
    pub notifier: Option<String>,
}

/// Arguments of `outbox list`.
#[derive(Debug, Clone, Args)]
pub struct OutboxListArgs {
    /// Dead jobs instead of waiting ones.
    #[arg(long)]
    pub dead: bool,
    /// Only this notifier.
    #[arg(long)]
    pub notifier: Option<String>,
    /// The API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Arguments of `outbox retry`.
#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub event: EventArgs,
    /// The notifier whose job to retry.
    #[arg(value_name = "NOTIFIER")]
    pub notifier: String,
}

/// Prints the answer's JSON, or the API's refusal on stderr with exit 2.
fn print(answer: &Answer, show: impl FnOnce(&serde_json::Value)) -> anyhow::Result<ExitCode> {
    if !(200..300).contains(&answer.status) {
        eprintln!("perfhook: error: {}", refusal_line(answer));
        return Ok(ExitCode::from(2));
    }
    show(&answer.json()?);
    Ok(ExitCode::SUCCESS)
}

fn text<'a>(value: &'a serde_json::Value, field: &str) -> &'a str {
    value
        .get(field)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("-")
}

/// Runs an `events` subcommand.
pub(super) fn run_events(command: &EventsCommand) -> anyhow::Result<ExitCode> {
    match command {
        EventsCommand::List(args) => {
            let mut query = vec![format!("limit={}", args.limit)];
            if let Some(endpoint) = &args.endpoint {
                query.push(format!("endpoint={}", encode(endpoint)));
            }
            if let Some(kind) = &args.kind {
                query.push(format!("type={}", encode(kind)));
            }
            let answer =
                AdminClient::new(&args.admin)?.get(&format!("events?{}", query.join("&")))?;
            print(&answer, |body| {
                if args.json {
                    println!("{body}");
                    return;
                }
                println!("ENDPOINT\tID\tTYPE\tLIVEMODE\tRECEIVED");
                for event in body
                    .get("events")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        text(event, "endpoint"),
                        text(event, "id"),
                        text(event, "type"),
                        event
                            .get("livemode")
                            .map_or_else(|| "-".to_owned(), ToString::to_string),
                        text(event, "received_at"),
                    );
                }
            })
        }
        EventsCommand::Show(args) => {
            let answer = AdminClient::new(&args.admin)?.get(&format!(
                "events/{}/{}",
                encode(&args.endpoint),
                encode(&args.id)
            ))?;
            print(&answer, |body| {
                println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
            })
        }
        EventsCommand::Renotify(args) => {
            let event = &args.event;
            let query = args
                .notifier
                .as_ref()
                .map_or_else(String::new, |n| format!("?notifier={}", encode(n)));
            let answer = AdminClient::new(&event.admin)?.post(&format!(
                "events/{}/{}/renotify{query}",
                encode(&event.endpoint),
                encode(&event.id)
            ))?;
            print(&answer, |body| {
                println!(
                    "queued {} notification(s) for {}/{}",
                    body.get("queued")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0),
                    event.endpoint,
                    event.id
                );
            })
        }
        EventsCommand::Purge(args) => {
            let query: Vec<String> = [
                ("organization", &args.organization),
                ("project", &args.project),
                ("endpoint", &args.endpoint),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", encode(v))))
            .collect();
            let answer =
                AdminClient::new(&args.admin)?.delete(&format!("events?{}", query.join("&")))?;
            print(&answer, |body| {
                println!(
                    "deleted {} event(s)",
                    body.get("deleted")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                );
            })
        }
        EventsCommand::Delete(args) => {
            let answer = AdminClient::new(&args.admin)?.delete(&format!(
                "events/{}/{}",
                encode(&args.endpoint),
                encode(&args.id)
            ))?;
            print(&answer, |_| {
                println!("deleted {}/{}", args.endpoint, args.id)
            })
        }
    }
}

/// Runs an `outbox` subcommand.
pub(super) fn run_outbox(command: &OutboxCommand) -> anyhow::Result<ExitCode> {
    match command {
        OutboxCommand::List(args) => {
            let mut query = vec![format!(
                "status={}",
                if args.dead { "dead" } else { "pending" }
            )];
            if let Some(notifier) = &args.notifier {
                query.push(format!("notifier={}", encode(notifier)));
            }
            let answer =
                AdminClient::new(&args.admin)?.get(&format!("outbox?{}", query.join("&")))?;
            print(&answer, |body| {
                if args.json {
                    println!("{body}");
                    return;
                }
                println!("ENDPOINT\tEVENT\tNOTIFIER\tATTEMPTS\tDUE\tLAST ERROR");
                for job in body
                    .get("jobs")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        text(job, "endpoint"),
                        text(job, "event_id"),
                        text(job, "notifier"),
                        job.get("attempts")
                            .and_then(serde_json::Value::as_u64)
                            .unwrap_or(0),
                        text(job, "due_at"),
                        text(job, "last_error"),
                    );
                }
            })
        }
        OutboxCommand::Retry(args) => {
            let event = &args.event;
            let answer = AdminClient::new(&event.admin)?.post(&format!(
                "outbox/{}/{}/{}/retry",
                encode(&event.endpoint),
                encode(&event.id),
                encode(&args.notifier)
            ))?;
            print(&answer, |body| {
                let queued = body
                    .get("queued")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
                if queued == 0 {
                    println!(
                        "{} for {}/{} is already waiting",
                        args.notifier, event.endpoint, event.id
                    );
                } else {
                    println!(
                        "queued {} for {}/{}",
                        args.notifier, event.endpoint, event.id
                    );
                }
            })
        }
    }
}
