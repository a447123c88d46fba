//! Threshold collapse: a crossing of the same threshold of the same budget in the same
//! billing period notifies once, even when the sender sends it again under a new event id.
//! This module names the budget an alert is about; the store keeps, in the same write as
//! the event, which thresholds of it were notified ([`crate::store::apply_crossing`]).
//! Usage below a threshold arms it again, and a new period is a new budget.

use sha2::{Digest, Sha256};

use crate::event::Alert;
use crate::fields::FieldMap;
use crate::store::{BudgetMark, CooldownMark};

/// The budget `alert` is about at `endpoint`; none when it names neither an organisation,
/// a project nor a budget, or carries nothing to act on. `cooldown` is the route's that
/// chose the notifiers (its position and span), kept per organisation and project.
#[must_use]
pub fn mark_with(
    endpoint: &str,
    alert: &Alert,
    cooldown: Option<(usize, std::time::Duration)>,
) -> Option<BudgetMark> {
    if alert.organization.is_none() && alert.project.is_none() && alert.budget_id.is_none() {
        return None;
    }
    let cooldown = cooldown.map(|(route, span)| {
        let mut key = Sha256::new();
        for part in [
            Some(endpoint),
            alert.organization.as_deref(),
            alert.project.as_deref(),
        ] {
            hash_part(&mut key, part);
        }
        key.update(b"route");
        key.update((route as u64).to_be_bytes());
        CooldownMark {
            key: hex::encode(key.finalize()),
            secs: span.as_secs(),
        }
    });
    if alert.threshold_percent.is_none() && alert.usage_percent.is_none() && cooldown.is_none() {
        return None;
    }
    let mut identity = Sha256::new();
    for part in [
        Some(endpoint),
        alert.organization.as_deref(),
        alert.project.as_deref(),
        alert.budget_id.as_deref(),
        alert.period_start.as_deref(),
        alert.period_end.as_deref(),
    ] {
        hash_part(&mut identity, part);
    }
    Some(BudgetMark {
        budget: hex::encode(identity.finalize()),
        threshold: alert.threshold_percent,
        usage: alert.usage_percent,
        cooldown,
    })
}

/// [`mark_with`] for a body read with `fields`, without a cooldown.
#[must_use]
pub fn mark(endpoint: &str, body: &[u8], fields: &FieldMap) -> Option<BudgetMark> {
    mark_with(endpoint, &Alert::from_body_with(body, fields), None)
}

/// Length-prefixed, so ("ab", "c") and ("a", "bc") differ, and absent differs from "".
fn hash_part(hasher: &mut Sha256, part: Option<&str>) {
    match part {
        Some(text) => {
            hasher.update([1]);
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
        }
        None => hasher.update([0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{apply_crossing, BudgetState};

    fn body(project: &str, start: &str, threshold: u64, usage: u64) -> Vec<u8> {
        serde_json::json!({"id": "e", "type": "usage.threshold_reached", "data": {
            "organization": {"name": "Acme"}, "project": {"name": project},
            "period": {"start": start, "end": "x"},
            "threshold": {"percent": threshold}, "usage": {"percent": usage}}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn the_same_budget_and_period_share_a_mark_and_others_do_not() {
        let fields = FieldMap::default();
        let a = mark("perf", &body("bot", "2026-11", 80, 81), &fields).expect("mark");
        let b = mark("perf", &body("bot", "2026-11", 50, 52), &fields).expect("mark");
        assert_eq!(a.budget, b.budget);
        assert_eq!((a.threshold, a.usage), (Some(80), Some(81)));
        for other in [
            mark("perf", &body("bot", "2026-12", 80, 81), &fields),
            mark("perf", &body("web", "2026-11", 80, 81), &fields),
            mark("other", &body("bot", "2026-11", 80, 81), &fields),
        ] {
            assert_ne!(other.expect("mark").budget, a.budget);
        }
        // Names are not kept: the mark is a hash.
        assert!(!a.budget.contains("Acme"));
        let anonymous = br#"{"id":"e","type":"t","data":{"threshold":{"percent":80}}}"#;
        assert_eq!(mark("perf", anonymous, &fields), None);
    }

    #[test]
    fn a_threshold_notifies_once_until_usage_falls_below_it() {
        let mut notified = BudgetState::default();
        let crossing = |threshold: Option<u64>, usage: Option<u64>| BudgetMark {
            budget: "b".to_owned(),
            threshold,
            usage,
            cooldown: None,
        };
        assert_eq!(
            apply_crossing(&mut notified, &crossing(Some(80), Some(80)), "e1", 0),
            None
        );
        assert_eq!(
            apply_crossing(&mut notified, &crossing(Some(80), Some(83)), "e2", 0),
            Some("e1".to_owned())
        );
        assert_eq!(
            apply_crossing(&mut notified, &crossing(Some(100), Some(100)), "e3", 0),
            None
        );
        // Usage back at 60% (a refund, a corrected figure): 80 and 100 arm again.
        assert_eq!(
            apply_crossing(&mut notified, &crossing(None, Some(60)), "e4", 0),
            None
        );
        assert_eq!(
            apply_crossing(&mut notified, &crossing(Some(80), Some(80)), "e5", 0),
            None
        );
        assert_eq!(
            apply_crossing(&mut notified, &crossing(Some(100), Some(101)), "e6", 0),
            None
        );
    }

    #[test]
    fn usage_figures_are_kept_in_time_order_and_bounded() {
        let mut state = BudgetState::default();
        let usage = |percent| BudgetMark {
            budget: "b".to_owned(),
            threshold: None,
            usage: Some(percent),
            cooldown: None,
        };
        apply_crossing(&mut state, &usage(50), "a", 20);
        apply_crossing(&mut state, &usage(40), "b", 10);
        apply_crossing(&mut state, &usage(60), "c", 30);
        assert_eq!(state.usage, vec![(10, 40), (20, 50), (30, 60)]);
        for at in 100..300 {
            apply_crossing(&mut state, &usage(70), "d", at);
        }
        assert_eq!(state.usage.len(), crate::store::USAGE_KEPT);
        assert_eq!(state.usage.last(), Some(&(299, 70)));
        assert_eq!(state.usage.first(), Some(&(200, 70)));
    }
}
