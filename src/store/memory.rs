//! The in-memory store: the port's semantics in a few maps behind one mutex, for tests that
//! run the whole application in process. Nothing survives a drop; every write is "durable"
//! the moment it is applied.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::unconfigured_reason;
use super::{
    decode_cursor, encode_cursor, event_key, listing_position, parse_refused_id, refused_id,
    ApiKeyRecord, Claimed, ClaimedJob, Counts, EventDetail, EventPage, EventQuery, EventRecord,
    EventSummary, Finished, Job, JobStatus, JobToken, NewEvent, Outcome, Recorded, RefusedBounds,
    RefusedDelivery, Store, StoreError, StoreErrorKind,
};

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    /// API key id → its record.
    api_keys: BTreeMap<String, ApiKeyRecord>,
    /// (endpoint, received ms, sequence) → a refused delivery.
    refused: BTreeMap<(String, u64, u64), RefusedDelivery>,
    refused_sequence: u64,
    audit: Vec<crate::audit::AuditEntry>,
    /// The last purged entry's (sequence, hash).
    audit_anchor: Option<(u64, String)>,
    /// Event key → the event and its expiry.
    events: BTreeMap<Vec<u8>, (EventRecord, u64)>,
    /// Job key (event key, NUL, notifier) → the job.
    jobs: BTreeMap<Vec<u8>, Job>,
    /// Budget mark → its thresholds notified and usage figures.
    crossings: BTreeMap<String, crate::store::BudgetState>,
    /// (notifier, due, sequence) → job key: pending jobs in the order they come due.
    queue: BTreeMap<(String, u64, u64), Vec<u8>>,
    /// Job key → its queue position.
    queued_at: HashMap<Vec<u8>, (String, u64, u64)>,
    /// Job key → (lease number, lease end in ms).
    leases: HashMap<Vec<u8>, (u64, u64)>,
    /// (expires_at, event key).
    expiry: BTreeSet<(u64, Vec<u8>)>,
    /// Listing positions, see [`listing_position`].
    listing: BTreeSet<Vec<u8>>,
    counts: Counts,
    sequence: u64,
}

fn job_key(event_key: &[u8], notifier: &str) -> Vec<u8> {
    let mut key = event_key.to_vec();
    key.push(0);
    key.extend_from_slice(notifier.as_bytes());
    key
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends every lease, as a restart of a single-process store does.
    pub fn forget_leases(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.leases.clear();
        }
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        let state = self
            .state
            .lock()
            .map_err(|_| StoreError::unavailable("the memory store's lock is poisoned"))?;
        if state.closed {
            return Err(StoreError::unavailable("the store is closed"));
        }
        Ok(state)
    }
}

impl State {
    fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    fn enqueue(&mut self, key: &[u8], notifier: &str, due_ms: u64) {
        let seq = self.next_sequence();
        let position = (notifier.to_owned(), due_ms, seq);
        self.queue.insert(position.clone(), key.to_vec());
        self.queued_at.insert(key.to_vec(), position);
    }

    fn dequeue(&mut self, key: &[u8]) {
        if let Some(position) = self.queued_at.remove(key) {
            self.queue.remove(&position);
        }
    }

    fn finish_one(&mut self, finished: Finished) -> Result<(), StoreError> {
        let key = finished.token.key;
        if self.leases.get(&key).map(|lease| lease.0) != Some(finished.token.lease) {
            return Err(StoreError::new(
                StoreErrorKind::LeaseLost,
                "the job's lease expired before it was finished",
            ));
        }
        self.leases.remove(&key);
        let Some(job) = self.jobs.get_mut(&key) else {
            return Ok(());
        };
        job.attempts = job.attempts.saturating_add(1);
        job.due_ms = finished.at_ms;
        let mut requeue = None;
        match finished.outcome {
            Outcome::Delivered => {
                job.status = JobStatus::Delivered;
                self.counts.outbox = self.counts.outbox.saturating_sub(1);
            }
            Outcome::Retry { at_ms, error } => {
                job.last_error = Some(error);
                job.due_ms = at_ms;
                requeue = Some((job.notifier.clone(), at_ms));
            }
            Outcome::Dead { reason } => {
                job.status = JobStatus::Dead;
                job.last_error = Some(reason);
                self.counts.outbox = self.counts.outbox.saturating_sub(1);
                self.counts.dead += 1;
            }
        }
        self.dequeue(&key);
        if let Some((notifier, due)) = requeue {
            self.enqueue(&key, &notifier, due);
        }
        Ok(())
    }

