//! Fuzz bodies: one function per parser, each asserting that parser's invariants. The
//! cargo-fuzz targets under `fuzz/` are one-line calls into these, and `cargo test` runs the
//! same bodies over the committed seeds, any local corpus and proptest-generated input, so
//! the invariants are checked on every CI run without a fuzzer.
//!
//! A body returns normally when its invariants hold and panics (through `assert!`) when one
//! breaks: that is the signal both libFuzzer and the test harness understand. Nothing here is
//! used by the server or the CLI.

// Panicking is this module's way of reporting a broken invariant to the fuzzer; the crate's
// lints against panics are for code that handles input on behalf of the service.
#![allow(clippy::panic, clippy::expect_used, clippy::indexing_slicing)]

mod config;
mod event;
mod forwarded;
mod notification;
mod raw_request;
mod signature_header;
mod store_model;
mod verify;

/// A fuzz body: takes any bytes and panics only when an invariant breaks. It returns whether
/// the input got past the parser's refusals so that every invariant was checked on it; the
/// replay tests use that to prove the seeds reach the deep checks.
pub type Body = fn(&[u8]) -> bool;

/// Every target by name, in the order CI runs them. The name is the directory under
/// `fuzz/seeds/` and the cargo-fuzz target name.
pub const TARGETS: [(&str, Body); 8] = [
    ("signature_header", signature_header::run),
    ("verify", verify::run),
    ("event", event::run),
    ("raw_request", raw_request::run),
    ("config", config::run),
    ("store_model", store_model::run),
    ("notification", notification::run),
    ("forwarded", forwarded::run),
];

pub use config::run as config;
pub use event::run as event;
pub use forwarded::run as forwarded;
pub use notification::run as notification;
pub use raw_request::run as raw_request;
pub use signature_header::run as signature_header;
pub use store_model::run as store_model;
pub use verify::run as verify;

/// Whether `part` lies inside `whole` (by address, not by content): parsers that borrow must
/// hand back slices of their input.
fn is_within(whole: &[u8], part: &[u8]) -> bool {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    p >= start && p.saturating_add(part.len()) <= start.saturating_add(whole.len())
}
