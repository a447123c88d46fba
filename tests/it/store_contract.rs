//! The storage contract: one suite of behaviour every `Store` implementation must show, run
//! against each of them (memory, sled; PostgreSQL joins here). Time is passed in, so every
//! test states its own clock.

use std::sync::Arc;
use std::time::Duration;

use perfhook::event::Mode;
use perfhook::store::memory::MemoryStore;
use perfhook::store::postgres::{PostgresOptions, PostgresStore};
use perfhook::store::sled::{SledOptions, SledStore};
use perfhook::store::{
    ApiKeyRecord, BudgetMark, Counts, EventQuery, EventRecord, Finished, JobStatus, NewEvent,
    Outcome, Recorded, RefusedBounds, RefusedDelivery, Store, StoreErrorKind,
};

/// A store under test and what keeps it alive.
pub struct Backend {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

pub async fn memory() -> Option<Backend> {
    Some(Backend {
        store: Arc::new(MemoryStore::new()),
        _dir: None,
    })
}

pub async fn sled() -> Option<Backend> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path(), SledOptions::default()).expect("open");
    Some(Backend {
        store: Arc::new(store),
        _dir: Some(dir),
    })
}

/// A fresh database on the test process's private cluster; `None` (the test prints SKIPPED)
/// without PostgreSQL.
pub async fn postgres() -> Option<Backend> {
    let url = crate::pg_cluster::fresh_database().await?;
    let store = PostgresStore::connect(&pg_options(&url))
        .await
        .expect("connect and migrate");
    Some(Backend {
        store: Arc::new(store),
        _dir: None,
    })
}

pub fn pg_options(url: &str) -> PostgresOptions {
    PostgresOptions {
        url: zeroize::Zeroizing::new(url.to_owned()),
        pool_size: 4,
        statement_timeout: Duration::from_secs(10),
        ca_file: None,
    }
}

const T0: u64 = 1_700_000_000;
const LEASE: Duration = Duration::from_secs(30);

fn record(endpoint: &str, id: &str, kind: &str, received_at: u64) -> EventRecord {
    EventRecord {
        endpoint: endpoint.into(),
        id: id.into(),
        kind: kind.into(),
        livemode: Some(true),
        received_at,
        body: format!(
            "{{\"id\":\"{id}\",\"type\":\"{kind}\",\"note\":\"quote \\\" slash \\\\ caf\u{e9}\"}}"
        ),
    }
}

fn new_event(id: &str, notifiers: &[&str], received_at: u64) -> NewEvent {
    NewEvent {
        deferred: Default::default(),
        record: record("perf", id, "usage.threshold_reached", received_at),
        notifiers: notifiers.iter().map(|n| (*n).to_owned()).collect(),
        expires_at: received_at + 1_000,
        budget: None,
    }
}

fn ms(secs: u64) -> u64 {
    secs * 1000
}

async fn a_second_record_with_the_same_id_is_a_duplicate_and_adds_no_job(store: &dyn Store) {
    let event = new_event("evt_1", &["log", "mail"], T0);
    assert_eq!(store.record(event.clone()).await, Ok(Recorded::New));
    assert_eq!(store.record(event).await, Ok(Recorded::Duplicate));
    // Same id at another endpoint is another event.
    let mut elsewhere = new_event("evt_1", &[], T0);
    elsewhere.record.endpoint = "perf-test".into();
    assert_eq!(store.record(elsewhere).await, Ok(Recorded::New));
    assert_eq!(
        store.counts(),
        Counts {
            events: 2,
            outbox: 2,
            dead: 0
        }
    );
}

async fn an_event_reads_back_verbatim_with_its_pending_notifications(store: &dyn Store) {
    let event = new_event("evt_2", &["log", "mail"], T0);
    store.record(event.clone()).await.expect("record");
    let detail = store
        .event("perf", "evt_2")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(detail.record, event.record);
    assert_eq!(detail.record.body.as_bytes(), event.record.body.as_bytes());
    assert_eq!(detail.expires_at, T0 + 1_000);
    let mut notifiers: Vec<(&str, JobStatus, u32)> = detail
        .notifications
        .iter()
        .map(|j| (j.notifier.as_str(), j.status, j.attempts))
        .collect();
    notifiers.sort();
    assert_eq!(
        notifiers,
        vec![
            ("log", JobStatus::Pending, 0),
            ("mail", JobStatus::Pending, 0)
        ]
    );
    assert_eq!(store.event("perf", "missing").await, Ok(None));
    // Listed as pending before anything was attempted.
    let pending = store
        .jobs(JobStatus::Pending, None, 10)
        .await
        .expect("jobs");
    let listed: Vec<(&str, &str)> = pending
        .iter()
        .map(|job| (job.event_id.as_str(), job.notifier.as_str()))
        .collect();
    assert_eq!(listed, [("evt_2", "log"), ("evt_2", "mail")]);
}