    fn remove_event(&mut self, key: &[u8], record: &EventRecord) {
        self.listing.remove(&listing_position(
            record.received_at,
            &record.endpoint,
            &record.id,
        ));
        let mut prefix = key.to_vec();
        prefix.push(0);
        let job_keys: Vec<Vec<u8>> = self
            .jobs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for job_key in job_keys {
            if let Some(job) = self.jobs.remove(&job_key) {
                match job.status {
                    JobStatus::Pending => self.counts.outbox = self.counts.outbox.saturating_sub(1),
                    JobStatus::Dead => self.counts.dead = self.counts.dead.saturating_sub(1),
                    JobStatus::Delivered | JobStatus::Suppressed => {}
                }
            }
            self.dequeue(&job_key);
            self.leases.remove(&job_key);
        }
        self.counts.events = self.counts.events.saturating_sub(1);
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn record(&self, event: NewEvent) -> Result<Recorded, StoreError> {
        let mut state = self.state()?;
        let key = event_key(&event.record.endpoint, &event.record.id);
        if state.events.contains_key(&key) {
            return Ok(Recorded::Duplicate);
        }
        let received_at = event.record.received_at;
        let suppressed_by = event.budget.as_ref().and_then(|mark| {
            let notified = state.crossings.entry(mark.budget.clone()).or_default();
            crate::store::apply_crossing(notified, mark, &event.record.id, received_at)
                .map(|first| crate::store::suppressed_reason(mark.threshold, &first))
                .or_else(|| {
                    let cooldown = mark.cooldown.as_ref()?;
                    let noted = state.crossings.entry(cooldown.key.clone()).or_default();
                    crate::store::apply_cooldown(noted, cooldown, received_at)
                })
        });
        for notifier in &event.notifiers {
            let job_key = job_key(&key, notifier);
            // One job per notifier, however often it is named.
            if state.jobs.contains_key(&job_key) {
                continue;
            }
            let (due_ms, digest) = event.first_due(notifier);
            state.jobs.insert(
                job_key.clone(),
                Job {
                    endpoint: event.record.endpoint.clone(),
                    event_id: event.record.id.clone(),
                    notifier: notifier.clone(),
                    status: if suppressed_by.is_some() {
                        JobStatus::Suppressed
                    } else {
                        JobStatus::Pending
                    },
                    attempts: 0,
                    last_error: suppressed_by.clone(),
                    due_ms,
                    digest,
                },
            );
            if suppressed_by.is_none() {
                state.enqueue(&job_key, notifier, due_ms);
                state.counts.outbox += 1;
            }
        }
        state.listing.insert(listing_position(
            event.record.received_at,
            &event.record.endpoint,
            &event.record.id,
        ));
        state.expiry.insert((event.expires_at, key.clone()));
        state.events.insert(key, (event.record, event.expires_at));
        state.counts.events += 1;
        Ok(Recorded::New)
    }

    async fn claim(
        &self,
        notifier: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Claimed, StoreError> {
        let mut state = self.state()?;
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let start = (notifier.to_owned(), 0, 0);
        let end = (notifier.to_owned(), u64::MAX, u64::MAX);
        let candidates: Vec<((String, u64, u64), Vec<u8>)> = state
            .queue
            .range(start..=end)
            .map(|(position, key)| (position.clone(), key.clone()))
            .collect();
        let mut claimed = Claimed::default();
        let later = |at: u64, claimed: &mut Claimed| {
            claimed.next_due_ms = Some(claimed.next_due_ms.map_or(at, |n| n.min(at)));
        };
        for ((_, due, _), key) in candidates {
            if due > now_ms {
                later(due, &mut claimed);
                break;
            }
            if let Some(until) = state.leases.get(&key).map(|l| l.1).filter(|u| *u > now_ms) {
                later(until, &mut claimed);
                continue;
            }
            if claimed.jobs.len() >= limit {
                later(due, &mut claimed);
                break;
            }
            let Some(job) = state
                .jobs
                .get(&key)
                .filter(|job| job.status == JobStatus::Pending)
                .cloned()
            else {
                continue;
            };
            let event_key = event_key(&job.endpoint, &job.event_id);
            let Some((event, _)) = state.events.get(&event_key).cloned() else {
                continue;
            };
            let lease_number = state.next_sequence();
            state
                .leases
                .insert(key.clone(), (lease_number, now_ms.saturating_add(lease_ms)));
            claimed.jobs.push(ClaimedJob {
                token: JobToken {
                    key,
                    lease: lease_number,
                },
                job,
                event,
            });
        }
        Ok(claimed)
    }

    async fn finish(&self, finished: Vec<Finished>) -> Result<(), StoreError> {
        let mut state = self.state()?;
        let mut first_error = None;
        for one in finished {
            if let Err(error) = state.finish_one(one) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn bury_unconfigured(
        &self,
        configured: &[String],
        at_ms: u64,
    ) -> Result<u64, StoreError> {
        let mut state = self.state()?;
        let orphaned: Vec<Vec<u8>> = state
            .queue
            .iter()
            .filter(|((notifier, _, _), _)| !configured.contains(notifier))
            .map(|(_, key)| key.clone())
            .collect();
        for key in &orphaned {
            state.dequeue(key);
            state.leases.remove(key);
            if let Some(job) = state.jobs.get_mut(key) {
                job.status = JobStatus::Dead;
                job.last_error = Some(unconfigured_reason(&job.notifier));
                job.due_ms = at_ms;
            }
            state.counts.outbox = state.counts.outbox.saturating_sub(1);
            state.counts.dead += 1;
        }
        Ok(orphaned.len() as u64)
    }

    async fn purge_expired(&self, now: u64, batch: usize) -> Result<usize, StoreError> {
        let mut state = self.state()?;
        let expired: Vec<(u64, Vec<u8>)> = state
            .expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .take(batch)
            .cloned()
            .collect();
        for entry in &expired {
            state.expiry.remove(entry);
            if let Some((record, _)) = state.events.remove(&entry.1) {
                state.remove_event(&entry.1, &record);
            }
        }
        Ok(expired.len())
    }

    async fn event(&self, endpoint: &str, id: &str) -> Result<Option<EventDetail>, StoreError> {
        let state = self.state()?;
        let key = event_key(endpoint, id);
        let Some((record, expires_at)) = state.events.get(&key).cloned() else {
            return Ok(None);
        };
        let mut prefix = key;
        prefix.push(0);
        let notifications = state
            .jobs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, job)| job.clone())
            .collect();
        Ok(Some(EventDetail {
            record,
            expires_at,
            notifications,
        }))
    }

    async fn budget_usage(&self, budget: &str) -> Result<Vec<(u64, u64)>, StoreError> {
        let state = self.state()?;
        Ok(state
            .crossings
            .get(budget)
            .map(|budget| budget.usage.clone())
            .unwrap_or_default())
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let state = self.state()?;
        let upper = match &query.cursor {
            Some(cursor) => decode_cursor(cursor)?,
            None => query
                .until
                .map_or_else(|| vec![0xff; 9], |until| until.to_be_bytes().to_vec()),
        };
        let mut page = EventPage::default();
        for position in state.listing.range(..upper).rev() {
            let received_at = position
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            if query.since.is_some_and(|since| received_at < since) {
                break;
            }
            if query.until.is_some_and(|until| received_at >= until) {
                continue;
            }
            let Some((record, _)) = position.get(8..).and_then(|key| state.events.get(key)) else {
                continue;
            };
            if query
                .endpoint
                .as_ref()
                .is_some_and(|e| *e != record.endpoint)
                || query.kind.as_ref().is_some_and(|k| *k != record.kind)
            {
                continue;
            }
            if page.events.len() >= query.limit.max(1) {
                page.next_cursor = page.events.last().map(|last| {
                    encode_cursor(&listing_position(
                        last.received_at,
                        &last.endpoint,
                        &last.id,
                    ))
                });
                break;
            }
            page.events.push(EventSummary {
                endpoint: record.endpoint.clone(),
                id: record.id.clone(),
                kind: record.kind.clone(),
                livemode: record.livemode,
                received_at: record.received_at,
            });
        }
        Ok(page)
    }

    async fn put_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        self.state()?
            .api_keys
            .insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.state()?.api_keys.get(id).cloned())
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(self.state()?.api_keys.values().cloned().collect())
    }

