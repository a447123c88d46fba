//! The `perfhook` binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use perfhook::cli::{run, Cli};

// sled allocates and frees a node copy on most writes; glibc's malloc was about a sixth of
// the receiver's CPU under load, mimalloc a fraction of that (bench/load.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Everything perfhook creates (sled's files, blobs and snapshots, the alert log, request
    // captures) is its user's alone; a configured mode is applied explicitly on top.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            // One plain line with the whole cause chain; usage and I/O errors exit 2.
            eprintln!("perfhook: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
