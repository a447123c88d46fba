//! Every error a newcomer meets first is one line, printed once, beginning
//! `perfhook: error:`, naming the file, key, flag or setting and the fix.

use std::path::Path;

use crate::helpers::{fixture, perfhook};
use crate::server_helpers::{config, Server, SECRET, SECRET_ENV};

/// One case: the command line, the environment, and what its single line must say.
struct Case<'a> {
    what: &'a str,
    args: Vec<String>,
    env: Vec<(&'a str, &'a str)>,
    says: &'a [&'a str],
}

fn assert_one_line(case: &Case<'_>) {
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let run = perfhook(&args, &case.env, b"");
    assert_eq!(run.code, 2, "{}: {}", case.what, run.stderr);
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "{}: not one line: {:?}",
        case.what,
        run.stderr
    );
    assert!(
        run.stderr.starts_with("perfhook: error: "),
        "{}: {:?}",
        case.what,
        run.stderr
    );
    for part in case.says {
        assert!(
            run.stderr.contains(part),
            "{}: {:?} lacks {part:?}",
            case.what,
            run.stderr
        );
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("path").to_owned()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|&arg| arg.to_owned()).collect()
}

#[test]
fn config_and_usage_mistakes_are_one_line_naming_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mistyped = write(
        dir.path(),
        "mistyped.toml",
        "[server]\nbody_limit_byte = 5\n",
    );
    let broken = write(
        dir.path(),
        "broken.toml",
        "[server]\nlisten = \"a\"\n[storage\n",
    );
    let wrong_type = write(
        dir.path(),
        "wrong_type.toml",
        "[[endpoints]]\nname = \"a\"\npath = \"/a\"\nsecrets = \"whsec_notshown\"\n",
    );
    let pasted = write(
        dir.path(),
        "pasted.toml",
        "[storage]\nretention_days = -1\n",
    );
    let open_admin = write(
        dir.path(),
        "open_admin.toml",
        "[admin]\nlisten = \"0.0.0.0:8081\"\n",
    );
    let folder = dir.path().to_str().expect("path").to_owned();
    let missing = dir.path().join("absent.toml");
    let missing = missing.to_str().expect("path").to_owned();
    let cases = [
        Case {
            what: "a mistyped key",
            args: args(&["config", "check", "--config", &mistyped]),
            env: vec![],
            says: &[
                "mistyped.toml: server.body_limit_byte: unknown key `body_limit_byte`; did you mean `body_limit_bytes`?",
            ],
        },
        Case {
            what: "TOML syntax",
            args: args(&["config", "check", "--config", &broken]),
            env: vec![],
            says: &["broken.toml:3:9: not valid TOML: unclosed table, expected `]`"],
        },
        Case {
            what: "a wrong type, its value unquoted",
            args: args(&["config", "check", "--config", &wrong_type]),
            env: vec![],
            says: &["wrong_type.toml: endpoints[0].secrets: must be an array, not a string"],
        },
        Case {
            what: "a missing config file",
            args: args(&["serve", "--config", &missing]),
            env: vec![],
            says: &["--config ", "absent.toml: no such file (`perfhook init` writes one)"],
        },
        Case {
            what: "a directory given as the config",
            args: args(&["config", "check", "--config", &folder]),
            env: vec![],
            says: &["is a directory, not a file"],
        },
        Case {
            what: "a setting from the environment",
            args: args(&["config", "check"]),
            env: vec![("PERFHOOK_SERVER__LISTEN", "nowhere")],
            says: &["environment: PERFHOOK_SERVER__LISTEN: invalid socket address"],
        },
        Case {
            what: "a mistyped subcommand",
            args: args(&["sned"]),
            env: vec![],
            says: &["unrecognized subcommand 'sned'; a similar subcommand exists: 'send'; see `perfhook --help`"],
        },
        Case {
            what: "a missing argument",
            args: args(&["verify-signature"]),
            env: vec![],
            says: &["not provided: --body", "see `perfhook verify-signature --help`"],
        },
        Case {
            what: "an unknown flag",
            args: args(&["serve", "--bogus"]),
            env: vec![],
            says: &["unexpected argument '--bogus' found; see `perfhook serve --help`"],
        },
        Case {
            what: "a negative number of days",
            args: args(&["config", "check", "--config", &pasted]),
            env: vec![],
            says: &["storage.retention_days: must be a whole number from 0"],
        },
        Case {
            what: "an operator API open to the network without TLS",
            args: args(&["config", "check", "--config", &open_admin]),
            env: vec![("PERFHOOK_SECRET", "0123456789abcdef0123")],
            says: &["admin.listen: a non-loopback address needs [server.tls]"],
        },
        Case {
            what: "a bad flag value names the subcommand's help",
            args: args(&["serve", "--log-format", "text"]),
            env: vec![],
            says: &["invalid value 'text' for '--log-format", "see `perfhook serve --help`"],
        },
        Case {
            what: "a short secret",
            args: args(&["serve", "--data-dir", &folder]),
            env: vec![("PERFHOOK_SECRET", "abc")],
            says: &["3 bytes; at least 16 are required"],
        },
    ];
    for case in &cases {
        assert_one_line(case);
    }
    let shown = perfhook(
        &args(&["config", "check", "--config", &wrong_type])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
        b"",
    );
    assert!(!shown.stderr.contains("notshown"), "{}", shown.stderr);
    let scheme = write(
        dir.path(),
        "scheme.toml",
        "[[endpoints]]\nname = \"a\"\npath = \"/a\"\nscheme = \"sk_live_notshown\"\nsecrets = []\n",
    );
    let shown = perfhook(&["config", "check", "--config", &scheme], &[], b"");
    assert!(
        shown
            .stderr
            .contains("endpoints[0].scheme: unknown scheme (expected perf"),
        "{}",
        shown.stderr
    );
    assert!(!shown.stderr.contains("notshown"), "{}", shown.stderr);
}

