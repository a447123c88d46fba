//! The one place that reads the wall clock: a `Clock` trait with the system clock for the
//! service and a fixed, settable clock for tests. Everything else takes a clock or a `now`.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Seconds since the Unix epoch.
    fn now(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// A clock set before 1970 reads as 0, which no timestamp within any tolerance matches,
    /// so such a machine rejects deliveries instead of accepting stale ones.
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            })
    }
}

/// A clock that reads what it was set to: tests sign, verify and expire against it.
#[derive(Debug, Default)]
pub struct FixedClock {
    ms: AtomicU64,
}

impl FixedClock {
    /// A clock reading `unix_secs`.
    #[must_use]
    pub fn at(unix_secs: u64) -> Self {
        Self {
            ms: AtomicU64::new(unix_secs.saturating_mul(1000)),
        }
    }

    /// Sets the time, in Unix seconds.
    pub fn set(&self, unix_secs: u64) {
        self.ms
            .store(unix_secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(by))
            });
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// Seconds since the Unix epoch on the system clock, for the CLI's defaults.
#[must_use]
pub fn unix_now() -> u64 {
    SystemClock.now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_reads_what_it_was_set_to_and_advances() {
        let clock = FixedClock::at(1_700_000_000);
        assert_eq!(clock.now(), 1_700_000_000);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now_ms(), 1_700_000_001_500);
        assert_eq!(clock.now(), 1_700_000_001);
        clock.set(5);
        assert_eq!(clock.now_ms(), 5_000);
    }
}
