//! The PostgreSQL store: the storage port on a database several replicas share.
//!
//! # What a 2xx means here
//! [`Store::record`] is one transaction: `INSERT … ON CONFLICT DO NOTHING` on (endpoint,
//! event id), the jobs and the expiry, then `COMMIT`. Records without a budget mark that
//! arrive together share one statement and one commit ([`group`]); a record with one has
//! its own transaction, which reads the budget state `FOR UPDATE` and writes it back. The
//! answer comes after the commit, so the database's durability (`synchronous_commit`, on by
//! default) is the guarantee. A concurrent insert of the same key waits for the first
//! transaction and then finds the row, so every replica answers exactly one `accepted` per
//! event, and a duplicate is answered only once the first copy is committed.
//!
//! # Claims
//! A claim takes due pending jobs `FOR UPDATE SKIP LOCKED` and stamps each with a lease
//! token and a lease end in the same statement, so two replicas never hold one job. A
//! finish must present the token; once the lease has ended and another claimer has stamped
//! the job anew, the finish fails with a lost-lease error. A replica that dies leaves its
//! leases to expire; then any replica claims the jobs again. A claim whose answer is lost
//! (the connection breaks after the database may have committed it) reached no worker, so
//! its jobs were never attempted: each claim carries a random id, and the replica releases
//! a failed claim's jobs by that id as soon as it reaches the database again (until that
//! claim's lease would have ended), instead of leaving them to wait for the lease. Each
//! record that queues jobs sends `NOTIFY perfhook_jobs` in its transaction, which
//! [`PostgresStore::listen`] turns into a wake of this replica's workers; polling stays the
//! fallback.
//!
//! # Counts
//! [`Store::counts`] must be O(1): triggers keep the database's counts (migration 0004: a
//! row appended per change, folded into one per counter at each refresh). Each replica
//! keeps them in memory, applies its own changes as it commits them, and reads the
//! database's figures again every few seconds (other replicas' changes show then).

mod group;
pub mod migrations;

pub use self::migrations::{Migration, MIGRATIONS};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Row;

use super::{
    decode_cursor, encode_cursor, parse_refused_id, refused_id, unconfigured_reason, ApiKeyRecord,
    BudgetState, Claimed, ClaimedJob, Counts, EventDetail, EventPage, EventQuery, EventRecord,
    EventSummary, Finished, Job, JobStatus, JobToken, NewEvent, Outcome, Recorded, RefusedBounds,
    RefusedDelivery, Store, StoreError, StoreErrorKind,
};

/// How often the counts are read anew from the database.
const COUNTS_EVERY: Duration = Duration::from_secs(5);
/// The advisory lock that makes the folding of the counts one replica at a time.
const COUNTS_LOCK: i64 = 0x7065_7266_636f_756e;
/// The advisory lock that makes audit appends and retention one at a time across replicas.
const AUDIT_LOCK: i64 = 0x7065_7266_6175_6474;

/// How the PostgreSQL store connects.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database?sslmode=…`: holds a password, so never
    /// shown ([`std::fmt::Debug`] leaves it out).
    pub url: zeroize::Zeroizing<String>,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Longest a statement may run before the database cancels it.
    pub statement_timeout: Duration,
    /// PEM CA certificates to trust for the database's TLS, besides Mozilla's roots.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Pool,
    counts: Arc<Mutex<Counts>>,
    closed: Arc<AtomicBool>,
    /// Writes records without a budget mark in groups ([`group`]).
    group: group::GroupWriter,
    /// Claims that failed after they were sent: their jobs may be leased to nobody.
    lost_claims: Arc<Mutex<Vec<LostClaim>>>,
    /// Test hook: the next claim's answer is lost after the database committed it.
    #[cfg(feature = "fault-injection")]
    lose_claim_answer: Arc<AtomicBool>,
}

/// Whether connecting applies pending schema migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// Apply them (a replica starting).
    Migrate,
    /// Refuse a database that has any (the command line).
    RequireCurrent,
}

/// A claim that failed after it was sent.
#[derive(Debug, Clone)]
struct LostClaim {
    notifier: String,
    id: i64,
    /// When its lease ends: past it, the jobs are free anyway.
    lease_until_ms: i64,
}

/// Folds the count rows the triggers appended into one per name, so a read sums a handful:
/// one replica at a time (the others skip it), and rows appended meanwhile are left for the
/// next fold (the delete sees only rows committed before it).
async fn fold_counts(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let transaction = client.transaction().await.map_err(|e| db_error(&e))?;
    let locked: bool = transaction
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&COUNTS_LOCK])
        .await
        .map_err(|e| db_error(&e))?
        .get(0);
    if locked {
        transaction
            .execute(
                "WITH gone AS (DELETE FROM perfhook_counts RETURNING name, value)
                 INSERT INTO perfhook_counts (name, value)
                 SELECT name, sum(value)::bigint FROM gone GROUP BY name",
                &[],
            )
            .await
            .map_err(|e| db_error(&e))?;
    }
    transaction.commit().await.map_err(|e| db_error(&e))
}

/// A database error as a store error: the SQLSTATE and the server's message for errors the
/// database reports (perfhook sends every value as a parameter, never in the statement
/// text), the driver's own words for the rest (connection refused, timed out).
pub(crate) fn db_error(error: &tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) => StoreError::unavailable(format!(
            "postgres: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        )),
        // The driver's words and their cause ("error connecting to server: Connection
        // refused"); neither holds the URL.
        None => match std::error::Error::source(error) {
            Some(cause) => StoreError::unavailable(format!("postgres: {error}: {cause}")),
            None => StoreError::unavailable(format!("postgres: {error}")),
        },
    }
}

fn pool_error(error: &deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => db_error(error),
        other => StoreError::unavailable(format!("postgres pool: {other}")),
    }
}

/// A number for a `bigint` column. Values past `i64::MAX` (the year 292 billion, or an
/// absurd count) are stored as `i64::MAX`.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn status_text(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "pending",
        JobStatus::Delivered => "delivered",
        JobStatus::Dead => "dead",
        JobStatus::Suppressed => "suppressed",
    }
}

