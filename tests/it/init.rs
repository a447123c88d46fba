//! `perfhook init`: the files it writes run as written, and the quick start's two commands
//! reach an accepted alert with no value copied by hand.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::helpers::perfhook;
use crate::server_helpers::{wait_until, Server};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn init_writes_a_config_that_runs_and_a_private_secret_that_send_signs_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("quick");
    let target_arg = target.to_str().expect("path");
    let run = perfhook(&["init", target_arg], &[], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let config_file = target.join("perfhook.toml");
    let secret_file = target.join("perfhook.secret");
    let sample = target.join("sample-alert.json");
    for path in [&config_file, &secret_file, &sample] {
        let mode = std::fs::metadata(path)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    let secret = std::fs::read_to_string(&secret_file).expect("secret");
    assert_eq!(secret.trim_end().len(), 64, "32 random bytes in hex");
    assert!(
        !run.stdout.contains(secret.trim_end()),
        "the secret is never printed"
    );
    let config_arg = config_file.to_str().expect("path");
    let sample_arg = sample.to_str().expect("path");
    assert!(
        run.stdout
            .contains(&format!("perfhook serve --config {config_arg}"))
            && run.stdout.contains(&format!(
                "perfhook send --config {config_arg} --fresh-id {sample_arg}"
            )),
        "{}",
        run.stdout
    );
    let check = perfhook(&["config", "check", "--config", config_arg], &[], b"");
    assert_eq!(check.code, 0, "{}", check.stderr);

    // The config as written, on a free port so tests can run side by side.
    let text = std::fs::read_to_string(&config_file).expect("config");
    assert!(text.contains("listen = \"127.0.0.1:8080\""));
    let text = text
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:8081", "127.0.0.1:0");
    let server = Server::start(&target, &text);
    let url = server.url("/webhooks/perf");
    let send = || {
        perfhook(
            &[
                "send",
                "--config",
                config_arg,
                "--url",
                &url,
                "--fresh-id",
                sample_arg,
            ],
            &[],
            b"",
        )
    };
    for _ in 0..2 {
        let sent = send();
        assert_eq!(sent.code, 0, "{} {}", sent.stdout, sent.stderr);
        assert!(
            sent.stdout.contains("\"status\":\"accepted\""),
            "{}",
            sent.stdout
        );
    }
    // Both are stored; the second is the same 80% crossing of the same budget and period
    // under a new id, so it is collapsed into the first: one notification.
    assert!(wait_until(WAIT, || server
        .stdout()
        .lines()
        .filter(|line| line.contains("\"id\":\"evt_"))
        .count()
        == 1));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        server
            .stdout()
            .lines()
            .filter(|line| line.contains("\"id\":\"evt_"))
            .count(),
        1,
        "{}",
        server.stdout()
    );

    let again = perfhook(&["init", target_arg], &[], b"");
    assert_eq!(again.code, 2);
    assert_eq!(again.stderr.lines().count(), 1, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("exists; nothing was written (use --force"),
        "{}",
        again.stderr
    );
    assert_eq!(std::fs::read_to_string(&secret_file).expect("kept"), secret);
    let forced = perfhook(&["init", "--force", target_arg], &[], b"");
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_ne!(std::fs::read_to_string(&secret_file).expect("new"), secret);
}

#[test]
fn init_never_writes_through_a_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("quick");
    std::fs::create_dir(&target).expect("mkdir");
    let elsewhere = dir.path().join("elsewhere.txt");
    std::os::unix::fs::symlink(&elsewhere, target.join("perfhook.secret")).expect("link");
    let target_arg = target.to_str().expect("path");

    let refused = perfhook(&["init", target_arg], &[], b"");
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("perfhook.secret exists"),
        "{}",
        refused.stderr
    );
    assert!(
        !elsewhere.exists(),
        "nothing written through the dangling link"
    );

    std::fs::write(&elsewhere, "not yours").expect("write");
    let forced = perfhook(&["init", "--force", target_arg], &[], b"");
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(
        std::fs::read_to_string(&elsewhere).expect("read"),
        "not yours"
    );
    let secret = target.join("perfhook.secret");
    let meta = std::fs::symlink_metadata(&secret).expect("meta");
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by a file"
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}
