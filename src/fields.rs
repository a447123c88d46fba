//! Where an alert's figures sit in the body: one JSON pointer per figure, per endpoint
//! (`[endpoints.fields]`), defaulting to where Perf's fixtures put them. Perf's payload is
//! not publicly documented, so an operator can follow a change without a new release.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::reload::EndpointSlot;

/// The JSON pointers (RFC 6901, from the body's root) of each figure; an empty pointer
/// turns a figure off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMap {
    /// The organisation's name.
    pub organization: String,
    /// The project's name.
    pub project: String,
    /// The budget's id.
    pub budget_id: String,
    /// The budget's period (`monthly`).
    pub period: String,
    /// The billing period's start (RFC 3339).
    pub period_start: String,
    /// The billing period's end (RFC 3339).
    pub period_end: String,
    /// The threshold crossed, in percent.
    pub threshold_percent: String,
    /// Usage so far, in percent.
    pub usage_percent: String,
    /// Usage so far, as an amount.
    pub amount: String,
    /// The budget, as an amount.
    pub limit: String,
    /// The currency of amount and limit.
    pub currency: String,
}

impl Default for FieldMap {
    fn default() -> Self {
        let at = |pointer: &str| pointer.to_owned();
        Self {
            organization: at("/data/organization/name"),
            project: at("/data/project/name"),
            budget_id: at("/data/budget/id"),
            period: at("/data/budget/period"),
            period_start: at("/data/period/start"),
            period_end: at("/data/period/end"),
            threshold_percent: at("/data/threshold/percent"),
            usage_percent: at("/data/usage/percent"),
            amount: at("/data/usage/amount"),
            limit: at("/data/budget/limit"),
            currency: at("/data/budget/currency"),
        }
    }
}

impl FieldMap {
    /// Each figure's name and pointer, in the order `config check --sample` prints them.
    #[must_use]
    pub fn entries(&self) -> [(&'static str, &str); 11] {
        [
            ("organization", &self.organization),
            ("project", &self.project),
            ("budget_id", &self.budget_id),
            ("period", &self.period),
            ("period_start", &self.period_start),
            ("period_end", &self.period_end),
            ("threshold_percent", &self.threshold_percent),
            ("usage_percent", &self.usage_percent),
            ("amount", &self.amount),
            ("limit", &self.limit),
            ("currency", &self.currency),
        ]
    }

    /// Whether every pointer is empty or starts with `/`.
    ///
    /// # Errors
    /// The first figure whose pointer is not a JSON pointer, named.
    pub fn validate(&self) -> Result<(), String> {
        match self
            .entries()
            .into_iter()
            .find(|(_, pointer)| !pointer.is_empty() && !pointer.starts_with('/'))
        {
            Some((name, _)) => Err(format!(
                "{name}: must be a JSON pointer from the body's root, such as \"/data/usage/percent\" (or \"\" for none)"
            )),
            None => Ok(()),
        }
    }
}

/// Each endpoint's field map as it is now: a reload (SIGHUP) applies from the next
/// notification on.
#[derive(Debug, Clone, Default)]
pub struct EndpointFields(Arc<HashMap<String, Arc<EndpointSlot>>>);

impl EndpointFields {
    /// The maps of these endpoints, by name.
    #[must_use]
    pub fn new(slots: HashMap<String, Arc<EndpointSlot>>) -> Self {
        Self(Arc::new(slots))
    }

    /// The map of `endpoint`; the default for one no longer configured.
    #[must_use]
    pub fn of(&self, endpoint: &str) -> Arc<FieldMap> {
        self.0
            .get(endpoint)
            .map(|slot| Arc::clone(&slot.current().fields))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pointers_and_a_bare_name_is_refused() {
        assert_eq!(FieldMap::default().validate(), Ok(()));
        let map = FieldMap {
            usage_percent: "usage.percent".to_owned(),
            ..FieldMap::default()
        };
        let error = map.validate().expect_err("not a pointer");
        assert!(error.starts_with("usage_percent:"), "{error}");
        let off = FieldMap {
            budget_id: String::new(),
            ..FieldMap::default()
        };
        assert_eq!(off.validate(), Ok(()));
    }
}
