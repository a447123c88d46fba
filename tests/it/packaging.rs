//! What packagers and installers rely on: a truthful `rust-version`, shell completions and a
//! man page that their tools accept.

use std::process::Command;

/// `1.89` or `1.85.0` as comparable numbers (`1.89` is `1.89.0`).
fn version(text: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = text
        .split('.')
        .map(|part| part.parse().expect("a numeric version part"))
        .collect();
    parts.resize(3, 0);
    parts
}

#[test]
fn rust_version_is_the_highest_any_locked_dependency_declares() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let packages = metadata["packages"].as_array().expect("packages");
    let ours = packages
        .iter()
        .find(|package| package["name"] == "perfhook")
        .and_then(|package| package["rust_version"].as_str())
        .expect("perfhook declares a rust-version");
    let highest = packages
        .iter()
        .filter(|package| package["name"] != "perfhook")
        .filter_map(|package| {
            let declared = package["rust_version"].as_str()?;
            Some((version(declared), package["name"].as_str()?.to_owned()))
        })
        .max()
        .expect("some dependency declares a rust-version");
    assert_eq!(
        version(ours),
        highest.0,
        "Cargo.toml says rust-version = {ours:?}; the highest locked dependency, {}, needs {:?}",
        highest.1,
        highest.0
    );
}

/// Runs `program args` with `input` on stdin; its exit status, stdout and stderr.
fn run_with_input(program: &str, args: &[&str], input: &[u8]) -> (bool, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(program)
        .args(args)
        .env("MANWIDTH", "80")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{program} is needed (.ci/run installs it): {error}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_bash_completion_parses_and_completes_every_subcommand() {
    let script = crate::helpers::perfhook(&["completions", "bash"], &[], b"");
    assert_eq!(script.code, 0, "{}", script.stderr);
    let (parsed, _, errors) = run_with_input("bash", &["-n"], script.stdout.as_bytes());
    assert!(parsed, "bash -n: {errors}");
    // Loaded into a shell, it offers the subcommands after `perfhook `.
    let probe = format!(
        "{}\nCOMP_WORDS=(perfhook ''); COMP_CWORD=1; _perfhook perfhook '' perfhook; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.stdout
    );
    let (ran, offered, errors) = run_with_input("bash", &[], probe.as_bytes());
    assert!(ran, "{errors}");
    for subcommand in ["init", "serve", "send", "verify-signature", "store", "man"] {
        assert!(
            offered.lines().any(|line| line == subcommand),
            "{subcommand} not offered: {offered}"
        );
    }
}

#[test]
fn the_man_page_renders_with_every_subcommand_and_the_exit_codes() {
    let page = crate::helpers::perfhook(&["man"], &[], b"");
    assert_eq!(page.code, 0, "{}", page.stderr);
    let (rendered, text, warnings) =
        run_with_input("man", &["--warnings", "-l", "-"], page.stdout.as_bytes());
    assert!(rendered, "man -l: {warnings}");
    assert!(warnings.trim().is_empty(), "roff warnings: {warnings}");
    for heading in [
        "PERFHOOK INIT",
        "PERFHOOK SERVE",
        "PERFHOOK VERIFY-SIGNATURE",
        "PERFHOOK STORE CHECK",
        "EXIT STATUS",
    ] {
        assert!(text.contains(heading), "{heading} missing");
    }
    assert!(text.contains("--fresh-id"));
}