fn status_of(text: &str) -> Result<JobStatus, StoreError> {
    match text {
        "pending" => Ok(JobStatus::Pending),
        "delivered" => Ok(JobStatus::Delivered),
        "dead" => Ok(JobStatus::Dead),
        "suppressed" => Ok(JobStatus::Suppressed),
        _ => Err(StoreError::corrupt(
            "a job's status is not one perfhook writes",
        )),
    }
}

/// The columns [`job_of`] reads, in its order.
const JOB_COLUMNS: &str =
    "endpoint, event_id, notifier, status, attempts, last_error, due_ms, digest";

fn job_of(row: &Row) -> Result<Job, StoreError> {
    Ok(Job {
        endpoint: row.get(0),
        event_id: row.get(1),
        notifier: row.get(2),
        status: status_of(row.get(3))?,
        attempts: u32::try_from(row.get::<_, i32>(4)).unwrap_or(0),
        last_error: row.get(5),
        due_ms: uint(row.get(6)),
        digest: row.get(7),
    })
}

/// A job's token key: `endpoint NUL event id NUL notifier`, as the other stores spell it.
fn token_key(endpoint: &str, event_id: &str, notifier: &str) -> Vec<u8> {
    let mut key = super::event_key(endpoint, event_id);
    key.push(0);
    key.extend_from_slice(notifier.as_bytes());
    key
}

fn split_token_key(key: &[u8]) -> Option<(String, String, String)> {
    let mut parts = key.split(|b| *b == 0);
    let endpoint = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let id = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let notifier = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    parts.next().is_none().then_some((endpoint, id, notifier))
}

/// A listing cursor's parts: received at, endpoint, id.
fn split_cursor(position: &[u8]) -> Result<(i64, String, String), StoreError> {
    let bad = || {
        StoreError::new(
            StoreErrorKind::BadRequest,
            "the cursor is not one this store gave out",
        )
    };
    let received_at = position
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(bad)?;
    let rest = position.get(8..).ok_or_else(bad)?;
    let nul = rest.iter().position(|b| *b == 0).ok_or_else(bad)?;
    let endpoint = rest.get(..nul).ok_or_else(bad)?;
    let id = rest.get(nul + 1..).ok_or_else(bad)?;
    Ok((
        int(received_at),
        String::from_utf8(endpoint.to_vec()).map_err(|_| bad())?,
        String::from_utf8(id.to_vec()).map_err(|_| bad())?,
    ))
}

/// Whether any of `texts` holds a NUL, which PostgreSQL's text cannot: such a lookup
/// matches nothing (no stored name, id or type holds one) rather than failing as a 503.
fn has_nul(texts: &[&str]) -> bool {
    texts.iter().any(|text| text.contains('\0'))
}

fn json_of<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt_json(&e))
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt_json(&e))
}

