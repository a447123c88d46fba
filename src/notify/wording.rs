//! What an alert says to a person, by its type: a subject naming who it is about, one
//! sentence on what happened, the figures, and what to do. The mail's plain-text and HTML
//! parts are both written from this, so they never disagree.

use serde_json::Value;

use crate::event::Alert;
use crate::store::EventRecord;

/// Fields of an unknown type's `data` listed at most; the raw event follows anyway.
const MAX_EXTRA_FIELDS: usize = 40;

/// The event types perfhook has words for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertType {
    /// `usage.threshold_reached`: usage crossed a configured percentage of the budget.
    ThresholdReached,
    /// `budget.exceeded`: usage is past the budget's limit.
    BudgetExceeded,
    /// `perfhook.sender_silent`: perfhook's own notice that an endpoint heard nothing for
    /// longer than `expect_delivery_within`.
    SenderSilent,
    /// `perfhook.sender_resumed`: the same endpoint delivering again.
    SenderResumed,
    /// `perfhook.digest`: alerts that waited, in one message.
    Digest,
    /// Anything else: shown with every scalar under `data`.
    Other,
}

impl AlertType {
    /// The type of an event named `kind`.
    #[must_use]
    pub fn of(kind: &str) -> Self {
        match kind {
            "usage.threshold_reached" => Self::ThresholdReached,
            "budget.exceeded" => Self::BudgetExceeded,
            crate::silence::SILENT => Self::SenderSilent,
            crate::silence::RESUMED => Self::SenderResumed,
            crate::outbox::DIGEST => Self::Digest,
            _ => Self::Other,
        }
    }
}

/// An alert in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wording {
    /// The subject without a prefix: `Acme Robotics / support-bot: 80% of monthly budget reached`.
    pub subject: String,
    /// One sentence on what happened.
    pub summary: String,
    /// Labelled figures, in reading order.
    pub fields: Vec<(String, String)>,
    /// What to do about it, when there is something to do.
    pub advice: Option<String>,
}

impl Wording {
    /// The words for `record`, whose figures are `alert`.
    #[must_use]
    pub fn of(record: &EventRecord, alert: &Alert) -> Self {
        let kind = AlertType::of(&record.kind);
        if matches!(kind, AlertType::SenderSilent | AlertType::SenderResumed) {
            return Self::silence(record, kind);
        }
        if kind == AlertType::Digest {
            return Self::digest(record);
        }
        let who = who(alert);
        let budget = match &alert.period {
            Some(period) => format!("{period} budget"),
            None => "budget".to_owned(),
        };
        let usage = usage(alert);
        let money = money(alert);
        let threshold = alert.threshold_percent;
        let (mut subject, summary, advice) = match (kind, threshold) {
            (AlertType::ThresholdReached, Some(threshold)) => (
                format!("{threshold}% of {budget} reached"),
                format!(
                    "{} reached {threshold}% of its {budget}{}.",
                    who.as_deref().unwrap_or("A project"),
                    money
                        .as_deref()
                        .map_or(String::new(), |m| format!(": {m} spent"))
                ),
                Some(if threshold >= 100 {
                    used_up_advice()
                } else {
                    "Check the project's usage in Perf; raise the budget or throttle the \
                     project before it reaches 100%."
                        .to_owned()
                }),
            ),
            // The type is known but its threshold is missing or not where the fixtures put it.
            (AlertType::ThresholdReached, None) => (
                format!("{budget} threshold reached"),
                format!(
                    "{} crossed a usage threshold of its {budget}{}; the alert does not say \
                     which, so every figure it carries is listed below.",
                    who.as_deref().unwrap_or("A project"),
                    money
                        .as_deref()
                        .map_or(String::new(), |m| format!(" ({m} spent)"))
                ),
                None,
            ),
            (AlertType::BudgetExceeded, _) => (
                match alert.usage_percent {
                    Some(percent) => format!("{budget} exceeded ({percent}%)"),
                    None => format!("{budget} exceeded"),
                },
                format!(
                    "{} has spent more than its {budget}{}.",
                    who.as_deref().unwrap_or("A project"),
                    money.as_deref().map_or(String::new(), |m| format!(": {m}"))
                ),
                Some(used_up_advice()),
            ),
            _ => (
                record.kind.clone(),
                format!(
                    "Perf sent an event of type `{}`{}. perfhook has no wording for this type; \
                     every figure it carries is listed below.",
                    record.kind,
                    who.as_deref()
                        .map_or(String::new(), |w| format!(" about {w}"))
                ),
                None,
            ),
        };
        if let Some(who) = &who {
            subject = format!("{who}: {subject}");
        }
        if record.livemode == Some(false) {
            subject.push_str(" (test mode)");
        }

        let mut fields = Vec::new();
        let mut field = |label: &str, value: Option<String>| {
            if let Some(value) = value {
                fields.push((label.to_owned(), value));
            }
        };
        field("Organization", alert.organization.clone());
        field("Project", alert.project.clone());
        field("Budget", alert.budget_id.clone());
        if kind == AlertType::ThresholdReached {
            field("Threshold", threshold.map(|t| format!("{t}% of {budget}")));
        }
        field("Usage", usage);
        field(
            "At this rate",
            alert
                .runs_out_at
                .as_deref()
                .map(|at| format!("the budget runs out on {}", minutes(at))),
        );
        field("Billing period", period(alert));
        field(
            "Mode",
            Some(
                match record.livemode {
                    Some(true) => "live",
                    Some(false) => "test",
                    None => "not stated by the event",
                }
                .to_owned(),
            ),
        );
        field("Event", Some(format!("{} {}", record.kind, record.id)));
        field("Endpoint", Some(record.endpoint.clone()));
        field("Received", Some(super::rfc3339(record.received_at)));
        // Whatever the mapping missed is still shown: every scalar under `data`.
        if kind == AlertType::Other
            || (kind == AlertType::ThresholdReached && threshold.is_none())
            || alert.is_empty()
        {
            fields.extend(data_fields(&record.body));
        }
        Self::printable(&subject, &summary, fields, advice)
    }

