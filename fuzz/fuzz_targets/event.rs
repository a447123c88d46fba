//! Fuzz target `event`: the body and its invariants live in `perfhook::fuzzing`; this target
//! adds the one check a library cannot make, that a parse allocates at most a small multiple
//! of its input.
#![no_main]

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes one parse may allocate for an input of `len` bytes: the id and type strings and
/// serde_json's scratch buffer for an escaped string are each at most the input. A refused
/// body is parsed a second time to name the JSON path, which copies each key it passes (at
/// most the input again) and keeps one path segment per level: at the depth limit that and
/// the error built while unwinding 128 levels cost a fixed ~15 KiB.
fn allocation_bound(len: usize) -> usize {
    6 * len + 24 * 1024
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let region = Region::new(GLOBAL);
    let parsed = perfhook::event::parse_event(data, None);
    let allocated = region.change().bytes_allocated;
    drop(parsed);
    assert!(
        allocated <= allocation_bound(data.len()),
        "parsing {} bytes allocated {allocated} bytes",
        data.len()
    );
    perfhook::fuzzing::event(data);
});