async fn a_claimed_job_is_invisible_until_finished_or_its_lease_expires(store: &dyn Store) {
    store
        .record(new_event("evt_3", &["log"], T0))
        .await
        .expect("record");
    let now = ms(T0);
    assert!(store
        .claim("log", now - 1, LEASE, 10)
        .await
        .expect("claim")
        .jobs
        .is_empty());
    let first = store.claim("log", now, LEASE, 10).await.expect("claim");
    assert_eq!(first.jobs.len(), 1);
    assert_eq!(first.jobs[0].event.id, "evt_3");
    assert_eq!(first.jobs[0].job.notifier, "log");
    let again = store.claim("log", now + 1, LEASE, 10).await.expect("claim");
    assert!(again.jobs.is_empty(), "leased job handed out twice");
    assert_eq!(again.next_due_ms, Some(now + 30_000), "the lease's end");
    // Other notifiers' queues are separate.
    assert!(store
        .claim("mail", now, LEASE, 10)
        .await
        .expect("claim")
        .jobs
        .is_empty());
    // The lease expires: the job comes back with a new token, and the old one is stale.
    let later = store
        .claim("log", now + 30_001, LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(later.jobs.len(), 1);
    let stale = Finished {
        token: first.jobs[0].token.clone(),
        outcome: Outcome::Delivered,
        at_ms: now + 30_002,
    };
    let error = store.finish(vec![stale]).await.expect_err("stale token");
    assert_eq!(error.kind(), StoreErrorKind::LeaseLost);
    store
        .finish(vec![Finished {
            token: later.jobs[0].token.clone(),
            outcome: Outcome::Delivered,
            at_ms: now + 30_003,
        }])
        .await
        .expect("finish");
    assert_eq!(store.counts().outbox, 0);
    let detail = store
        .event("perf", "evt_3")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(detail.notifications[0].status, JobStatus::Delivered);
    assert_eq!(detail.notifications[0].attempts, 1);
}

async fn a_retry_waits_for_its_time_and_a_dead_job_is_counted(store: &dyn Store) {
    store
        .record(new_event("evt_4", &["mail"], T0))
        .await
        .expect("record");
    let now = ms(T0);
    let claimed = store.claim("mail", now, LEASE, 10).await.expect("claim");
    store
        .finish(vec![Finished {
            token: claimed.jobs[0].token.clone(),
            outcome: Outcome::Retry {
                at_ms: now + 5_000,
                error: "SMTP failed".into(),
            },
            at_ms: now,
        }])
        .await
        .expect("finish");
    let early = store
        .claim("mail", now + 4_999, LEASE, 10)
        .await
        .expect("claim");
    assert!(early.jobs.is_empty());
    assert_eq!(early.next_due_ms, Some(now + 5_000));
    let due = store
        .claim("mail", now + 5_000, LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(due.jobs.len(), 1);
    assert_eq!(due.jobs[0].job.attempts, 1);
    assert_eq!(due.jobs[0].job.last_error.as_deref(), Some("SMTP failed"));
    store
        .finish(vec![Finished {
            token: due.jobs[0].token.clone(),
            outcome: Outcome::Dead {
                reason: "mailbox unavailable".into(),
            },
            at_ms: now + 5_001,
        }])
        .await
        .expect("finish");
    assert_eq!(
        store.counts(),
        Counts {
            events: 1,
            outbox: 0,
            dead: 1
        }
    );
    let detail = store
        .event("perf", "evt_4")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(detail.notifications[0].status, JobStatus::Dead);
    assert_eq!(detail.notifications[0].attempts, 2);
    assert!(store
        .claim("mail", now + 10_000_000, LEASE, 10)
        .await
        .expect("claim")
        .jobs
        .is_empty());
}

async fn a_deferred_job_waits_for_its_digest_and_stays_a_digest_job_on_retry(store: &dyn Store) {
    let mut event = new_event("evt_quiet", &["log", "mail"], T0);
    let digest_at = ms(T0 + 3_600);
    event.deferred = std::collections::BTreeMap::from([("mail".to_owned(), digest_at)]);
    store.record(event).await.expect("record");
    let log = store.claim("log", ms(T0), LEASE, 10).await.expect("claim");
    assert_eq!(log.jobs.len(), 1, "not deferred: due at once");
    assert!(!log.jobs[0].job.digest);
    let early = store
        .claim("mail", digest_at - 1, LEASE, 10)
        .await
        .expect("claim");
    assert!(early.jobs.is_empty());
    assert_eq!(early.next_due_ms, Some(digest_at));
    let due = store
        .claim("mail", digest_at, LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(due.jobs.len(), 1);
    assert!(due.jobs[0].job.digest);
    store
        .finish(vec![Finished {
            token: due.jobs[0].token.clone(),
            outcome: Outcome::Retry {
                at_ms: digest_at + 5_000,
                error: "SMTP failed".into(),
            },
            at_ms: digest_at,
        }])
        .await
        .expect("finish");
    let again = store
        .claim("mail", digest_at + 5_000, LEASE, 10)
        .await
        .expect("claim");
    assert!(
        again.jobs[0].job.digest,
        "a retry goes out in a digest again"
    );
    let detail = store
        .event("perf", "evt_quiet")
        .await
        .expect("read")
        .expect("stored");
    let mail = detail
        .notifications
        .iter()
        .find(|job| job.notifier == "mail")
        .expect("mail job");
    assert!(mail.digest);
}

async fn claims_come_in_due_order_up_to_the_limit(store: &dyn Store) {
    // Received (and accepted) in this order; a retry due between them is handed out in its
    // place.
    for (i, id) in ["evt_a", "evt_b", "evt_c", "evt_d"].iter().enumerate() {
        store
            .record(new_event(id, &["log"], T0 + i as u64))
            .await
            .expect("record");
    }
    let first = store.claim("log", ms(T0), LEASE, 1).await.expect("claim");
    assert_eq!(first.jobs[0].event.id, "evt_a");
    store
        .finish(vec![Finished {
            token: first.jobs[0].token.clone(),
            outcome: Outcome::Retry {
                at_ms: ms(T0 + 1) + 500,
                error: "refused".into(),
            },
            at_ms: ms(T0),
        }])
        .await
        .expect("finish");
    let claimed = store
        .claim("log", ms(T0 + 100), LEASE, 3)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.jobs.iter().map(|c| c.event.id.as_str()).collect();
    assert_eq!(ids, ["evt_b", "evt_a", "evt_c"]);
    assert_eq!(claimed.jobs[1].job.attempts, 1, "the retry");
    assert_eq!(claimed.next_due_ms, Some(ms(T0 + 3)), "one more is due");
}

async fn purge_removes_expired_events_jobs_and_dedupe_keys_in_batches(store: &dyn Store) {
    for (id, expires) in [("old1", 100), ("old2", 150), ("new", 300)] {
        let mut event = new_event(id, &["log"], T0);
        event.expires_at = T0 + expires;
        store.record(event).await.expect("record");
    }
    assert_eq!(store.purge_expired(T0 + 200, 1).await, Ok(1));
    assert_eq!(store.purge_expired(T0 + 200, 10).await, Ok(1));
    assert_eq!(store.purge_expired(T0 + 200, 10).await, Ok(0));
    assert_eq!(store.event("perf", "old1").await, Ok(None));
    assert!(store.event("perf", "new").await.expect("read").is_some());
    assert_eq!(
        store.counts(),
        Counts {
            events: 1,
            outbox: 1,
            dead: 0
        }
    );
    let claimed = store
        .claim("log", ms(T0 + 1), LEASE, 10)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.jobs.iter().map(|c| c.event.id.as_str()).collect();
    assert_eq!(ids, ["new"], "purged events' jobs are gone too");
    assert_eq!(
        store.record(new_event("old1", &[], T0 + 300)).await,
        Ok(Recorded::New),
        "a purged id is new again"
    );
}

async fn listing_filters_pages_newest_first_and_refuses_foreign_cursors(store: &dyn Store) {
    for i in 0..7u64 {
        let kind = if i % 2 == 0 {
            "usage.threshold_reached"
        } else {
            "budget.exceeded"
        };
        let endpoint = if i == 3 { "perf-test" } else { "perf" };
        let event = NewEvent {
            deferred: Default::default(),
            record: record(endpoint, &format!("evt_l{i}"), kind, T0 + i),
            notifiers: Vec::new(),
            expires_at: T0 + 1_000,
            budget: None,
        };
        store.record(event).await.expect("record");
    }
    let mut query = EventQuery {
        endpoint: Some("perf".into()),
        limit: 2,
        ..EventQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list(&query).await.expect("list");
        assert!(page.events.len() <= 2);
        seen.extend(page.events.into_iter().map(|e| e.id));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["evt_l6", "evt_l5", "evt_l4", "evt_l2", "evt_l1", "evt_l0"]
    );
    let page = store
        .list(&EventQuery {
            kind: Some("budget.exceeded".into()),
            since: Some(T0 + 2),
            until: Some(T0 + 6),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .expect("list");
    let ids: Vec<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_l5", "evt_l3"]);
    assert_eq!(page.events[1].endpoint, "perf-test");
    assert_eq!(page.next_cursor, None);
    let bad = store
        .list(&EventQuery {
            cursor: Some("not hex".into()),
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .expect_err("foreign cursor");
    assert_eq!(bad.kind(), StoreErrorKind::BadRequest);
}

async fn concurrent_records_of_one_id_store_it_exactly_once(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.record(new_event("evt_race", &["log"], T0)).await })
        })
        .collect();
    let mut new = 0;
    for task in tasks {
        if task.await.expect("join") == Ok(Recorded::New) {
            new += 1;
        }
    }
    assert_eq!(new, 1);
    assert_eq!(store.counts().outbox, 1);
}

async fn a_notifier_named_twice_gets_one_job_delivered_once(store: &dyn Store) {
    store
        .record(new_event("evt_twice", &["log", "log"], T0))
        .await
        .expect("record");
    assert_eq!(store.counts().outbox, 1);
    let claimed = store.claim("log", ms(T0), LEASE, 10).await.expect("claim");
    assert_eq!(claimed.jobs.len(), 1);
    store
        .finish(vec![Finished {
            token: claimed.jobs[0].token.clone(),
            outcome: Outcome::Delivered,
            at_ms: ms(T0),
        }])
        .await
        .expect("finish");
    let later = store
        .claim("log", ms(T0 + 10_000), LEASE, 10)
        .await
        .expect("claim");
    assert!(
        later.jobs.is_empty(),
        "a delivered job is never handed out again"
    );
    assert_eq!(store.counts().outbox, 0);
}

async fn jobs_of_a_notifier_no_longer_configured_are_buried_with_a_reason(store: &dyn Store) {
    store
        .record(new_event("evt_gone", &["log", "pager"], T0))
        .await
        .expect("record");
    let buried = store
        .bury_unconfigured(&["log".to_owned()], ms(T0 + 1))
        .await
        .expect("bury");
    assert_eq!(buried, 1);
    assert_eq!(
        store.counts(),
        Counts {
            events: 1,
            outbox: 1,
            dead: 1
        }
    );
    let detail = store
        .event("perf", "evt_gone")
        .await
        .expect("read")
        .expect("stored");
    let pager = detail
        .notifications
        .iter()
        .find(|j| j.notifier == "pager")
        .expect("pager job");
    assert_eq!(pager.status, JobStatus::Dead);
    assert_eq!(
        pager.last_error.as_deref(),
        Some("no notifier named \"pager\" is configured")
    );
    assert!(store
        .claim("pager", ms(T0 + 10), LEASE, 10)
        .await
        .expect("claim")
        .jobs
        .is_empty());
    assert_eq!(
        store
            .claim("log", ms(T0 + 10), LEASE, 10)
            .await
            .expect("claim")
            .jobs
            .len(),
        1,
        "configured notifiers keep their jobs"
    );
}

fn api_key_record(id: &str, created_at: u64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        name: "ci".into(),
        mode: Mode::Live,
        scopes: vec!["events:read".into()],
        sha256: "ab".repeat(32),
        created_at,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
        last_used_from: None,
        rate_limit_per_minute: 60,
        replaced_by: None,
    }
}

async fn api_keys_are_stored_replaced_and_listed_in_id_order(store: &dyn Store) {
    assert_eq!(store.api_keys().await.expect("list"), []);
    assert_eq!(store.api_key("phk_live_AAAAAAAA").await.expect("get"), None);
    let second = api_key_record("phk_test_BBBBBBBB", T0);
    let first = api_key_record("phk_live_AAAAAAAA", T0 + 1);
    store.put_api_key(&second).await.expect("put");
    store.put_api_key(&first).await.expect("put");
    let mut revoked = first.clone();
    revoked.revoked_at = Some(T0 + 2);
    store.put_api_key(&revoked).await.expect("replace");
    assert_eq!(
        store.api_key("phk_live_AAAAAAAA").await.expect("get"),
        Some(revoked.clone())
    );
    assert_eq!(store.api_keys().await.expect("list"), [revoked, second]);
    assert_eq!(store.counts(), Counts::default(), "keys are not events");
}

fn refused(endpoint: &str, at_ms: u64, request: &[u8]) -> RefusedDelivery {
    RefusedDelivery {
        id: String::new(),
        endpoint: endpoint.into(),
        received_at_ms: at_ms,
        source: "203.0.113.9".into(),
        reason: "invalid_signature".into(),
        message: "no valid signature".into(),
        request: request.to_vec(),
    }
}

async fn refused_deliveries_are_kept_newest_first_within_their_bounds(store: &dyn Store) {
    let bounds = RefusedBounds {
        max_count: 2,
        max_bytes: 10,
    };
    let first = store
        .keep_refused(refused("perf", 1_000, b"POST a"), bounds)
        .await
        .expect("keep");
    let second = store
        .keep_refused(refused("perf", 2_000, b"POST b"), bounds)
        .await
        .expect("keep");
    let other = store
        .keep_refused(refused("other", 1_500, b"POST c"), bounds)
        .await
        .expect("keep");
    // Two of perf's are 12 bytes, over the 10-byte bound: the oldest goes.
    let listed = store.refused_list(Some("perf"), 10).await.expect("list");
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [second.as_str()]
    );
    assert_eq!(store.refused(&first).await.expect("get"), None);
    let kept = store.refused(&second).await.expect("get").expect("kept");
    assert_eq!(kept.request, b"POST b");
    assert_eq!(
        (kept.endpoint.as_str(), kept.received_at_ms),
        ("perf", 2_000)
    );
    let third = store
        .keep_refused(refused("perf", 3_000, b"P"), RefusedBounds::default())
        .await
        .expect("keep");
    let all = store.refused_list(None, 10).await.expect("list");
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [third.as_str(), second.as_str(), other.as_str()]
    );
    assert_eq!(store.refused_list(None, 1).await.expect("list").len(), 1);
    assert!(store.remove_refused(&third).await.expect("remove"));
    assert!(!store.remove_refused(&third).await.expect("remove"));
    assert!(!store.remove_refused("not an id").await.expect("remove"));
    assert_eq!(
        store.purge_refused(2_000).await.expect("purge"),
        1,
        "other's"
    );
    assert_eq!(store.refused_list(None, 10).await.expect("list").len(), 1);
    assert_eq!(store.counts(), Counts::default(), "refusals are not events");
}

