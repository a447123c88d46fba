//! perfhook receives webhooks from Perf (usage and budget alerts), proves each one authentic
//! and fresh, and hands it on.
//!
//! # Layout
//! - [`signature`]: the pure verification core (grammars, tolerance, HMAC); no I/O, no clock.
//! - [`capture`]: reads a captured raw HTTP request (for `verify-signature --request`).
//! - [`cli`]: the command-line interface; shares the core with everything else.
//! - [`clock`]: the one place that reads the wall clock.

pub mod capture;
pub mod cli;
pub mod clock;
pub mod signature;
