//! Rate limits on the application's clock (GCRA, governor): each key has its own quota a
//! minute; failed authentications are limited per source address, and a source over its
//! limit is refused before any key it sends is looked at.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::HttpResponseBuilder;
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::Clock;

/// Sources tracked before the expired ones are swept out.
const MAX_TRACKED_SOURCES: usize = 10_000;

/// Failed authentications one source may make a minute.
pub const FAILED_AUTHENTICATIONS_PER_MINUTE: u32 = 10;

/// The application's clock as governor reads it: time since the Unix epoch.
#[derive(Debug, Clone)]
struct LimiterClock(Arc<dyn Clock>);

impl governor::clock::Clock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.now_ms())
    }
}

type KeyLimiter = RateLimiter<NotKeyed, InMemoryState, LimiterClock, StateInformationMiddleware>;
type SourceLimiter =
    RateLimiter<IpAddr, HashMapStateStore<IpAddr>, LimiterClock, NoOpMiddleware<Duration>>;

/// A caller's limit state, sent as `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// Requests a minute.
    pub limit: u32,
    /// Requests left now.
    pub remaining: u32,
    /// Seconds until all `limit` are available again.
    pub reset_secs: u64,
}

impl RateState {
    /// Adds the three headers.
    pub fn write_headers(&self, response: &mut HttpResponseBuilder) {
        response
            .insert_header(("X-RateLimit-Limit", self.limit.to_string()))
            .insert_header(("X-RateLimit-Remaining", self.remaining.to_string()))
            .insert_header(("X-RateLimit-Reset", self.reset_secs.to_string()));
    }
}

/// Why a request is not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until the next request is let through (at least 1).
    pub retry_after: u64,
    /// The state to send with the refusal.
    pub state: RateState,
}

/// Every limiter the admin API keeps.
pub struct RateLimits {
    clock: LimiterClock,
    /// Key id → its quota and limiter (rebuilt when the key's quota changes).
    keys: Mutex<HashMap<String, (u32, Arc<KeyLimiter>)>>,
    failures: SourceLimiter,
    /// Sources over their failure limit, until when (Unix ms).
    blocked: Mutex<HashMap<IpAddr, u64>>,
    /// The minute (Unix s / 60) of each source's last audited failure.
    audited: Mutex<HashMap<IpAddr, u64>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Limits on `clock`.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let clock = LimiterClock(clock);
        let per_minute =
            NonZeroU32::new(FAILED_AUTHENTICATIONS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self {
            failures: RateLimiter::hashmap_with_clock(Quota::per_minute(per_minute), clock.clone()),
            clock,
            keys: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashMap::new()),
            audited: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of key `id`, whose quota is `per_minute`.
    ///
    /// # Errors
    /// [`Limited`] when the key has no request left.
    pub fn admit_key(&self, id: &str, per_minute: u32) -> Result<RateState, Limited> {
        let quota_size = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let limiter = {
            let mut keys = self
                .keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = keys
                .entry(id.to_owned())
                .or_insert_with(|| (per_minute, Arc::new(self.key_limiter(quota_size))));
            if entry.0 != per_minute {
                *entry = (per_minute, Arc::new(self.key_limiter(quota_size)));
            }
            Arc::clone(&entry.1)
        };
        let period_ms = 60_000 / u64::from(quota_size.get()).max(1);
        match limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = u64::from(quota_size.get().saturating_sub(remaining));
                Ok(RateState {
                    limit: quota_size.get(),
                    remaining,
                    reset_secs: (missing * period_ms).div_ceil(1000),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
                let retry_after = wait.as_millis().div_ceil(1000).max(1);
                let retry_after = u64::try_from(retry_after).unwrap_or(u64::MAX);
                Err(Limited {
                    retry_after,
                    state: RateState {
                        limit: quota_size.get(),
                        remaining: 0,
                        reset_secs: (u64::from(quota_size.get()) * period_ms).div_ceil(1000),
                    },
                })
            }
        }
    }

    fn key_limiter(&self, per_minute: NonZeroU32) -> KeyLimiter {
        RateLimiter::direct_with_clock(Quota::per_minute(per_minute), self.clock.clone())
            .with_middleware::<StateInformationMiddleware>()
    }

    /// Whether `source` is refused for failing too often; the seconds left if so.
    #[must_use]
    pub fn source_blocked(&self, source: IpAddr) -> Option<u64> {
        let now = governor::clock::Clock::now(&self.clock).as_millis();
        let now = u64::try_from(now).unwrap_or(u64::MAX);
        let mut blocked = self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match blocked.get(&source) {
            Some(until) if *until > now => Some((until - now).div_ceil(1000).max(1)),
            Some(_) => {
                blocked.remove(&source);
                None
            }
            None => None,
        }
    }

    /// Whether a failed authentication from `source` is the first of its minute (the audit
    /// log records one per source a minute, so a flood cannot fill it).
    pub fn first_failure_this_minute(&self, source: IpAddr) -> bool {
        let minute = governor::clock::Clock::now(&self.clock).as_secs() / 60;
        let mut audited = self
            .audited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if audited.len() > 10_000 {
            audited.retain(|_, at| *at == minute);
        }
        audited.insert(source, minute) != Some(minute)
    }

    /// Counts a failed authentication from `source`; the seconds it is now refused for,
    /// when this one went over the limit.
    pub fn failed(&self, source: IpAddr) -> Option<u64> {
        // Many sources (a public listener): forget the ones whose limit is whole again.
        if self.failures.len() > MAX_TRACKED_SOURCES {
            self.failures.retain_recent();
        }
        let Err(not_until) = self.failures.check_key(&source) else {
            return None;
        };
        let now = governor::clock::Clock::now(&self.clock);
        let wait = not_until.wait_time_from(now);
        let until = now.saturating_add(wait).as_millis();
        let until = u64::try_from(until).unwrap_or(u64::MAX);
        let mut blocked = self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if blocked.len() > MAX_TRACKED_SOURCES {
            let now = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(source, until);
        Some(u64::try_from(wait.as_millis().div_ceil(1000).max(1)).unwrap_or(u64::MAX))
    }
}
