//! Digests: the jobs that waited (quiet hours, or a notifier in digest mode) and came due
//! together go out as one message. The message is an event perfhook composes, of type
//! `perfhook.digest`, listing each alert's subject and carrying each raw event, so every
//! notifier renders it like any other event; it is not stored, and each job it stands for
//! is finished with its outcome.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::fields::EndpointFields;
use crate::notify::rfc3339;
use crate::notify::wording::Wording;
use crate::store::{ClaimedJob, EventRecord};

/// The type of a digest.
pub const DIGEST: &str = "perfhook.digest";
/// A digest's endpoint when its alerts came to more than one (a name no endpoint has:
/// endpoint names are letters, digits, - and _).
pub const SEVERAL: &str = "(several)";

/// Alerts one digest holds at most.
const MAX_ALERTS: usize = 1_000;
/// Raw event bytes one digest carries at most, so every notifier can take it (a webhook
/// receiver's body limit, a command's stdin); alerts beyond either bound go in another digest.
const MAX_EVENT_BYTES: usize = 1 << 20;
/// Digest jobs one round gathers at most.
pub(super) const MAX_GATHERED: usize = 4 * MAX_ALERTS;

/// Splits the digest jobs that came due together into digests within both bounds, oldest
/// alerts first.
pub(super) fn groups(mut jobs: Vec<ClaimedJob>) -> Vec<Vec<ClaimedJob>> {
    jobs.sort_by(|a, b| {
        (a.event.received_at, &a.event.endpoint, &a.event.id).cmp(&(
            b.event.received_at,
            &b.event.endpoint,
            &b.event.id,
        ))
    });
    let mut groups: Vec<Vec<ClaimedJob>> = Vec::new();
    let mut bytes: usize = 0;
    for job in jobs {
        let size = job.event.body.len();
        match groups.last_mut() {
            Some(group)
                if group.len() < MAX_ALERTS && bytes.saturating_add(size) <= MAX_EVENT_BYTES =>
            {
                bytes += size;
                group.push(job);
            }
            _ => {
                bytes = size;
                groups.push(vec![job]);
            }
        }
    }
    groups
}

/// The digest of `jobs` (oldest alert first), composed at `now` (Unix seconds) for
/// `notifier`. Its id is a hash of the jobs it stands for, so a retry is the same digest.
pub(super) fn compose(
    notifier: &str,
    jobs: &[ClaimedJob],
    fields: &EndpointFields,
    now: u64,
) -> EventRecord {
    let mut events: Vec<&EventRecord> = jobs.iter().map(|job| &job.event).collect();
    events.sort_by(|a, b| {
        (a.received_at, &a.endpoint, &a.id).cmp(&(b.received_at, &b.endpoint, &b.id))
    });
    let mut identity = Sha256::new();
    identity.update(notifier.as_bytes());
    for event in &events {
        identity.update([0]);
        identity.update(event.endpoint.as_bytes());
        identity.update([0]);
        identity.update(event.id.as_bytes());
    }
    let hash: Vec<u8> = identity.finalize().into_iter().take(12).collect();
    let id = format!("digest_{}", hex::encode(hash));
    let alerts: Vec<Value> = events
        .iter()
        .map(|event| {
            let alert = crate::event::Alert::from_body_with(
                event.body.as_bytes(),
                &fields.of(&event.endpoint),
            );
            json!({
                "endpoint": event.endpoint,
                "id": event.id,
                "type": event.kind,
                "received_at": rfc3339(event.received_at),
                "subject": Wording::of(event, &alert).subject,
                // Verbatim JSON (it parsed when it was accepted); a string if it no longer does.
                "event": serde_json::from_str::<Value>(&event.body)
                    .unwrap_or_else(|_| Value::String(event.body.clone())),
            })
        })
        .collect();
    let endpoint = common(events.iter().map(|event| event.endpoint.as_str()))
        .map_or_else(|| SEVERAL.to_owned(), str::to_owned);
    let livemode = common(events.iter().map(|event| event.livemode)).flatten();
    let body = json!({
        "id": id,
        "type": DIGEST,
        "created": now,
        "livemode": livemode,
        "data": {
            "notifier": notifier,
            "count": alerts.len(),
            "first_received_at": events.first().map(|event| rfc3339(event.received_at)),
            "last_received_at": events.last().map(|event| rfc3339(event.received_at)),
            "alerts": alerts,
        },
    });
    EventRecord {
        endpoint,
        id,
        kind: DIGEST.to_owned(),
        livemode,
        received_at: now,
        body: body.to_string(),
    }
}

