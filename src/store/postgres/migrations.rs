//! Schema migrations, embedded in the binary and applied at start-up under an advisory lock,
//! so replicas starting together migrate once: the first takes the lock and applies what is
//! missing, each in its own transaction with its version row; the others wait for the lock
//! and find nothing left to do.
//!
//! Older replicas keep writing while a newer one migrates, and a migration that locks
//! tables can meet one of their transactions in a deadlock, which PostgreSQL ends by
//! aborting one side. When that side is the migration, its transaction is rolled back whole
//! and tried again, a few times, so a rolling upgrade under load does not fail a start.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::db_error;
use crate::store::StoreError;

/// One migration: its version (applied in order), what it does, its SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Applied in ascending order, each once.
    pub version: i32,
    /// A line for `store migrate --dry-run` and the log.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events, jobs, budget state, API keys, refused deliveries, audit log",
        sql: include_str!("migrations/0001_tables.sql"),
    },
    Migration {
        version: 2,
        name: "an index of the jobs under a lease, for the next claimable time",
        sql: include_str!("migrations/0002_lease_index.sql"),
    },
    Migration {
        version: 3,
        name: "the claim that holds a leased job, to release a claim whose answer was lost",
        sql: include_str!("migrations/0003_claim_id.sql"),
    },
    Migration {
        version: 4,
        name: "stored events, pending and dead jobs counted by triggers, read in O(1)",
        sql: include_str!("migrations/0004_counts.sql"),
    },
];

/// The advisory lock key ("perfhook" in ASCII, as a number): held while migrating.
const LOCK: i64 = 0x7065_7266_686f_6f6b;

const VERSIONS: &str = "CREATE TABLE IF NOT EXISTS perfhook_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// The migrations not yet applied to the database `client` is connected to.
///
/// # Errors
/// When the database cannot be read.
pub async fn pending(client: &Client) -> Result<Vec<Migration>, StoreError> {
    let table = client
        .query_one("SELECT to_regclass('perfhook_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| db_error(&e))?;
    let applied: Vec<i32> = if table.get::<_, bool>(0) {
        client
            .query("SELECT version FROM perfhook_migrations", &[])
            .await
            .map_err(|e| db_error(&e))?
            .iter()
            .map(|row| row.get(0))
            .collect()
    } else {
        Vec::new()
    };
    Ok(MIGRATIONS
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .copied()
        .collect())
}

/// How often one migration is tried when PostgreSQL aborts it to end a deadlock or a lock
/// wait, and the pause before each further try (times the number of tries so far).
const TRIES: u32 = 5;
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Applies every pending migration under the advisory lock; returns the versions applied.
///
/// # Errors
/// When one fails: its transaction is rolled back and the later ones are not tried.
pub async fn apply(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    apply_through(client, i32::MAX).await
}

/// Applies the pending migrations up to version `last`, under the advisory lock; returns the
/// versions applied. [`apply`] is this for every version; tests use it to build the schema
/// one migration runs against.
///
/// # Errors
/// When one fails: its transaction is rolled back and the later ones are not tried.
pub async fn apply_through(client: &mut Client, last: i32) -> Result<Vec<i32>, StoreError> {
    // Waiting for another replica's migration, and a long one (an index), are not stuck
    // statements: no timeout on this connection while it migrates.
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(|e| db_error(&e))?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(|e| db_error(&e))?;
    let result = apply_locked(client, last).await;
    // Released whatever happened; a dropped connection releases it too.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await
        .map_err(|e| db_error(&e));
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply_locked(client: &mut Client, last: i32) -> Result<Vec<i32>, StoreError> {
    client
        .batch_execute(VERSIONS)
        .await
        .map_err(|e| db_error(&e))?;
    let mut applied = Vec::new();
    for migration in pending(client).await? {
        if migration.version > last {
            break;
        }
        let mut tries = 1;
        loop {
            match apply_one(client, migration).await {
                Ok(()) => break,
                Err(error) if tries < TRIES && is_transient(&error) => {
                    tracing::warn!(
                        version = migration.version,
                        error = %db_error(&error),
                        "postgres: a migration was aborted by a concurrent transaction; trying it again"
                    );
                    tokio::time::sleep(RETRY_PAUSE * tries).await;
                    tries += 1;
                }
                Err(error) => return Err(db_error(&error)),
            }
        }
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "postgres: migration applied"
        );
        applied.push(migration.version);
    }
    Ok(applied)
}

/// One migration and its version row, in one transaction (rolled back when dropped
/// uncommitted).
async fn apply_one(client: &mut Client, migration: Migration) -> Result<(), tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction.batch_execute(migration.sql).await?;
    transaction
        .execute(
            "INSERT INTO perfhook_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await?;
    transaction.commit().await
}

/// Whether PostgreSQL aborted the transaction only because of what ran beside it: a
/// deadlock, a serialization failure or a lock wait that timed out.
fn is_transient(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::LOCK_NOT_AVAILABLE
    })
}
