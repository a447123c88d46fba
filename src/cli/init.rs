//! `perfhook init [DIR]`: a commented config that runs as written, a fresh secret file (0600)
//! and a sample alert, so the quick start never asks anyone to copy a value by hand.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::file_modes::PRIVATE_FILE;

const TEMPLATE: &str = include_str!("init_template.toml");
/// The 80% threshold alert from fixtures/events, for `perfhook send`.
pub(super) const SAMPLE_ALERT: &[u8] =
    include_bytes!("../../fixtures/events/usage.threshold_reached.80.json");
/// Random bytes in a generated secret (64 hex digits).
const SECRET_BYTES: usize = 32;

/// Arguments of `init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Where to write perfhook.toml, perfhook.secret and sample-alert.json (created if absent).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
}

pub(super) fn run(args: &InitArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    // Absolute paths, so the config works from whatever directory perfhook is started in.
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let config_file = dir.join("perfhook.toml");
    let secret_file = dir.join("perfhook.secret");
    let sample_file = dir.join("sample-alert.json");
    if !args.force {
        // `symlink_metadata`: a dangling link counts as there, and is never written through.
        if let Some(existing) = [&config_file, &secret_file, &sample_file]
            .into_iter()
            .find(|path| path.symlink_metadata().is_ok())
        {
            anyhow::bail!(
                "{} exists; nothing was written (use --force to replace the files)",
                existing.display()
            );
        }
    }
    let config = TEMPLATE
        .replace("@CONFIG_FILE@", &config_file.display().to_string())
        .replace("@DATA_DIR@", &toml_string(&dir.join("perfhook-data")))
        .replace("@SECRET_FILE@", &toml_string(&secret_file));
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).context("the system's random source failed")?;
    let secret = zeroize::Zeroizing::new(format!("{}\n", hex::encode(secret)));
    write_private(&secret_file, secret.as_bytes(), args.force)?;
    write_private(&config_file, config.as_bytes(), args.force)?;
    write_private(&sample_file, SAMPLE_ALERT, args.force)?;

    let config_file = config_file.display();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {config_file}, {} (a new random secret, mode 0600) and {}",
        secret_file.display(),
        sample_file.display()
    )?;
    writeln!(out, "run the receiver:")?;
    writeln!(out, "  perfhook serve --config {config_file}")?;
    writeln!(
        out,
        "then, in a second terminal, send it a signed test alert:"
    )?;
    writeln!(
        out,
        "  perfhook send --config {config_file} --fresh-id {}",
        sample_file.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `path` as a quoted TOML string (quotes and backslashes escaped).
fn toml_string(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

/// Writes `bytes` to a new file only its owner can read. Never through a link: a new file is
/// created exclusively (`O_EXCL` does not follow links); with `replace`, the bytes go to an
/// exclusive temporary file beside it that is then renamed over the old name, so a link
/// there is replaced, not followed.
fn write_private(path: &Path, bytes: &[u8], replace: bool) -> anyhow::Result<()> {
    let create = |at: &Path| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE)
            .open(at)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if !replace {
        return create(path).with_context(|| format!("cannot write {}", path.display()));
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{:08x}.tmp", fastrand::u32(..)));
    create(&temporary)
        .and_then(|()| std::fs::rename(&temporary, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}
