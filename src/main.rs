//! The `perfhook` binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use perfhook::cli::{run, Cli};

fn main() -> ExitCode {
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
