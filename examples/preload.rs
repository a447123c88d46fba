//! Fills a data directory with N stored events, as the receiver stores them, for the growth
//! benchmark (`bench/load.sh --preload N`): load against a store that already holds a million
//! events, and load while retention purges them (`--expired`).
//!
//! `cargo run --release --example preload -- DIR COUNT [--expired]`

#![allow(clippy::expect_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use perfhook::store::{EventRecord, Store};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: preload DIR COUNT [--expired]"));
    let count: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("COUNT must be a number");
    let expired = args.next().as_deref() == Some("--expired");
    let now = perfhook::clock::unix_now();
    // Expired events ended their retention a second ago; the others keep 30 days.
    let expires_at = if expired {
        now.saturating_sub(1)
    } else {
        now + 30 * 86_400
    };
    let store = Store::open(&dir).expect("open the store");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pad = "x".repeat(900);
    let started = Instant::now();
    for i in 0..count {
        let id = format!("evt_preload_{i:010}");
        let body = format!(
            r#"{{"id":"{id}","type":"usage.threshold_reached","livemode":true,"data":{{"pad":"{pad}"}}}}"#
        );
        let record = EventRecord {
            endpoint: "perf".into(),
            id,
            kind: "usage.threshold_reached".into(),
            livemode: Some(true),
            received_at: now,
            body,
        };
        runtime
            .block_on(store.record_if_new(&record, &[], now * 1000, expires_at))
            .expect("record");
    }
    runtime.block_on(store.flush()).expect("flush");
    println!(
        "preloaded {count} events ({}) in {:.1} s; {} bytes on disk",
        if expired { "expired" } else { "kept 30 days" },
        started.elapsed().as_secs_f64(),
        store.size_on_disk().expect("size")
    );
}
