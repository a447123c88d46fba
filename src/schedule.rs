//! When waiting alerts go out: a digest's boundaries (every hour, or daily at a time in a
//! time zone) and a route's quiet hours (a daily span in a time zone, possibly across
//! midnight). Times are Unix seconds in and out; the zone only decides the wall clock.

use jiff::civil::Time;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan, ZonedDateTime as Zoned};

/// A wall-clock time, `HH:MM`.
fn clock_time(text: &str) -> Result<Time, String> {
    let (hour, minute) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not HH:MM"))?;
    let hour: i8 = hour.parse().map_err(|_| format!("{text:?} is not HH:MM"))?;
    let minute: i8 = minute
        .parse()
        .map_err(|_| format!("{text:?} is not HH:MM"))?;
    Time::new(hour, minute, 0, 0).map_err(|_| format!("{text:?} is not a time of day"))
}

/// A time zone by IANA name (`Europe/Berlin`), or `UTC`.
fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name)
        .map_err(|_| format!("{name:?} is not a time zone name such as \"Europe/Berlin\""))
}

fn zoned(at: u64, zone: &TimeZone) -> Option<Zoned> {
    Timestamp::from_second(i64::try_from(at).ok()?)
        .ok()
        .map(|timestamp| timestamp.to_zoned_datetime(zone.clone()))
}

/// When a notifier in digest mode sends what has collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestSchedule {
    /// At the top of every hour.
    Hourly,
    /// Once a day at a wall-clock time in a zone.
    Daily {
        /// The time of day.
        at: Time,
        /// Its zone.
        zone: TimeZone,
    },
}

impl DigestSchedule {
    /// `every = "hourly"`, or `"daily"` with `at = "HH:MM"` in `zone` (default UTC).
    ///
    /// # Errors
    /// Which part is not understood.
    pub fn parse(every: &str, at: Option<&str>, zone_name: Option<&str>) -> Result<Self, String> {
        match (every, at) {
            ("hourly", None) => Ok(Self::Hourly),
            ("hourly", Some(_)) => Err("at: only a daily digest has a time".to_owned()),
            ("daily", Some(at)) => Ok(Self::Daily {
                at: clock_time(at)?,
                zone: zone(zone_name.unwrap_or("UTC"))?,
            }),
            ("daily", None) => Err("at: a daily digest needs a time, such as \"08:00\"".to_owned()),
            _ => Err("every: must be \"hourly\" or \"daily\"".to_owned()),
        }
    }

    /// The first boundary strictly after `after`, Unix seconds.
    #[must_use]
    pub fn next_after(&self, after: u64) -> u64 {
        match self {
            Self::Hourly => (after / 3600 + 1).saturating_mul(3600),
            Self::Daily { at, zone } => next_time_of_day(after, *at, zone).unwrap_or(after),
        }
    }
}

/// The first moment strictly after `after` whose wall clock in `zone` reads `at`. When the
/// clock falls back and reads `at` twice, either reading counts (an alert at the second
/// 01:10 inside quiet hours that end at 01:30 waits twenty minutes, not a day); when it
/// springs forward past `at`, the time is moved on by the length of the jump (02:30 becomes
/// 03:30), as calendars do (RFC 5545).
fn next_time_of_day(after: u64, at: Time, zone: &TimeZone) -> Option<u64> {
    let today = zoned(after, zone)?.date();
    let tomorrow = today.checked_add(1.day()).ok()?;
    let mut candidates = Vec::with_capacity(4);
    for day in [today, tomorrow] {
        let ambiguous = zone.to_ambiguous_timestamp(day.to_datetime(at));
        if matches!(ambiguous.offset(), AmbiguousOffset::Fold { .. }) {
            candidates.push(ambiguous.earlier().ok());
            candidates.push(ambiguous.later().ok());
        } else {
            candidates.push(ambiguous.compatible().ok());
        }
    }
    candidates
        .into_iter()
        .flatten()
        .filter_map(|timestamp| u64::try_from(timestamp.as_second()).ok())
        .filter(|candidate| *candidate > after)
        .min()
}

/// A daily span during which a route's alerts wait, e.g. 22:00 to 07:00.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHours {
    from: Time,
    to: Time,
    zone: TimeZone,
}

impl QuietHours {
    /// `"22:00-07:00"` in `zone` (default UTC).
    ///
    /// # Errors
    /// Which part is not understood.
    pub fn parse(span: &str, zone_name: Option<&str>) -> Result<Self, String> {
        let (from, to) = span
            .split_once('-')
            .ok_or_else(|| format!("{span:?} is not HH:MM-HH:MM"))?;
        let (from, to) = (clock_time(from.trim())?, clock_time(to.trim())?);
        if from == to {
            return Err("the span is empty: from and to are the same time".to_owned());
        }
        Ok(Self {
            from,
            to,
            zone: zone(zone_name.unwrap_or("UTC"))?,
        })
    }