/// TLS to the database: rustls with its ring provider, Mozilla's roots and `ca_file`.
fn tls(options: &PostgresOptions) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &options.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
        let mut added = 0;
        for certificate in <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
            let certificate = certificate
                .map_err(|e| format!("ca_file {} is not PEM: {e}", path.display()))?;
            roots
                .add(certificate)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("ca_file {} holds no certificate", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PostgresStore {
    /// Connects, applies pending migrations (under an advisory lock), reads the counts, and
    /// starts refreshing them.
    ///
    /// # Errors
    /// A URL that does not parse (the message never holds it), an unreachable database, or a
    /// failed migration.
    pub async fn connect(options: &PostgresOptions) -> Result<Self, StoreError> {
        Self::connect_with(options, Schema::Migrate).await
    }

    /// Connects without changing the schema, for the command line: a database with
    /// migrations pending is refused, naming `perfhook store migrate`, so a newer CLI never
    /// migrates a database that older replicas still serve.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`], and a schema behind this binary's.
    pub async fn connect_current(options: &PostgresOptions) -> Result<Self, StoreError> {
        Self::connect_with(options, Schema::RequireCurrent).await
    }

    async fn connect_with(options: &PostgresOptions, schema: Schema) -> Result<Self, StoreError> {
        let pool = Self::pool(options)?;
        let counts = Arc::new(Mutex::new(Counts::default()));
        let grouped = Arc::clone(&counts);
        let store = Self {
            group: group::GroupWriter::start(pool.clone(), move |(events, jobs)| {
                add_counts(&grouped, events, jobs, 0);
            }),
            pool,
            counts,
            closed: Arc::new(AtomicBool::new(false)),
            lost_claims: Arc::new(Mutex::new(Vec::new())),
            #[cfg(feature = "fault-injection")]
            lose_claim_answer: Arc::new(AtomicBool::new(false)),
        };
        {
            let mut client = store.client().await?;
            match schema {
                Schema::Migrate => {
                    migrations::apply(&mut client).await?;
                }
                Schema::RequireCurrent => {
                    let pending = migrations::pending(&client).await?;
                    if !pending.is_empty() {
                        return Err(StoreError::new(
                            StoreErrorKind::BadRequest,
                            format!(
                                "the database's schema is {} migration(s) behind this perfhook: apply them with `perfhook store migrate` (replicas also apply them when they start)",
                                pending.len()
                            ),
                        ));
                    }
                }
            }
        }
        store.refresh_counts().await?;
        let refresher = store.clone();
        tokio::spawn(async move {
            while !refresher.closed.load(Ordering::SeqCst) {
                tokio::time::sleep(COUNTS_EVERY).await;
                if let Err(error) = refresher.refresh_counts().await {
                    tracing::debug!(%error, "postgres: cannot refresh the counts");
                }
            }
        });
        Ok(store)
    }

    /// The migrations the database at `options` has not applied, without applying them.
    ///
    /// # Errors
    /// When the database cannot be reached or read.
    pub async fn pending_migrations(
        options: &PostgresOptions,
    ) -> Result<Vec<Migration>, StoreError> {
        let pool = Self::pool(options)?;
        let client = pool.get().await.map_err(|e| pool_error(&e))?;
        migrations::pending(&client).await
    }

    /// Applies the pending migrations (under the advisory lock); the versions applied.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn migrate(options: &PostgresOptions) -> Result<Vec<i32>, StoreError> {
        let pool = Self::pool(options)?;
        let mut client = pool.get().await.map_err(|e| pool_error(&e))?;
        migrations::apply(&mut client).await
    }

    /// The driver's settings from the URL, with perfhook's: TLS required for a host that is
    /// not this machine unless the URL says otherwise, and the kernel told to give up on a
    /// connection that stops answering (a lost host or a partition) instead of waiting for
    /// TCP's own minutes.
    fn connection(options: &PostgresOptions) -> Result<tokio_postgres::Config, StoreError> {
        let mut config: tokio_postgres::Config = options.url.parse().map_err(|_| {
            StoreError::new(
                StoreErrorKind::BadRequest,
                "the database URL does not parse (postgres://user:password@host:port/database)",
            )
        })?;
        let local = config.get_hosts().iter().all(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            tokio_postgres::config::Host::Unix(_) => true,
        });
        if !local && !options.url.contains("sslmode=") {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        let answer_within = options
            .statement_timeout
            .saturating_add(Duration::from_secs(5));
        config
            .connect_timeout(Duration::from_secs(5))
            .tcp_user_timeout(answer_within)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        Ok(config)
    }

    fn pool(options: &PostgresOptions) -> Result<Pool, StoreError> {
        let mut config = Self::connection(options)?;
        let timeout_ms = options.statement_timeout.as_millis();
        config.options(format!("-c statement_timeout={timeout_ms}"));
        let tls = tls(options).map_err(|e| StoreError::new(StoreErrorKind::BadRequest, e))?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::unavailable(format!("postgres pool: {e}")))
    }

    /// One claim, stamped with `claim_id`.
    async fn claim_with(
        &self,
        client: &deadpool_postgres::Object,
        notifier: &str,
        now_ms: u64,
        lease_end: i64,
        limit: usize,
        claim_id: i64,
    ) -> Result<Claimed, StoreError> {
        let now = int(now_ms);
        let limit_rows = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "WITH picked AS (
                     SELECT endpoint, event_id, notifier FROM perfhook_jobs
                     WHERE notifier = $1 AND status = 'pending' AND due_ms <= $2
                       AND (lease_until_ms IS NULL OR lease_until_ms <= $2)
                     ORDER BY due_ms, endpoint, event_id
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 UPDATE perfhook_jobs j
                 SET lease_token = nextval('perfhook_lease_seq'), lease_until_ms = $4, claim_id = $5
                 FROM picked p JOIN perfhook_events e ON e.endpoint = p.endpoint AND e.id = p.event_id
                 WHERE j.endpoint = p.endpoint AND j.event_id = p.event_id AND j.notifier = p.notifier
                 RETURNING j.endpoint, j.event_id, j.notifier, j.status, j.attempts, j.last_error,
                           j.due_ms, j.digest, j.lease_token,
                           e.kind, e.livemode, e.received_at, e.body",
                    )
                    .await
                    .map_err(|e| db_error(&e))?,
                &[&notifier, &now, &limit_rows, &lease_end, &claim_id],
            )
            .await
            .map_err(|e| db_error(&e))?;
        #[cfg(feature = "fault-injection")]
        if self.lose_claim_answer.swap(false, Ordering::SeqCst) {
            return Err(StoreError::unavailable(
                "fault injection: the claim's answer was lost",
            ));
        }
        let mut claimed = Claimed::default();
        let mut tokens = Vec::with_capacity(rows.len());
        for row in &rows {
            let job = job_of(row)?;
            let lease_token: i64 = row.get(8);
            tokens.push(lease_token);
            let event = EventRecord {
                endpoint: job.endpoint.clone(),
                id: job.event_id.clone(),
                kind: row.get(9),
                livemode: row.get(10),
                received_at: uint(row.get(11)),
                body: row.get(12),
            };
            claimed.jobs.push(ClaimedJob {
                token: JobToken {
                    key: token_key(&job.endpoint, &job.event_id, &job.notifier),
                    lease: uint(lease_token),
                },
                job,
                event,
            });
        }
        claimed.jobs.sort_by(|a, b| {
            (a.job.due_ms, &a.job.endpoint, &a.job.event_id).cmp(&(
                b.job.due_ms,
                &b.job.endpoint,
                &b.job.event_id,
            ))
        });
        // The earliest due among free jobs (the queue index stops at the first), and the
        // earliest lease end among jobs others hold (the index of leased jobs).
        let next = client
            .query_one(
                &client
                    .prepare_cached(
                        "SELECT least(
                     (SELECT min(due_ms) FROM perfhook_jobs
                      WHERE notifier = $1 AND status = 'pending'
                        AND (lease_until_ms IS NULL OR lease_until_ms <= $3)
                        AND (lease_token IS NULL OR NOT (lease_token = ANY($2)))),
                     (SELECT min(greatest(due_ms, lease_until_ms)) FROM perfhook_jobs
                      WHERE notifier = $1 AND status = 'pending' AND lease_until_ms > $3
                        AND NOT (lease_token = ANY($2))))",
                    )
                    .await
                    .map_err(|e| db_error(&e))?,
                &[&notifier, &tokens, &now],
            )
            .await
            .map_err(|e| db_error(&e))?;
        claimed.next_due_ms = next.get::<_, Option<i64>>(0).map(uint);
        Ok(claimed)
    }

    /// Releases the jobs of this notifier's lost claims whose leases have not ended. A
    /// claim's statement may still commit after its connection broke, so a lost claim is
    /// released at every claim until its lease would have ended.
    async fn release_lost_claims(
        &self,
        client: &deadpool_postgres::Object,
        notifier: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let now = int(now_ms);
        let ids: Vec<(i64, i64)> = {
            let Ok(mut lost) = self.lost_claims.lock() else {
                return Ok(());
            };
            lost.retain(|claim| claim.lease_until_ms > now);
            lost.iter()
                .filter(|claim| claim.notifier == notifier)
                .map(|claim| (claim.id, claim.lease_until_ms))
                .collect()
        };
        if ids.is_empty() {
            return Ok(());
        }
        let (claims, lease_ends): (Vec<i64>, Vec<i64>) = ids.into_iter().unzip();
        // The claim's own lease end too: a job claimed anew since (by a replica that does not
        // stamp claims) keeps its lease.
        let released = client
            .execute(
                "UPDATE perfhook_jobs
                 SET lease_token = NULL, lease_until_ms = NULL, claim_id = NULL
                 WHERE notifier = $1 AND status = 'pending' AND lease_until_ms IS NOT NULL
                   AND (claim_id, lease_until_ms) IN
                       (SELECT * FROM unnest($2::bigint[], $3::bigint[]))",
                &[&notifier, &claims, &lease_ends],
            )
            .await
            .map_err(|e| db_error(&e))?;
        if released > 0 {
            tracing::warn!(
                notifier,
                released,
                "postgres: released the jobs of a claim whose answer was lost"
            );
        }
        Ok(())
    }

    /// Test hook: the next claim commits, then fails as if its answer were lost with the
    /// connection.
    #[cfg(feature = "fault-injection")]
    pub fn lose_next_claim_answer(&self) {
        self.lose_claim_answer.store(true, Ordering::SeqCst);
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("the store is closed"));
        }
        self.pool.get().await.map_err(|e| pool_error(&e))
    }

    async fn refresh_counts(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        fold_counts(&mut client).await?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(value) FILTER (WHERE name = 'events'), 0)::bigint,
                        coalesce(sum(value) FILTER (WHERE name = 'pending'), 0)::bigint,
                        coalesce(sum(value) FILTER (WHERE name = 'dead'), 0)::bigint
                 FROM perfhook_counts",
                &[],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let counts = Counts {
            events: uint(row.get(0)),
            outbox: uint(row.get(1)),
            dead: uint(row.get(2)),
        };
        if let Ok(mut held) = self.counts.lock() {
            *held = counts;
        }
        Ok(())
    }

    /// Applies a change this replica committed to its counts.
    fn count(&self, events: i64, outbox: i64, dead: i64) {
        add_counts(&self.counts, events, outbox, dead);
    }

    /// Counts of `statuses` (jobs removed or changed): (pending, dead).
    fn tally(statuses: &[String]) -> (i64, i64) {
        let pending = statuses.iter().filter(|s| *s == "pending").count();
        let dead = statuses.iter().filter(|s| *s == "dead").count();
        (
            i64::try_from(pending).unwrap_or(i64::MAX),
            i64::try_from(dead).unwrap_or(i64::MAX),
        )
    }

    /// Waits for `NOTIFY perfhook_jobs` from any replica and calls `wake` for each; returns
    /// when the connection ends (the caller reconnects).
    ///
    /// # Errors
    /// When the listening connection cannot be made or fails.
    pub async fn listen(
        options: &PostgresOptions,
        mut wake: impl FnMut() + Send,
    ) -> Result<(), StoreError> {
        use futures_util::StreamExt;
        let config = Self::connection(options)?;
        let tls = tls(options).map_err(|e| StoreError::new(StoreErrorKind::BadRequest, e))?;
        let (client, mut connection) = config.connect(tls).await.map_err(|e| db_error(&e))?;
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                        if sender.send(()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        client
            .batch_execute("LISTEN perfhook_jobs")
            .await
            .map_err(|e| db_error(&e))?;
        while receiver.recv().await.is_some() {
            wake();
        }
        driver.abort();
        Err(StoreError::unavailable(
            "postgres: the LISTEN connection ended",
        ))
    }
}

