//! File permissions perfhook keeps and checks: the data directory is private to its user
//! (0700, files 0600), and a secret or config file that group or others can read is named in
//! a warning, because a webhook secret in a 0644 file is readable by every local account.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The data directory's mode.
pub const PRIVATE_DIR: u32 = 0o700;
/// The mode of the files perfhook writes (the data directory's, the alert log's default).
pub const PRIVATE_FILE: u32 = 0o600;
/// Bits that let group or others read.
const READABLE_BY_OTHERS: u32 = 0o044;
/// Bits that give group or others any access.
const ANY_ACCESS_BY_OTHERS: u32 = 0o077;

/// What [`make_private_dir`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Privacy {
    /// Paths whose mode it restricted (an upgrade from a looser layout).
    pub tightened: Vec<PathBuf>,
    /// Set when the directory is open to others but also holds files that are not the
    /// store's, so its mode was left alone (a data directory pointed at `/tmp` must not
    /// change `/tmp`).
    pub shared_dir_left_open: bool,
}

/// Whether a directory entry is one the store writes (sled's `conf`, `db`, `snap.*` and
/// `blobs/`).
fn is_store_entry(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    matches!(name.as_ref(), "conf" | "db" | "blobs") || name.starts_with("snap.")
}

/// Creates `dir` (and its parents) as a private directory, or tightens an existing one and
/// the store's files in it (and in `blobs/`). A directory that also holds other files keeps
/// its mode; only the store's own files are tightened then.
///
/// # Errors
/// The I/O error of the step that failed, which names the path.
pub fn make_private_dir(dir: &Path) -> io::Result<Privacy> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
        .map_err(|e| named(dir, "create", e))?;
    let mut privacy = Privacy::default();
    let entries = fs::read_dir(dir)
        .map_err(|e| named(dir, "list", e))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| named(dir, "list", e))?;
    let only_store = entries
        .iter()
        .all(|path| path.file_name().is_some_and(is_store_entry));
    let open_to_others = fs::metadata(dir)
        .map_err(|e| named(dir, "inspect", e))?
        .permissions()
        .mode()
        & ANY_ACCESS_BY_OTHERS
        != 0;
    if only_store {
        tighten(dir, PRIVATE_DIR, &mut privacy.tightened)?;
    } else {
        privacy.shared_dir_left_open = open_to_others;
    }
    let tightened = &mut privacy.tightened;
    for path in entries {
        if !path.file_name().is_some_and(is_store_entry) {
            continue;
        }
        let meta = fs::symlink_metadata(&path).map_err(|e| named(&path, "inspect", e))?;
        if meta.is_dir() {
            tighten(&path, PRIVATE_DIR, tightened)?;
            for inner in fs::read_dir(&path).map_err(|e| named(&path, "list", e))? {
                let inner = inner.map_err(|e| named(&path, "list", e))?.path();
                if fs::symlink_metadata(&inner).is_ok_and(|m| m.is_file()) {
                    tighten(&inner, PRIVATE_FILE, tightened)?;
                }
            }
        } else if meta.is_file() {
            tighten(&path, PRIVATE_FILE, tightened)?;
        }
    }
    Ok(privacy)
}

/// Sets `path` to `mode` when group or others have any access to it.
fn tighten(path: &Path, mode: u32, tightened: &mut Vec<PathBuf>) -> io::Result<()> {
    let meta = fs::metadata(path).map_err(|e| named(path, "inspect", e))?;
    if meta.permissions().mode() & ANY_ACCESS_BY_OTHERS != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| named(path, "restrict the mode of", e))?;
        tightened.push(path.to_path_buf());
    }
    Ok(())
}

