//! SIGHUP on the real binary: new secrets and certificates are taken without dropping a
//! connection, and a configuration that cannot run is refused while the old one serves on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::server_helpers::{
    alert, client, config, now, signature_with, wait_until, Server, SECRET, SECRET_ENV,
};
use crate::test_ca::TestCa;

const NEW_SECRET: &str = "rotated-secret-fedcba9876543210";

/// The standard test config with both endpoints reading their secret from `secret_file`.
fn config_with_secret_file(dir: &Path, secret_file: &Path, server_extra: &str) -> String {
    config(dir, "\"log\"", "")
        .replace(
            &format!("env = \"{SECRET_ENV}\""),
            &format!("file = {:?}", secret_file.display().to_string()),
        )
        .replace("[storage]", &format!("{server_extra}\n\n[storage]"))
}

/// One request on an open keep-alive connection; the answer's status.
fn exchange(stream: &mut TcpStream, secret: &str, id: &str) -> u16 {
    let body = alert(id);
    let (name, value) = signature_with(secret, &body, now());
    let head = format!(
        "POST /webhooks/perf HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{name}: {value}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(&body).expect("write body");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            if key.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("length");
            }
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer).expect("answer body");
    status_line
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn deliver_with(port: u16, secret: &str, id: &str) -> u16 {
    let body = alert(id);
    let header = signature_with(secret, &body, now());
    crate::server_helpers::post(
        &client(),
        &format!("http://127.0.0.1:{port}/webhooks/perf"),
        &[header],
        &body,
    )
    .0
}

#[test]
fn sighup_takes_a_rotated_secret_keeps_open_connections_and_refuses_a_bad_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).expect("write secret");
    let text = config_with_secret_file(dir.path(), &secret_file, "");
    let mut server = Server::start(dir.path(), &text);
    let mut open = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(exchange(&mut open, SECRET, "evt_before"), 200);

    std::fs::write(&secret_file, NEW_SECRET).expect("rotate");
    server.signal("HUP");
    let mut n = 0;
    let rotated = wait_until(Duration::from_secs(10), || {
        n += 1;
        deliver_with(server.port, NEW_SECRET, &format!("evt_new_{n}")) == 200
    });
    assert!(rotated, "the new secret was not taken: {}", server.stderr());
    assert_eq!(deliver_with(server.port, SECRET, "evt_old_secret"), 401);
    // The connection opened before the reload still works, under the new rules.
    assert_eq!(exchange(&mut open, NEW_SECRET, "evt_same_connection"), 200);
    assert_eq!(exchange(&mut open, SECRET, "evt_same_connection_old"), 401);

    // A secret too short to run: refused whole, the running configuration stays.
    std::fs::write(&secret_file, "short").expect("break");
    server.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || server
        .stderr()
        .contains("reload refused")));
    assert!(server.is_running());
    assert_eq!(
        deliver_with(server.port, NEW_SECRET, "evt_after_refusal"),
        200
    );
    // Adding an endpoint needs a restart: refused, naming why.
    std::fs::write(&secret_file, NEW_SECRET).expect("fix");
    let grown = format!(
        "{text}\n[[endpoints]]\nname = \"extra\"\npath = \"/webhooks/extra\"\nnotifiers = []\nsecrets = [{{ name = \"k\", file = {:?} }}]\n",
        secret_file.display().to_string()
    );
    std::fs::write(dir.path().join("perfhook.toml"), grown).expect("grow config");
    server.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || server
        .stderr()
        .contains("needs a restart")));
    assert_eq!(exchange(&mut open, NEW_SECRET, "evt_still_open"), 200);
    server.assert_no_secrets(&[]);
    let all = server.stderr();
    assert!(!all.contains(NEW_SECRET), "the new secret reached the logs");
    let (code, _, _) = server.terminate();
    assert_eq!(code, 0);
}

#[test]
fn sighup_serves_a_renewed_certificate_to_new_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).expect("write secret");
    let first_ca = TestCa::new("first CA");
    let renewed_ca = TestCa::new("renewed CA");
    // Files that keep their names across the renewal, as certbot's live/ links do.
    let live = first_ca.leaf(&["127.0.0.1"], dir.path(), "live");
    let text = config_with_secret_file(
        dir.path(),
        &secret_file,
        &format!(
            "[server.tls]\ncert = {:?}\nkey = {:?}\n",
            live.cert.display().to_string(),
            live.key.display().to_string()
        ),
    );
    let server = Server::start(dir.path(), &text);
    let url = format!("https://127.0.0.1:{}/healthz", server.port);
    let first = first_ca.client();
    assert_eq!(
        first.get(&url).call().expect("first CA").status().as_u16(),
        200
    );
    assert!(renewed_ca.client().get(&url).call().is_err());

    let renewed = renewed_ca.leaf(&["127.0.0.1"], dir.path(), "renewed");
    std::fs::rename(&renewed.cert, &live.cert).expect("renew cert");
    std::fs::rename(&renewed.key, &live.key).expect("renew key");
    server.signal("HUP");
    let taken = wait_until(Duration::from_secs(10), || {
        renewed_ca.client().get(&url).call().is_ok()
    });
    assert!(
        taken,
        "the renewed certificate was not served: {}",
        server.stderr()
    );
    assert!(first_ca.client().get(&url).call().is_err());
    let (code, _, stderr) = server.terminate();
    assert_eq!(code, 0, "{stderr}");
}
