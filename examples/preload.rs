//! Fills a data directory with N stored events, as the receiver stores them, for the growth
//! benchmark (`bench/load.sh --preload N`): load against a store that already holds a million
//! events, and load while retention purges them (`--expired`).
//!
//! `cargo run --release --example preload -- DIR COUNT [--expired]`

#![allow(clippy::expect_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use perfhook::store::sled::{Durability, SledOptions, SledStore};
use perfhook::store::{EventRecord, NewEvent, Store};

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
    // Durable at the end (one flush of the last group is all a preload needs).
    let options = SledOptions {
        durability: Durability::ProcessCrash,
        ..SledOptions::default()
    };
    let store = std::sync::Arc::new(SledStore::open(&dir, options).expect("open the store"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pad = "x".repeat(900);
    let started = Instant::now();
    // Many writers at once, so the store's writer groups them as the receiver does.
    const WRITERS: u64 = 64;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let (store, pad) = (std::sync::Arc::clone(&store), pad.clone());
            tasks.push(tokio::spawn(async move {
                for i in (writer..count).step_by(64) {
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
                    store
                        .record(NewEvent {
                            deferred: Default::default(),
                            record,
                            notifiers: Vec::new(),
                            expires_at,
                            budget: None,
                        })
                        .await
                        .expect("record");
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
        store.close().await.expect("close");
    });
    println!(
        "preloaded {count} events ({}) in {:.1} s; {} bytes on disk",
        if expired { "expired" } else { "kept 30 days" },
        started.elapsed().as_secs_f64(),
        store.disk_bytes().unwrap_or_default()
    );
}