    /// The words made safe to print: control characters in every text escaped.
    fn printable(
        subject: &str,
        summary: &str,
        fields: Vec<(String, String)>,
        advice: Option<String>,
    ) -> Self {
        Self {
            subject: printable(subject),
            summary: printable(summary),
            fields: fields
                .into_iter()
                .map(|(label, value)| (printable(&label), printable(&value)))
                .collect(),
            advice,
        }
    }

    /// The plain-text body: summary, figures, advice, then the raw event (none when empty).
    #[must_use]
    pub fn plain_text(&self, raw_event: &str) -> String {
        let width = self
            .fields
            .iter()
            .map(|(label, _)| label.chars().count() + 1)
            .max()
            .unwrap_or(0)
            + 2;
        let mut text = format!("{}\n\n", self.summary);
        for (label, value) in &self.fields {
            text.push_str(&format!("{:<width$}{value}\n", format!("{label}:")));
        }
        if let Some(advice) = &self.advice {
            text.push_str(&format!("\n{advice}\n"));
        }
        if !raw_event.is_empty() {
            text.push_str(&format!("\nRaw event:\n{raw_event}\n"));
        }
        text
    }

    /// The HTML body: the same content as [`Wording::plain_text`], as a simple table.
    #[must_use]
    pub fn html(&self, raw_event: &str) -> String {
        let mut html = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n\
             <body style=\"font-family: sans-serif\">\n",
        );
        html.push_str(&format!("<p>{}</p>\n<table>\n", escape(&self.summary)));
        for (label, value) in &self.fields {
            html.push_str(&format!(
                "<tr><th style=\"text-align: left; padding-right: 1em\">{}</th><td>{}</td></tr>\n",
                escape(label),
                escape(value)
            ));
        }
        html.push_str("</table>\n");
        if let Some(advice) = &self.advice {
            html.push_str(&format!("<p><strong>{}</strong></p>\n", escape(advice)));
        }
        if !raw_event.is_empty() {
            html.push_str(&format!(
                "<p>Raw event:</p>\n<pre>{}</pre>\n",
                escape(raw_event)
            ));
        }
        html.push_str("</body></html>\n");
        html
    }
}

impl Wording {
    /// perfhook's own notices about a sender's silence and its end.
    fn silence(record: &EventRecord, kind: AlertType) -> Self {
        let data = serde_json::from_str::<Value>(&record.body)
            .ok()
            .and_then(|body| body.get("data").cloned())
            .unwrap_or(Value::Null);
        let text = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
        let span = |name: &str| {
            data.get(name).and_then(Value::as_u64).map(|secs| {
                humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
            })
        };
        let endpoint = record.endpoint.clone();
        let expected = span("expect_delivery_within_secs").unwrap_or_else(|| "?".to_owned());
        let (subject, summary, advice, mut fields) = if kind == AlertType::SenderSilent {
            let silent_for = span("silent_for_secs").unwrap_or_else(|| "?".to_owned());
            (
                format!("{endpoint}: no delivery from the sender for {silent_for}"),
                format!(
                    "Endpoint `{endpoint}` has received nothing for {silent_for}; it expects a \
                     delivery at least every {expected}. You will get one more message when \
                     deliveries resume."
                ),
                Some(
                    "Check the sender's webhook settings and delivery log (target URL, secret, \
                     a disabled endpoint), and that this receiver is reachable from it."
                        .to_owned(),
                ),
                vec![(
                    "Last delivery".to_owned(),
                    text("last_delivery_at").unwrap_or_else(|| "none on record".to_owned()),
                )],
            )
        } else {
            (
                format!("{endpoint}: deliveries resumed"),
                format!(
                    "Endpoint `{endpoint}` received a delivery again after a silence longer \
                     than {expected}."
                ),
                None,
                vec![
                    (
                        "Silence reported".to_owned(),
                        text("silence_notified_at").unwrap_or_default(),
                    ),
                    ("Resumed".to_owned(), text("resumed_at").unwrap_or_default()),
                ],
            )
        };
        fields.push(("Expected every".to_owned(), expected));
        fields.push(("Endpoint".to_owned(), endpoint));
        fields.push(("Event".to_owned(), format!("{} {}", record.kind, record.id)));
        let mut subject = subject;
        if record.livemode == Some(false) {
            subject.push_str(" (test mode)");
        }
        Self::printable(&subject, &summary, fields, advice)
    }
}

