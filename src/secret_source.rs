//! Reading secret bytes from where they live (an environment variable or a file), shared by
//! the config and the CLI so a secret reads the same everywhere. Bytes are wiped on drop.

use std::io::Read;
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

/// The largest secret file read. Real secrets are tens of bytes; the bound keeps a path that
/// names a device (`/dev/zero`) or a huge file from exhausting memory at start-up.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The bytes of the file at `path`, with one trailing line ending removed (secrets are
/// usually written with `echo`).
///
/// # Errors
/// A message naming the file when it cannot be read or is over
/// [`MAX_SECRET_FILE_BYTES`].
pub fn from_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let cannot = |e: std::io::Error| format!("cannot read secret file {}: {e}", path.display());
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "secret file {} is larger than {MAX_SECRET_FILE_BYTES} bytes",
            path.display()
        ));
    }
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
    fn a_device_or_huge_file_is_refused_without_reading_it_all() {
        let error = from_file(Path::new("/dev/zero")).expect_err("unbounded");
        assert!(error.contains("larger than 65536 bytes"), "{error}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, b"perf-test-secret-0123456789\n").expect("write");
        assert_eq!(
            from_file(&path).expect("read").as_slice(),
            b"perf-test-secret-0123456789"
        );
    }

    #[test]
    fn one_trailing_line_ending_is_removed() {
        assert_eq!(strip_line_ending(b"abc\r\n"), b"abc");
        assert_eq!(strip_line_ending(b"abc\n\n"), b"abc\n");
        assert_eq!(strip_line_ending(b"abc"), b"abc");
    }
}
