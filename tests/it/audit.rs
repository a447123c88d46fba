//! The audit log: key actions on the data directory are recorded, `audit verify` passes an
//! intact log and names each entry edited, removed or swapped on disk.

use std::path::Path;

use crate::helpers::perfhook;
use crate::server_helpers::copy_dir;

fn keys(data: &str, args: &[&str]) -> String {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", data]);
    let run = perfhook(&all, &[], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.trim().to_owned()
}

/// Changes the stored audit entries directly in sled, as someone with write access to the
/// data directory could.
fn tamper(data: &Path, change: impl FnOnce(&sled::Tree)) {
    let db = sled::open(data).expect("open sled");
    let tree = db.open_tree("perfhook").expect("tree");
    change(&tree);
    tree.flush().expect("flush");
}

/// What was done, how, and what `audit verify` must say.
type TamperCase = (&'static str, fn(&sled::Tree), &'static [&'static str]);

fn entry_key(seq: u64) -> Vec<u8> {
    let mut key = vec![b'a'];
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn verify(data: &Path) -> (i32, String) {
    let run = perfhook(
        &[
            "audit",
            "verify",
            "--data-dir",
            data.to_str().expect("path"),
        ],
        &[],
        b"",
    );
    (run.code, run.stdout)
}

#[test]
fn key_actions_are_audited_and_every_kind_of_tampering_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("path");
    let first = keys(
        data_arg,
        &["create", "--name", "a", "--scope", "events:read"],
    );
    keys(
        data_arg,
        &["create", "--name", "b", "--scope", "audit:read"],
    );
    keys(data_arg, &["rotate", &first[..17]]);
    keys(data_arg, &["revoke", &first[..17]]);
    keys(
        data_arg,
        &["create", "--name", "c", "--scope", "keys:admin"],
    );

    let listed = perfhook(
        &["audit", "list", "--json", "--data-dir", data_arg],
        &[],
        b"",
    );
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).expect("json");
    let actions: Vec<&str> = listed
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| entry["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        actions,
        [
            "key.create",
            "key.revoke",
            "key.rotate",
            "key.create",
            "key.create"
        ],
        "newest first"
    );
    assert!(listed[0]["source"] == "cli" && listed[1]["target"] == first[..17]);
    let revocations = perfhook(
        &["audit", "list", "--kind", "delete", "--data-dir", data_arg],
        &[],
        b"",
    );
    assert_eq!(
        revocations.stdout.lines().count(),
        1,
        "{}",
        revocations.stdout
    );
    assert!(
        !listed.to_string().contains(&first[17..]),
        "no key in the log"
    );

    let (code, out) = verify(&data);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("intact: 5 entries; head "), "{out}");

    let cases: [TamperCase; 3] = [
        (
            "edited",
            |tree| {
                let value = tree.get(entry_key(2)).expect("get").expect("entry 2");
                let mut entry: serde_json::Value = serde_json::from_slice(&value).expect("json");
                entry["outcome"] = "refused".into();
                tree.insert(entry_key(2), serde_json::to_vec(&entry).expect("bytes"))
                    .expect("insert");
            },
            &["tampered: entry 2 was edited"],
        ),
        (
            "removed",
            |tree| {
                tree.remove(entry_key(3)).expect("remove");
            },
            &["tampered: entry 3 is missing"],
        ),
        (
            "swapped",
            |tree| {
                let four = tree.get(entry_key(4)).expect("get").expect("4");
                let five = tree.get(entry_key(5)).expect("get").expect("5");
                tree.insert(entry_key(4), five).expect("insert");
                tree.insert(entry_key(5), four).expect("insert");
            },
            &[
                "tampered: entry 4 holds entry 5: entries were swapped or moved",
                "tampered: entry 5 holds entry 4: entries were swapped or moved",
            ],
        ),
    ];
    for (what, change, expected) in cases {
        let copy = dir.path().join(what);
        copy_dir(&data, &copy);
        tamper(&copy, change);
        let (code, out) = verify(&copy);
        assert_eq!(code, 1, "{what}: {out}");
        assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{what}");
    }
}