/// Gives an open file exactly `mode` when it is a regular file owned by this process's user;
/// anything else (`/dev/null`, a log file another user owns) is left alone, with a warning
/// when its mode differs. Never fails: the file is already open and usable.
pub fn restrict_open_file(file: &fs::File, path: &str, mode: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return;
    };
    let current = meta.permissions().mode() & 0o7777;
    if current == mode {
        return;
    }
    let ours = meta.is_file() && meta.uid() == rustix::process::geteuid().as_raw();
    let changed = ours
        && file
            .set_permissions(fs::Permissions::from_mode(mode))
            .is_ok();
    if !changed && meta.is_file() {
        tracing::warn!(
            path,
            mode = format!("{current:04o}"),
            wanted = format!("{mode:04o}"),
            "cannot set the file's mode (it belongs to another user); it keeps its mode"
        );
    }
}

/// A warning when `path` (a secret or config file) can be read by group or others; `None`
/// when it cannot, or cannot be inspected (reading it reports that error).
#[must_use]
pub fn readable_by_others(path: &Path, what: &str) -> Option<String> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & READABLE_BY_OTHERS != 0).then(|| {
        format!(
            "{what} {} is readable by group or others (mode {mode:04o}); run: chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

/// Parses a mode written in octal (`"0600"`, `"640"`), at most 0777.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode such as \"0600\""))
}

fn named(path: &Path, action: &str, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("cannot {action} {}: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_is_private_and_a_loose_one_is_tightened_with_its_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let fresh = root.path().join("a/b");
        assert_eq!(
            make_private_dir(&fresh).expect("create"),
            Privacy::default()
        );
        assert_eq!(mode(&fresh), 0o700);

        let old = root.path().join("old");
        fs::create_dir_all(old.join("blobs")).expect("mkdir");
        fs::write(old.join("db"), b"x").expect("write");
        fs::write(old.join("blobs/7"), b"x").expect("write");
        for (path, m) in [(&old, 0o755), (&old.join("blobs"), 0o755)] {
            fs::set_permissions(path, fs::Permissions::from_mode(m)).expect("chmod");
        }
        fs::set_permissions(old.join("db"), fs::Permissions::from_mode(0o644)).expect("chmod");
        let tightened = make_private_dir(&old).expect("tighten").tightened;
        assert_eq!(tightened.len(), 4, "{tightened:?}");
        assert_eq!(
            [
                old.clone(),
                old.join("blobs"),
                old.join("db"),
                old.join("blobs/7")
            ]
            .map(|p| mode(&p)),
            [0o700, 0o700, 0o600, 0o600]
        );
        assert_eq!(make_private_dir(&old).expect("again"), Privacy::default());
    }

    #[test]
    fn a_shared_directory_keeps_its_mode_and_only_the_stores_files_are_tightened() {
        let root = tempfile::tempdir().expect("tempdir");
        let shared = root.path().join("shared");
        fs::create_dir(&shared).expect("mkdir");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod");
        fs::write(shared.join("someone-elses"), b"x").expect("write");
        fs::write(shared.join("db"), b"x").expect("write");
        for name in ["someone-elses", "db"] {
            fs::set_permissions(shared.join(name), fs::Permissions::from_mode(0o644))
                .expect("chmod");
        }
        let privacy = make_private_dir(&shared).expect("check");
        assert!(privacy.shared_dir_left_open);
        assert_eq!(privacy.tightened, vec![shared.join("db")]);
        assert_eq!(
            fs::metadata(&shared).expect("meta").permissions().mode() & 0o7777,
            0o1777
        );
        assert_eq!(mode(&shared.join("someone-elses")), 0o644);
    }

    #[test]
    fn a_secret_readable_by_others_is_named_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        fs::write(&path, b"s").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod");
        let warning = readable_by_others(&path, "secret file").expect("warned");
        assert!(
            warning.contains("mode 0666") && warning.contains("chmod 600"),
            "{warning}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(readable_by_others(&path, "secret file"), None);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(
            readable_by_others(&path, "secret file").is_some(),
            "group-readable"
        );
    }

    #[test]
    fn modes_parse_in_octal() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("640"), Ok(0o640));
        assert!(parse_mode("0800").is_err());
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("rw").is_err());
    }
}
