//! Timestamps: the strict digit grammar and the two-sided, overflow-safe tolerance check.

use super::error::{KeyError, VerifyError};

/// The tolerance used when none is configured: five minutes, as Stripe and Standard Webhooks use.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// The largest tolerance accepted. A day is already far wider than any sender's retry needs;
/// a larger window only widens the replay window.
pub const MAX_TOLERANCE_SECS: u64 = 86_400;
/// `t` has at most 10 digits: that reaches the year 2286 and cannot overflow a `u64`.
const MAX_DIGITS: usize = 10;

/// How far a timestamp may be from now, in either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance(u64);

impl Tolerance {
    /// A tolerance of `secs` seconds, 1 to [`MAX_TOLERANCE_SECS`].
    ///
    /// # Errors
    /// [`KeyError::BadTolerance`] when `secs` is 0 or above the maximum: a zero window
    /// rejects every delivery, and there is deliberately no "off" value.
    pub fn from_secs(secs: u64) -> Result<Self, KeyError> {
        if (1..=MAX_TOLERANCE_SECS).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(KeyError::BadTolerance {
                given: secs,
                max: MAX_TOLERANCE_SECS,
            })
        }
    }

    /// The tolerance in seconds.
    #[must_use]
    pub fn secs(self) -> u64 {
        self.0
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Self(DEFAULT_TOLERANCE_SECS)
    }
}

/// Whether a verifier checks timestamps. The server always uses `Enforce`; `Ignore` exists for
/// the CLI's re-checking of old captures, which says so in its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampPolicy {
    /// Reject timestamps further than the tolerance from now, in either direction.
    Enforce(Tolerance),
    /// Check only the signature.
    Ignore,
}

impl Default for TimestampPolicy {
    fn default() -> Self {
        Self::Enforce(Tolerance::default())
    }
}

/// Parses a Unix timestamp written as 1 to 10 ASCII digits: no sign, no spaces, no exponent.
#[must_use]
pub fn parse_unix_seconds(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Ten digits fit in a u64, so this fold cannot overflow; checked maths keeps that
    // visible to a reader and to the lints.
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Checks `timestamp` against `now` with a two-sided window.
///
/// # Errors
/// [`VerifyError::TimestampTooOld`] or [`VerifyError::TimestampInFuture`] when the distance
/// exceeds the tolerance.
pub fn check_freshness(timestamp: u64, now: u64, tolerance: Tolerance) -> Result<(), VerifyError> {
    // abs_diff cannot overflow, whatever the two values are.
    let distance = now.abs_diff(timestamp);
    if distance <= tolerance.secs() {
        Ok(())
    } else if timestamp < now {
        Err(VerifyError::TimestampTooOld {
            age: distance,
            tolerance: tolerance.secs(),
        })
    } else {
        Err(VerifyError::TimestampInFuture {
            ahead: distance,
            tolerance: tolerance.secs(),
        })
    }
}

/// Seconds from `timestamp` to `now`: positive when the timestamp is in the past. Saturates
/// rather than overflowing for absurd clocks.
#[must_use]
pub fn age_secs(timestamp: u64, now: u64) -> i64 {
    let distance = i64::try_from(now.abs_diff(timestamp)).unwrap_or(i64::MAX);
    if now >= timestamp {
        distance
    } else {
        -distance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_one_to_ten_plain_digits() {
        assert_eq!(parse_unix_seconds(b"0"), Some(0));
        assert_eq!(parse_unix_seconds(b"1649367553"), Some(1_649_367_553));
        assert_eq!(parse_unix_seconds(b"9999999999"), Some(9_999_999_999));
        assert_eq!(parse_unix_seconds(b"0000000001"), Some(1));
        for bad in [
            &b""[..],
            b"-1",
            b"+123",
            b" 123",
            b"123 ",
            b"12345678901",
            b"-9223372036854775808",
            b"Infinity",
            b"1e9",
            b"1.5",
            b"\xd9\xa1",
        ] {
            assert_eq!(parse_unix_seconds(bad), None, "{bad:?}");
        }
        assert_eq!(parse_unix_seconds(&[b'9'; 200]), None);
    }

    #[test]
    fn tolerance_is_two_sided_and_inclusive() {
        let tol = Tolerance::default();
        let now = 1_700_000_000;
        assert!(check_freshness(now - 300, now, tol).is_ok());
        assert!(check_freshness(now + 300, now, tol).is_ok());
        assert_eq!(
            check_freshness(now - 301, now, tol),
            Err(VerifyError::TimestampTooOld {
                age: 301,
                tolerance: 300
            })
        );
        assert_eq!(
            check_freshness(now + 301, now, tol),
            Err(VerifyError::TimestampInFuture {
                ahead: 301,
                tolerance: 300
            })
        );
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let tol = Tolerance::default();
        assert!(check_freshness(0, u64::MAX, tol).is_err());
        assert!(check_freshness(u64::MAX, 0, tol).is_err());
        assert_eq!(age_secs(0, u64::MAX), i64::MAX);
        assert_eq!(age_secs(u64::MAX, 0), -i64::MAX);
    }

    #[test]
    fn tolerance_has_no_off_value() {
        assert!(Tolerance::from_secs(0).is_err());
        assert!(Tolerance::from_secs(MAX_TOLERANCE_SECS + 1).is_err());
        assert_eq!(Tolerance::from_secs(1).map(Tolerance::secs), Ok(1));
    }
}