async fn a_dead_or_delivered_job_can_be_queued_again_and_an_event_deleted(store: &dyn Store) {
    store
        .record(new_event("evt_again", &["log", "mail"], T0))
        .await
        .expect("record");
    let now = ms(T0);
    // log delivered, mail dead.
    for (notifier, outcome) in [
        ("log", Outcome::Delivered),
        (
            "mail",
            Outcome::Dead {
                reason: "SMTP refused an address".into(),
            },
        ),
    ] {
        let claimed = store.claim(notifier, now, LEASE, 10).await.expect("claim");
        store
            .finish(vec![Finished {
                token: claimed.jobs[0].token.clone(),
                outcome,
                at_ms: now,
            }])
            .await
            .expect("finish");
    }
    let dead = store.jobs(JobStatus::Dead, None, 10).await.expect("jobs");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].notifier.as_str(), dead[0].event_id.as_str()),
        ("mail", "evt_again")
    );
    assert!(store
        .jobs(JobStatus::Pending, None, 10)
        .await
        .expect("jobs")
        .is_empty());
    assert_eq!(
        store.counts(),
        Counts {
            events: 1,
            outbox: 0,
            dead: 1
        }
    );

    let later = now + 60_000;
    let all = ["log".to_owned(), "mail".to_owned(), "mail".to_owned()];
    assert_eq!(
        store.requeue("perf", "evt_again", &all, later).await,
        Ok(Some(2))
    );
    assert_eq!(
        store.counts(),
        Counts {
            events: 1,
            outbox: 2,
            dead: 0
        }
    );
    // Already pending: left alone.
    assert_eq!(
        store.requeue("perf", "evt_again", &all, later).await,
        Ok(Some(0))
    );
    assert_eq!(
        store.requeue("perf", "evt_absent", &all, later).await,
        Ok(None)
    );
    let pending = store
        .jobs(JobStatus::Pending, Some("mail"), 10)
        .await
        .expect("jobs");
    assert_eq!(
        (pending.len(), pending[0].attempts, pending[0].due_ms),
        (1, 0, later)
    );
    assert!(
        store
            .claim("mail", now, LEASE, 10)
            .await
            .expect("claim")
            .jobs
            .is_empty(),
        "due later"
    );
    assert_eq!(
        store
            .claim("mail", later, LEASE, 10)
            .await
            .expect("claim")
            .jobs
            .len(),
        1
    );

    assert_eq!(store.delete_event("perf", "evt_again").await, Ok(true));
    assert_eq!(store.delete_event("perf", "evt_again").await, Ok(false));
    assert_eq!(store.event("perf", "evt_again").await.expect("read"), None);
    assert_eq!(store.counts(), Counts::default());
    assert!(store
        .claim("log", later, LEASE, 10)
        .await
        .expect("claim")
        .jobs
        .is_empty());
    // Its dedupe key went with it: the same id is new again.
    assert_eq!(
        store.record(new_event("evt_again", &[], T0)).await,
        Ok(Recorded::New)
    );
}