/// Adds committed changes to `counts`.
fn add_counts(counts: &Mutex<Counts>, events: i64, outbox: i64, dead: i64) {
    if let Ok(mut counts) = counts.lock() {
        let apply = |value: u64, delta: i64| {
            if delta >= 0 {
                value.saturating_add(delta.unsigned_abs())
            } else {
                value.saturating_sub(delta.unsigned_abs())
            }
        };
        counts.events = apply(counts.events, events);
        counts.outbox = apply(counts.outbox, outbox);
        counts.dead = apply(counts.dead, dead);
    }
}

/// Reads a budget mark's state for update, creating it when absent.
async fn budget_state(
    transaction: &deadpool_postgres::Transaction<'_>,
    mark: &str,
) -> Result<BudgetState, StoreError> {
    transaction
        .execute(
            "INSERT INTO perfhook_budget_state (mark, state) VALUES ($1, '{}') ON CONFLICT DO NOTHING",
            &[&mark],
        )
        .await
        .map_err(|e| db_error(&e))?;
    let row = transaction
        .query_one(
            "SELECT state FROM perfhook_budget_state WHERE mark = $1 FOR UPDATE",
            &[&mark],
        )
        .await
        .map_err(|e| db_error(&e))?;
    json_of(row.get(0))
}

async fn put_budget_state(
    transaction: &deadpool_postgres::Transaction<'_>,
    mark: &str,
    state: &BudgetState,
) -> Result<(), StoreError> {
    transaction
        .execute(
            "UPDATE perfhook_budget_state SET state = $2 WHERE mark = $1",
            &[&mark, &json_text(state)?],
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

/// Removes events' jobs and then the events, within `transaction`; the removed jobs'
/// statuses.
async fn remove_events(
    transaction: &deadpool_postgres::Transaction<'_>,
    endpoints: &[String],
    ids: &[String],
) -> Result<Vec<String>, StoreError> {
    let statuses = transaction
        .query(
            "DELETE FROM perfhook_jobs WHERE (endpoint, event_id) IN
                 (SELECT * FROM unnest($1::text[], $2::text[]))
             RETURNING status",
            &[&endpoints, &ids],
        )
        .await
        .map_err(|e| db_error(&e))?
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect();
    transaction
        .execute(
            "DELETE FROM perfhook_events WHERE (endpoint, id) IN
                 (SELECT * FROM unnest($1::text[], $2::text[]))",
            &[&endpoints, &ids],
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(statuses)
}

fn refused_of(row: &Row) -> RefusedDelivery {
    let endpoint: String = row.get(0);
    let received_at_ms = uint(row.get(1));
    RefusedDelivery {
        id: refused_id(&endpoint, received_at_ms, uint(row.get(2))),
        endpoint,
        received_at_ms,
        source: row.get(3),
        reason: row.get(4),
        message: row.get(5),
        request: row.get(6),
    }
}

const REFUSED_COLUMNS: &str = "endpoint, received_at_ms, seq, source, reason, message, request";

/// Inserts an event unless its key is taken.
const INSERT_EVENT: &str =
    "INSERT INTO perfhook_events (endpoint, id, kind, livemode, received_at, expires_at, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

/// The jobs an event is stored with: one per notifier, however often it is named.
struct JobPlan {
    notifiers: Vec<String>,
    dues: Vec<i64>,
    digests: Vec<bool>,
}

impl JobPlan {
    fn of(event: &NewEvent) -> Self {
        let mut plan = Self {
            notifiers: Vec::new(),
            dues: Vec::new(),
            digests: Vec::new(),
        };
        for notifier in &event.notifiers {
            if plan.notifiers.contains(notifier) {
                continue;
            }
            let (due_ms, digest) = event.first_due(notifier);
            plan.notifiers.push(notifier.clone());
            plan.dues.push(int(due_ms));
            plan.digests.push(digest);
        }
        plan
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn record(&self, event: NewEvent) -> Result<Recorded, StoreError> {
        let plan = JobPlan::of(&event);
        if event.budget.is_none() {
            if self.closed.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable("the store is closed"));
            }
            return self.group.record(event, plan).await;
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| db_error(&e))?;
        let record = &event.record;
        let insert = transaction
            .prepare_cached(INSERT_EVENT)
            .await
            .map_err(|e| db_error(&e))?;
        let inserted = transaction
            .execute(
                &insert,
                &[
                    &record.endpoint,
                    &record.id,
                    &record.kind,
                    &record.livemode,
                    &int(record.received_at),
                    &int(event.expires_at),
                    &record.body,
                ],
            )
            .await
            .map_err(|e| db_error(&e))?;
        if inserted == 0 {
            // The first copy is committed (the insert waited for it): durable.
            transaction.rollback().await.map_err(|e| db_error(&e))?;
            return Ok(Recorded::Duplicate);
        }
        let mut suppressed_by = None;
        if let Some(mark) = &event.budget {
            let mut state = budget_state(&transaction, &mark.budget).await?;
            suppressed_by = super::apply_crossing(&mut state, mark, &record.id, record.received_at)
                .map(|first| super::suppressed_reason(mark.threshold, &first));
            put_budget_state(&transaction, &mark.budget, &state).await?;
            if let (None, Some(cooldown)) = (&suppressed_by, &mark.cooldown) {
                let mut noted = budget_state(&transaction, &cooldown.key).await?;
                suppressed_by = super::apply_cooldown(&mut noted, cooldown, record.received_at);
                if suppressed_by.is_none() {
                    put_budget_state(&transaction, &cooldown.key, &noted).await?;
                }
            }
        }
        let status = if suppressed_by.is_some() {
            JobStatus::Suppressed
        } else {
            JobStatus::Pending
        };
        if !plan.notifiers.is_empty() {
            transaction
                .execute(
                    "INSERT INTO perfhook_jobs (endpoint, event_id, notifier, status, attempts, last_error, due_ms, digest)
                     SELECT $1, $2, notifier, $3, 0, $4, due_ms, digest
                     FROM unnest($5::text[], $6::bigint[], $7::boolean[]) AS t(notifier, due_ms, digest)",
                    &[
                        &record.endpoint,
                        &record.id,
                        &status_text(status),
                        &suppressed_by,
                        &plan.notifiers,
                        &plan.dues,
                        &plan.digests,
                    ],
                )
                .await
                .map_err(|e| db_error(&e))?;
            if status == JobStatus::Pending {
                transaction
                    .batch_execute("NOTIFY perfhook_jobs")
                    .await
                    .map_err(|e| db_error(&e))?;
            }
        }
        transaction.commit().await.map_err(|e| db_error(&e))?;
        let queued = if status == JobStatus::Pending {
            i64::try_from(plan.notifiers.len()).unwrap_or(0)
        } else {
            0
        };
        self.count(1, queued, 0);
        Ok(Recorded::New)
    }

    async fn claim(
        &self,
        notifier: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Claimed, StoreError> {
        let client = self.client().await?;
        self.release_lost_claims(&client, notifier, now_ms).await?;
        let claim_id = i64::from_ne_bytes(
            getrandom::u64()
                .map_err(|_| StoreError::unavailable("the system's random source failed"))?
                .to_ne_bytes(),
        );
        let lease_end =
            int(now_ms.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)));
        let claimed = self
            .claim_with(&client, notifier, now_ms, lease_end, limit, claim_id)
            .await;
        if claimed.is_err() {
            if let Ok(mut lost) = self.lost_claims.lock() {
                lost.push(LostClaim {
                    notifier: notifier.to_owned(),
                    id: claim_id,
                    lease_until_ms: lease_end,
                });
            }
        }
        claimed
    }

    async fn finish(&self, finished: Vec<Finished>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let mut first_error = None;
        for one in finished {
            let Some((endpoint, event_id, notifier)) = split_token_key(&one.token.key) else {
                first_error.get_or_insert(StoreError::new(
                    StoreErrorKind::BadRequest,
                    "a job token this store did not give out",
                ));
                continue;
            };
            let (status, error, due_ms) = match &one.outcome {
                Outcome::Delivered => (JobStatus::Delivered, None, one.at_ms),
                Outcome::Retry { at_ms, error } => {
                    (JobStatus::Pending, Some(error.clone()), *at_ms)
                }
                Outcome::Dead { reason } => (JobStatus::Dead, Some(reason.clone()), one.at_ms),
            };
            let updated = client
                .execute(
                    &client
                        .prepare_cached(
                            "UPDATE perfhook_jobs
                     SET attempts = attempts + 1, status = $5, last_error = coalesce($6, last_error),
                         due_ms = $7, lease_token = NULL, lease_until_ms = NULL, claim_id = NULL
                     WHERE endpoint = $1 AND event_id = $2 AND notifier = $3 AND lease_token = $4
                       AND status = 'pending'",
                        )
                        .await
                        .map_err(|e| db_error(&e))?,
                    &[
                        &endpoint,
                        &event_id,
                        &notifier,
                        &int(one.token.lease),
                        &status_text(status),
                        &error,
                        &int(due_ms),
                    ],
                )
                .await
                .map_err(|e| db_error(&e));
            match updated {
                Ok(1) => match status {
                    JobStatus::Delivered => self.count(0, -1, 0),
                    JobStatus::Dead => self.count(0, -1, 1),
                    JobStatus::Pending | JobStatus::Suppressed => {}
                },
                Ok(_) => {
                    // Gone (its event was deleted) is fine; still there means another claim.
                    let exists = client
                        .query_opt(
                            "SELECT 1 FROM perfhook_jobs WHERE endpoint = $1 AND event_id = $2 AND notifier = $3",
                            &[&endpoint, &event_id, &notifier],
                        )
                        .await
                        .map_err(|e| db_error(&e));
                    match exists {
                        Ok(Some(_)) => {
                            first_error.get_or_insert(StoreError::new(
                                StoreErrorKind::LeaseLost,
                                "the job's lease expired before it was finished",
                            ));
                        }
                        Ok(None) => {}
                        Err(error) => {
                            first_error.get_or_insert(error);
                        }
                    }
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn bury_unconfigured(
        &self,
        configured: &[String],
        at_ms: u64,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let orphaned: Vec<String> = client
            .query(
                "SELECT DISTINCT notifier FROM perfhook_jobs
                 WHERE status = 'pending' AND NOT (notifier = ANY($1))",
                &[&configured],
            )
            .await
            .map_err(|e| db_error(&e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut buried = 0;
        for notifier in orphaned {
            let count = client
                .execute(
                    "UPDATE perfhook_jobs SET status = 'dead', last_error = $2, due_ms = $3,
                         lease_token = NULL, lease_until_ms = NULL, claim_id = NULL
                     WHERE status = 'pending' AND notifier = $1",
                    &[&notifier, &unconfigured_reason(&notifier), &int(at_ms)],
                )
                .await
                .map_err(|e| db_error(&e))?;
            let delta = i64::try_from(count).unwrap_or(0);
            self.count(0, -delta, delta);
            buried += count;
        }
        Ok(buried)
    }

    async fn purge_expired(&self, now: u64, batch: usize) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| db_error(&e))?;
        let rows = transaction
            .query(
                "SELECT endpoint, id FROM perfhook_events WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&int(now), &i64::try_from(batch).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let endpoints: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        let ids: Vec<String> = rows.iter().map(|row| row.get(1)).collect();
        let statuses = remove_events(&transaction, &endpoints, &ids).await?;
        transaction.commit().await.map_err(|e| db_error(&e))?;
        let (pending, dead) = Self::tally(&statuses);
        self.count(-i64::try_from(ids.len()).unwrap_or(0), -pending, -dead);
        Ok(ids.len())
    }

    async fn requeue(
        &self,
        endpoint: &str,
        id: &str,
        notifiers: &[String],
        now_ms: u64,
    ) -> Result<Option<usize>, StoreError> {
        if has_nul(&[endpoint, id]) || notifiers.iter().any(|n| n.contains('\0')) {
            return Ok(None);
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| db_error(&e))?;
        let exists = transaction
            .query_opt(
                "SELECT 1 FROM perfhook_events WHERE endpoint = $1 AND id = $2 FOR UPDATE",
                &[&endpoint, &id],
            )
            .await
            .map_err(|e| db_error(&e))?;
        if exists.is_none() {
            return Ok(None);
        }
        let mut queued = 0;
        let mut revived_dead = 0;
        let mut named: Vec<&String> = Vec::new();
        for notifier in notifiers {
            if named.contains(&notifier) {
                continue;
            }
            named.push(notifier);
            let status: Option<String> = transaction
                .query_opt(
                    "SELECT status FROM perfhook_jobs WHERE endpoint = $1 AND event_id = $2 AND notifier = $3 FOR UPDATE",
                    &[&endpoint, &id, notifier],
                )
                .await
                .map_err(|e| db_error(&e))?
                .map(|row| row.get(0));
            match status.as_deref() {
                Some("pending") => continue,
                Some("dead") => revived_dead += 1,
                _ => {}
            }
            transaction
                .execute(
                    "INSERT INTO perfhook_jobs (endpoint, event_id, notifier, status, attempts, last_error, due_ms, digest)
                     VALUES ($1, $2, $3, 'pending', 0, NULL, $4, false)
                     ON CONFLICT (endpoint, event_id, notifier) DO UPDATE
                     SET status = 'pending', attempts = 0, last_error = NULL, due_ms = $4, digest = false,
                         lease_token = NULL, lease_until_ms = NULL, claim_id = NULL",
                    &[&endpoint, &id, notifier, &int(now_ms)],
                )
                .await
                .map_err(|e| db_error(&e))?;
            queued += 1;
        }
        if queued > 0 {
            transaction
                .batch_execute("NOTIFY perfhook_jobs")
                .await
                .map_err(|e| db_error(&e))?;
        }
        transaction.commit().await.map_err(|e| db_error(&e))?;
        self.count(0, queued, -revived_dead);
        Ok(Some(usize::try_from(queued).unwrap_or(0)))
    }

    async fn delete_event(&self, endpoint: &str, id: &str) -> Result<bool, StoreError> {
        if has_nul(&[endpoint, id]) {
            return Ok(false);
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| db_error(&e))?;
        let exists = transaction
            .query_opt(
                "SELECT 1 FROM perfhook_events WHERE endpoint = $1 AND id = $2 FOR UPDATE",
                &[&endpoint, &id],
            )
            .await
            .map_err(|e| db_error(&e))?
            .is_some();
        let statuses =
            remove_events(&transaction, &[endpoint.to_owned()], &[id.to_owned()]).await?;
        transaction.commit().await.map_err(|e| db_error(&e))?;
        if exists {
            let (pending, dead) = Self::tally(&statuses);
            self.count(-1, -pending, -dead);
        }
        Ok(exists)
    }

    async fn jobs(
        &self,
        status: JobStatus,
        notifier: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        if notifier.is_some_and(|n| n.contains('\0')) {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM perfhook_jobs
                     WHERE status = $1 AND ($2::text IS NULL OR notifier = $2)
                     ORDER BY endpoint, event_id, notifier LIMIT $3"
                ),
                &[
                    &status_text(status),
                    &notifier,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(|e| db_error(&e))?;
        rows.iter().map(job_of).collect()
    }

    async fn event(&self, endpoint: &str, id: &str) -> Result<Option<EventDetail>, StoreError> {
        if has_nul(&[endpoint, id]) {
            return Ok(None);
        }
        let client = self.client().await?;
        let Some(row) = client
            .query_opt(
                "SELECT kind, livemode, received_at, expires_at, body FROM perfhook_events
                 WHERE endpoint = $1 AND id = $2",
                &[&endpoint, &id],
            )
            .await
            .map_err(|e| db_error(&e))?
        else {
            return Ok(None);
        };
        let notifications = client
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM perfhook_jobs
                     WHERE endpoint = $1 AND event_id = $2 ORDER BY notifier"
                ),
                &[&endpoint, &id],
            )
            .await
            .map_err(|e| db_error(&e))?
            .iter()
            .map(job_of)
            .collect::<Result<Vec<Job>, StoreError>>()?;
        Ok(Some(EventDetail {
            record: EventRecord {
                endpoint: endpoint.to_owned(),
                id: id.to_owned(),
                kind: row.get(0),
                livemode: row.get(1),
                received_at: uint(row.get(2)),
                body: row.get(4),
            },
            expires_at: uint(row.get(3)),
            notifications,
        }))
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        // PostgreSQL's text holds no NUL, and no name or type does: nothing can match.
        if [&query.endpoint, &query.kind]
            .into_iter()
            .flatten()
            .any(|text| text.contains('\0'))
        {
            return Ok(EventPage::default());
        }
        let after = match &query.cursor {
            Some(cursor) => Some(split_cursor(&decode_cursor(cursor)?)?),
            None => None,
        };
        let (cursor_at, cursor_endpoint, cursor_id) = match after {
            Some((at, endpoint, id)) => (Some(at), Some(endpoint), Some(id)),
            None => (None, None, None),
        };
        let limit = query.limit.max(1);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT endpoint, id, kind, livemode, received_at FROM perfhook_events
                 WHERE ($1::text IS NULL OR endpoint = $1)
                   AND ($2::text IS NULL OR kind = $2)
                   AND ($3::bigint IS NULL OR received_at >= $3)
                   AND ($4::bigint IS NULL OR received_at < $4)
                   AND ($5::bigint IS NULL OR (received_at, endpoint, id) < ($5, $6::text COLLATE \"C\", $7::text COLLATE \"C\"))
                 ORDER BY received_at DESC, endpoint DESC, id DESC
                 LIMIT $8",
                &[
                    &query.endpoint,
                    &query.kind,
                    &query.since.map(int),
                    &query.until.map(int),
                    &cursor_at,
                    &cursor_endpoint,
                    &cursor_id,
                    &i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let mut page = EventPage::default();
        for row in rows.iter().take(limit) {
            page.events.push(EventSummary {
                endpoint: row.get(0),
                id: row.get(1),
                kind: row.get(2),
                livemode: row.get(3),
                received_at: uint(row.get(4)),
            });
        }
        if rows.len() > limit {
            page.next_cursor = page.events.last().map(|last| {
                encode_cursor(&super::listing_position(
                    last.received_at,
                    &last.endpoint,
                    &last.id,
                ))
            });
        }
        Ok(page)
    }

    async fn budget_usage(&self, budget: &str) -> Result<Vec<(u64, u64)>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT state FROM perfhook_budget_state WHERE mark = $1",
                &[&budget],
            )
            .await
            .map_err(|e| db_error(&e))?;
        match row {
            Some(row) => Ok(json_of::<BudgetState>(row.get(0))?.usage),
            None => Ok(Vec::new()),
        }
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO perfhook_api_keys (id, record) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                &[&key.id, &json_text(key)?],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        if has_nul(&[id]) {
            return Ok(None);
        }
        let client = self.client().await?;
        client
            .query_opt("SELECT record FROM perfhook_api_keys WHERE id = $1", &[&id])
            .await
            .map_err(|e| db_error(&e))?
            .map(|row| json_of(row.get(0)))
            .transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let client = self.client().await?;
        client
            .query("SELECT record FROM perfhook_api_keys ORDER BY id", &[])
            .await
            .map_err(|e| db_error(&e))?
            .iter()
            .map(|row| json_of(row.get(0)))
            .collect()
    }

    async fn keep_refused(
        &self,
        refused: RefusedDelivery,
        bounds: RefusedBounds,
    ) -> Result<String, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| db_error(&e))?;
        let seq: i64 = transaction
            .query_one("SELECT nextval('perfhook_refused_seq')", &[])
            .await
            .map_err(|e| db_error(&e))?
            .get(0);
        transaction
            .execute(
                &format!("INSERT INTO perfhook_refused ({REFUSED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                &[
                    &refused.endpoint,
                    &int(refused.received_at_ms),
                    &seq,
                    &refused.source,
                    &refused.reason,
                    &refused.message,
                    &refused.request,
                ],
            )
            .await
            .map_err(|e| db_error(&e))?;
        // The endpoint's oldest beyond the bounds go (never the only one, however large).
        let kept = transaction
            .query(
                "SELECT received_at_ms, seq, octet_length(request) FROM perfhook_refused
                 WHERE endpoint = $1 ORDER BY received_at_ms DESC, seq DESC",
                &[&refused.endpoint],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let mut count = 0usize;
        let mut bytes = 0u64;
        for row in &kept {
            count += 1;
            bytes = bytes.saturating_add(uint(i64::from(row.get::<_, i32>(2))));
            let over = count > bounds.max_count || (bytes > bounds.max_bytes && count > 1);
            if over {
                transaction
                    .execute(
                        "DELETE FROM perfhook_refused WHERE endpoint = $1 AND received_at_ms = $2 AND seq = $3",
                        &[&refused.endpoint, &row.get::<_, i64>(0), &row.get::<_, i64>(1)],
                    )
                    .await
                    .map_err(|e| db_error(&e))?;
            }
        }
        transaction.commit().await.map_err(|e| db_error(&e))?;
        Ok(refused_id(
            &refused.endpoint,
            refused.received_at_ms,
            uint(seq),
        ))
    }

    async fn refused_list(
        &self,
        endpoint: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RefusedDelivery>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query(
                &format!(
                    "SELECT {REFUSED_COLUMNS} FROM perfhook_refused
                     WHERE ($1::text IS NULL OR endpoint = $1)
                     ORDER BY received_at_ms DESC, endpoint DESC, seq DESC LIMIT $2"
                ),
                &[&endpoint, &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(|e| db_error(&e))?
            .iter()
            .map(refused_of)
            .collect())
    }

    async fn refused(&self, id: &str) -> Result<Option<RefusedDelivery>, StoreError> {
        let Some((endpoint, ms, seq)) = parse_refused_id(id) else {
            return Ok(None);
        };
        let client = self.client().await?;
        Ok(client
            .query_opt(
                &format!(
                    "SELECT {REFUSED_COLUMNS} FROM perfhook_refused
                     WHERE endpoint = $1 AND received_at_ms = $2 AND seq = $3"
                ),
                &[&endpoint, &int(ms), &int(seq)],
            )
            .await
            .map_err(|e| db_error(&e))?
            .as_ref()
            .map(refused_of))
    }

    async fn remove_refused(&self, id: &str) -> Result<bool, StoreError> {
        let Some((endpoint, ms, seq)) = parse_refused_id(id) else {
            return Ok(false);
        };
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM perfhook_refused WHERE endpoint = $1 AND received_at_ms = $2 AND seq = $3",
                &[&endpoint, &int(ms), &int(seq)],
            )
            .await
            .map_err(|e| db_error(&e))?
            > 0)
    }

    async fn purge_refused(&self, before_ms: u64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM perfhook_refused WHERE received_at_ms < $1",
                &[&int(before_ms)],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    async fn append_audit(
        &self,
        entry: crate::audit::NewAuditEntry,
    ) -> Result<crate::audit::AuditEntry, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| db_error(&e))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
            .await
            .map_err(|e| db_error(&e))?;
        let last = transaction
            .query_opt(
                "SELECT entry FROM perfhook_audit ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let (seq, hash) = match last {
            Some(row) => {
                let last: crate::audit::AuditEntry = json_of(row.get(0))?;
                (last.seq, last.hash)
            }
            // Nothing kept: the chain goes on from the anchor.
            None => anchor(&transaction).await?,
        };
        let entry = crate::audit::AuditEntry::chain(entry, seq, &hash);
        transaction
            .execute(
                "INSERT INTO perfhook_audit (seq, at, entry) VALUES ($1, $2, $3)",
                &[&int(entry.seq), &int(entry.at), &json_text(&entry)?],
            )
            .await
            .map_err(|e| db_error(&e))?;
        transaction.commit().await.map_err(|e| db_error(&e))?;
        Ok(entry)
    }

    async fn audit_log(&self) -> Result<Vec<crate::audit::StoredEntry>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query("SELECT seq, entry FROM perfhook_audit ORDER BY seq", &[])
            .await
            .map_err(|e| db_error(&e))?
            .iter()
            .map(|row| crate::audit::StoredEntry {
                position: uint(row.get(0)),
                entry: serde_json::from_str(row.get(1))
                    .map_err(|e| StoreError::corrupt_json(&e).to_string()),
            })
            .collect())
    }

    async fn purge_audit(&self, before: u64) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| db_error(&e))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
            .await
            .map_err(|e| db_error(&e))?;
        // The oldest entries up to the first one recorded at or after `before`.
        let rows = transaction
            .query(
                "SELECT seq, at, entry FROM perfhook_audit ORDER BY seq",
                &[],
            )
            .await
            .map_err(|e| db_error(&e))?;
        let old: Vec<&Row> = rows
            .iter()
            .take_while(|row| uint(row.get(1)) < before)
            .collect();
        let Some(last) = old.last() else {
            return Ok(0);
        };
        let last_entry: crate::audit::AuditEntry = json_of(last.get(2))?;
        transaction
            .execute(
                "DELETE FROM perfhook_audit WHERE seq <= $1",
                &[&last.get::<_, i64>(0)],
            )
            .await
            .map_err(|e| db_error(&e))?;
        transaction
            .execute(
                "INSERT INTO perfhook_meta (key, value) VALUES ('audit_anchor', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&json_text(&(last_entry.seq, last_entry.hash))?],
            )
            .await
            .map_err(|e| db_error(&e))?;
        transaction.commit().await.map_err(|e| db_error(&e))?;
        Ok(old.len())
    }

    async fn audit_anchor(&self) -> Result<(u64, String), StoreError> {
        let client = self.client().await?;
        anchor(&client).await
    }

    fn counts(&self) -> Counts {
        self.counts.lock().map(|counts| *counts).unwrap_or_default()
    }

    async fn check(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let standby: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| db_error(&e))?
            .get(0);
        if standby {
            return Err(StoreError::unavailable(
                "postgres: the database is a read-only standby (point the URL at the primary)",
            ));
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::SeqCst);
        self.pool.close();
        Ok(())
    }
}

