//! `perfhook keys create|list|revoke|rotate`: operator API keys, managed on the data
//! directory while the receiver is stopped. A key is printed once, on stdout alone, so a
//! script can capture it; the store keeps only its hash.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::api_key::{self, KeySpec, Scope, DEFAULT_RATE_LIMIT_PER_MINUTE};
use crate::audit::{ActionKind, NewAuditEntry};
use crate::clock::unix_now;
use crate::event::Mode;
use crate::notify::rfc3339;
use crate::store::sled::SledStore;
use crate::store::{ApiKeyRecord, Store};

/// `keys` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it once (stdout holds the key alone).
    Create(CreateArgs),
    /// List keys: id, name, scopes, dates, state; never a key.
    List(ListArgs),
    /// Refuse a key from now on.
    Revoke(IdArgs),
    /// Make a replacement key (printed once); the old one keeps working for --overlap.
    Rotate(RotateArgs),
}

/// Where the keys live.
#[derive(Debug, Clone, Args)]
pub struct KeyStore {
    /// A TOML config file whose `storage.path` to use.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory, overriding the config.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Arguments of `keys create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// What the key is for (shown in listings and the audit log).
    #[arg(long)]
    pub name: String,
    /// What it may do; repeat for several.
    #[arg(long = "scope", value_name = "SCOPE", required = true)]
    pub scopes: Vec<Scope>,
    /// How long it works, e.g. 90d or 12h (default: until revoked).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub expires_in: Option<Duration>,
    /// A test key: it sees only test-mode endpoints (`phk_test_…`).
    #[arg(long)]
    pub test: bool,
    /// Requests a minute.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RATE_LIMIT_PER_MINUTE)]
    pub rate_limit: u32,
    #[command(flatten)]
    pub store: KeyStore,
}

/// Arguments of `keys list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: KeyStore,
}

/// A key by its id.
#[derive(Debug, Clone, Args)]
pub struct IdArgs {
    /// The key's id (`phk_live_` and 8 characters, as `keys list` shows it).
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub store: KeyStore,
}

/// Arguments of `keys rotate`.
#[derive(Debug, Clone, Args)]
pub struct RotateArgs {
    /// How long the old key keeps working.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "24h")]
    pub overlap: Duration,
    #[command(flatten)]
    pub key: IdArgs,
}

