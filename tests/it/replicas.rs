//! Several replicas of the real binary on one PostgreSQL database (the test process's
//! private cluster): deliveries spread across them are accepted exactly once and notified
//! exactly once, and a replica killed with SIGKILL mid-load loses nothing that any replica
//! acknowledged; the others send its claimed jobs once its leases end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::server_helpers::{alert, client, config, now, signature, wait_until, Server};

/// A database for this test, or `None` (SKIPPED) without PostgreSQL.
fn database() -> Option<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(crate::pg_cluster::fresh_database())
}

/// Runs one query on the database at `url`, over a connection of its own.
fn query(
    url: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<tokio_postgres::Row> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            let driver = tokio::spawn(connection);
            let rows = client.query(sql, params).await.expect("query");
            drop(client);
            let _ = driver.await;
            rows
        })
}

/// The ids stored in the database at `url`.
fn stored_ids(url: &str) -> BTreeSet<String> {
    query(
        url,
        "SELECT id FROM perfhook_events WHERE endpoint = 'perf'",
        &[],
    )
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// A replica: the server tests' config on PostgreSQL, logging alerts to stdout.
fn replica(dir: &Path, url: &str, lease_secs: u64) -> Server {
    let lease = lease_secs.to_string();
    Server::start_with_env(
        dir,
        &config(dir, "\"log\"", ""),
        &[
            ("PERFHOOK_STORAGE__BACKEND", "postgres"),
            ("PERFHOOK_DATABASE_URL", url),
            ("PERFHOOK_OUTBOX__LEASE_SECS", lease.as_str()),
        ],
    )
}

/// POSTs a signed alert with `id` to `server`; the answer's status word, or `None` when the
/// replica did not answer (it is dead).
fn send(agent: &ureq::Agent, server_url: &str, id: &str) -> Option<(u16, String)> {
    let body = alert(id);
    let (name, value) = signature(&body, now());
    let mut response = agent
        .post(server_url)
        .header("Content-Type", "application/json")
        .header(name.as_str(), value.as_str())
        .send(&body[..])
        .ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().ok()?;
    let answer: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        status,
        answer["status"]
            .as_str()
            .or_else(|| answer["error"]["type"].as_str())
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// How many log-notifier lines name each id, over every replica's stdout.
fn notified(outputs: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for output in outputs {
        for line in output.lines() {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
                if let (Some(id), Some(_)) = (value["id"].as_str(), value["alert"].as_str()) {
                    *counts.entry(id.to_owned()).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

#[test]
fn three_replicas_accept_each_event_once_and_notify_it_once() {
    let Some(url) = database() else { return };
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let replicas: Vec<Server> = dirs
        .iter()
        .map(|dir| replica(dir.path(), &url, 1_200))
        .collect();
    let urls: Vec<String> = replicas
        .iter()
        .map(|replica| replica.url("/webhooks/perf"))
        .collect();

    // 24 identical deliveries at once, eight to each replica: one is accepted.
    let start = std::sync::Barrier::new(24);
    let answers: Vec<Option<(u16, String)>> = thread::scope(|scope| {
        let sends: Vec<_> = (0..24)
            .map(|i| {
                let (url, start) = (&urls[i % 3], &start);
                scope.spawn(move || {
                    let agent = client();
                    start.wait();
                    send(&agent, url, "evt_same")
                })
            })
            .collect();
        sends
            .into_iter()
            .map(|send| send.join().expect("thread"))
            .collect()
    });
    let words: Vec<&str> = answers
        .iter()
        .map(|answer| answer.as_ref().map_or("none", |(_, word)| word.as_str()))
        .collect();
    assert_eq!(
        words.iter().filter(|word| **word == "accepted").count(),
        1,
        "{words:?}"
    );
    assert_eq!(
        words.iter().filter(|word| **word == "duplicate").count(),
        23,
        "{words:?}"
    );

    // 1,500 unique deliveries from six senders, spread across the replicas.
    let unique: Vec<String> = (0..1_500).map(|i| format!("evt_u{i:05}")).collect();
    thread::scope(|scope| {
        for sender in 0..6 {
            let (unique, urls) = (&unique, &urls);
            scope.spawn(move || {
                let agent = client();
                for (i, id) in unique.iter().enumerate().skip(sender).step_by(6) {
                    let answer = send(&agent, &urls[i % 3], id);
                    assert_eq!(
                        answer,
                        Some((200, "accepted".to_owned())),
                        "{id} on replica {}",
                        i % 3
                    );
                }
            });
        }
    });
    let stored = stored_ids(&url);
    assert_eq!(stored.len(), 1_501, "every event stored");

    // Each one notified exactly once, by whichever replica claimed its job.
    let settled = wait_until(Duration::from_secs(60), || {
        let outputs: Vec<String> = replicas.iter().map(Server::stdout).collect();
        notified(&outputs).len() == 1_501
    });
    thread::sleep(Duration::from_secs(2));
    let outputs: Vec<String> = replicas.iter().map(Server::stdout).collect();
    let counts = notified(&outputs);
    assert!(settled, "{} of 1501 notified", counts.len());
    let twice: Vec<&String> = counts
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(twice.is_empty(), "notified more than once: {twice:?}");
    let per_replica: Vec<usize> = outputs
        .iter()
        .map(|output| notified(std::slice::from_ref(output)).len())
        .collect();
    eprintln!("notifications sent per replica: {per_replica:?}");
}

#[test]
fn a_replica_killed_mid_load_loses_nothing_acknowledged_and_its_jobs_are_sent_by_the_others() {
    let Some(url) = database() else { return };
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    // Every replica notifies through a command that takes 10 ms and appends the event id to
    // one shared file, so each replica holds claimed jobs (in flight) when one is killed.
    let sent_file = dirs[0].path().join("sent.txt");
    let slow = format!(
        "[notifiers.slow]\nkind = \"command\"\nprogram = \"/bin/sh\"\nargs = [\"-c\", \"sleep 0.01; echo \\\"$PERFHOOK_EVENT_ID\\\" >> {}\"]\ntimeout_ms = 5000\n",
        sent_file.display()
    );
    // A short lease, so the dead replica's claims come back within the test.
    let mut replicas: Vec<Option<Server>> = dirs
        .iter()
        .map(|dir| {
            Some(Server::start_with_env(
                dir.path(),
                &config(dir.path(), "\"slow\"", &slow),
                &[
                    ("PERFHOOK_STORAGE__BACKEND", "postgres"),
                    ("PERFHOOK_DATABASE_URL", url.as_str()),
                    ("PERFHOOK_OUTBOX__LEASE_SECS", "3"),
                ],
            ))
        })
        .collect();
    let urls: Vec<String> = replicas
        .iter()
        .flatten()
        .map(|replica| replica.url("/webhooks/perf"))
        .collect();
    let sent = || -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for id in std::fs::read_to_string(&sent_file)
            .unwrap_or_default()
            .lines()
        {
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
        counts
    };

    let acknowledged = std::sync::Mutex::new(BTreeSet::new());
    let leased_at_kill = thread::scope(|scope| {
        for sender in 0..4 {
            let (urls, acknowledged) = (&urls, &acknowledged);
            scope.spawn(move || {
                let agent = client();
                for i in 0..400 {
                    let id = format!("evt_k{sender}_{i:04}");
                    if let Some((200, word)) = send(&agent, &urls[i % 3], &id) {
                        assert_eq!(word, "accepted");
                        acknowledged.lock().expect("lock").insert(id);
                    }
                }
            });
        }
        // Mid-load: SIGKILL replica 0, then count the claims left in the database.
        thread::sleep(Duration::from_millis(1_500));
        drop(replicas[0].take().expect("replica 0").kill9());
        leased_jobs(&url)
    });
    assert!(
        leased_at_kill > 0,
        "no job was claimed at the kill: the takeover is not exercised"
    );
    let acknowledged = acknowledged.into_inner().expect("lock");
    assert!(
        acknowledged.len() > 800,
        "{} acknowledged",
        acknowledged.len()
    );

    // Every acknowledged id is stored, and a duplicate on every surviving replica.
    let stored = stored_ids(&url);
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    let agent = client();
    for id in acknowledged.iter().step_by(25) {
        for url in &urls[1..] {
            assert_eq!(
                send(&agent, url, id),
                Some((200, "duplicate".to_owned())),
                "{id}"
            );
        }
    }

    // Every stored event is notified: the survivors send what the dead replica had claimed
    // once its 3 s leases end.
    let settled = wait_until(Duration::from_secs(90), || {
        let counts = sent();
        stored.iter().all(|id| counts.contains_key(id))
    });
    let counts = sent();
    let unsent: Vec<&String> = stored
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(settled, "stored but never notified: {unsent:?}");
    // A job the dead replica was sending when it died is sent again after its lease: at
    // least once. At most its claim batch (4) can go out twice.
    let twice: Vec<&String> = counts
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(id, _)| id)
        .collect();
    eprintln!(
        "acknowledged {}, stored {}, claimed at the kill {leased_at_kill}, notified twice {}",
        acknowledged.len(),
        stored.len(),
        twice.len()
    );
    assert!(twice.len() <= 4, "sent twice: {twice:?}");
}

/// Pending jobs holding a lease that has not ended.
fn leased_jobs(url: &str) -> i64 {
    let now_ms = i64::try_from(now() * 1000).expect("ms");
    query(
        url,
        "SELECT count(*) FROM perfhook_jobs WHERE status = 'pending' AND lease_until_ms > $1",
        &[&now_ms],
    )
    .first()
    .map_or(0, |row| row.get(0))
}

#[test]
fn the_database_stopped_for_30_s_under_load_costs_503s_and_nothing_acknowledged() {
    let Some(cluster) = crate::pg_cluster::private() else {
        return;
    };
    let url = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(cluster.create_database());
    let dir = tempfile::tempdir().expect("tempdir");
    // A claim committed just as the database went away, its answer lost with the
    // connection, keeps its jobs until the lease ends: a short one here.
    let server = replica(dir.path(), &url, 5);
    let target = server.url("/webhooks/perf");
    let ready = |server: &Server| {
        client()
            .get(&server.url("/readyz"))
            .call()
            .map(|response| response.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(ready(&server), 200);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let acknowledged = std::sync::Mutex::new(BTreeSet::new());
    let refused = std::sync::atomic::AtomicUsize::new(0);
    thread::scope(|scope| {
        for sender in 0..2 {
            let (target, stop, acknowledged, refused) = (&target, &stop, &acknowledged, &refused);
            scope.spawn(move || {
                let agent = client();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let id = format!("evt_o{sender}_{i:05}");
                    i += 1;
                    match send(&agent, target, &id) {
                        Some((200, word)) => {
                            assert_eq!(word, "accepted");
                            acknowledged.lock().expect("lock").insert(id);
                        }
                        Some((503, word)) => {
                            assert_eq!(word, "storage_unavailable", "{id}");
                            refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        other => panic!("{id}: {other:?}"),
                    }
                }
            });
        }
        thread::sleep(Duration::from_secs(1));
        cluster.stop();
        // Down: not ready, deliveries refused with 503 (the sender retries them).
        assert!(
            wait_until(Duration::from_secs(15), || ready(&server) == 503),
            "/readyz stays ready with the database down"
        );
        thread::sleep(Duration::from_secs(30));
        cluster.start();
        // Back without a restart.
        assert!(
            wait_until(Duration::from_secs(30), || ready(&server) == 200),
            "/readyz does not recover"
        );
        let before = acknowledged.lock().expect("lock").len();
        assert!(
            wait_until(Duration::from_secs(30), || acknowledged
                .lock()
                .expect("lock")
                .len()
                > before + 20),
            "deliveries are not accepted again"
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let acknowledged = acknowledged.into_inner().expect("lock");
    let refused = refused.into_inner();
    assert!(
        refused > 0,
        "no delivery was refused while the database was down"
    );
    let stored = stored_ids(&url);
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            let counts = notified(&[server.stdout()]);
            acknowledged.iter().all(|id| counts.contains_key(id))
        }),
        "an acknowledged event was never notified: {:?}; log: {}",
        {
            let counts = notified(&[server.stdout()]);
            acknowledged
                .iter()
                .filter(|id| !counts.contains_key(*id))
                .take(5)
                .collect::<Vec<_>>()
        },
        server
            .stderr()
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "database down 30 s: {} acknowledged, {refused} refused with 503, all stored and notified",
        acknowledged.len()
    );
}

#[test]
fn store_migrate_prints_then_applies_the_schema_once() {
    let Some(url) = database() else { return };
    let env = [
        ("PERFHOOK_STORAGE__BACKEND", "postgres"),
        ("PERFHOOK_DATABASE_URL", url.as_str()),
    ];
    let dry = crate::helpers::perfhook(&["store", "migrate", "--dry-run"], &env, b"");
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.starts_with("-- migration 1: "), "{}", dry.stdout);
    assert!(dry.stdout.contains("-- migration 2: "), "{}", dry.stdout);
    assert!(
        dry.stdout.contains("CREATE TABLE perfhook_events"),
        "{}",
        dry.stdout
    );
    let applied = crate::helpers::perfhook(&["store", "migrate"], &env, b"");
    assert_eq!(
        (applied.code, applied.stdout.trim()),
        (0, "applied migrations 1, 2, 3, 4"),
        "{}",
        applied.stderr
    );
    let again = crate::helpers::perfhook(&["store", "migrate", "--dry-run"], &env, b"");
    assert_eq!(
        again.stdout.trim(),
        "-- the database is up to date: no migration pending"
    );
    // The URL is a secret: a wrong one is named by its variable, never shown.
    let wrong = crate::helpers::perfhook(
        &["store", "migrate"],
        &[
            ("PERFHOOK_STORAGE__BACKEND", "postgres"),
            (
                "PERFHOOK_DATABASE_URL",
                "postgres://perf:hunter2@127.0.0.1:1/none",
            ),
        ],
        b"",
    );
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("hunter2"), "{}", wrong.stderr);
    assert_eq!(wrong.stderr.lines().count(), 1, "{}", wrong.stderr);
}

/// With PostgreSQL there is no data directory to lock: `keys` and `audit` work on the
/// database directly once it is migrated (the first admin key is made this way), and the
/// data-directory commands say they need sled instead of reading an empty directory.
#[test]
fn keys_and_audit_work_on_the_database_and_data_directory_commands_say_they_need_sled() {
    let Some(url) = database() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("never-created");
    let data_dir_env = data_dir.display().to_string();
    let env = [
        ("PERFHOOK_STORAGE__BACKEND", "postgres"),
        ("PERFHOOK_DATABASE_URL", url.as_str()),
        ("PERFHOOK_STORAGE__PATH", data_dir_env.as_str()),
    ];
    // The command line never migrates: a fresh database is refused until it is migrated.
    let unmigrated = crate::helpers::perfhook(&["keys", "list"], &env, b"");
    assert_eq!(unmigrated.code, 2, "{}", unmigrated.stderr);
    assert!(
        unmigrated.stderr.contains("perfhook store migrate"),
        "{}",
        unmigrated.stderr
    );
    let migrated = crate::helpers::perfhook(&["store", "migrate"], &env, b"");
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    let created = crate::helpers::perfhook(
        &["keys", "create", "--name", "ops", "--scope", "keys:admin"],
        &env,
        b"",
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let key = created.stdout.trim().to_owned();
    assert!(key.starts_with("phk_live_"), "{key}");
    let stored = query(&url, "SELECT record FROM perfhook_api_keys", &[]);
    assert_eq!(stored.len(), 1);
    let record: String = stored.first().map(|row| row.get(0)).unwrap_or_default();
    assert!(
        !record.contains(&key[17..]),
        "the secret part is stored in clear"
    );
    let listed = crate::helpers::perfhook(&["keys", "list", "--json"], &env, b"");
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("\"ops\""), "{}", listed.stdout);
    let audit = crate::helpers::perfhook(&["audit", "verify"], &env, b"");
    assert_eq!(audit.code, 0, "{}{}", audit.stdout, audit.stderr);
    assert!(
        audit.stdout.starts_with("intact: 1 entries"),
        "{}",
        audit.stdout
    );
    for command in ["stats", "check"] {
        let refused = crate::helpers::perfhook(&["store", command], &env, b"");
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
        assert!(
            refused.stderr.contains("storage.backend is postgres"),
            "{}",
            refused.stderr
        );
    }
    // A sled directory named beside a PostgreSQL config is refused, not filled with a key
    // the replicas would never see.
    let elsewhere = crate::helpers::perfhook(
        &[
            "keys",
            "create",
            "--name",
            "x",
            "--scope",
            "events:read",
            "--data-dir",
            data_dir_env.as_str(),
        ],
        &env,
        b"",
    );
    assert_eq!(elsewhere.code, 2, "{}", elsewhere.stderr);
    assert!(
        elsewhere.stderr.contains("--data-dir"),
        "{}",
        elsewhere.stderr
    );
    assert!(!data_dir.exists(), "a data directory was created");
}