async fn audit_retention_removes_the_oldest_and_the_chain_goes_on_from_its_anchor(
    store: &dyn Store,
) {
    use perfhook::audit::{verify, ActionKind, NewAuditEntry, GENESIS};
    let entry = |at: u64| NewAuditEntry {
        at,
        key: None,
        source: "cli".into(),
        action: "key.create".into(),
        kind: ActionKind::Create,
        target: Some(format!("k{at}")),
        outcome: "ok".into(),
    };
    assert_eq!(store.audit_anchor().await, Ok((0, GENESIS.to_owned())));
    let mut made = Vec::new();
    for at in [10, 20, 30] {
        made.push(store.append_audit(entry(at)).await.expect("append"));
    }
    assert_eq!(store.purge_audit(25).await, Ok(2));
    let anchor = store.audit_anchor().await.expect("anchor");
    assert_eq!(anchor, (2, made[1].hash.clone()));
    let log = store.audit_log().await.expect("log");
    assert_eq!(log.len(), 1);
    assert!(verify(&log, (anchor.0, &anchor.1)).is_empty());
    assert_eq!(verify(&log, (0, GENESIS)), ["entries 1 to 2 are missing"]);
    // Everything purged: the next entry still follows the last one.
    assert_eq!(store.purge_audit(100).await, Ok(1));
    let next = store.append_audit(entry(110)).await.expect("append");
    assert_eq!((next.seq, next.prev.as_str()), (4, made[2].hash.as_str()));
    let anchor = store.audit_anchor().await.expect("anchor");
    assert!(verify(
        &store.audit_log().await.expect("log"),
        (anchor.0, &anchor.1)
    )
    .is_empty());
}

async fn a_closed_store_refuses_work(store: &dyn Store) {
    store.close().await.expect("close");
    assert!(store.record(new_event("evt_late", &[], T0)).await.is_err());
    assert!(store.check().await.is_err());
}

fn marked(id: &str, received_at: u64, threshold: Option<u64>, usage: Option<u64>) -> NewEvent {
    NewEvent {
        deferred: Default::default(),
        budget: Some(BudgetMark {
            budget: "b".repeat(64),
            threshold,
            usage,
            cooldown: None,
        }),
        ..new_event(id, &["log", "mail"], received_at)
    }
}

async fn statuses(store: &dyn Store, id: &str) -> Vec<(JobStatus, Option<String>)> {
    store
        .event("perf", id)
        .await
        .expect("read")
        .expect("stored")
        .notifications
        .into_iter()
        .map(|job| (job.status, job.last_error))
        .collect()
}

async fn a_crossing_already_notified_is_stored_with_suppressed_jobs_until_rearmed(
    store: &dyn Store,
) {
    assert_eq!(
        store
            .record(marked("evt_80a", T0, Some(80), Some(80)))
            .await
            .expect("record"),
        Recorded::New
    );
    // The same crossing under a new id: stored, its jobs suppressed, naming the first.
    assert_eq!(
        store
            .record(marked("evt_80b", T0 + 1, Some(80), Some(84)))
            .await
            .expect("record"),
        Recorded::New
    );
    let suppressed = statuses(store, "evt_80b").await;
    assert_eq!(suppressed.len(), 2);
    for (status, reason) in &suppressed {
        assert_eq!(*status, JobStatus::Suppressed);
        assert!(
            reason.as_deref().is_some_and(|r| r.contains("evt_80a")),
            "{reason:?}"
        );
    }
    // Only the first crossing's two jobs are waiting or claimable.
    assert_eq!(store.counts().outbox, 2);
    let claimed = store
        .claim("log", ms(T0 + 10), LEASE, 10)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed
        .jobs
        .iter()
        .map(|job| job.job.event_id.as_str())
        .collect();
    assert_eq!(ids, vec!["evt_80a"]);
    // A replay of the suppressed id is a duplicate, and changes nothing.
    assert_eq!(
        store
            .record(marked("evt_80b", T0 + 2, Some(80), Some(84)))
            .await
            .expect("record"),
        Recorded::Duplicate
    );
    // Usage below 80% arms it again; the next 80% crossing notifies.
    let dropped = marked("evt_usage_60", T0 + 3, None, Some(60));
    store.record(dropped).await.expect("record");
    assert!(statuses(store, "evt_usage_60")
        .await
        .iter()
        .all(|(status, _)| *status == JobStatus::Pending));
    store
        .record(marked("evt_80c", T0 + 4, Some(80), Some(81)))
        .await
        .expect("record");
    assert!(statuses(store, "evt_80c")
        .await
        .iter()
        .all(|(status, reason)| *status == JobStatus::Pending && reason.is_none()));
    // Another budget is another matter.
    let other = NewEvent {
        deferred: Default::default(),
        budget: Some(BudgetMark {
            budget: "c".repeat(64),
            threshold: Some(80),
            usage: Some(80),
            cooldown: None,
        }),
        ..new_event("evt_other", &["log"], T0 + 5)
    };
    store.record(other).await.expect("record");
    assert_eq!(statuses(store, "evt_other").await[0].0, JobStatus::Pending);
    // A suppressed job can still be sent on demand.
    assert_eq!(
        store
            .requeue("perf", "evt_80b", &["log".to_owned()], ms(T0 + 6))
            .await
            .expect("requeue"),
        Some(1)
    );
}

