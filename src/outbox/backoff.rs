//! The retry schedule: exponential with a cap, and "equal jitter" so retries from many jobs
//! spread out.

use std::time::Duration;

use super::OutboxSettings;

/// `initial * 2^(attempts-1)`, capped, then a uniform draw from the upper half, so retries
/// spread out but never come sooner than half the delay.
#[must_use]
pub fn backoff(settings: &OutboxSettings, attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(40);
    let full = settings
        .initial_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(settings.max_backoff_ms.max(settings.initial_backoff_ms));
    let half = full / 2;
    Duration::from_millis(half + fastrand::u64(0..=full - half))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let settings = OutboxSettings {
            initial_backoff_ms: 5_000,
            max_backoff_ms: 3_600_000,
            max_attempts: 12,
            lease_secs: 1_200,
        };
        for _ in 0..100 {
            let first = backoff(&settings, 1).as_millis();
            assert!((2_500..=5_000).contains(&first), "{first}");
            let third = backoff(&settings, 3).as_millis();
            assert!((10_000..=20_000).contains(&third), "{third}");
            let late = backoff(&settings, 40).as_millis();
            assert!((1_800_000..=3_600_000).contains(&late), "{late}");
        }
    }
}
