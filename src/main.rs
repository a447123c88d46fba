//! The `perfhook` binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use perfhook::cli::{run, usage_error_line, Cli};

// sled allocates and frees a node copy on most writes; glibc's malloc was about a sixth of
// the receiver's CPU under load, mimalloc a fraction of that (bench/load.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sled 0.34 panics while recovering some damaged files; the store catches that panic and
/// reports it as one line naming the data directory, so sled's own panic message and
/// backtrace hint are not printed. Every other panic is reported as usual.
fn quiet_sled_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !perfhook::store::sled::recovering_on_this_thread() {
            report(info);
        }
    }));
}

fn main() -> ExitCode {
    // Everything perfhook creates (sled's files, blobs and snapshots, the alert log, request
    // captures) is its user's alone; a configured mode is applied explicitly on top.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // mimalloc asks for transparent huge pages on its arenas, so where THP is `madvise` (as
    // on Debian) every touched 2 MiB region stays resident whole: 46 MiB more at idle, about
    // 50 MiB more at peak under load, for no measured gain (docs/benchmarks.md). Off before
    // the server allocates. The setting is the process's and is inherited by what it starts
    // (a `command` notifier's program, as README says). Only a kernel older than 3.15 or a
    // seccomp filter refuses it; perfhook then runs as before.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    quiet_sled_panics();
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => match usage_error_line(&error, &args) {
            Some(line) => {
                eprintln!("perfhook: error: {line}");
                return ExitCode::from(2);
            }
            None => error.exit(),
        },
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            // One plain line with the whole cause chain; usage and I/O errors exit 2.
            eprintln!("perfhook: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