/// Claims four first attempts and finishes three of them out of order (the first stays
/// out): delivered, retried, dead. Returns the first one's claim.
async fn finish_three_of_four_out_of_order(store: &dyn Store) -> perfhook::store::ClaimedJob {
    for id in ["evt_o1", "evt_o2", "evt_o3", "evt_o4"] {
        store
            .record(new_event(id, &["log"], T0))
            .await
            .expect("record");
    }
    let now = ms(T0);
    let claimed = store.claim("log", now, LEASE, 4).await.expect("claim");
    let ids: Vec<&str> = claimed.jobs.iter().map(|c| c.event.id.as_str()).collect();
    assert_eq!(ids, ["evt_o1", "evt_o2", "evt_o3", "evt_o4"]);
    let outcomes = [
        Outcome::Delivered,
        Outcome::Retry {
            at_ms: now + 5_000,
            error: "SMTP failed".into(),
        },
        Outcome::Dead {
            reason: "gave up".into(),
        },
    ];
    for (claim, outcome) in claimed.jobs.iter().skip(1).zip(outcomes) {
        store
            .finish(vec![Finished {
                token: claim.token.clone(),
                outcome,
                at_ms: now + 1,
            }])
            .await
            .expect("finish");
    }
    claimed.jobs[0].clone()
}

/// What each of the four events' `log` notification says: (status, attempts, at).
async fn out_of_order_statuses(store: &dyn Store) -> Vec<(JobStatus, u32, u64)> {
    let mut all = Vec::new();
    for id in ["evt_o1", "evt_o2", "evt_o3", "evt_o4"] {
        let detail = store
            .event("perf", id)
            .await
            .expect("read")
            .expect("stored");
        let job = &detail.notifications[0];
        all.push((job.status, job.attempts, job.due_ms));
    }
    all
}

async fn jobs_finished_out_of_order_read_back_as_finished(store: &dyn Store) {
    let first = finish_three_of_four_out_of_order(store).await;
    let now = ms(T0);
    let again = store.claim("log", now + 1, LEASE, 10).await.expect("claim");
    assert!(again.jobs.is_empty(), "{:?}", again.jobs);
    assert_eq!(again.next_due_ms, Some(now + 5_000), "the retry");
    assert_eq!(
        out_of_order_statuses(store).await,
        [
            (JobStatus::Pending, 0, now),
            (JobStatus::Delivered, 1, now + 1),
            (JobStatus::Pending, 1, now + 5_000),
            (JobStatus::Dead, 1, now + 1),
        ]
    );
    let ids = |jobs: Vec<perfhook::store::Job>| -> Vec<String> {
        jobs.into_iter().map(|job| job.event_id).collect()
    };
    let listed = |status| store.jobs(status, Some("log"), 10);
    assert_eq!(
        ids(listed(JobStatus::Pending).await.expect("jobs")),
        ["evt_o1", "evt_o3"]
    );
    assert_eq!(
        ids(listed(JobStatus::Delivered).await.expect("jobs")),
        ["evt_o2"]
    );
    assert_eq!(
        ids(listed(JobStatus::Dead).await.expect("jobs")),
        ["evt_o4"]
    );
    store
        .finish(vec![Finished {
            token: first.token,
            outcome: Outcome::Delivered,
            at_ms: now + 7,
        }])
        .await
        .expect("finish");
    assert_eq!(
        out_of_order_statuses(store).await[..2],
        [
            (JobStatus::Delivered, 1, now + 7),
            (JobStatus::Delivered, 1, now + 1)
        ]
    );
    assert_eq!(
        store.counts(),
        Counts {
            events: 4,
            outbox: 1,
            dead: 1
        }
    );
    assert_eq!(
        ids(listed(JobStatus::Delivered).await.expect("jobs")),
        ["evt_o1", "evt_o2"]
    );
    assert_eq!(
        ids(store
            .jobs(JobStatus::Delivered, None, 1)
            .await
            .expect("jobs")),
        ["evt_o1"]
    );
    // Re-notify: the delivered one is queued again, the pending retry is left alone.
    let log = ["log".to_owned()];
    assert_eq!(
        store.requeue("perf", "evt_o1", &log, now + 10).await,
        Ok(Some(1))
    );
    assert_eq!(
        store.requeue("perf", "evt_o3", &log, now + 10).await,
        Ok(Some(0))
    );
    let due = store
        .claim("log", now + 5_000, LEASE, 10)
        .await
        .expect("claim");
    let claimed: Vec<(&str, u32)> = due
        .jobs
        .iter()
        .map(|c| (c.event.id.as_str(), c.job.attempts))
        .collect();
    assert_eq!(claimed, [("evt_o1", 0), ("evt_o3", 1)]);
}

async fn each_delivery_keeps_its_own_time(store: &dyn Store) {
    for id in ["evt_t1", "evt_t2", "evt_t3"] {
        store
            .record(new_event(id, &["log"], T0))
            .await
            .expect("record");
    }
    let now = ms(T0);
    let claimed = store.claim("log", now, LEASE, 10).await.expect("claim");
    let finished = claimed
        .jobs
        .iter()
        .zip(1..)
        .map(|(claim, i)| Finished {
            token: claim.token.clone(),
            outcome: Outcome::Delivered,
            at_ms: now + i * 1_000,
        })
        .collect();
    store.finish(finished).await.expect("finish");
    for (id, i) in ["evt_t1", "evt_t2", "evt_t3"].iter().zip(1..) {
        let detail = store
            .event("perf", id)
            .await
            .expect("read")
            .expect("stored");
        let job = &detail.notifications[0];
        assert_eq!(
            (job.status, job.due_ms),
            (JobStatus::Delivered, now + i * 1_000),
            "{id}"
        );
    }
}