    /// When the quiet hours around `at` end, if `at` is inside them.
    #[must_use]
    pub fn end_if_quiet(&self, at: u64) -> Option<u64> {
        let time = zoned(at, &self.zone)?.time();
        let inside = if self.from < self.to {
            self.from <= time && time < self.to
        } else {
            time >= self.from || time < self.to
        };
        if inside {
            next_time_of_day(at, self.to, &self.zone)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23 10:30:00 UTC.
    const MONDAY_1030: u64 = 1_795_429_800;

    #[test]
    fn hourly_and_daily_boundaries() {
        let hourly = DigestSchedule::parse("hourly", None, None).expect("hourly");
        assert_eq!(hourly.next_after(MONDAY_1030), MONDAY_1030 + 1_800);
        assert_eq!(
            hourly.next_after(MONDAY_1030 + 1_800),
            MONDAY_1030 + 1_800 + 3_600
        );
        let daily =
            DigestSchedule::parse("daily", Some("08:00"), Some("Europe/Berlin")).expect("daily");
        // 10:30 UTC is 11:30 in Berlin (CET): tomorrow 08:00 CET is 07:00 UTC.
        assert_eq!(
            daily.next_after(MONDAY_1030),
            1_795_503_600,
            "2026-11-24 07:00 UTC"
        );
        // Just before 08:00 Berlin on the day itself: that same morning.
        assert_eq!(daily.next_after(1_795_503_599), 1_795_503_600);
    }

    #[test]
    fn quiet_hours_across_midnight_end_at_their_end() {
        let quiet = QuietHours::parse("22:00-07:00", None).expect("span");
        assert_eq!(quiet.end_if_quiet(MONDAY_1030), None, "10:30 is not quiet");
        let at_2330 = MONDAY_1030 + 13 * 3600;
        assert_eq!(
            quiet.end_if_quiet(at_2330),
            Some(MONDAY_1030 + 20 * 3600 + 1_800)
        );
        let at_0300 = MONDAY_1030 + 16 * 3600 + 1_800;
        assert_eq!(
            quiet.end_if_quiet(at_0300),
            Some(MONDAY_1030 + 20 * 3600 + 1_800)
        );
        let daytime = QuietHours::parse("12:00-14:00", Some("UTC")).expect("span");
        assert_eq!(
            daytime.end_if_quiet(MONDAY_1030 + 3_600),
            None,
            "11:30 is before it"
        );
        assert_eq!(
            daytime.end_if_quiet(MONDAY_1030 + 2 * 3_600),
            Some(MONDAY_1030 + 3 * 3600 + 1_800)
        );
    }

    #[test]
    fn daylight_saving_changes_neither_lose_nor_repeat_a_day() {
        let new_york = "America/New_York";
        // 2026-11-01: the clock falls back from 02:00 EDT to 01:00 EST. Quiet hours ending at
        // 01:30: at the second 01:10 (06:10 UTC) they end at the second 01:30 (06:30 UTC).
        let quiet = QuietHours::parse("00:00-01:30", Some(new_york)).expect("span");
        let second_0110 = 1_793_513_400;
        assert_eq!(quiet.end_if_quiet(second_0110), Some(second_0110 + 1_200));
        // At the first 01:10 (05:10 UTC) they end at the first 01:30.
        assert_eq!(
            quiet.end_if_quiet(second_0110 - 3_600),
            Some(second_0110 - 3_600 + 1_200)
        );
        // 2026-03-08: the clock springs from 02:00 EST to 03:00 EDT; 02:30 does not exist
        // that day and is taken as 03:30 EDT (07:30 UTC). The day after is 02:30 EDT again.
        let daily = DigestSchedule::parse("daily", Some("02:30"), Some(new_york)).expect("daily");
        let march_8_midnight = 1_772_946_000; // 00:00 EST = 05:00 UTC
        assert_eq!(daily.next_after(march_8_midnight), 1_772_955_000);
        assert_eq!(
            daily.next_after(1_772_955_000),
            1_773_037_800,
            "02:30 EDT on the 9th"
        );
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        assert!(DigestSchedule::parse("weekly", None, None).is_err());
        assert!(DigestSchedule::parse("daily", None, None)
            .unwrap_err()
            .contains("needs a time"));
        assert!(DigestSchedule::parse("daily", Some("25:00"), None).is_err());
        assert!(
            DigestSchedule::parse("daily", Some("08:00"), Some("Mars/Olympus"))
                .unwrap_err()
                .contains("time zone")
        );
        assert!(QuietHours::parse("22:00", None).is_err());
        assert!(QuietHours::parse("07:00-07:00", None).is_err());
    }
}
