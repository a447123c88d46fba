//! Header lookup: the one way the core reads request headers, whether they come from actix,
//! a captured request file or a test.

use std::fmt;

/// What a request carries under one header name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The header is absent.
    Missing,
    /// The header is present exactly once, with these value bytes.
    One(&'a [u8]),
    /// The header is present more than once. Signature headers must be sent once: a
    /// second copy would let a proxy or an attacker decide which one a verifier reads.
    Repeated,
}

/// Anything that can answer "what was sent under this header name" (ASCII case-insensitive).
pub trait HeaderLookup {
    /// Looks up every value sent under `name`, compared ASCII case-insensitively.
    fn lookup(&self, name: &str) -> Lookup<'_>;
}

/// Whether `name` is an HTTP field name (RFC 9110 `token`).
#[must_use]
pub fn is_header_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
}

/// An owned list of headers in the order they were received.
///
/// `Debug` prints names and value lengths only: values may hold signatures, and nothing
/// that reaches a log may carry one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeaderList {
    entries: Vec<(String, Vec<u8>)>,
}

impl HeaderList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one header. A name may be pushed more than once.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.entries.push((name.into(), value.into()));
    }

    /// How many headers the list holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The headers in the order they were pushed, values as bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    /// Whether the list holds no header.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl HeaderLookup for HeaderList {
    fn lookup(&self, name: &str) -> Lookup<'_> {
        let mut found = self
            .entries
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        match (found.next(), found.next()) {
            (None, _) => Lookup::Missing,
            (Some((_, value)), None) => Lookup::One(value),
            (Some(_), Some(_)) => Lookup::Repeated,
        }
    }
}

impl fmt::Debug for HeaderList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (name, value) in &self.entries {
            list.entry(&format_args!("{name}: <{} bytes>", value.len()));
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_reports_repeats() {
        let mut headers = HeaderList::new();
        headers.push("X-Perf-Signature", "a");
        headers.push("webhook-id", "b");
        headers.push("Webhook-ID", "c");
        assert_eq!(headers.lookup("x-perf-signature"), Lookup::One(b"a"));
        assert_eq!(headers.lookup("WEBHOOK-ID"), Lookup::Repeated);
        assert_eq!(headers.lookup("stripe-signature"), Lookup::Missing);
    }

    #[test]
    fn debug_shows_lengths_not_values() {
        let mut headers = HeaderList::new();
        headers.push("X-Perf-Signature", "t=1,v1=deadbeef");
        let shown = format!("{headers:?}");
        assert!(shown.contains("X-Perf-Signature: <15 bytes>"), "{shown}");
        assert!(!shown.contains("deadbeef"), "{shown}");
    }
}