async fn a_first_attempt_received_earlier_is_not_held_back_by_one_received_later(
    store: &dyn Store,
) {
    // The clock stepped back between the two: the second was received "earlier".
    store
        .record(new_event("evt_late", &["log"], T0 + 10))
        .await
        .expect("record");
    store
        .record(new_event("evt_early", &["log"], T0))
        .await
        .expect("record");
    let claimed = store
        .claim("log", ms(T0 + 5), LEASE, 10)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.jobs.iter().map(|c| c.event.id.as_str()).collect();
    assert_eq!(ids, ["evt_early"]);
    assert_eq!(claimed.next_due_ms, Some(ms(T0 + 10)));
}

macro_rules! contract {
    ($backend:ident: $($name:ident),* ; shared: $($shared:ident),*) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(backend) = super::$backend().await else { return };
                    super::$name(backend.store.as_ref()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $shared() {
                    let Some(backend) = super::$backend().await else { return };
                    super::$shared(std::sync::Arc::clone(&backend.store)).await;
                }
            )*
        }
    };
}

macro_rules! suite {
    ($backend:ident) => {
        contract!($backend:
            a_second_record_with_the_same_id_is_a_duplicate_and_adds_no_job,
            an_event_reads_back_verbatim_with_its_pending_notifications,
            a_claimed_job_is_invisible_until_finished_or_its_lease_expires,
            a_retry_waits_for_its_time_and_a_dead_job_is_counted,
            a_deferred_job_waits_for_its_digest_and_stays_a_digest_job_on_retry,
            claims_come_in_due_order_up_to_the_limit,
            purge_removes_expired_events_jobs_and_dedupe_keys_in_batches,
            listing_filters_pages_newest_first_and_refuses_foreign_cursors,
            a_notifier_named_twice_gets_one_job_delivered_once,
            jobs_of_a_notifier_no_longer_configured_are_buried_with_a_reason,
            api_keys_are_stored_replaced_and_listed_in_id_order,
            refused_deliveries_are_kept_newest_first_within_their_bounds,
            a_dead_or_delivered_job_can_be_queued_again_and_an_event_deleted,
            jobs_finished_out_of_order_read_back_as_finished,
            each_delivery_keeps_its_own_time,
            a_first_attempt_received_earlier_is_not_held_back_by_one_received_later,
            audit_retention_removes_the_oldest_and_the_chain_goes_on_from_its_anchor,
            a_crossing_already_notified_is_stored_with_suppressed_jobs_until_rearmed,
            a_closed_store_refuses_work;
            shared: concurrent_records_of_one_id_store_it_exactly_once);
    };
}

suite!(memory);
suite!(sled);
suite!(postgres);

/// PostgreSQL only: a claim the database committed but whose answer was lost (the
/// connection broke) reached no worker, so its job is claimable again at the next claim,
/// not only when the lease ends. (The loss is injected: the `fault-injection` feature.)
#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn postgres_releases_a_claim_whose_answer_was_lost() {
    let Some(url) = crate::pg_cluster::fresh_database().await else {
        return;
    };
    let store = PostgresStore::connect(&pg_options(&url))
        .await
        .expect("connect and migrate");
    store
        .record(new_event("evt_lost_claim", &["log", "mail"], T0))
        .await
        .expect("record");
    let long_lease = Duration::from_secs(1200);
    store.lose_next_claim_answer();
    let lost = store.claim("log", ms(T0), long_lease, 10).await;
    assert!(lost.is_err(), "the fault was not injected");
    // Another notifier's claims are its own: mail's job was never claimed.
    let mail = store
        .claim("mail", ms(T0), long_lease, 10)
        .await
        .expect("claim mail");
    assert_eq!(mail.jobs.len(), 1);
    // Within the lost claim's lease, the job comes back at once, delivered once.
    let again = store
        .claim("log", ms(T0) + 1_000, long_lease, 10)
        .await
        .expect("claim after the loss");
    assert_eq!(again.jobs.len(), 1, "the lost claim still holds its job");
    let token = again.jobs.into_iter().next().map(|c| c.token).expect("job");
    store
        .finish(vec![Finished {
            token,
            outcome: Outcome::Delivered,
            at_ms: ms(T0) + 2_000,
        }])
        .await
        .expect("finish");
    // A release does not reach claims that did not fail: the next one finds nothing.
    let idle = store
        .claim("log", ms(T0) + 3_000, long_lease, 10)
        .await
        .expect("claim");
    assert!(idle.jobs.is_empty());
    store.close().await.expect("close");
}

/// PostgreSQL only: the counts its triggers keep equal `count(*)` over the tables after
/// every kind of write, and a store connecting anew folds and reads them.
#[tokio::test]
async fn postgres_counts_kept_by_triggers_match_the_tables() {
    let Some(url) = crate::pg_cluster::fresh_database().await else {
        return;
    };
    let store = PostgresStore::connect(&pg_options(&url))
        .await
        .expect("connect and migrate");
    for (n, expires) in [(1, 100), (2, 100), (3, 900), (4, 900), (5, 900)] {
        let mut event = new_event(&format!("evt_count_{n}"), &["log", "mail"], T0);
        event.expires_at = T0 + expires;
        store.record(event).await.expect("record");
    }
    // A duplicate, a delivery, a death, a retry, a requeue, a deletion and a purge.
    store
        .record(new_event("evt_count_1", &["log"], T0))
        .await
        .expect("duplicate");
    let claimed = store.claim("log", ms(T0), LEASE, 3).await.expect("claim");
    let outcomes = [
        Outcome::Delivered,
        Outcome::Dead {
            reason: "gone".into(),
        },
        Outcome::Retry {
            at_ms: ms(T0 + 60),
            error: "later".into(),
        },
    ];
    let finished = claimed
        .jobs
        .into_iter()
        .zip(outcomes)
        .map(|(claimed, outcome)| Finished {
            token: claimed.token,
            outcome,
            at_ms: ms(T0 + 1),
        })
        .collect();
    store.finish(finished).await.expect("finish");
    store
        .requeue("perf", "evt_count_4", &["log".to_owned()], ms(T0 + 2))
        .await
        .expect("requeue");
    assert_eq!(store.delete_event("perf", "evt_count_5").await, Ok(true));
    assert_eq!(store.purge_expired(T0 + 200, 10).await, Ok(2));

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM perfhook_events),
                    (SELECT count(*) FROM perfhook_jobs WHERE status = 'pending'),
                    (SELECT count(*) FROM perfhook_jobs WHERE status = 'dead'),
                    (SELECT sum(value) FROM perfhook_counts WHERE name = 'events')::bigint,
                    (SELECT sum(value) FROM perfhook_counts WHERE name = 'pending')::bigint,
                    (SELECT sum(value) FROM perfhook_counts WHERE name = 'dead')::bigint",
            &[],
        )
        .await
        .expect("query");
    let tables: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let counted: (i64, i64, i64) = (row.get(3), row.get(4), row.get(5));
    assert_eq!(counted, tables);
    drop(client);
    let _ = driver.await;
    assert_eq!(tables.0, 2, "events 3 and 4 are left");
    store.close().await.expect("close");
    let again = PostgresStore::connect(&pg_options(&url))
        .await
        .expect("connect again");
    let counts = again.counts();
    assert_eq!(
        (counts.events, counts.outbox, counts.dead),
        (
            2,
            u64::try_from(tables.1).unwrap_or(0),
            u64::try_from(tables.2).unwrap_or(0)
        )
    );
    again.close().await.expect("close");
    // Connecting read the counts, and folded the rows appended per change into one a name.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM perfhook_counts", &[])
        .await
        .expect("query")
        .get(0);
    assert!(rows <= 3, "{rows} count rows after a fold");
    drop(client);
    let _ = driver.await;
}