impl Wording {
    /// A digest: how many alerts waited and, one line each, what they said.
    fn digest(record: &EventRecord) -> Self {
        let data = serde_json::from_str::<Value>(&record.body)
            .ok()
            .and_then(|body| body.get("data").cloned())
            .unwrap_or(Value::Null);
        let text = |value: &Value, name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let alerts = data
            .get("alerts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let count = alerts.len();
        let noun = if count == 1 { "alert" } else { "alerts" };
        let mut subject = format!("Digest: {count} {noun}");
        if record.endpoint != crate::outbox::SEVERAL {
            subject = format!("{}: {subject}", record.endpoint);
        }
        if record.livemode == Some(false) {
            subject.push_str(" (test mode)");
        }
        let summary = format!(
            "{count} {noun} arrived between {} and {} and waited for this digest (quiet hours, \
             or a notifier that sends digests). Each one, oldest first:",
            minutes(&text(&data, "first_received_at")),
            minutes(&text(&data, "last_received_at")),
        );
        let mut fields: Vec<(String, String)> = alerts
            .iter()
            .take(MAX_EXTRA_FIELDS)
            .map(|alert| {
                (
                    minutes(&text(alert, "received_at")),
                    format!("{} ({})", text(alert, "subject"), text(alert, "id")),
                )
            })
            .collect();
        if count > MAX_EXTRA_FIELDS {
            fields.push((
                "And".to_owned(),
                format!(
                    "{} more: every alert is in the raw digest below and on the inspector's events page",
                    count - MAX_EXTRA_FIELDS
                ),
            ));
        }
        Self::printable(
            &subject,
            &summary,
            fields,
            Some(
                "Each alert's figures and delivery history are on the inspector's events page \
                 (or GET /admin/v1/events/ENDPOINT/ID)."
                    .to_owned(),
            ),
        )
    }
}

/// `2026-11-27T14:05:00Z` as `2026-11-27 14:05 UTC`.
fn minutes(rfc3339: &str) -> String {
    match rfc3339.get(..16) {
        Some(head) if rfc3339.ends_with('Z') => format!("{} UTC", head.replace('T', " ")),
        _ => rfc3339.to_owned(),
    }
}

fn used_up_advice() -> String {
    "The budget is used up. Raise it in Perf if this spending is expected; otherwise stop or \
     throttle the project's traffic."
        .to_owned()
}

/// `Acme Robotics / support-bot`, or whichever of the two the alert names.
fn who(alert: &Alert) -> Option<String> {
    match (&alert.organization, &alert.project) {
        (Some(organization), Some(project)) => Some(format!("{organization} / {project}")),
        (Some(one), None) | (None, Some(one)) => Some(one.clone()),
        (None, None) => None,
    }
}

/// `400.12 USD of 500.00 USD`, or the amount alone.
fn money(alert: &Alert) -> Option<String> {
    let currency = alert
        .currency
        .as_deref()
        .map_or(String::new(), |c| format!(" {c}"));
    match (&alert.amount, &alert.limit) {
        (Some(amount), Some(limit)) => Some(format!("{amount}{currency} of {limit}{currency}")),
        (Some(amount), None) => Some(format!("{amount}{currency}")),
        _ => None,
    }
}

/// `80% (400.12 USD of 500.00 USD)`, or as much of it as the alert carries.
fn usage(alert: &Alert) -> Option<String> {
    match (alert.usage_percent, money(alert)) {
        (Some(percent), Some(money)) => Some(format!("{percent}% ({money})")),
        (Some(percent), None) => Some(format!("{percent}%")),
        (None, money) => money,
    }
}

/// `2026-11-01 to 2026-12-01`: midnight UTC times shown as dates.
fn period(alert: &Alert) -> Option<String> {
    let day = |time: &String| {
        time.strip_suffix("T00:00:00Z")
            .map_or_else(|| time.clone(), str::to_owned)
    };
    match (&alert.period_start, &alert.period_end) {
        (Some(start), Some(end)) => Some(format!("{} to {}", day(start), day(end))),
        (Some(start), None) => Some(format!("from {}", day(start))),
        (None, Some(end)) => Some(format!("until {}", day(end))),
        (None, None) => None,
    }
}

/// Every scalar under `data`, labelled with its path (`data.usage.amount`), keys in order.
fn data_fields(body: &str) -> Vec<(String, String)> {
    let Ok(event) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let mut fields = Vec::new();
    if let Some(data) = event.get("data") {
        flatten("data", data, &mut fields);
    }
    fields.truncate(MAX_EXTRA_FIELDS);
    fields
}

fn flatten(path: &str, value: &Value, out: &mut Vec<(String, String)>) {
    if out.len() >= MAX_EXTRA_FIELDS {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(&format!("{path}.{key}"), inner, out);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                flatten(&format!("{path}[{index}]"), inner, out);
            }
        }
        Value::String(text) => out.push((path.to_owned(), text.clone())),
        Value::Null => out.push((path.to_owned(), "null".to_owned())),
        other => out.push((path.to_owned(), other.to_string())),
    }
}

