//! The fuzz bodies on stable, in every `cargo test`: each committed seed and any local
//! corpus replayed through `perfhook::fuzzing`, then proptest-generated input (seeds with
//! bytes flipped, and plain random bytes) through the same bodies. A body panics when an
//! invariant breaks, so a regression fails here without a fuzzer.

use std::path::{Path, PathBuf};

use perfhook::fuzzing::{Body, TARGETS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file in `dir`, sorted; none when the directory does not exist.
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read input");
            (p, bytes)
        })
        .collect()
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    inputs(&fuzz_dir().join("seeds").join(target))
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect()
}

#[test]
fn every_target_has_committed_seeds_and_a_cargo_fuzz_target() {
    for (target, _) in TARGETS {
        assert!(!seeds(target).is_empty(), "no seeds for {target}");
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&source).expect("fuzz target source");
        assert!(
            text.contains(&format!("perfhook::fuzzing::{target}(")),
            "{} does not call its body",
            source.display()
        );
    }
}

#[test]
fn every_seed_and_local_corpus_input_replays_cleanly() {
    for (target, body) in TARGETS {
        let (mut seeds, mut checked) = (0, 0);
        for kind in ["seeds", "corpus"] {
            for (path, bytes) in inputs(&fuzz_dir().join(kind).join(target)) {
                let outcome = std::panic::catch_unwind(|| body(&bytes));
                let Ok(reached) = outcome else {
                    panic!("{target}: {} breaks an invariant", path.display());
                };
                if kind == "seeds" {
                    seeds += 1;
                    checked += usize::from(reached);
                }
            }
        }
        // Seeds include inputs the parsers must refuse; a third must still get through, or
        // the invariants are not being exercised at all. (A local corpus only replays.)
        assert!(
            checked * 3 >= seeds,
            "{target}: only {checked} of {seeds} seeds got past the parser"
        );
    }
}

/// Runs `body` on seeds with up to eight bytes changed, then on plain random bytes.
fn run_generated(target: &str, body: Body, cases: u32) {
    let seeds = seeds(target);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let mutated = (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    )
        .prop_map(|(mut seed, edits)| {
            if !seed.is_empty() {
                for (at, byte) in edits {
                    let i = at.index(seed.len());
                    seed[i] = byte;
                }
            }
            seed
        });
    runner
        .run(&mutated, |input| {
            body(&input);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{target} on a mutated seed: {e}"));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |input| {
            body(&input);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{target} on random bytes: {e}"));
}

macro_rules! generated {
    ($($test:ident: $target:literal, $cases:literal;)*) => {$(
        #[test]
        fn $test() {
            let (_, body) = TARGETS
                .into_iter()
                .find(|(name, _)| *name == $target)
                .expect("a fuzz body by that name");
            run_generated($target, body, $cases);
        }
    )*};
}

generated! {
    signature_header_invariants_hold_on_generated_input: "signature_header", 512;
    verify_invariants_hold_on_generated_input: "verify", 512;
    event_invariants_hold_on_generated_input: "event", 512;
    raw_request_invariants_hold_on_generated_input: "raw_request", 512;
    config_invariants_hold_on_generated_input: "config", 256;
    store_model_invariants_hold_on_generated_input: "store_model", 24;
    notification_invariants_hold_on_generated_input: "notification", 256;
    forwarded_invariants_hold_on_generated_input: "forwarded", 512;
}