/// PostgreSQL only: migration 0004 locks both tables while an older replica's purge, which
/// deletes jobs and then events, is halfway. PostgreSQL ends the deadlock by aborting the
/// migration; the migration is tried again once the purge is through, and applies.
#[tokio::test]
async fn postgres_migration_tried_again_after_a_deadlock_with_a_purge() {
    let Some(url) = crate::pg_cluster::fresh_database().await else {
        return;
    };
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    };
    let mut migrator = connect().await;
    assert_eq!(
        perfhook::store::postgres::migrations::apply_through(&mut migrator, 3).await,
        Ok(vec![1, 2, 3])
    );
    // PostgreSQL checks for a deadlock once per wait, `deadlock_timeout` after it began, and
    // aborts the side that checks. The migration's check comes well after the purge starts
    // waiting, and the purge's never comes first, however busy the machine.
    migrator
        .batch_execute("SET deadlock_timeout = '3s'")
        .await
        .expect("set");
    // The older replica's purge: its jobs are deleted, its events not yet.
    let mut purger = connect().await;
    purger
        .batch_execute("SET deadlock_timeout = '1min'")
        .await
        .expect("set");
    let purge = purger.transaction().await.expect("begin");
    purge
        .execute("DELETE FROM perfhook_jobs WHERE event_id = 'gone'", &[])
        .await
        .expect("delete jobs");
    let migrating = tokio::spawn(async move {
        let applied = perfhook::store::postgres::migrations::apply(&mut migrator).await;
        (applied, migrator)
    });
    // The migration holds the events table and waits for the jobs table.
    let observer = connect().await;
    let mut waiting = 0i64;
    for _ in 0..100 {
        waiting = observer
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'perfhook_jobs'::regclass",
                &[],
            )
            .await
            .expect("pg_locks")
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        waiting, 1,
        "the migration waits for the purge's lock on the jobs"
    );
    // The purge's second step closes the cycle; the migration is the side aborted.
    purge
        .execute("DELETE FROM perfhook_events WHERE id = 'gone'", &[])
        .await
        .expect("the purge goes on once the migration is aborted");
    purge.commit().await.expect("commit the purge");
    let (applied, migrator) = migrating.await.expect("join");
    assert_eq!(applied, Ok(vec![4]));
    let counted: i64 = migrator
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'perfhook_events_inserted'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(counted, 1, "migration 0004's triggers exist");
}

/// What only a store with a disk promises: a reopen keeps events, jobs and counts, and ends
/// every lease.
#[tokio::test]
async fn sled_keeps_everything_but_leases_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SledStore::open(dir.path(), SledOptions::default()).expect("open");
        store
            .record(new_event("evt_keep", &["log", "mail"], T0))
            .await
            .expect("record");
        let claimed = store.claim("log", ms(T0), LEASE, 10).await.expect("claim");
        assert_eq!(claimed.jobs.len(), 1);
        store
            .put_api_key(&api_key_record("phk_live_KEEPKEEP", T0))
            .await
            .expect("put");
        store.close().await.expect("close");
    }
    let store = reopen(dir.path()).await;
    assert_eq!(
        store.api_keys().await.expect("keys"),
        [api_key_record("phk_live_KEEPKEEP", T0)]
    );
    assert_eq!(
        store.counts(),
        Counts {
            events: 1,
            outbox: 2,
            dead: 0
        }
    );
    assert_eq!(
        store.record(new_event("evt_keep", &["log"], T0)).await,
        Ok(Recorded::Duplicate)
    );
    let claimed = store.claim("log", ms(T0), LEASE, 10).await.expect("claim");
    assert_eq!(claimed.jobs.len(), 1, "a restart ends every lease");
    assert!(store.disk_bytes().is_some_and(|bytes| bytes > 0));
}

/// First attempts finished out of order read back the same after a restart, which ends the
/// lease of the one still out; `store check` counts them.
#[tokio::test]
async fn sled_keeps_first_attempts_finished_out_of_order_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = {
        let store = SledStore::open(dir.path(), SledOptions::default()).expect("open");
        finish_three_of_four_out_of_order(&store).await;
        let statuses = out_of_order_statuses(&store).await;
        store.close().await.expect("close");
        statuses
    };
    let store = reopen(dir.path()).await;
    assert_eq!(out_of_order_statuses(&store).await, before);
    assert_eq!(
        store.counts(),
        Counts {
            events: 4,
            outbox: 2,
            dead: 1
        }
    );
    let report = store.check_records().await.expect("check");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.jobs, report.pending, report.dead), (4, 2, 1));
    let now = ms(T0);
    let claimed = store
        .claim("log", now + 5_000, LEASE, 10)
        .await
        .expect("claim");
    let ids: Vec<&str> = claimed.jobs.iter().map(|c| c.event.id.as_str()).collect();
    assert_eq!(ids, ["evt_o1", "evt_o3"], "the one out, then the retry");
    let finished = claimed
        .jobs
        .iter()
        .map(|c| Finished {
            token: c.token.clone(),
            outcome: Outcome::Delivered,
            at_ms: now + 5_001,
        })
        .collect();
    store.finish(finished).await.expect("finish");
    assert_eq!(store.counts().outbox, 0);
    assert!(store
        .claim("log", now + 10_000_000, LEASE, 10)
        .await
        .expect("claim")
        .jobs
        .is_empty());
    // Retention removes everything, including when each was delivered.
    assert_eq!(store.purge_expired(T0 + 2_000, 10).await, Ok(4));
    let report = store.check_records().await.expect("check");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        (report.events, report.jobs, report.index_entries),
        (0, 0, 0)
    );
}