/// Drops control characters, so a field from the body cannot add a header or a line.
pub(super) fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_event(kind: &str, data: &serde_json::Value) -> EventRecord {
        EventRecord {
            endpoint: "quiet".to_owned(),
            id: "perfhook-silent-1".to_owned(),
            kind: kind.to_owned(),
            livemode: Some(true),
            received_at: 1_763_907_200,
            body: serde_json::json!({"id": "x", "type": kind, "data": data}).to_string(),
        }
    }

    #[test]
    fn a_silence_and_its_end_are_worded_for_people() {
        let silent = own_event(
            crate::silence::SILENT,
            &serde_json::json!({"endpoint": "quiet", "last_delivery_at": "2025-11-23T12:13:20Z",
                "silent_for_secs": 7_201, "expect_delivery_within_secs": 7_200}),
        );
        let words = Wording::of(&silent, &Alert::default());
        assert_eq!(
            words.subject,
            "quiet: no delivery from the sender for 2h 1s"
        );
        assert!(
            words.summary.contains("at least every 2h"),
            "{}",
            words.summary
        );
        assert!(words.advice.is_some());
        assert!(words.fields.contains(&(
            "Last delivery".to_owned(),
            "2025-11-23T12:13:20Z".to_owned()
        )));

        let resumed = own_event(
            crate::silence::RESUMED,
            &serde_json::json!({"endpoint": "quiet", "silence_notified_at": "2025-11-23T14:13:21Z",
                "resumed_at": "2025-11-23T15:00:00Z", "expect_delivery_within_secs": 7_200}),
        );
        let words = Wording::of(&resumed, &Alert::default());
        assert_eq!(words.subject, "quiet: deliveries resumed");
        assert!(words.advice.is_none());
        assert!(words
            .fields
            .contains(&("Resumed".to_owned(), "2025-11-23T15:00:00Z".to_owned())));
    }

    #[test]
    fn a_projection_is_worded_with_its_date() {
        let record = own_event("usage.threshold_reached", &serde_json::json!({}));
        let alert = Alert {
            threshold_percent: Some(80),
            runs_out_at: Some("2026-11-11T06:30:00Z".to_owned()),
            ..Alert::default()
        };
        let words = Wording::of(&record, &alert);
        assert!(words.fields.contains(&(
            "At this rate".to_owned(),
            "the budget runs out on 2026-11-11 06:30 UTC".to_owned()
        )));
        let without = Wording::of(&record, &Alert::default());
        assert!(!without
            .fields
            .iter()
            .any(|(label, _)| label == "At this rate"));
    }

    #[test]
    fn html_escapes_every_markup_character() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn an_unknown_types_figures_are_flattened_and_capped() {
        let many: Vec<String> = (0..100).map(|i| format!("\"k{i:03}\":{i}")).collect();
        let body = format!(
            r#"{{"data":{{"a":[true,null,{{"b":"c"}}],{}}}}}"#,
            many.join(",")
        );
        let fields = data_fields(&body);
        assert_eq!(fields.len(), MAX_EXTRA_FIELDS);
        assert_eq!(
            fields.get(..3),
            Some(
                &[
                    ("data.a[0]".to_owned(), "true".to_owned()),
                    ("data.a[1]".to_owned(), "null".to_owned()),
                    ("data.a[2].b".to_owned(), "c".to_owned()),
                ][..]
            )
        );
    }
}
