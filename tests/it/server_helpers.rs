//! Real parts for the receiver's tests: the perfhook binary as a server on 127.0.0.1:0 with a
//! temp data dir, a real SMTP server (aiosmtpd) writing a Maildir, and a signing client.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use perfhook::signature::{sign, Delivery, KeyReading, Scheme, SecretKey};

pub const SECRET: &str = "server-test-secret-0123456789abcdef";
pub const SECRET_ENV: &str = "PERFHOOK_TEST_SECRET";

/// The binary under test: `PERFHOOK_BIN` (e.g. the release build) or the test build.
pub fn binary() -> String {
    std::env::var("PERFHOOK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_perfhook").to_owned())
}

/// A free loopback port (bound then released; the race is acceptable on loopback).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `check` until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// A running `perfhook serve`.
pub struct Server {
    child: Child,
    pub port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut all = into.lock().expect("lock");
            all.push_str(&line);
            all.push('\n');
        }
    });
}

/// The config every server test starts from: one `perf` endpoint, log to stdout, plus `extra`.
pub fn config(dir: &Path, notifiers: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
body_limit_bytes = 4096
body_read_timeout_ms = 1000

[storage]
path = {data:?}

[outbox]
initial_backoff_ms = 200
max_backoff_ms = 1000
max_attempts = 50

[admin]
listen = "127.0.0.1:0"

[[endpoints]]
name = "perf"
path = "/webhooks/perf"
scheme = "perf"
notifiers = [{notifiers}]
secrets = [{{ name = "primary", env = "{SECRET_ENV}" }}]

[[endpoints]]
name = "perf-test"
path = "/webhooks/perf-test"
mode = "test"
notifiers = []
secrets = [{{ name = "primary", env = "{SECRET_ENV}" }}]

[notifiers.log]
kind = "log"
target = "stdout"
{extra}
"#,
        data = dir.join("data").display().to_string(),
    )
}

