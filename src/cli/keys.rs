//! `perfhook keys create|list|revoke|rotate`: operator API keys, managed on the data
//! directory while the receiver is stopped. A key is printed once, on stdout alone, so a
//! script can capture it; the store keeps only its hash.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::admin_client::{encode, refusal_line, AdminArgs, AdminClient, ADMIN_KEY_ENV};
use super::store_stats::StoreLocation;
use crate::api_key::{self, KeySpec, Scope, DEFAULT_RATE_LIMIT_PER_MINUTE};
use crate::clock::unix_now;
use crate::event::Mode;
use crate::key_lifecycle::{self, Actor};
use crate::notify::rfc3339;
use crate::store::sled::{is_locked, SledStore};
use crate::store::Store;

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

/// Working through a running receiver's operator API instead of the data directory: chosen
/// by `--admin-url` or `--admin-key-file`, or when the receiver holds the data directory,
/// `--config` names it and `PERFHOOK_ADMIN_KEY` is set. The key needs `keys:admin`.
#[derive(Debug, Clone, Args)]
pub struct KeysApi {
    /// The operator API (default: from --config's [admin] listen).
    #[arg(long, value_name = "URL")]
    pub admin_url: Option<String>,
    /// A file holding a `keys:admin` key (default: the PERFHOOK_ADMIN_KEY variable).
    #[arg(long, value_name = "FILE")]
    pub admin_key_file: Option<PathBuf>,
}

impl KeysApi {
    /// A client for the operator API these flags (and `location`'s `--config`) name.
    ///
    /// # Errors
    /// No key, or a config that does not load.
    pub(super) fn client(&self, location: &KeyStore) -> anyhow::Result<AdminClient> {
        AdminClient::new(&AdminArgs {
            admin_url: self.admin_url.clone(),
            admin_key_file: self.admin_key_file.clone(),
            config: location.config.clone(),
        })
    }
}

/// Where a command that works on the data directory or through the operator API goes.
pub(super) enum Route {
    /// The data directory, opened.
    Store(Box<SledStore>),
    /// The PostgreSQL database: no lock to wait for, so always used directly.
    Postgres(crate::store::postgres::PostgresOptions),
    /// The running receiver's operator API.
    Api,
}

impl Route {
    /// The store to work on, opened (`None`: the operator API instead).
    ///
    /// # Errors
    /// When the PostgreSQL database cannot be reached or migrated.
    pub(super) async fn open(self) -> anyhow::Result<Option<Box<dyn Store>>> {
        match self {
            Self::Store(store) => Ok(Some(store)),
            Self::Postgres(options) => {
                let store = crate::store::postgres::PostgresStore::connect_current(&options)
                    .await
                    .context("cannot open the PostgreSQL store ([storage.postgres])")?;
                Ok(Some(Box::new(store)))
            }
            Self::Api => Ok(None),
        }
    }
}