    async fn requeue(
        &self,
        endpoint: &str,
        id: &str,
        notifiers: &[String],
        now_ms: u64,
    ) -> Result<Option<usize>, StoreError> {
        let mut state = self.state()?;
        let key = event_key(endpoint, id);
        if !state.events.contains_key(&key) {
            return Ok(None);
        }
        let mut queued = 0;
        let mut named = HashSet::new();
        for notifier in notifiers {
            if !named.insert(notifier.clone()) {
                continue;
            }
            let job_key = job_key(&key, notifier);
            match state.jobs.get(&job_key).map(|job| job.status) {
                Some(JobStatus::Pending) => continue,
                Some(JobStatus::Dead) => state.counts.dead = state.counts.dead.saturating_sub(1),
                Some(JobStatus::Delivered | JobStatus::Suppressed) | None => {}
            }
            state.jobs.insert(
                job_key.clone(),
                Job {
                    endpoint: endpoint.to_owned(),
                    event_id: id.to_owned(),
                    notifier: notifier.clone(),
                    status: JobStatus::Pending,
                    attempts: 0,
                    last_error: None,
                    due_ms: now_ms,
                    digest: false,
                },
            );
            state.enqueue(&job_key, notifier, now_ms);
            state.counts.outbox += 1;
            queued += 1;
        }
        Ok(Some(queued))
    }

