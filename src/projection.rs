//! Burn-rate projection: from the usage figures of one budget in one billing period, when
//! it reaches 100% if it goes on as it has. The fit is ordinary least squares of usage
//! percent over time (a straight line through every figure of the period, each weighing
//! the same); there is none with fewer than two figures at different times, when usage is
//! flat or falling, or when the budget is already used up.

/// When the line through `points` (Unix seconds, usage percent) reaches 100%, Unix
/// seconds; never earlier than the newest figure.
#[must_use]
pub fn runs_out_at(points: &[(u64, u64)]) -> Option<u64> {
    let newest = points.iter().max_by_key(|(at, _)| *at)?;
    if newest.1 >= 100 {
        return None;
    }
    let first = points.iter().map(|(at, _)| *at).min()?;
    if newest.0 == first {
        return None;
    }
    // Times relative to the first figure keep the sums small and exact enough in f64.
    let count = f64::from(u32::try_from(points.len()).ok()?);
    let xs: Vec<f64> = points.iter().map(|(at, _)| seconds(at - first)).collect();
    let ys: Vec<f64> = points.iter().map(|(_, usage)| seconds(*usage)).collect();
    let mean_x = xs.iter().sum::<f64>() / count;
    let mean_y = ys.iter().sum::<f64>() / count;
    let covariance: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
    let slope = covariance / variance;
    if !slope.is_finite() || slope <= 0.0 {
        return None;
    }
    let at_100 = mean_x + (100.0 - mean_y) / slope;
    let at_100 = whole(at_100)?;
    Some(first.saturating_add(at_100).max(newest.0))
}

#[allow(clippy::cast_precision_loss)] // Spans of seconds and percents are far below 2^52.
fn seconds(value: u64) -> f64 {
    value as f64
}

/// A non-negative f64 as whole seconds, when it is a sane time span (under 30,000 years).
fn whole(value: f64) -> Option<u64> {
    let rounded = value.max(0.0).round();
    (rounded.is_finite() && rounded < 1e12)
        .then(|| format!("{rounded:.0}").parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn a_steady_burn_runs_out_where_the_line_crosses_100() {
        // 50% on day 0, 80% on day 6: 5% a day, so 100% on day 10.
        let t0 = 1_793_491_200;
        assert_eq!(
            runs_out_at(&[(t0, 50), (t0 + 6 * DAY, 80)]),
            Some(t0 + 10 * DAY)
        );
        // A third figure on the same line changes nothing.
        assert_eq!(
            runs_out_at(&[(t0, 50), (t0 + 2 * DAY, 60), (t0 + 6 * DAY, 80)]),
            Some(t0 + 10 * DAY)
        );
        // Order does not matter.
        assert_eq!(
            runs_out_at(&[(t0 + 6 * DAY, 80), (t0, 50)]),
            Some(t0 + 10 * DAY)
        );
    }

    #[test]
    fn no_projection_without_a_rising_line_through_two_times() {
        let t0 = 1_793_491_200;
        assert_eq!(runs_out_at(&[]), None);
        assert_eq!(runs_out_at(&[(t0, 50)]), None, "one figure");
        assert_eq!(runs_out_at(&[(t0, 50), (t0, 60)]), None, "one time");
        assert_eq!(runs_out_at(&[(t0, 50), (t0 + DAY, 50)]), None, "flat");
        assert_eq!(runs_out_at(&[(t0, 60), (t0 + DAY, 50)]), None, "falling");
        assert_eq!(
            runs_out_at(&[(t0, 80), (t0 + DAY, 104)]),
            None,
            "already used up"
        );
    }

    #[test]
    fn a_line_that_already_passed_100_says_now() {
        // A fit through noisy figures can cross 100 before the newest one: never in the past.
        let t0 = 1_793_491_200;
        let at = runs_out_at(&[(t0, 10), (t0 + DAY, 99), (t0 + 2 * DAY, 99)]);
        assert!(at.is_some_and(|at| at >= t0 + 2 * DAY), "{at:?}");
    }
}