/// sled lets go of its directory lock from a background thread; a reopen in the same
/// process may have to wait for it.
async fn reopen(path: &std::path::Path) -> SledStore {
    for _ in 0..200 {
        if let Ok(store) = SledStore::open(path, SledOptions::default()) {
            return store;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("cannot reopen {}", path.display());
}

/// A body large enough for sled to keep in a blob file of its own reads back verbatim,
/// after the power-loss sync of that file, and across a reopen.
#[tokio::test]
async fn sled_keeps_a_body_larger_than_its_blob_threshold_verbatim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut event = new_event("evt_big", &["log"], T0);
    event.record.body = format!(
        "{{\"id\":\"evt_big\",\"type\":\"x\",\"pad\":\"{}\"}}",
        "\u{e9}".repeat(100_000)
    );
    {
        let store = SledStore::open(dir.path(), SledOptions::default()).expect("open");
        assert_eq!(store.record(event.clone()).await, Ok(Recorded::New));
        store.close().await.expect("close");
    }
    let store = reopen(dir.path()).await;
    let detail = store
        .event("perf", "evt_big")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(detail.record.body, event.record.body);
}

/// A data directory from the first layout (trees `events`, `outbox`, `dead`, `expiry`, jobs
/// stamped with their event's writer) opens with its dedupe keys, pending and dead jobs kept,
/// and orphan jobs (a losing duplicate's) dropped.
#[tokio::test]
async fn sled_migrates_a_data_directory_of_the_first_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = ::sled::open(dir.path()).expect("sled");
        let events = db.open_tree("events").expect("tree");
        let outbox = db.open_tree("outbox").expect("tree");
        let dead = db.open_tree("dead").expect("tree");
        let expiry = db.open_tree("expiry").expect("tree");
        for (id, writer) in [("evt_old1", 7u64), ("evt_old2", 8)] {
            let key = format!("perf\0{id}");
            let value = serde_json::json!({
                "writer": writer, "endpoint": "perf", "id": id, "kind": "usage.threshold_reached",
                "livemode": true, "received_at": T0, "body": format!("{{\"id\":\"{id}\",\"type\":\"x\"}}"),
            });
            events
                .insert(key.as_bytes(), serde_json::to_vec(&value).expect("json"))
                .expect("insert");
            let mut expiry_key = (T0 + 500).to_be_bytes().to_vec();
            expiry_key.extend_from_slice(key.as_bytes());
            expiry.insert(expiry_key, &[][..]).expect("insert");
        }
        let job = |id: &str, writer: u64, attempts: u32| {
            serde_json::to_vec(&serde_json::json!({
                "endpoint": "perf", "event_id": id, "notifier": "log", "attempts": attempts,
                "last_error": null, "writer": writer, "created_ms": T0 * 1000,
            }))
            .expect("json")
        };
        let outbox_key = |due: u64, seq: u64| {
            let mut key = due.to_be_bytes().to_vec();
            key.extend_from_slice(&seq.to_be_bytes());
            key
        };
        outbox
            .insert(outbox_key(T0 * 1000, 1), job("evt_old1", 7, 2))
            .expect("insert");
        // An orphan: written by a write that lost the dedupe race.
        outbox
            .insert(outbox_key(T0 * 1000, 2), job("evt_old1", 99, 0))
            .expect("insert");
        dead.insert(outbox_key(T0 * 1000, 3), job("evt_old2", 8, 12))
            .expect("insert");
        db.flush().expect("flush");
    }
    let store = reopen(dir.path()).await;
    assert_eq!(
        store.counts(),
        Counts {
            events: 2,
            outbox: 1,
            dead: 1
        }
    );
    assert_eq!(
        store.record(new_event("evt_old1", &["log"], T0)).await,
        Ok(Recorded::Duplicate),
        "the dedupe key survived the migration"
    );
    let detail = store
        .event("perf", "evt_old2")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(detail.expires_at, T0 + 500);
    assert_eq!(detail.notifications[0].status, JobStatus::Dead);
    let claimed = store.claim("log", ms(T0), LEASE, 10).await.expect("claim");
    assert_eq!(claimed.jobs.len(), 1, "the pending job, not the orphan");
    assert_eq!(
        (
            claimed.jobs[0].event.id.as_str(),
            claimed.jobs[0].job.attempts
        ),
        ("evt_old1", 2)
    );
    drop(claimed);
    store.close().await.expect("close");
    drop(store);
    // Opening again does not migrate twice.
    let store = reopen(dir.path()).await;
    assert_eq!(store.counts().events, 2);
}

/// Finding 2 of the hostile-input review: a `db` file cut short made sled panic while
/// recovering it (exit 101). Cut at eight points: each open either refuses with an error or
/// serves what it recovered, and nothing panics or spins (records, reads and a purge finish).
#[tokio::test]
async fn sled_turns_a_data_file_cut_short_into_an_error_or_a_working_store_never_a_panic() {
    let root = tempfile::tempdir().expect("tempdir");
    let original = root.path().join("original");
    // Two sessions, so sled has written a snapshot as well as its log.
    for session in 0..2 {
        let store = reopen(&original).await;
        for i in 0..1_500 {
            let mut event = new_event(&format!("evt_{session}_{i}"), &["log"], T0);
            event.record.body = format!("{{\"pad\":\"{}\"}}", "x".repeat(1_000));
            store.record(event).await.expect("record");
        }
        store.close().await.expect("close");
        drop(store);
    }
    let (mut refused, mut opened) = (0, 0);
    for (n, fraction) in [0.5, 0.3, 0.7, 0.4, 0.6, 0.2, 0.8, 0.45]
        .into_iter()
        .enumerate()
    {
        let copy = root.path().join(format!("cut_{n}"));
        crate::server_helpers::copy_dir(&original, &copy);
        let db = copy.join("db");
        let len = std::fs::metadata(&db).expect("db").len();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let cut = (len as f64 * fraction) as u64;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .expect("open db");
        file.set_len(cut).expect("truncate");
        drop(file);
        match SledStore::open(&copy, SledOptions::default()) {
            Err(error) => {
                refused += 1;
                let text = error.to_string();
                assert!(text.contains("damaged") || text.contains("sled"), "{text}");
            }
            Ok(store) => {
                opened += 1;
                let work = async {
                    let _ = store.record(new_event("evt_after_cut", &["log"], T0)).await;
                    for i in 0..1_500 {
                        let _ = store.event("perf", &format!("evt_0_{i}")).await;
                    }
                    let _ = store.purge_expired(u64::MAX, 10_000).await;
                    let _ = store.claim("log", ms(T0), LEASE, 100).await;
                };
                tokio::time::timeout(Duration::from_secs(60), work)
                    .await
                    .expect("a damaged store spun instead of answering");
            }
        }
    }
    eprintln!("cut short at 8 points: {refused} refused with an error, {opened} opened");
}