impl Server {
    /// Starts `perfhook serve --config` with `config_text` written into `dir`.
    pub fn start(dir: &Path, config_text: &str) -> Self {
        Self::start_with_env(dir, config_text, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(dir: &Path, config_text: &str, env: &[(&str, &str)]) -> Self {
        let path = dir.join("perfhook.toml");
        std::fs::write(&path, config_text).expect("write config");
        let mut child = Command::new(binary())
            .args(["serve", "--config", path.to_str().expect("path")])
            .env(SECRET_ENV, SECRET)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn perfhook serve");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("stdout"), Arc::clone(&stdout));
        collect(child.stderr.take().expect("stderr"), Arc::clone(&stderr));
        let mut server = Self {
            child,
            port: 0,
            stdout,
            stderr,
        };
        let started = wait_until(Duration::from_secs(20), || {
            server.listening_port().is_some()
        });
        assert!(started, "server did not start: {}", server.stderr());
        server.port = server.listening_port().expect("port");
        server
    }

    fn listening_port(&self) -> Option<u16> {
        let logs = self.stderr();
        let line = logs
            .lines()
            .find(|l| l.contains("\"message\":\"listening\""))?;
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        value["address"].as_str()?.rsplit(':').next()?.parse().ok()
    }

    /// The operator API's base URL (`http://127.0.0.1:PORT`), from its start-up log line.
    pub fn admin_base(&self) -> String {
        let logs = self.stderr();
        let line = logs
            .lines()
            .find(|l| l.contains("\"message\":\"admin API listening\""))
            .expect("the admin API is listening");
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        format!("http://{}", value["address"].as_str().expect("address"))
    }

    /// Sends `signal` (`HUP`, `TERM`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/PID/status` figure in KiB (`VmRSS`, or `VmHWM` for the peak so far).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("memory figure")
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("lock").clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Log notifier lines for `id` on stdout.
    pub fn alert_lines(&self, id: &str) -> usize {
        let needle = format!("\"id\":\"{id}\"");
        self.stdout()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> (i32, String, String) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        thread::sleep(Duration::from_millis(100));
        (exit.code().unwrap_or(-1), self.stdout(), self.stderr())
    }

    /// Waits for the process to end by itself; its exit code (`None` for a signal).
    pub fn wait_exit(&mut self) -> Option<i32> {
        let status = self.child.wait().expect("wait");
        thread::sleep(Duration::from_millis(100));
        status.code()
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill9(mut self) -> String {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
        thread::sleep(Duration::from_millis(100));
        self.stdout()
    }

    /// Asserts that nothing the server printed holds the secret or any of `signatures`.
    pub fn assert_no_secrets(&self, signatures: &[String]) {
        let all = format!("{}{}", self.stdout(), self.stderr());
        assert!(!all.contains(SECRET), "the secret reached the logs");
        for signature in signatures {
            let tag = signature.rsplit('=').next().unwrap_or(signature);
            assert!(!all.contains(tag), "a signature reached the logs");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The signature header for `body` at `timestamp`.
pub fn signature(body: &[u8], timestamp: u64) -> (String, String) {
    signature_with(SECRET, body, timestamp)
}

/// The signature header for `body` at `timestamp`, signed with `secret`.
pub fn signature_with(secret: &str, body: &[u8], timestamp: u64) -> (String, String) {
    let key = SecretKey::new("k", secret.as_bytes(), KeyReading::Verbatim).expect("key");
    sign(
        Scheme::Perf,
        &[key],
        Delivery {
            timestamp,
            id: None,
            body,
        },
    )
    .expect("sign")
    .remove(0)
}

pub fn now() -> u64 {
    perfhook::clock::unix_now()
}

/// A body shaped like a Perf alert with the given id.
pub fn alert(id: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"usage.threshold_reached","created":1763900000,"livemode":true,"data":{{"budget":{{"period":"monthly","limit":"500.00","currency":"USD"}},"usage":{{"amount":"400.12","percent":80}},"threshold":{{"percent":80}}}}}}"#
    )
    .into_bytes()
}

/// An HTTP client that reports every status instead of failing on 4xx and 5xx.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// POSTs `body` with `headers`; returns the status and the JSON answer.
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    let mut request = agent.post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut response = request.send(body).expect("POST");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// POSTs `body` freshly signed now.
pub fn deliver(agent: &ureq::Agent, server: &Server, body: &[u8]) -> (u16, serde_json::Value) {
    let header = signature(body, now());
    post(agent, &server.url("/webhooks/perf"), &[header], body)
}

/// A real SMTP server: aiosmtpd writing each message into a Maildir.
pub struct Smtp {
    child: Child,
    pub maildir: PathBuf,
}

impl Smtp {
    pub fn start(port: u16, maildir: &Path) -> Self {
        Self::start_with(port, maildir, &[])
    }

    /// [`Smtp::start`] with aiosmtpd options (`--tlscert`/`--tlskey` for STARTTLS,
    /// `--smtpscert`/`--smtpskey` for implicit TLS).
    pub fn start_with(port: u16, maildir: &Path, options: &[&str]) -> Self {
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(options)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd (pip install aiosmtpd)");
        let up = wait_until(Duration::from_secs(15), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            up,
            "aiosmtpd did not start on {port}; is it installed? (pip install aiosmtpd)"
        );
        Self {
            child,
            maildir: maildir.to_path_buf(),
        }
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `[notifiers.mail]` section for an SMTP server on `port`.
pub fn email_notifier(port: u16, timeout_ms: u64) -> String {
    format!(
        r#"
[notifiers.mail]
kind = "email"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "perfhook <perfhook@example.test>"
to = ["oncall@example.test", "finance@example.test"]
timeout_ms = {timeout_ms}
"#
    )
}

/// A blocking connection to 127.0.0.1:`port` from `source`.
pub fn connect_from(source: std::net::Ipv4Addr, port: u16) -> Option<std::net::TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .ok()?;
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind((source, 0).into()).ok()?;
        socket.connect(([127, 0, 0, 1], port).into()).await.ok()
    })?;
    let stream = stream.into_std().ok()?;
    stream.set_nonblocking(false).ok()?;
    Some(stream)
}

/// POSTs `body` with `headers` to 127.0.0.1:`port``path` from the loopback address `source`
/// (127.0.0.2, 127.0.0.3: each a different client), over one HTTP/1.1 connection. Returns
/// the status and the answer's body.
pub fn post_from(
    source: std::net::Ipv4Addr,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = connect_from(source, port).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

/// Copies a data directory (sled's files and `blobs/`).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}
