//! `config`: the TOML config loader. Input: the file's bytes. Invariants: no panic; every
//! refusal is an error that names the key at fault; a file that loads prints (as
//! `config check` prints it) to TOML that loads back to the same settings.

use crate::config::{ConfigError, Settings};

/// Runs the body on one input.
pub fn run(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let settings = match Settings::from_toml(text) {
        Ok(settings) => settings,
        Err(error) => {
            assert_names_its_key(&error);
            return false;
        }
    };
    let printed = settings.to_toml();
    let Ok(printed) = printed else {
        panic!("loaded settings do not print as TOML: {printed:?}");
    };
    let reloaded = Settings::from_toml(&printed);
    match reloaded {
        Ok(reloaded) => assert_eq!(reloaded, settings, "printed settings load differently"),
        Err(error) => panic!("printed settings do not load: {error}"),
    }
    // Resolving reads secrets; a fuzzed path could name a device or a pipe, so only
    // environment secrets are resolved here (the file reader has its own bound and tests).
    let reads_files = settings
        .endpoints
        .iter()
        .flat_map(|e| &e.secrets)
        .any(|s| s.file.is_some());
    if !reads_files {
        if let Err(error) = settings.resolve() {
            assert_names_its_key(&error);
        }
    }
    true
}

fn assert_names_its_key(error: &ConfigError) {
    let message = error.to_string();
    assert!(!message.trim().is_empty(), "an empty config error");
    assert!(
        !message.contains('\n'),
        "a config error on two lines: {message}"
    );
    match error {
        ConfigError::Invalid { key, .. } => {
            assert!(!key.is_empty(), "a config error without a key: {message}");
            assert!(message.starts_with(key.as_str()));
        }
        ConfigError::Shape { key, .. } => {
            assert!(!key.is_empty(), "a config error without a key: {message}");
        }
        ConfigError::Syntax { line, column, .. } => {
            assert!(*line >= 1 && *column >= 1, "{message}");
        }
        ConfigError::Unreadable { .. } => {}
    }
}
