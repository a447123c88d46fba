//! A budget's usage over its billing period as SVG coordinates: time across, percent of
//! the budget up, a dashed line at each threshold that fired. Drawn by the server; the
//! template only places what this computes.

use super::views::{readable, BudgetRow};

/// The drawing area, in SVG units.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
/// Room for the axis labels.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// One usage figure on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    pub x: String,
    pub y: String,
    /// Its tooltip: when, and how much.
    pub label: String,
}

/// A horizontal line with its percent.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub y: String,
    pub percent: u64,
    /// Whether a threshold fired at it (drawn dashed and labelled as such).
    pub fired: bool,
}

/// What the template draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub view_box: String,
    pub left: String,
    pub right: String,
    pub bottom: String,
    pub label_y: String,
    pub polyline: String,
    pub dots: Vec<Dot>,
    pub levels: Vec<Level>,
    pub start_label: String,
    pub end_label: String,
    /// A sentence saying what the chart shows, for screen readers.
    pub description: String,
}

fn coordinate(value: f64) -> String {
    format!("{value:.1}")
}

#[allow(clippy::cast_precision_loss)] // Unix seconds and percents are far below 2^52.
fn as_f64(value: u64) -> f64 {
    value as f64
}

impl Chart {
    /// The chart of `budget`'s figures.
    #[must_use]
    pub fn of(budget: &BudgetRow) -> Self {
        let times: Vec<u64> = budget.points.iter().map(|point| point.at_unix).collect();
        let (first, last) = (
            times.iter().copied().min().unwrap_or(0),
            times.iter().copied().max().unwrap_or(0),
        );
        let (start, end) = match (budget.period_start_unix, budget.period_end_unix) {
            (Some(start), Some(end)) if end > start && start <= first && last <= end => {
                (start, end)
            }
            _ if last > first => (first, last),
            _ => (first.saturating_sub(3600), first.saturating_add(3600)),
        };
        let highest = budget
            .points
            .iter()
            .filter_map(|point| point.usage_percent)
            .chain(budget.thresholds_fired.iter().copied())
            .max()
            .unwrap_or(0);
        // 100% always shows; above it, round up to the next 25 (up to 10,000%: the figures
        // come from the sender, and a larger one is drawn at the top).
        let top = highest.clamp(100, 10_000).div_ceil(25) * 25;
        let x = |at: u64| {
            LEFT + (WIDTH - LEFT - RIGHT) * as_f64(at.saturating_sub(start)) / as_f64(end - start)
        };
        let y = |percent: u64| {
            TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - as_f64(percent.min(top)) / as_f64(top))
        };
        let dots: Vec<Dot> = budget
            .points
            .iter()
            .filter_map(|point| {
                let usage = point.usage_percent?;
                Some(Dot {
                    x: coordinate(x(point.at_unix)),
                    y: coordinate(y(usage)),
                    label: format!("{}: {usage}% ({})", readable(&point.at), point.kind),
                })
            })
            .collect();
        let polyline = dots
            .iter()
            .map(|dot| format!("{},{}", dot.x, dot.y))
            .collect::<Vec<_>>()
            .join(" ");
        let mut levels: Vec<Level> = budget
            .thresholds_fired
            .iter()
            .map(|percent| Level {
                y: coordinate(y(*percent)),
                percent: *percent,
                fired: true,
            })
            .collect();
        for percent in [0, 100] {
            if !budget.thresholds_fired.contains(&percent) {
                levels.push(Level {
                    y: coordinate(y(percent)),
                    percent,
                    fired: false,
                });
            }
        }
        let fired = budget
            .thresholds_fired
            .iter()
            .map(|percent| format!("{percent}%"))
            .collect::<Vec<_>>()
            .join(", ");
        let description = format!(
            "Usage of {} / {} in percent of its budget, {} figures; thresholds fired: {}.",
            budget.organization,
            budget.project,
            dots.len(),
            if fired.is_empty() { "none" } else { &fired }
        );
        Self {
            view_box: format!("0 0 {WIDTH} {HEIGHT}"),
            left: coordinate(LEFT),
            right: coordinate(WIDTH - RIGHT),
            bottom: coordinate(HEIGHT - BOTTOM),
            label_y: coordinate(HEIGHT - 8.0),
            polyline,
            dots,
            levels,
            start_label: super::views::when(&start),
            end_label: super::views::when(&end),
            description,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::views::PointRow;

    fn point(at_unix: u64, usage: u64) -> PointRow {
        PointRow {
            at: crate::notify::rfc3339(at_unix),
            at_unix,
            usage_percent: Some(usage),
            threshold_percent: Some(usage),
            kind: "usage.threshold_reached".to_owned(),
            endpoint: "perf".to_owned(),
            id: format!("evt_{at_unix}"),
        }
    }

    #[test]
    fn places_figures_across_the_period_and_marks_fired_thresholds() {
        let start = 1_761_955_200; // 2025-11-01
        let end = start + 30 * 86_400;
        let budget = BudgetRow {
            runs_out_at: None,
            organization: "Acme".to_owned(),
            project: "bot".to_owned(),
            livemode: true,
            currency: None,
            limit: None,
            amount: None,
            usage_percent: Some(100),
            period_start: None,
            period_end: None,
            period_start_unix: Some(start),
            period_end_unix: Some(end),
            thresholds_fired: vec![50, 100],
            points: vec![point(start, 50), point(start + 15 * 86_400, 100)],
        };
        let chart = Chart::of(&budget);
        // The first figure at the left edge, the second half-way across.
        assert_eq!(chart.dots.first().map(|d| d.x.as_str()), Some("44.0"));
        assert_eq!(chart.dots.get(1).map(|d| d.x.as_str()), Some("336.0"));
        // 100% at the top of the plot (top = 100), 50% half-way down.
        assert_eq!(chart.dots.get(1).map(|d| d.y.as_str()), Some("12.0"));
        assert_eq!(chart.dots.first().map(|d| d.y.as_str()), Some("102.0"));
        assert_eq!(chart.polyline, "44.0,102.0 336.0,12.0");
        let fired: Vec<u64> = chart
            .levels
            .iter()
            .filter(|l| l.fired)
            .map(|l| l.percent)
            .collect();
        assert_eq!(fired, vec![50, 100]);
        assert!(chart.levels.iter().any(|l| l.percent == 0 && !l.fired));
        assert!(
            chart.description.contains("50%, 100%"),
            "{}",
            chart.description
        );
    }

    #[test]
    fn a_single_figure_outside_its_period_still_draws() {
        let budget = BudgetRow {
            runs_out_at: None,
            organization: String::new(),
            project: String::new(),
            livemode: true,
            currency: None,
            limit: None,
            amount: None,
            usage_percent: Some(130),
            period_start: None,
            period_end: None,
            period_start_unix: Some(10),
            period_end_unix: Some(5),
            thresholds_fired: vec![],
            points: vec![point(1_000_000, 130)],
        };
        let chart = Chart::of(&budget);
        assert_eq!(chart.dots.len(), 1);
        assert_eq!(chart.dots.first().map(|d| d.x.as_str()), Some("336.0"));
        // Above 100%, the scale grows to 150.
        assert_eq!(chart.dots.first().map(|d| d.y.as_str()), Some("36.0"));
    }
}