/// The one value every item has, if they agree.
fn common<T: PartialEq>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.all(|item| item == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Job, JobStatus, JobToken};

    fn claimed(endpoint: &str, id: &str, received_at: u64, usage: u64) -> ClaimedJob {
        let body = json!({
            "id": id,
            "type": "usage.threshold_reached",
            "livemode": true,
            "data": {"organization": {"name": "Acme"}, "project": {"name": "bot"},
                     "threshold": {"percent": usage}, "usage": {"percent": usage}},
        });
        ClaimedJob {
            token: JobToken {
                key: id.as_bytes().to_vec(),
                lease: 1,
            },
            job: Job {
                endpoint: endpoint.to_owned(),
                event_id: id.to_owned(),
                notifier: "email".to_owned(),
                status: JobStatus::Pending,
                attempts: 0,
                last_error: None,
                due_ms: 0,
                digest: true,
            },
            event: EventRecord {
                endpoint: endpoint.to_owned(),
                id: id.to_owned(),
                kind: "usage.threshold_reached".to_owned(),
                livemode: Some(true),
                received_at,
                body: body.to_string(),
            },
        }
    }

    #[test]
    fn a_digest_lists_its_alerts_oldest_first_with_a_stable_id() {
        let jobs = vec![
            claimed("perf", "evt_b", 200, 60),
            claimed("perf", "evt_a", 100, 50),
        ];
        let digest = compose("email", &jobs, &EndpointFields::default(), 300);
        assert_eq!(digest.kind, DIGEST);
        assert_eq!(digest.endpoint, "perf");
        assert_eq!(digest.livemode, Some(true));
        let body: Value = serde_json::from_str(&digest.body).expect("json");
        assert_eq!(body["data"]["count"], 2);
        assert_eq!(body["data"]["alerts"][0]["id"], "evt_a");
        assert_eq!(
            body["data"]["alerts"][1]["event"]["id"], "evt_b",
            "the raw event rides along"
        );
        assert!(body["data"]["alerts"][0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("50%")));
        let reversed = vec![jobs[1].clone(), jobs[0].clone()];
        assert_eq!(
            compose("email", &reversed, &EndpointFields::default(), 999).id,
            digest.id
        );
        assert_ne!(
            compose("slack", &jobs, &EndpointFields::default(), 300).id,
            digest.id
        );
    }

    #[test]
    fn alerts_of_several_endpoints_say_so() {
        let jobs = vec![
            claimed("perf", "evt_a", 100, 50),
            claimed("perf-eu", "evt_b", 200, 60),
        ];
        let digest = compose("email", &jobs, &EndpointFields::default(), 300);
        assert_eq!(digest.endpoint, SEVERAL);
    }

    #[test]
    fn digests_split_by_count_and_bytes_oldest_first() {
        let jobs: Vec<ClaimedJob> = (0..5)
            .map(|i| claimed("perf", &format!("evt_{i}"), 100 - i, 50))
            .collect();
        let one = groups(jobs.clone());
        assert_eq!(one.len(), 1);
        assert_eq!(one[0][0].event.id, "evt_4", "oldest first");
        let mut big = jobs;
        for job in &mut big {
            job.event.body = "x".repeat(MAX_EVENT_BYTES / 2);
        }
        let split: Vec<usize> = groups(big).iter().map(Vec::len).collect();
        assert_eq!(split, [2, 2, 1]);
    }
}
