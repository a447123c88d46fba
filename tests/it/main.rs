//! The one integration-test binary: every area of perfhook tested from outside the crate.

// A failed expectation in a test or its helpers should stop that test loudly; the crate's
// lints against unwrap, expect and panic are for code that handles input.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod admin_api;
mod app;
mod audit;
mod cli;
mod collapse;
mod digest;
mod fields;
#[cfg(feature = "fuzzing")]
mod fuzz_replay;
mod helpers;
mod https;
mod init;
mod keys;
mod mail_text;
mod messages;
mod notifiers;
mod notify_test;
mod operator_cli;
mod packaging;
mod pg_cluster;
mod pg_tls;
mod properties;
mod receiver;
mod refused;
mod reload;
mod replicas;
mod scenario;
mod server;
mod server_helpers;
mod silence;
mod smtp_tls;
mod store_contract;
mod test_ca;
mod ui;
mod ui_browser;
mod vectors;
