//! Group commit for the PostgreSQL store: records without a budget mark that arrive
//! together are written by one statement, in one transaction with one commit, as the sled
//! writer groups its flushes. A few groups may be in flight at once; while they run the next
//! group gathers, so the busier the receiver, the larger the groups.
//!
//! Each caller is answered only after its group's statement has committed: a duplicate
//! within a group is answered `Duplicate` once the first copy is committed, like any
//! duplicate. A failed statement fails its whole group (nothing of it is committed).

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{db_error, int, pool_error, JobPlan};
use crate::store::{NewEvent, Recorded, StoreError};

/// Records one group holds at most.
const GROUP_MAX: usize = 256;
/// Groups written at once. Two measured better than four (bench/load.sh --postgres, c=64:
/// 14,994 req/s and p99 23 ms against 12,334 and 28 ms): fewer, larger commits, and fewer
/// database backends competing for the core.
const IN_FLIGHT: usize = 2;
/// Records waiting for a group at most; beyond it callers wait to queue.
const QUEUE: usize = 4_096;

/// The events of a group, their jobs and the wake-up of every replica, in one statement.
/// Events whose key is taken are left out by `ON CONFLICT DO NOTHING`, and so are their jobs
/// (joined on the events inserted); the rows returned are the events inserted.
const RECORD_GROUP: &str = "WITH input AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::bigint[], $6::bigint[], $7::text[])
             AS t(endpoint, id, kind, livemode, received_at, expires_at, body)),
     event AS (
         INSERT INTO perfhook_events (endpoint, id, kind, livemode, received_at, expires_at, body)
         SELECT endpoint, id, kind, livemode, received_at, expires_at, body FROM input
         ON CONFLICT DO NOTHING RETURNING endpoint, id),
     jobs AS (
         INSERT INTO perfhook_jobs (endpoint, event_id, notifier, status, attempts, last_error, due_ms, digest)
         SELECT j.endpoint, j.id, j.notifier, 'pending', 0, NULL, j.due_ms, j.digest
         FROM unnest($8::text[], $9::text[], $10::text[], $11::bigint[], $12::boolean[])
             AS j(endpoint, id, notifier, due_ms, digest)
         JOIN event e ON e.endpoint = j.endpoint AND e.id = j.id
         RETURNING 1),
     woken AS (SELECT pg_notify('perfhook_jobs', '') FROM jobs LIMIT 1)
     SELECT e.endpoint, e.id, (SELECT count(*) FROM woken) FROM event e";

/// One record waiting for its group.
struct Waiting {
    event: NewEvent,
    plan: JobPlan,
    answer: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// Hands records to the group writer.
#[derive(Debug, Clone)]
pub(super) struct GroupWriter {
    queue: mpsc::Sender<Waiting>,
}

/// What a written group changed: events and jobs added, for the counts.
pub(super) type Added = (i64, i64);

impl GroupWriter {
    /// Starts the writer on `pool`; `added` hears what each group stored.
    pub(super) fn start(
        pool: deadpool_postgres::Pool,
        added: impl Fn(Added) + Send + Sync + 'static,
    ) -> Self {
        let (queue, mut waiting) = mpsc::channel::<Waiting>(QUEUE);
        let added = Arc::new(added);
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            while let Some(first) = waiting.recv().await {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                // Whatever queued while a slot was busy joins this group.
                let mut group = vec![first];
                while group.len() < GROUP_MAX {
                    match waiting.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let (pool, added) = (pool.clone(), Arc::clone(&added));
                tokio::spawn(async move {
                    write(&pool, group, added.as_ref()).await;
                    drop(slot);
                });
            }
        });
        Self { queue }
    }

    /// Records `event` in the next group; answers once that group has committed.
    pub(super) async fn record(
        &self,
        event: NewEvent,
        plan: JobPlan,
    ) -> Result<Recorded, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Waiting {
                event,
                plan,
                answer,
            })
            .await
            .map_err(|_| StoreError::unavailable("the store is closed"))?;
        answered
            .await
            .map_err(|_| StoreError::unavailable("the group writer stopped"))?
    }
}

