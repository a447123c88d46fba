//! What each page shows: the operator API's JSON read into rows, and the templates that
//! render them (in `templates/ui/`, HTML-escaped by askama).

use askama::Template;
use serde::Deserialize;

use super::chart::Chart;
use super::Nav;
use crate::activity::Tally;

/// Reads an API answer's field into rows; a shape it does not have reads as none (the
/// page then shows an empty table, never a half-filled one).
pub fn rows<T: for<'de> Deserialize<'de>>(answer: &serde_json::Value, field: &str) -> Vec<T> {
    answer
        .get(field)
        .cloned()
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default()
}

/// Unix seconds as `2026-11-23 12:13 UTC`.
#[must_use]
pub fn when(unix: &u64) -> String {
    let unix = *unix;
    let text = crate::notify::rfc3339(unix);
    text.get(..16).map_or(text.clone(), |minutes| {
        format!("{} UTC", minutes.replace('T', " "))
    })
}

/// An RFC 3339 time from the API as `2026-11-23 12:13 UTC`.
#[must_use]
pub fn readable(rfc3339: &str) -> String {
    match rfc3339.get(..16) {
        Some(minutes) if rfc3339.len() >= 20 => format!("{} UTC", minutes.replace('T', " ")),
        _ => rfc3339.to_owned(),
    }
}

/// The day of an RFC 3339 time (`2026-11-01`), or the text as sent.
#[must_use]
pub fn day_of(rfc3339: &str) -> String {
    match rfc3339.get(..10) {
        Some(day) if rfc3339.len() >= 20 => day.to_owned(),
        _ => rfc3339.to_owned(),
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
pub struct ErrorPage {
    pub nav: Option<Nav>,
    pub title: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "ui/sign_in.html")]
pub struct SignInPage {
    pub nav: Option<Nav>,
    pub form_token: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct EndpointRow {
    pub name: String,
    pub path: String,
    pub mode: String,
    pub last_24h: Tally,
    pub outbox_pending: u64,
    pub dead_jobs: u64,
    pub last_delivery_at: Option<String>,
    pub expect_delivery_within_secs: Option<u64>,
    pub silent: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct StoredCounts {
    pub events: u64,
    pub outbox: u64,
    pub dead: u64,
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
pub struct OverviewPage {
    pub nav: Option<Nav>,
    pub generated_at: String,
    pub counted_since: String,
    pub endpoints: Vec<EndpointRow>,
    pub stored: Option<StoredCounts>,
}

#[derive(Debug, Deserialize)]
pub struct PointRow {
    pub at: String,
    pub at_unix: u64,
    pub usage_percent: Option<u64>,
    pub threshold_percent: Option<u64>,
    #[serde(rename = "type")]
    pub kind: String,
    pub endpoint: String,
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub struct BudgetRow {
    pub runs_out_at: Option<String>,
    pub organization: String,
    pub project: String,
    pub livemode: bool,
    pub currency: Option<String>,
    pub limit: Option<String>,
    pub amount: Option<String>,
    pub usage_percent: Option<u64>,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub period_start_unix: Option<u64>,
    pub period_end_unix: Option<u64>,
    pub thresholds_fired: Vec<u64>,
    pub points: Vec<PointRow>,
}

pub struct BudgetView {
    pub budget: BudgetRow,
    pub chart: Chart,
}

#[derive(Template)]
#[template(path = "ui/budgets.html")]
pub struct BudgetsPage {
    pub nav: Option<Nav>,
    pub budgets: Vec<BudgetView>,
    pub complete: bool,
}

#[derive(Debug, Deserialize)]
pub struct EventRow {
    pub endpoint: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub livemode: Option<bool>,
    pub received_at: String,
    pub organization: Option<String>,
    pub project: Option<String>,
    pub usage_percent: Option<u64>,
}

/// The timeline's filters, as typed (dates as `YYYY-MM-DD`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Filters {
    pub endpoint: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub project: String,
    pub mode: String,
    pub since: String,
    pub until: String,
    pub cursor: String,
}

#[derive(Template)]
#[template(path = "ui/events.html")]
pub struct EventsPage {
    pub nav: Option<Nav>,
    pub rows: Vec<EventRow>,
    pub filters: Filters,
    pub endpoints: Vec<String>,
    /// The query string of the next page, when there is one.
    pub next_page: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NotificationRow {
    pub notifier: String,
    pub status: String,
    pub attempts: u64,
    pub last_error: Option<String>,
    pub due_at: String,
    /// Waits for (or went out in) a digest.
    #[serde(default)]
    pub digest: bool,
}

#[derive(Template)]
#[template(path = "ui/event.html")]
pub struct EventPage {
    pub nav: Option<Nav>,
    pub endpoint: String,
    pub id: String,
    pub kind: String,
    pub livemode: Option<bool>,
    pub received_at: String,
    pub expires_at: String,
    /// The alert's figures, labelled, in a fixed order.
    pub figures: Vec<(&'static str, String)>,
    pub body: String,
    pub notifications: Vec<NotificationRow>,
    pub can_write: bool,
    pub notice: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RefusedRow {
    pub id: String,
    pub endpoint: String,
    pub received_at: String,
    pub source: String,
    pub reason: String,
    pub message: String,
    pub bytes: u64,
}

#[derive(Template)]
#[template(path = "ui/refused.html")]
pub struct RefusedPage {
    pub nav: Option<Nav>,
    pub rows: Vec<RefusedRow>,
    pub can_write: bool,
    pub notice: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct JobRow {
    pub endpoint: String,
    pub event_id: String,
    pub notifier: String,
    pub attempts: u64,
    pub last_error: Option<String>,
    pub due_at: String,
}

#[derive(Template)]
#[template(path = "ui/outbox.html")]
pub struct OutboxPage {
    pub nav: Option<Nav>,
    pub pending: Vec<JobRow>,
    pub dead: Vec<JobRow>,
    pub can_write: bool,
    pub notice: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub mode: String,
    pub scopes: Vec<String>,
    pub created_at: u64,
    pub expires_at: Option<u64>,
    pub last_used_at: Option<u64>,
    pub last_used_from: Option<String>,
    pub state: String,
    pub due_for_rotation: bool,
}

#[derive(Template)]
#[template(path = "ui/keys.html")]
pub struct KeysPage {
    pub nav: Option<Nav>,
    pub keys: Vec<KeyRow>,
}

#[derive(Debug, Deserialize)]
pub struct AuditRow {
    pub seq: u64,
    pub at: u64,
    pub key: Option<String>,
    pub source: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "ui/audit.html")]
pub struct AuditPage {
    pub nav: Option<Nav>,
    pub entries: Vec<AuditRow>,
}
