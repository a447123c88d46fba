//! Fuzz target `signature_header`: the body and its invariants live in `perfhook::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    perfhook::fuzzing::signature_header(data);
});