/// Writes one group and answers each of its records.
async fn write(
    pool: &deadpool_postgres::Pool,
    group: Vec<Waiting>,
    added: &(dyn Fn(Added) + Send + Sync),
) {
    // A key twice in one group: the first copy is written, the others answered after it.
    let mut keys = HashSet::new();
    let (mut first, repeated): (Vec<Waiting>, Vec<Waiting>) =
        group.into_iter().partition(|waiting| {
            keys.insert((
                waiting.event.record.endpoint.clone(),
                waiting.event.record.id.clone(),
            ))
        });
    // Every group takes its keys' locks in one order, so two groups holding some of the same
    // keys (retries arriving at two replicas) wait for each other instead of deadlocking.
    first.sort_by(|a, b| {
        (&a.event.record.endpoint, &a.event.record.id)
            .cmp(&(&b.event.record.endpoint, &b.event.record.id))
    });
    match statement(pool, &first).await {
        Ok(inserted) => {
            let mut events = 0;
            let mut jobs = 0;
            for waiting in first {
                let key = (waiting.event.record.endpoint, waiting.event.record.id);
                let answer = if inserted.contains(&key) {
                    events += 1;
                    jobs += i64::try_from(waiting.plan.notifiers.len()).unwrap_or(0);
                    Recorded::New
                } else {
                    Recorded::Duplicate
                };
                let _ = waiting.answer.send(Ok(answer));
            }
            added((events, jobs));
            for waiting in repeated {
                let _ = waiting.answer.send(Ok(Recorded::Duplicate));
            }
        }
        Err(error) => {
            for waiting in first.into_iter().chain(repeated) {
                let _ = waiting.answer.send(Err(error.clone()));
            }
        }
    }
}

/// Runs [`RECORD_GROUP`] for `group`; the keys it inserted.
async fn statement(
    pool: &deadpool_postgres::Pool,
    group: &[Waiting],
) -> Result<HashSet<(String, String)>, StoreError> {
    let mut endpoints = Vec::with_capacity(group.len());
    let mut ids = Vec::with_capacity(group.len());
    let mut kinds = Vec::with_capacity(group.len());
    let mut livemodes = Vec::with_capacity(group.len());
    let mut received = Vec::with_capacity(group.len());
    let mut expires = Vec::with_capacity(group.len());
    let mut bodies = Vec::with_capacity(group.len());
    let (mut job_endpoints, mut job_ids, mut notifiers, mut dues, mut digests) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for waiting in group {
        let record = &waiting.event.record;
        endpoints.push(record.endpoint.as_str());
        ids.push(record.id.as_str());
        kinds.push(record.kind.as_str());
        livemodes.push(record.livemode);
        received.push(int(record.received_at));
        expires.push(int(waiting.event.expires_at));
        bodies.push(record.body.as_str());
        for (index, notifier) in waiting.plan.notifiers.iter().enumerate() {
            job_endpoints.push(record.endpoint.as_str());
            job_ids.push(record.id.as_str());
            notifiers.push(notifier.as_str());
            dues.push(waiting.plan.dues.get(index).copied().unwrap_or_default());
            digests.push(waiting.plan.digests.get(index).copied().unwrap_or_default());
        }
    }
    let client = pool.get().await.map_err(|e| pool_error(&e))?;
    let statement = client
        .prepare_cached(RECORD_GROUP)
        .await
        .map_err(|e| db_error(&e))?;
    let rows = client
        .query(
            &statement,
            &[
                &endpoints,
                &ids,
                &kinds,
                &livemodes,
                &received,
                &expires,
                &bodies,
                &job_endpoints,
                &job_ids,
                &notifiers,
                &dues,
                &digests,
            ],
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect())
}