/// The operator API when `--admin-url` or `--admin-key-file` says so, or when the receiver
/// holds the data directory, `--config` names it and `PERFHOOK_ADMIN_KEY` is set; otherwise
/// the data directory (created first when `create`). `scope` is what the key needs, for the
/// message when neither works.
pub(super) fn route(
    location: &KeyStore,
    api: &KeysApi,
    scope: &str,
    create: bool,
) -> anyhow::Result<Route> {
    if api.admin_url.is_some() || api.admin_key_file.is_some() {
        return Ok(Route::Api);
    }
    let path =
        match super::store_stats::locate(location.config.as_deref(), location.data_dir.as_ref())? {
            StoreLocation::DataDir(path) => path,
            StoreLocation::Postgres(options) => return Ok(Route::Postgres(options)),
        };
    if create {
        crate::file_modes::make_private_dir(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    } else if !path.is_dir() {
        anyhow::bail!("{} is not a data directory", path.display());
    }
    match SledStore::open(&path, crate::store::sled::SledOptions::default()) {
        Ok(store) => Ok(Route::Store(Box::new(store))),
        // Only with --config: it names the running receiver's [admin] listen.
        Err(error)
            if is_locked(&error)
                && location.config.is_some()
                && std::env::var_os(ADMIN_KEY_ENV).is_some() =>
        {
            Ok(Route::Api)
        }
        Err(error) if is_locked(&error) => anyhow::bail!(
            "cannot open the store in {}: the receiver is running; give --config (or --admin-url) and set {ADMIN_KEY_ENV} to a {scope} key to work through its operator API, or stop it",
            path.display()
        ),
        Err(error) => {
            Err(error).with_context(|| format!("cannot open the store in {}", path.display()))
        }
    }
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
    pub api: KeysApi,
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
    pub api: KeysApi,
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
    pub api: KeysApi,
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
    let (location, api) = match command {
        KeysCommand::Create(args) => (&args.store, &args.api),
        KeysCommand::List(args) => (&args.store, &args.api),
        KeysCommand::Revoke(args) => (&args.store, &args.api),
        KeysCommand::Rotate(args) => (&args.key.store, &args.key.api),
    };
    // A first key is made before the receiver ever ran: the data directory may not exist.
    let creates = matches!(command, KeysCommand::Create(_));
    let route = route(location, api, "keys:admin", creates)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let Some(store) = runtime.block_on(route.open())? else {
        return through_api(command, location, api);
    };
    let store = store.as_ref();
    let outcome = runtime.block_on(async {
        match command {
            KeysCommand::Create(args) => create(store, args).await,
            KeysCommand::List(args) => list(store, args).await,
            KeysCommand::Revoke(args) => revoke(store, &args.id).await,
            KeysCommand::Rotate(args) => rotate(store, args).await,
        }
    });
    runtime
        .block_on(store.close())
        .context("cannot close the store")?;
    outcome
}

/// The same commands through the operator API.
fn through_api(
    command: &KeysCommand,
    location: &KeyStore,
    api: &KeysApi,
) -> anyhow::Result<ExitCode> {
    let client = api.client(location)?;
    let answer = match command {
        KeysCommand::Create(args) => client.post_json(
            "keys",
            &serde_json::json!({
                "name": args.name,
                "scopes": args.scopes.iter().map(|scope| scope.name()).collect::<Vec<_>>(),
                "expires_in_secs": args.expires_in.map(|d| d.as_secs()),
                "test": args.test,
                "rate_limit_per_minute": args.rate_limit,
            }),
        )?,
        KeysCommand::List(_) => client.get("keys")?,
        KeysCommand::Revoke(args) => client.post(&format!("keys/{}/revoke", encode(&args.id)))?,
        KeysCommand::Rotate(args) => client.post(&format!(
            "keys/{}/rotate?overlap_secs={}",
            encode(&args.key.id),
            args.overlap.as_secs()
        ))?,
    };
    if !(200..300).contains(&answer.status) {
        eprintln!("perfhook: error: {}", refusal_line(&answer));
        return Ok(ExitCode::from(2));
    }
    let body = &answer.json()?;
    match command {
        KeysCommand::Create(_) | KeysCommand::Rotate(_) => {
            println!("{}", body["key"].as_str().unwrap_or_default());
            eprintln!(
                "created {} {:?} ({}); the key above is shown only now: keep it in a secret store",
                body["id"].as_str().unwrap_or_default(),
                body["name"].as_str().unwrap_or_default(),
                body["scopes"]
                    .as_array()
                    .map(|scopes| scopes
                        .iter()
                        .filter_map(serde_json::Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
        }
        KeysCommand::List(args) => {
            let keys = body["keys"].as_array().cloned().unwrap_or_default();
            print_keys(&keys, args.json)?;
        }
        KeysCommand::Revoke(_) => println!("revoked {}", body["id"].as_str().unwrap_or_default()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(store: &dyn Store, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let made = key_lifecycle::create(store, &spec(args), unix_now(), &Actor::cli()).await?;
    print_created(&made);
    Ok(ExitCode::SUCCESS)
}

/// What `keys create`'s flags ask for.
fn spec(args: &CreateArgs) -> KeySpec {
    KeySpec {
        name: args.name.clone(),
        scopes: args.scopes.clone(),
        mode: if args.test { Mode::Test } else { Mode::Live },
        expires_in: args.expires_in,
        rate_limit_per_minute: args.rate_limit,
    }
}

/// The key alone on stdout (for scripts), what it is on stderr.
fn print_created(made: &api_key::NewKey) {
    println!("{}", made.key.as_str());
    eprintln!(
        "created {} {:?} ({}){}; the key above is shown only now: keep it in a secret store",
        made.record.id,
        made.record.name,
        made.record.scopes.join(", "),
        made.record
            .expires_at
            .map_or(String::new(), |at| format!(", expires {}", rfc3339(at)))
    );
}

async fn list(store: &dyn Store, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let now = unix_now();
    let keys: Vec<serde_json::Value> = store
        .api_keys()
        .await?
        .iter()
        .map(|key| api_key::summary(key, now))
        .collect();
    print_keys(&keys, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Key listings (as [`api_key::summary`] writes them) as a table, or a JSON array.
fn print_keys(keys: &[serde_json::Value], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::Value::Array(keys.to_vec()))?;
        return Ok(());
    }
    let text = |key: &serde_json::Value, field: &str| {
        key.get(field)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let rows: Vec<[String; 7]> = keys
        .iter()
        .map(|key| {
            let mut state = text(key, "state");
            if key.get("due_for_rotation") == Some(&serde_json::Value::Bool(true)) {
                state.push_str(", older than 90 days: rotate");
            }
            let date = |field: &str| day(key.get(field).and_then(serde_json::Value::as_u64));
            let scopes: Vec<String> = key
                .get("scopes")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|scope| scope.as_str().map(str::to_owned))
                .collect();
            [
                text(key, "id"),
                text(key, "name").escape_debug().to_string(),
                scopes.join(","),
                date("created_at"),
                date("expires_at"),
                date("last_used_at"),
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
    Ok(())
}

/// A date for the table, `-` for none.
fn day(at: Option<u64>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| rfc3339(at).get(..10).unwrap_or_default().to_owned(),
    )
}

async fn revoke(store: &dyn Store, id: &str) -> anyhow::Result<ExitCode> {
    let key = key_lifecycle::revoke(store, id, unix_now(), &Actor::cli()).await?;
    println!("revoked {}", key.id);
    Ok(ExitCode::SUCCESS)
}

async fn rotate(store: &dyn Store, args: &RotateArgs) -> anyhow::Result<ExitCode> {
    let (made, old) =
        key_lifecycle::rotate(store, &args.key.id, args.overlap, unix_now(), &Actor::cli()).await?;
    println!("{}", made.key.as_str());
    eprintln!(
        "created {} to replace {}, which stops working at {}; the key above is shown only now",
        made.record.id,
        old.id,
        old.expires_at.map_or_else(|| "-".to_owned(), rfc3339)
    );
    Ok(ExitCode::SUCCESS)
}