/// The (sequence, hash) the oldest kept audit entry follows.
async fn anchor(client: &impl GenericClient) -> Result<(u64, String), StoreError> {
    let row = client
        .query_opt(
            "SELECT value FROM perfhook_meta WHERE key = 'audit_anchor'",
            &[],
        )
        .await
        .map_err(|e| db_error(&e))?;
    match row {
        Some(row) => json_of(row.get(0)),
        None => Ok((0, crate::audit::GENESIS.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_key_and_a_cursor_split_back_into_their_parts() {
        let key = token_key("perf", "evt_1", "mail");
        assert_eq!(
            split_token_key(&key),
            Some(("perf".into(), "evt_1".into(), "mail".into()))
        );
        assert_eq!(split_token_key(b"perf\0evt"), None);
        let position = super::super::listing_position(7, "perf", "evt_1");
        assert_eq!(
            split_cursor(&position).expect("cursor"),
            (7, "perf".into(), "evt_1".into())
        );
        assert_eq!(
            split_cursor(b"short").map_err(|e| e.kind()),
            Err(StoreErrorKind::BadRequest)
        );
    }

    #[test]
    fn options_never_show_the_url() {
        let options = PostgresOptions {
            url: zeroize::Zeroizing::new("postgres://perf:hunter2@db/perfhook".into()),
            pool_size: 4,
            statement_timeout: Duration::from_secs(5),
            ca_file: None,
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