#[test]
fn a_busy_data_dir_and_https_to_a_plain_receiver_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &config(dir.path(), "", ""));
    let data = dir.path().join("data");
    let data = data.to_str().expect("path").to_owned();
    let config_file = dir.path().join("perfhook.toml");
    let config_file = config_file.to_str().expect("path").to_owned();
    let alert = fixture("events/usage.threshold_reached.80.json");
    let alert = alert.to_str().expect("path").to_owned();
    let https_url = server
        .url("/webhooks/perf")
        .replacen("http://", "https://", 1);
    let cases = [
        Case {
            what: "a second process on the data dir",
            args: args(&["store", "stats", "--data-dir", &data]),
            env: vec![],
            says: &["another perfhook process is using it; stop that process, or give this one its own --data-dir"],
        },
        Case {
            what: "https to a plain-HTTP receiver",
            args: args(&["send", "--config", &config_file, "--url", &https_url, &alert]),
            env: vec![(SECRET_ENV, SECRET)],
            says: &["the receiver speaks plain HTTP; use an http:// URL"],
        },
    ];
    for case in &cases {
        assert_one_line(case);
    }
}

#[test]
fn send_makes_fresh_ids_on_request_and_explains_the_mode_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &config(dir.path(), "", ""));
    let config_file = dir.path().join("perfhook.toml");
    let config_file = config_file.to_str().expect("path").to_owned();
    let url = server.url("/webhooks/perf");
    let send = |extra: &[&str], file: &str| {
        let file = fixture(file);
        let mut list = vec!["send", "--config", &config_file, "--url", &url];
        list.extend_from_slice(extra);
        list.push(file.to_str().expect("path"));
        perfhook(&list, &[(SECRET_ENV, SECRET)], b"")
    };
    let live = "events/usage.threshold_reached.80.json";
    let answers: Vec<String> = (0..2).map(|_| send(&["--fresh-id"], live).stdout).collect();
    for answer in &answers {
        assert!(answer.contains("\"status\":\"accepted\""), "{answer}");
        assert!(answer.contains("\"id\":\"evt_"), "{answer}");
    }
    assert_ne!(answers[0], answers[1], "two fresh ids are different");

    let first = send(&["--id", "evt_chosen"], live);
    let second = send(&["--id", "evt_chosen"], live);
    assert!(
        first.stdout.contains("\"status\":\"accepted\""),
        "{}",
        first.stdout
    );
    assert!(
        second.stdout.contains("\"status\":\"duplicate\""),
        "{}",
        second.stdout
    );
    assert!(second.stdout.contains("evt_chosen"), "{}", second.stdout);

    let test_mode = send(&[], "events/test_mode.usage.threshold_reached.json");
    assert_eq!(test_mode.code, 1);
    assert!(
        test_mode.stdout.contains("mode_mismatch"),
        "{}",
        test_mode.stdout
    );
    assert!(
        test_mode
            .stderr
            .contains("endpoint \"perf\" has mode = \"live\"")
            && test_mode.stderr.contains("--endpoint NAME"),
        "{}",
        test_mode.stderr
    );
}
