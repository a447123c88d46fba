//! Schema migrations, embedded in the binary and applied at start-up under an advisory lock,
//! so replicas starting together migrate once: the first takes the lock and applies what is
//! missing, each in its own transaction with its version row; the others wait for the lock
//! and find nothing left to do.

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

/// Applies every pending migration under the advisory lock; returns the versions applied.
///
/// # Errors
/// When one fails: its transaction is rolled back and the later ones are not tried.
pub async fn apply(client: &mut Client) -> Result<Vec<i32>, StoreError> {
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
    let result = apply_locked(client).await;
    // Released whatever happened; a dropped connection releases it too.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await
        .map_err(|e| db_error(&e));
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply_locked(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    client
        .batch_execute(VERSIONS)
        .await
        .map_err(|e| db_error(&e))?;
    let mut applied = Vec::new();
    for migration in pending(client).await? {
        let transaction = client.transaction().await.map_err(|e| db_error(&e))?;
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(|e| db_error(&e))?;
        transaction
            .execute(
                "INSERT INTO perfhook_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await
            .map_err(|e| db_error(&e))?;
        transaction.commit().await.map_err(|e| db_error(&e))?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "postgres: migration applied"
        );
        applied.push(migration.version);
    }
    Ok(applied)
}
