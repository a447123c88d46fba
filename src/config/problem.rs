//! Turns what TOML and figment report into one line that names the file, the key as it is
//! written there and the fix: no caret diagrams, no `default.` profile prefix, no values.

use std::path::Path;

use figment::error::{Actual, Kind};

/// Where a setting came from, as the user wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// The `--config` file.
    File(&'a Path),
    /// `PERFHOOK_SECTION__KEY` variables.
    Environment,
    /// Embedded defaults or flags (a problem there is perfhook's own).
    Defaults,
}

/// Line and column (both from 1) of byte `offset` in `text`.
#[must_use]
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    (line, column)
}

/// A TOML syntax error's own words on one line: `unclosed table, expected ...`.
#[must_use]
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key a figment error points at, as written in the file (`endpoints[0].secrets`) or,
/// for the environment, as the variable (`PERFHOOK_SERVER__LISTEN`).
#[must_use]
pub fn key_name(origin: Origin<'_>, path: &[String]) -> String {
    if origin == Origin::Environment {
        let parts: Vec<String> = path
            .iter()
            .map(|part| part.to_ascii_uppercase().escape_debug().to_string())
            .collect();
        return format!("PERFHOOK_{}", parts.join("__"));
    }
    let mut key = String::new();
    for part in path {
        if part.bytes().all(|byte| byte.is_ascii_digit()) && !part.is_empty() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.extend(part.chars().flat_map(char::escape_debug));
        }
    }
    key
}

/// What is wrong with a key, with the fix where there is one. Never quotes the value: a
/// secret pasted into the wrong key must not reach a terminal or a log.
#[must_use]
pub fn describe(kind: &Kind) -> String {
    match kind {
        Kind::UnknownField(found, expected) => unknown_key(found, expected),
        Kind::UnknownVariant(found, expected) => unknown_value(found, expected),
        Kind::MissingField(name) => format!("`{name}` is required here"),
        Kind::DuplicateField(name) => format!("`{name}` is given twice"),
        Kind::InvalidType(actual, expected) => {
            format!(
                "must be {}, not {}",
                in_toml_words(expected),
                type_of(actual)
            )
        }
        Kind::InvalidValue(_, expected) => format!("must be {}", in_toml_words(expected)),
        Kind::InvalidLength(length, expected) => {
            format!("must be {expected}, not {length} items")
        }
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "is out of range".to_owned(),
        Kind::Unsupported(actual) | Kind::UnsupportedKey(actual, _) => {
            format!("cannot be {}", type_of(actual))
        }
        // Messages from perfhook's own `Deserialize` impls (and serde's) name no values.
        Kind::Message(message) => one_line(message),
    }
}

/// A value outside a fixed set: named only by what it is closest to, never quoted (it may be
/// a secret pasted into the wrong key).
fn unknown_value(found: &str, expected: &[&str]) -> String {
    let choices = expected
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest(found, expected) {
        Some(candidate) => format!("must be one of {choices}; did you mean `{candidate}`?"),
        None => format!("must be one of {choices}"),
    }
}

fn closest<'a>(found: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|candidate| (strsim::jaro_winkler(found, candidate), *candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

fn unknown_key(found: &str, expected: &[&str]) -> String {
    // A quoted TOML key may hold a newline; the message stays on one line.
    let found = found.escape_debug().to_string();
    let found = found.as_str();
    match closest(found, expected) {
        Some(candidate) => format!("unknown key `{found}`; did you mean `{candidate}`?"),
        None if expected.is_empty() => format!("unknown key `{found}`; none is allowed here"),
        None => format!(
            "unknown key `{found}`; expected one of {}",
            expected
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// serde's names for the shapes it wanted, in the words of TOML.
fn in_toml_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
            format!("a whole number from 0 (it must fit a {expected})")
        }
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => {
            format!("a whole number (it must fit an {expected})")
        }
        _ => expected
            .replace("a sequence", "an array")
            .replace("a map", "a table")
            .replace("struct ", "table "),
    }
}

fn type_of(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "empty",
        Actual::Seq => "an array",
        Actual::Map | Actual::NewtypeStruct | Actual::StructVariant => "a table",
        _ => "this kind of value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        assert_eq!(line_and_column("", 0), (1, 1));
        assert_eq!(line_and_column("[server\nx=1", 7), (1, 8));
        assert_eq!(line_and_column("a\nbé=\n", 6), (2, 4));
        assert_eq!(line_and_column("a", 99), (1, 2));
    }

    #[test]
    fn keys_read_as_written_in_the_file_or_as_the_variable() {
        let path = ["endpoints", "0", "secrets"].map(String::from);
        assert_eq!(
            key_name(Origin::File(Path::new("p.toml")), &path),
            "endpoints[0].secrets"
        );
        let path = ["server", "listen"].map(String::from);
        assert_eq!(
            key_name(Origin::Environment, &path),
            "PERFHOOK_SERVER__LISTEN"
        );
    }

    #[test]
    fn a_near_miss_gets_a_suggestion_and_a_stranger_the_list() {
        let expected: &'static [&'static str] = &["listen", "body_limit_bytes", "workers"];
        assert_eq!(
            describe(&Kind::UnknownField("body_limit_byte".into(), expected)),
            "unknown key `body_limit_byte`; did you mean `body_limit_bytes`?"
        );
        assert_eq!(
            describe(&Kind::UnknownField("zzz".into(), expected)),
            "unknown key `zzz`; expected one of `listen`, `body_limit_bytes`, `workers`"
        );
    }

    #[test]
    fn a_value_outside_its_set_is_never_quoted() {
        let expected: &'static [&'static str] = &["power-loss", "process-crash"];
        assert_eq!(
            describe(&Kind::UnknownVariant("power_loss".into(), expected)),
            "must be one of `power-loss`, `process-crash`; did you mean `power-loss`?"
        );
        assert_eq!(
            describe(&Kind::UnknownVariant("whsec_hunter2".into(), expected)),
            "must be one of `power-loss`, `process-crash`"
        );
    }

    #[test]
    fn a_wrong_type_names_types_never_the_value() {
        let message = describe(&Kind::InvalidType(
            Actual::Str("whsec_hunter2".into()),
            "a sequence".into(),
        ));
        assert_eq!(message, "must be an array, not a string");
    }
}
