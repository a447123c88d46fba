//! Reading what the CLI needs from outside: secrets (from the environment, files or stdin,
//! never from argv, which `ps` shows), headers and bodies.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use clap::Args;
use zeroize::Zeroizing;

use crate::capture::split_header;
use crate::secret_source;
use crate::signature::{HeaderList, KeyReading, RawSecret, Scheme, SecretKey};

/// Where secrets come from. Each may be given several times (rotation); each may carry a
/// label, `LABEL=SOURCE`, reported when that secret matches.
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// Read a secret from this environment variable (`[LABEL=]NAME`; repeatable).
    #[arg(long = "secret-env", value_name = "[LABEL=]NAME")]
    pub env: Vec<String>,
    /// Read a secret from this file; one trailing newline is removed (`[LABEL=]PATH`; repeatable).
    #[arg(long = "secret-file", value_name = "[LABEL=]PATH")]
    pub file: Vec<String>,
    /// Read secrets from standard input, one per line.
    #[arg(long = "secret-stdin")]
    pub stdin: bool,
}

impl SecretArgs {
    /// Loads every secret named on the command line, in the order env, file, stdin.
    ///
    /// # Errors
    /// A missing variable or unreadable file (named), or no secret at all.
    pub fn load(&self) -> anyhow::Result<Vec<RawSecret>> {
        let mut secrets = Vec::new();
        for spec in &self.env {
            let (label, var) = split_label(spec);
            secrets.push(RawSecret {
                name: label.unwrap_or(var).to_owned(),
                bytes: secret_source::from_env(var).map_err(anyhow::Error::msg)?,
            });
        }
        for spec in &self.file {
            let (label, path) = split_label(spec);
            secrets.push(RawSecret {
                name: label.unwrap_or(path).to_owned(),
                bytes: secret_source::from_file(Path::new(path)).map_err(anyhow::Error::msg)?,
            });
        }
        if self.stdin {
            let mut all = Zeroizing::new(Vec::new());
            std::io::stdin()
                .read_to_end(&mut all)
                .context("cannot read secrets from standard input")?;
            let lines = all
                .split(|&b| b == b'\n')
                .map(secret_source::strip_line_ending)
                .filter(|l| !l.is_empty());
            for (index, line) in lines.enumerate() {
                let name = if index == 0 {
                    "stdin".to_owned()
                } else {
                    format!("stdin#{}", index + 1)
                };
                secrets.push(RawSecret {
                    name,
                    bytes: Zeroizing::new(line.to_vec()),
                });
            }
        }
        if secrets.is_empty() {
            bail!("no secret given: use --secret-env NAME, --secret-file PATH or --secret-stdin");
        }
        Ok(secrets)
    }
}

/// Reads each secret as `scheme` does and refuses short keys.
///
/// # Errors
/// The first secret that is empty, undecodable or shorter than the minimum, by name.
pub fn keys_for(scheme: Scheme, secrets: &[RawSecret]) -> anyhow::Result<Vec<SecretKey>> {
    secrets
        .iter()
        .map(|secret| {
            let key = SecretKey::new(&secret.name, &secret.bytes, scheme.default_key_reading())?;
            key.check_length()?;
            Ok(key)
        })
        .collect()
}

/// The reading a scheme applies, for reports.
#[must_use]
pub fn reading_name(reading: KeyReading) -> &'static str {
    match reading {
        KeyReading::Verbatim => "verbatim",
        KeyReading::WhsecBase64 => "whsec_base64",
    }
}

/// Splits `LABEL=REST` when LABEL is a plain word; otherwise the whole spec is the source.
fn split_label(spec: &str) -> (Option<&str>, &str) {
    match spec.split_once('=') {
        Some((label, rest))
            if !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            (Some(label), rest)
        }
        _ => (None, spec),
    }
}

/// Parses `-H 'Name: value'` arguments into `headers`.
///
/// # Errors
/// The first argument that is not `Name: value`.
pub fn push_header_args(headers: &mut HeaderList, args: &[String]) -> anyhow::Result<()> {
    for arg in args {
        let (name, value) = split_header(arg.as_bytes()).with_context(|| {
            format!(
                "-H takes 'Name: value'; got a value without a valid name and colon ({} bytes)",
                arg.len()
            )
        })?;
        headers.push(name, value);
    }
    Ok(())
}

/// Reads a body from a file, or standard input for `-`.
///
/// # Errors
/// An unreadable file, named.
pub fn read_body(source: &str) -> anyhow::Result<Vec<u8>> {
    if source == "-" {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .context("cannot read the body from standard input")?;
        Ok(body)
    } else {
        fs::read(Path::new(source)).with_context(|| format!("cannot read body file {source}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_plain_words_before_the_first_equals() {
        assert_eq!(
            split_label("primary=PERF_SECRET"),
            (Some("primary"), "PERF_SECRET")
        );
        assert_eq!(split_label("PERF_SECRET"), (None, "PERF_SECRET"));
        assert_eq!(split_label("/tmp/a=b"), (None, "/tmp/a=b"));
        assert_eq!(split_label("=x"), (None, "=x"));
    }
}
