//! A private PostgreSQL cluster for the tests: `initdb` into a temporary directory, started
//! with `pg_ctl` on a free loopback port (as the `postgres` user when the tests run as root,
//! since PostgreSQL refuses root), one per test process, each test in a database of its own.
//! A watcher process stops the cluster and removes its directory when the test process ends.
//! Without the binaries the tests that need them print SKIPPED and pass, unless
//! `PERFHOOK_REQUIRE_POSTGRES=1` (which `.ci/run` sets).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
static DATABASES: AtomicU64 = AtomicU64::new(0);

/// Where `initdb` and `pg_ctl` are: Debian keeps them off PATH.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some(newest) = versions.pop() {
        return Some(newest);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl Cluster {
    /// A command running `program` from the cluster's binaries, as `postgres` under root.
    fn command(&self, program: &str) -> Command {
        command(&self.bin, self.as_postgres, program)
    }

    /// Stops the cluster at once, as a crash or a lost database host would.
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D"])
            .arg(&self.dir)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Serves TLS with `cert` and `key` (PEM files) from now on: copied into the cluster's
    /// directory with the owner and mode PostgreSQL insists on, then a restart.
    pub fn enable_tls(&self, cert: &Path, key: &Path) {
        for (from, name) in [(cert, "server.crt"), (key, "server.key")] {
            let to = self.dir.join(name);
            std::fs::copy(from, &to).expect("copy");
            std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
            if self.as_postgres {
                let owned = Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(&to)
                    .status()
                    .expect("chown");
                assert!(owned.success());
            }
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("postgresql.conf"))
            .expect("postgresql.conf");
        std::io::Write::write_all(&mut conf, b"\nssl = on\n").expect("write conf");
        self.stop();
        self.start();
    }

    /// A new, empty database on this cluster: its URL.
    pub async fn create_database(&self) -> String {
        let name = format!("perfhook_{}", DATABASES.fetch_add(1, Ordering::SeqCst));
        let admin = format!("postgres://perf@127.0.0.1:{}/postgres", self.port);
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        drop(client);
        let _ = driver.await;
        format!("postgres://perf@127.0.0.1:{}/{name}", self.port)
    }

    /// Starts it (again, on the same port).
    pub fn start(&self) {
        let status = self
            .command("pg_ctl")
            .args(["-D"])
            .arg(&self.dir)
            .args(["-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.display()
            ))
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl start");
        assert!(
            status.success(),
            "pg_ctl start failed; see {}/log",
            self.dir.display()
        );
    }
}

fn command(bin: &Path, as_postgres: bool, program: &str) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn start() -> Option<Cluster> {
    let Some(bin) = bin_dir() else {
        assert!(
            std::env::var("PERFHOOK_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "PERFHOOK_REQUIRE_POSTGRES=1 but no PostgreSQL binaries (apt-get install postgresql)"
        );
        eprintln!("SKIPPED: PostgreSQL tests: no initdb found (apt-get install postgresql)");
        return None;
    };
    let as_postgres = is_root();
    let dir = std::env::temp_dir().join(format!(
        "perfhook-pg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("cluster dir");
    if as_postgres {
        let owned = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(owned.success(), "chown postgres {}", dir.display());
    }
    let initdb = command(&bin, as_postgres, "initdb")
        .args(["-D"])
        .arg(&dir)
        .args(["-A", "trust", "-U", "perf", "--no-sync", "-E", "UTF8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("initdb");
    assert!(initdb.success(), "initdb into {} failed", dir.display());
    let cluster = Cluster {
        port: free_port(),
        dir,
        bin,
        as_postgres,
    };
    cluster.start();
    // Stops the cluster and removes it once this test process is gone.
    let pg_ctl = cluster.bin.join("pg_ctl");
    let stop = if as_postgres {
        format!(
            "runuser -u postgres -- {} -D \"$1\" -m immediate stop",
            pg_ctl.display()
        )
    } else {
        format!("{} -D \"$1\" -m immediate stop", pg_ctl.display())
    };
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 $0 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf \"$1\""
        ))
        .arg(std::process::id().to_string())
        .arg(&cluster.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    Some(cluster)
}

/// The cluster of this test process, started on first use; `None` when PostgreSQL is absent.
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER.get_or_init(start).as_ref()
}

/// A cluster of the test's own, for a test that stops and starts it; `None` when
/// PostgreSQL is absent.
pub fn private() -> Option<Cluster> {
    start()
}

/// A new, empty database on the shared cluster: its URL.
pub async fn fresh_database() -> Option<String> {
    Some(cluster()?.create_database().await)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