    async fn delete_event(&self, endpoint: &str, id: &str) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let key = event_key(endpoint, id);
        let Some((record, expires_at)) = state.events.remove(&key) else {
            return Ok(false);
        };
        state.expiry.remove(&(expires_at, key.clone()));
        state.remove_event(&key, &record);
        Ok(true)
    }

    async fn jobs(
        &self,
        status: JobStatus,
        notifier: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        Ok(self
            .state()?
            .jobs
            .values()
            .filter(|job| job.status == status && notifier.is_none_or(|n| job.notifier == n))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn keep_refused(
        &self,
        mut refused: RefusedDelivery,
        bounds: RefusedBounds,
    ) -> Result<String, StoreError> {
        let mut state = self.state()?;
        let sequence = state.refused_sequence;
        state.refused_sequence += 1;
        refused.id = refused_id(&refused.endpoint, refused.received_at_ms, sequence);
        let endpoint = refused.endpoint.clone();
        let id = refused.id.clone();
        state.refused.insert(
            (endpoint.clone(), refused.received_at_ms, sequence),
            refused,
        );
        loop {
            let mine: Vec<_> = state
                .refused
                .iter()
                .filter(|((e, _, _), _)| *e == endpoint)
                .map(|(k, r)| (k.clone(), r.request.len() as u64))
                .collect();
            let bytes: u64 = mine.iter().map(|(_, len)| len).sum();
            let over =
                mine.len() > bounds.max_count || (bytes > bounds.max_bytes && mine.len() > 1);
            match mine.first() {
                Some((oldest, _)) if over => {
                    state.refused.remove(oldest);
                }
                _ => break,
            }
        }
        Ok(id)
    }

    async fn refused_list(
        &self,
        endpoint: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RefusedDelivery>, StoreError> {
        let state = self.state()?;
        let mut found: Vec<RefusedDelivery> = state
            .refused
            .values()
            .filter(|r| endpoint.is_none_or(|e| r.endpoint == e))
            .cloned()
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(super::refused_order(r)));
        found.truncate(limit);
        Ok(found)
    }

    async fn refused(&self, id: &str) -> Result<Option<RefusedDelivery>, StoreError> {
        let Some((endpoint, ms, sequence)) = parse_refused_id(id) else {
            return Ok(None);
        };
        Ok(self
            .state()?
            .refused
            .get(&(endpoint.to_owned(), ms, sequence))
            .cloned())
    }

    async fn remove_refused(&self, id: &str) -> Result<bool, StoreError> {
        let Some((endpoint, ms, sequence)) = parse_refused_id(id) else {
            return Ok(false);
        };
        Ok(self
            .state()?
            .refused
            .remove(&(endpoint.to_owned(), ms, sequence))
            .is_some())
    }

    async fn purge_refused(&self, before_ms: u64) -> Result<usize, StoreError> {
        let mut state = self.state()?;
        let before = state.refused.len();
        state.refused.retain(|_, r| r.received_at_ms >= before_ms);
        Ok(before - state.refused.len())
    }

    async fn append_audit(
        &self,
        entry: crate::audit::NewAuditEntry,
    ) -> Result<crate::audit::AuditEntry, StoreError> {
        let mut state = self.state()?;
        let (seq, hash) = match state.audit.last() {
            Some(last) => (last.seq, last.hash.clone()),
            // Nothing kept: the chain goes on from the anchor.
            None => state
                .audit_anchor
                .clone()
                .unwrap_or_else(|| (0, crate::audit::GENESIS.to_owned())),
        };
        let entry = crate::audit::AuditEntry::chain(entry, seq, &hash);
        state.audit.push(entry.clone());
        Ok(entry)
    }

    async fn purge_audit(&self, before: u64) -> Result<usize, StoreError> {
        let mut state = self.state()?;
        let old = state
            .audit
            .iter()
            .take_while(|entry| entry.at < before)
            .count();
        if let Some(last) = old.checked_sub(1).and_then(|i| state.audit.get(i)) {
            state.audit_anchor = Some((last.seq, last.hash.clone()));
        }
        state.audit.drain(..old);
        Ok(old)
    }

    async fn audit_anchor(&self) -> Result<(u64, String), StoreError> {
        Ok(self
            .state()?
            .audit_anchor
            .clone()
            .unwrap_or_else(|| (0, crate::audit::GENESIS.to_owned())))
    }

    async fn audit_log(&self) -> Result<Vec<crate::audit::StoredEntry>, StoreError> {
        Ok(self
            .state()?
            .audit
            .iter()
            .map(|entry| crate::audit::StoredEntry {
                position: entry.seq,
                entry: Ok(entry.clone()),
            })
            .collect())
    }

    fn counts(&self) -> Counts {
        self.state
            .lock()
            .map(|state| state.counts)
            .unwrap_or_default()
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.state().map(|_| ())
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.state()?.closed = true;
        Ok(())
    }
}
