//! What each endpoint answered in the last 24 hours, hour by hour, kept in memory for the
//! inspector's overview (the counters in `/metrics` count since start instead).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Hours the window spans.
const HOURS: usize = 24;

/// How a delivery was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Stored for the first time.
    Accepted,
    /// Already stored.
    Duplicate,
    /// Any error answer.
    Refused,
}

/// Deliveries counted over a span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Stored for the first time.
    pub accepted: u64,
    /// Already stored.
    pub duplicate: u64,
    /// Answered with an error.
    pub refused: u64,
}

impl Tally {
    fn add(&mut self, other: Self) {
        self.accepted = self.accepted.saturating_add(other.accepted);
        self.duplicate = self.duplicate.saturating_add(other.duplicate);
        self.refused = self.refused.saturating_add(other.refused);
    }
}

/// One hour's tally, stamped with the hour (Unix seconds / 3600) it belongs to.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    hour: u64,
    tally: Tally,
}

/// Per endpoint, a ring of hourly buckets and the time of the last accepted or duplicate
/// delivery.
#[derive(Debug, Default)]
pub struct Activity {
    endpoints: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Default)]
struct Window {
    buckets: [Bucket; HOURS],
    last_verified: Option<u64>,
}

impl Activity {
    /// Counts one answer of `endpoint` at `now` (Unix seconds).
    pub fn note(&self, endpoint: &str, now: u64, answer: Answer) {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = endpoints.entry(endpoint.to_owned()).or_default();
        let hour = now / 3600;
        let slot = usize::try_from(hour % HOURS as u64).unwrap_or(0);
        if let Some(bucket) = window.buckets.get_mut(slot) {
            if bucket.hour != hour {
                *bucket = Bucket {
                    hour,
                    tally: Tally::default(),
                };
            }
            let count = match answer {
                Answer::Accepted => &mut bucket.tally.accepted,
                Answer::Duplicate => &mut bucket.tally.duplicate,
                Answer::Refused => &mut bucket.tally.refused,
            };
            *count = count.saturating_add(1);
        }
        if answer != Answer::Refused {
            window.last_verified = Some(window.last_verified.map_or(now, |at| at.max(now)));
        }
    }

    /// What `endpoint` answered in the 24 hours up to `now` (this hour and the 23 before),
    /// and when it last took a verified delivery, as far as this process has seen.
    #[must_use]
    pub fn last_day(&self, endpoint: &str, now: u64) -> (Tally, Option<u64>) {
        let endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(window) = endpoints.get(endpoint) else {
            return (Tally::default(), None);
        };
        let hour = now / 3600;
        let mut total = Tally::default();
        for bucket in &window.buckets {
            if bucket.hour <= hour && hour - bucket.hour < HOURS as u64 {
                total.add(bucket.tally);
            }
        }
        (total, window.last_verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_24_hours_and_forgets_older_ones() {
        let activity = Activity::default();
        let t0 = 1_763_900_000;
        activity.note("perf", t0, Answer::Accepted);
        activity.note("perf", t0 + 10, Answer::Duplicate);
        activity.note("perf", t0 + 20, Answer::Refused);
        activity.note("other", t0, Answer::Accepted);
        let (tally, last) = activity.last_day("perf", t0 + 3600);
        assert_eq!(
            tally,
            Tally {
                accepted: 1,
                duplicate: 1,
                refused: 1
            }
        );
        assert_eq!(last, Some(t0 + 10), "a refusal is not a verified delivery");
        // A day later the same slot is reused for a new hour: the old counts are gone.
        activity.note("perf", t0 + 24 * 3600, Answer::Accepted);
        let (tally, _) = activity.last_day("perf", t0 + 24 * 3600);
        assert_eq!(tally.accepted, 1);
        assert_eq!(tally.duplicate, 0);
        assert_eq!(
            activity.last_day("perf", t0 + 48 * 3600).0,
            Tally::default()
        );
    }
}
