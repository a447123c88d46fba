//! Reading secret bytes from where they live (an environment variable or a file), shared by
//! the config and the CLI so a secret reads the same everywhere. Bytes are wiped on drop.

use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use zeroize::Zeroizing;

/// The bytes of environment variable `var` (any bytes, not only UTF-8).
///
/// # Errors
/// A message naming the variable when it is not set.
pub fn from_env(var: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    std::env::var_os(var)
        .map(|value| Zeroizing::new(value.into_vec()))
        .ok_or_else(|| format!("environment variable {var} is not set"))
}

/// The bytes of the file at `path`, with one trailing line ending removed (secrets are
/// usually written with `echo`).
///
/// # Errors
/// A message naming the file when it cannot be read.
pub fn from_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?,
    );
    Ok(Zeroizing::new(strip_line_ending(&bytes).to_vec()))
}

/// Removes one trailing `\n` or `\r\n`.
#[must_use]
pub fn strip_line_ending(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_line_ending_is_removed() {
        assert_eq!(strip_line_ending(b"abc\r\n"), b"abc");
        assert_eq!(strip_line_ending(b"abc\n\n"), b"abc\n");
        assert_eq!(strip_line_ending(b"abc"), b"abc");
    }
}
