//! `perfhook sign`: print the headers a sender would attach to a body, so tests and `curl`
//! can make valid deliveries.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use sha2::{Digest, Sha256};

use super::input::{keys_for, read_body, SecretArgs};
use crate::clock::unix_now;
use crate::signature::{sign_with_header, Delivery, Scheme};

/// Arguments of `sign`.
#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// perf, stripe, standard, github or slack.
    #[arg(long, default_value = "perf")]
    pub scheme: Scheme,
    /// Where the secrets come from; several secrets give several signatures.
    #[command(flatten)]
    pub secrets: SecretArgs,
    /// The exact body bytes: a file, or - for standard input.
    #[arg(long, value_name = "FILE|-")]
    pub body: String,
    /// The Unix time to sign (default: now).
    #[arg(long, value_name = "UNIX")]
    pub timestamp: Option<u64>,
    /// The message id (`standard`: webhook-id, default derived from the body and time;
    /// `github`: X-GitHub-Delivery).
    #[arg(long)]
    pub id: Option<String>,
    /// Put the signature in this header instead of the scheme's default.
    #[arg(long, value_name = "NAME")]
    pub signature_header: Option<String>,
    /// Print one JSON object of headers instead of `Name: value` lines.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &SignArgs) -> anyhow::Result<ExitCode> {
    if args.body == "-" && args.secrets.stdin {
        anyhow::bail!("--body - and --secret-stdin both want standard input; put one in a file");
    }
    let keys = keys_for(args.scheme, &args.secrets.load()?)?;
    let body = read_body(&args.body)?;
    let timestamp = args.timestamp.unwrap_or_else(unix_now);
    let default_id;
    let id = match (&args.id, args.scheme) {
        (Some(id), _) => Some(id.as_str()),
        (None, Scheme::Standard) => {
            default_id = derived_id(timestamp, &body);
            Some(default_id.as_str())
        }
        (None, _) => None,
    };
    let header = args
        .signature_header
        .as_deref()
        .unwrap_or(args.scheme.default_signature_header());
    if args.signature_header.is_some() && !args.scheme.signature_header_configurable() {
        anyhow::bail!("the {} scheme's header names are fixed", args.scheme);
    }
    let headers = sign_with_header(
        args.scheme,
        header,
        &keys,
        Delivery {
            timestamp,
            id,
            body: &body,
        },
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> =
            headers.into_iter().map(|(n, v)| (n, v.into())).collect();
        writeln!(out, "{}", serde_json::Value::Object(map))?;
    } else {
        for (name, value) in headers {
            writeln!(out, "{name}: {value}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A stable id for a body and time, so signing the same thing twice gives the same headers.
fn derived_id(timestamp: u64, body: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(timestamp.to_string())
        .chain_update(b".")
        .chain_update(body)
        .finalize();
    format!("msg_{}", hex::encode(digest.get(..12).unwrap_or_default()))
}