pub(super) fn run(command: &KeysCommand) -> anyhow::Result<ExitCode> {
    let location = match command {
        KeysCommand::Create(args) => &args.store,
        KeysCommand::List(args) => &args.store,
        KeysCommand::Revoke(args) => &args.store,
        KeysCommand::Rotate(args) => &args.key.store,
    };
    let path = super::store_stats::resolve_data_dir(
        location.config.as_deref(),
        location.data_dir.as_ref(),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // A first key is made before the receiver ever ran: the data directory may not exist.
    let store = if matches!(command, KeysCommand::Create(_)) {
        crate::file_modes::make_private_dir(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        SledStore::open(&path, crate::store::sled::SledOptions::default())
            .with_context(|| format!("cannot open the store in {}", path.display()))?
    } else {
        super::store_stats::open(&path)?
    };
    let outcome = runtime.block_on(async {
        match command {
            KeysCommand::Create(args) => create(&store, args).await,
            KeysCommand::List(args) => list(&store, args).await,
            KeysCommand::Revoke(args) => revoke(&store, &args.id).await,
            KeysCommand::Rotate(args) => rotate(&store, args).await,
        }
    });
    runtime
        .block_on(store.close())
        .context("cannot close the store")?;
    outcome
}

/// Records a key action taken on the data directory (no key acts; the source is `cli`).
async fn audit(
    store: &SledStore,
    action: &str,
    kind: ActionKind,
    target: &str,
) -> anyhow::Result<()> {
    store
        .append_audit(NewAuditEntry {
            at: unix_now(),
            key: None,
            source: "cli".to_owned(),
            action: action.to_owned(),
            kind,
            target: Some(target.to_owned()),
            outcome: "ok".to_owned(),
        })
        .await
        .context("cannot append to the audit log")?;
    Ok(())
}

async fn create(store: &SledStore, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let made = api_key::generate(
        &KeySpec {
            name: args.name.clone(),
            scopes: args.scopes.clone(),
            mode: if args.test { Mode::Test } else { Mode::Live },
            expires_in: args.expires_in,
            rate_limit_per_minute: args.rate_limit,
        },
        unix_now(),
    )?;
    store.put_api_key(&made.record).await?;
    audit(store, "key.create", ActionKind::Create, &made.record.id).await?;
    writeln!(std::io::stdout().lock(), "{}", made.key.as_str())?;
    eprintln!(
        "created {} {:?} ({}){}; the key above is shown only now: keep it in a secret store",
        made.record.id,
        made.record.name,
        made.record.scopes.join(", "),
        made.record
            .expires_at
            .map_or(String::new(), |at| format!(", expires {}", rfc3339(at)))
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(store: &SledStore, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let now = unix_now();
    let keys = store.api_keys().await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let listed: Vec<serde_json::Value> =
            keys.iter().map(|key| api_key::summary(key, now)).collect();
        writeln!(out, "{}", serde_json::Value::Array(listed))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 7]> = keys
        .iter()
        .map(|key| {
            let mut state = api_key::state(key, now).name().to_owned();
            if api_key::due_for_rotation(key, now) {
                state.push_str(", older than 90 days: rotate");
            }
            [
                key.id.clone(),
                key.name.escape_debug().to_string(),
                key.scopes.join(","),
                day(Some(key.created_at)),
                day(key.expires_at),
                day(key.last_used_at),
                state,
            ]
        })
        .collect();
    let header = [
        "ID",
        "NAME",
        "SCOPES",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "STATE",
    ]
    .map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A date for the table, `-` for none.
fn day(at: Option<u64>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| rfc3339(at).get(..10).unwrap_or_default().to_owned(),
    )
}

async fn existing(store: &SledStore, id: &str) -> anyhow::Result<ApiKeyRecord> {
    store
        .api_key(id)
        .await?
        .with_context(|| format!("no key with id {id:?}; `perfhook keys list` shows them"))
}

async fn revoke(store: &SledStore, id: &str) -> anyhow::Result<ExitCode> {
    let mut key = existing(store, id).await?;
    if key.revoked_at.is_none() {
        key.revoked_at = Some(unix_now());
        store.put_api_key(&key).await?;
        audit(store, "key.revoke", ActionKind::Delete, &key.id).await?;
    }
    println!("revoked {}", key.id);
    Ok(ExitCode::SUCCESS)
}

async fn rotate(store: &SledStore, args: &RotateArgs) -> anyhow::Result<ExitCode> {
    let now = unix_now();
    let mut old = existing(store, &args.key.id).await?;
    if api_key::state(&old, now) != api_key::KeyState::Active {
        anyhow::bail!(
            "{} is {}; create a new key instead",
            old.id,
            api_key::state(&old, now).name()
        );
    }
    let scopes = old
        .scopes
        .iter()
        .map(|name| {
            <Scope as clap::ValueEnum>::from_str(name, false)
                .map_err(|_| anyhow::anyhow!("{}: unknown scope {name:?} in the store", old.id))
        })
        .collect::<anyhow::Result<Vec<Scope>>>()?;
    let made = api_key::generate(
        &KeySpec {
            name: old.name.clone(),
            scopes,
            mode: old.mode,
            // The replacement lives as long as the original was meant to.
            expires_in: old
                .expires_at
                .map(|at| Duration::from_secs(at.saturating_sub(old.created_at))),
            rate_limit_per_minute: old.rate_limit_per_minute,
        },
        now,
    )?;
    store.put_api_key(&made.record).await?;
    let overlap_ends = now.saturating_add(args.overlap.as_secs());
    old.expires_at = Some(
        old.expires_at
            .map_or(overlap_ends, |at| at.min(overlap_ends)),
    );
    old.replaced_by = Some(made.record.id.clone());
    store.put_api_key(&old).await?;
    audit(store, "key.rotate", ActionKind::Update, &old.id).await?;
    writeln!(std::io::stdout().lock(), "{}", made.key.as_str())?;
    eprintln!(
        "created {} to replace {}, which stops working at {}; the key above is shown only now",
        made.record.id,
        old.id,
        rfc3339(old.expires_at.unwrap_or(overlap_ends))
    );
    Ok(ExitCode::SUCCESS)
}
