//! Fuzz target `forwarded`: the body and its invariants live in `perfhook::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    perfhook::fuzzing::forwarded(data);
});
