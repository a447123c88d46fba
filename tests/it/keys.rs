//! `perfhook keys`: a key is printed once and never stored in clear; listing, revoking and
//! rotating work on the data directory while the receiver is stopped.

use std::path::Path;

use crate::helpers::perfhook;

/// Every file under `dir`, read whole.
fn every_file(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                files.push((path.display().to_string(), bytes));
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[test]
fn keys_are_shown_once_stored_hashed_and_listed_revoked_and_rotated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("path");
    let keys = |args: &[&str]| {
        let mut all = vec!["keys"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", data]);
        perfhook(&all, &[], b"")
    };

    let admin = keys(&[
        "create",
        "--name",
        "ci deploy",
        "--scope",
        "events:read",
        "--scope",
        "keys:admin",
        "--expires-in",
        "90d",
    ]);
    assert_eq!(admin.code, 0, "{}", admin.stderr);
    let admin_key = admin.stdout.trim_end().to_owned();
    assert_eq!(
        admin.stdout.lines().count(),
        1,
        "stdout holds the key alone"
    );
    assert!(admin_key.starts_with("phk_live_"));
    assert_eq!(admin_key.len(), 9 + 43);
    assert!(admin_key[9..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(admin.stderr.contains("shown only now"), "{}", admin.stderr);
    let admin_id = &admin_key[..17];

    let tester = keys(&[
        "create",
        "--name",
        "tester",
        "--scope",
        "events:read",
        "--test",
    ]);
    assert_eq!(tester.code, 0, "{}", tester.stderr);
    let tester_key = tester.stdout.trim_end().to_owned();
    assert!(tester_key.starts_with("phk_test_"));

    // Nothing on disk holds a key or its secret part.
    let files = every_file(Path::new(data));
    assert!(!files.is_empty());
    for key in [&admin_key, &tester_key] {
        for (path, bytes) in &files {
            assert!(
                !contains(bytes, &key.as_bytes()[17..]),
                "{path} holds a key"
            );
        }
    }

    let table = keys(&["list"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.starts_with("ID "), "{}", table.stdout);
    assert!(table.stdout.contains(admin_id) && table.stdout.contains("ci deploy"));
    assert!(table.stdout.contains("events:read,keys:admin"));
    assert!(!table.stdout.contains(&admin_key[17..]) && !table.stdout.contains(&tester_key[17..]));

    let rotated = keys(&["rotate", admin_id]);
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    let new_key = rotated.stdout.trim_end().to_owned();
    assert!(new_key.starts_with("phk_live_") && new_key != admin_key);
    let revoked = keys(&["revoke", &tester_key[..17]]);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);

    let listed = keys(&["list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).expect("json");
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 3);
    let by_id = |id: &str| {
        listed
            .iter()
            .find(|key| key["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
    };
    let old = by_id(admin_id);
    assert_eq!(
        old["state"], "active",
        "the old key works through the overlap"
    );
    assert_eq!(old["replaced_by"], new_key[..17]);
    let overlap_end = old["expires_at"].as_u64().expect("expiry");
    let created = old["created_at"].as_u64().expect("created");
    assert!(overlap_end <= created + 24 * 3600 + 60, "{old}");
    let new = by_id(&new_key[..17]);
    assert_eq!(
        new["scopes"],
        serde_json::json!(["events:read", "keys:admin"])
    );
    assert_eq!(new["name"], "ci deploy");
    assert_eq!(by_id(&tester_key[..17])["state"], "revoked");
    assert_eq!(by_id(&tester_key[..17])["mode"], "test");
    for key in listed {
        assert!(key.get("sha256").is_none(), "{key}");
    }

    let refused_rotation = keys(&["rotate", &tester_key[..17]]);
    assert_eq!(refused_rotation.code, 2);
    assert!(refused_rotation
        .stderr
        .contains("is revoked; create a new key instead"));
    for bad in [
        keys(&["create", "--name", "x", "--scope", "everything"]),
        keys(&["revoke", "phk_live_unknown0"]),
        keys(&["create", "--name", " ", "--scope", "events:read"]),
    ] {
        assert_eq!(bad.code, 2, "{}", bad.stderr);
        assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
        assert!(
            bad.stderr.starts_with("perfhook: error: "),
            "{}",
            bad.stderr
        );
    }
}

#[test]
fn with_the_receiver_running_keys_are_managed_through_its_operator_api() {
    use crate::server_helpers::{config, Server};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("path");
    let offline = |args: &[&str]| {
        let mut all = vec!["keys"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", data]);
        perfhook(&all, &[], b"")
    };
    let admin = offline(&[
        "create",
        "--name",
        "ops",
        "--scope",
        "keys:admin",
        "--scope",
        "audit:read",
        "--scope",
        "events:read",
    ]);
    assert_eq!(admin.code, 0, "{}", admin.stderr);
    let admin = admin.stdout.trim().to_owned();
    let reader = offline(&["create", "--name", "reader", "--scope", "events:read"]);
    let reader = reader.stdout.trim().to_owned();

    let server = Server::start(dir.path(), &config(dir.path(), "", ""));
    let url = server.admin_base();
    let online = |args: &[&str], key: Option<&str>| {
        let mut all = vec!["keys"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", data, "--admin-url", &url]);
        let env: Vec<(&str, &str)> = key.map(|k| ("PERFHOOK_ADMIN_KEY", k)).into_iter().collect();
        perfhook(&all, &env, b"")
    };

    // Locked directory, no key: one line saying what to do.
    let no_key = offline(&["list"]);
    assert_eq!(no_key.code, 2);
    assert!(
        no_key.stderr.contains(
            "the receiver is running; give --config (or --admin-url) and set PERFHOOK_ADMIN_KEY"
        ),
        "{}",
        no_key.stderr
    );
    let made = online(
        &["create", "--name", "ci", "--scope", "events:read"],
        Some(&admin),
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let new_key = made.stdout.trim().to_owned();
    assert!(
        new_key.starts_with("phk_live_") && new_key.len() == 52,
        "{new_key}"
    );
    let rotated = online(&["rotate", &new_key[..17]], Some(&admin));
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    let revoked = online(&["revoke", &new_key[..17]], Some(&admin));
    assert_eq!(revoked.stdout.trim(), format!("revoked {}", &new_key[..17]));
    let table = online(&["list"], Some(&admin));
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert_eq!(table.stdout.lines().count(), 1 + 4, "{}", table.stdout);
    assert!(!table.stdout.contains(&new_key[17..]));

    let denied = online(
        &["create", "--name", "x", "--scope", "events:read"],
        Some(&reader),
    );
    assert_eq!(denied.code, 2);
    assert_eq!(
        denied.stderr.trim(),
        "perfhook: error: 403 insufficient_scope: this API key lacks the keys:admin scope"
    );

    // The audit log through the API: intact, and listed.
    let audit = |args: &[&str]| {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin-url", &url]);
        perfhook(&all, &[("PERFHOOK_ADMIN_KEY", &admin)], b"")
    };
    let verified = audit(&["verify"]);
    assert_eq!(verified.code, 0, "{} {}", verified.stdout, verified.stderr);
    assert!(
        verified.stdout.starts_with("intact: "),
        "{}",
        verified.stdout
    );
    let creations = audit(&["list", "--kind", "create"]);
    assert_eq!(
        creations.stdout.lines().count(),
        3,
        "two offline, one online: {}",
        creations.stdout
    );

    // Every action through the API is audited with the acting key and its address.
    let client = crate::server_helpers::client();
    let mut answer = client
        .get(&format!("{url}/admin/v1/audit?action=key."))
        .header("Authorization", &format!("Bearer {admin}"))
        .call()
        .expect("audit");
    let log: serde_json::Value =
        serde_json::from_str(&answer.body_mut().read_to_string().expect("body")).expect("json");
    let entries = log["entries"].as_array().expect("entries");
    let through_api: Vec<(&str, &str)> = entries
        .iter()
        .filter(|entry| entry["source"] == "127.0.0.1" && entry["kind"] != "auth")
        .map(|entry| {
            (
                entry["action"].as_str().unwrap_or_default(),
                entry["key"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let acting = &admin[..17];
    assert_eq!(
        through_api,
        [
            ("key.revoke", acting),
            ("key.rotate", acting),
            ("key.create", acting)
        ],
        "{log}"
    );
}
