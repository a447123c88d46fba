//! The pages that only read: each asks the operator API's operation for its data with the
//! signed-in key and renders the answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::chart::Chart;
use super::views::{self, rows};
use super::{error_page, html, see_other, signed_in, UiState};
use crate::admin::{self, AdminError, AdminErrorKind, AdminState, AuditFilter, ListParams};
use crate::api_key::Scope;

/// A notice shown once after an action (`?done=…` set by the action's redirect).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Notice {
    pub done: Option<String>,
}

impl Notice {
    /// The sentence for a known notice; anything else shows nothing (no text from the URL
    /// reaches the page).
    pub fn sentence(&self) -> Option<String> {
        let done = self.done.as_deref()?;
        let (what, count) = done.split_once(':').unwrap_or((done, ""));
        let count: u64 = count.parse().unwrap_or(0);
        Some(match what {
            "renotify" => format!("Queued {count} notification(s) again; they are due now."),
            "retry" if count == 0 => "That job is already waiting; nothing was queued.".to_owned(),
            "retry" => "The job is queued again and due now.".to_owned(),
            "reverify" => {
                format!("Re-verified: {count} delivery(ies) now verify and were taken in.")
            }
            _ => return None,
        })
    }
}

/// `GET /ui/`: the overview, which sends a browser without a live session to sign in.
pub async fn home() -> HttpResponse {
    see_other("/ui/overview")
}

/// Anything else under `/ui/` (without navigation: no session is looked at).
pub async fn not_found() -> HttpResponse {
    error_page(
        &AdminError::new(AdminErrorKind::NotFound("no such page".to_owned())),
        None,
    )
}

/// `GET /ui/overview`.
pub async fn overview(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
) -> HttpResponse {
    let signed = match signed_in(&request, &state, &ui, Scope::EventsRead).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let nav = signed.nav("overview");
    let answer = match admin::overview(&state, &signed.caller).await {
        Ok(answer) => answer,
        Err(error) => return error_page(&error, Some(&nav)),
    };
    let text = |field: &str| {
        answer
            .get(field)
            .and_then(serde_json::Value::as_str)
            .map(views::readable)
            .unwrap_or_default()
    };
    html(
        StatusCode::OK,
        &views::OverviewPage {
            generated_at: text("generated_at"),
            counted_since: text("counted_since"),
            endpoints: rows::<views::EndpointRow>(&answer, "endpoints")
                .into_iter()
                .map(|mut row| {
                    row.last_delivery_at = row.last_delivery_at.as_deref().map(views::readable);
                    row
                })
                .collect(),
            stored: answer
                .get("stored")
                .cloned()
                .and_then(|stored| serde_json::from_value(stored).ok()),
            nav: Some(nav),
        },
    )
}

/// `GET /ui/budgets`.
pub async fn budgets(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
) -> HttpResponse {
    let signed = match signed_in(&request, &state, &ui, Scope::EventsRead).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let nav = signed.nav("budgets");
    let answer = match admin::budgets(&state, &signed.caller, &admin::BudgetParams::default()).await
    {
        Ok(answer) => answer,
        Err(error) => return error_page(&error, Some(&nav)),
    };
    let budgets = rows::<views::BudgetRow>(&answer, "budgets")
        .into_iter()
        .map(|mut budget| {
            let chart = Chart::of(&budget);
            for point in &mut budget.points {
                point.at = views::readable(&point.at);
            }
            let day = |text: &Option<String>| text.as_deref().map(views::day_of);
            budget.runs_out_at = budget.runs_out_at.as_deref().map(views::readable);
            budget.period_start = day(&budget.period_start);
            budget.period_end = day(&budget.period_end);
            views::BudgetView { chart, budget }
        })
        .collect();
    html(
        StatusCode::OK,
        &views::BudgetsPage {
            budgets,
            complete: answer
                .get("complete")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(true),
            nav: Some(nav),
        },
    )
}

/// `YYYY-MM-DD` as Unix seconds at 00:00 UTC; anything else is none (the page says so).
fn day(text: &str) -> Result<Option<u64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    humantime::parse_rfc3339(&format!("{text}T00:00:00Z"))
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|since| Some(since.as_secs()))
        .ok_or_else(|| "dates are YYYY-MM-DD".to_owned())
}

/// `GET /ui/events?endpoint=&type=&project=&mode=&since=&until=&cursor=`.
pub async fn events(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
) -> HttpResponse {
    let signed = match signed_in(&request, &state, &ui, Scope::EventsRead).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let nav = signed.nav("events");
    let bad = |message: String| {
        error_page(
            &AdminError::new(AdminErrorKind::BadRequest(message)),
            Some(&nav),
        )
    };
    let filters = match web::Query::<views::Filters>::from_query(request.query_string()) {
        Ok(filters) => filters.into_inner(),
        Err(error) => return bad(format!("filters: {error}")),
    };
    let (since, until) = match (day(&filters.since), day(&filters.until)) {
        // `until` names a day, included whole.
        (Ok(since), Ok(until)) => (since, until.map(|until| until.saturating_add(86_400))),
        (Err(message), _) | (_, Err(message)) => return bad(message),
    };
    let given = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let params = ListParams {
        endpoint: given(&filters.endpoint),
        kind: given(&filters.kind),
        project: given(&filters.project),
        mode: given(&filters.mode),
        since,
        until,
        cursor: given(&filters.cursor),
        limit: Some(50),
    };
    let answer = match admin::list_events(&state, &signed.caller, params).await {
        Ok(answer) => answer,
        Err(error) => return error_page(&error, Some(&nav)),
    };
    let next_page = answer
        .get("next_cursor")
        .and_then(serde_json::Value::as_str)
        .map(|cursor| {
            let pairs = [
                ("endpoint", filters.endpoint.as_str()),
                ("type", filters.kind.as_str()),
                ("project", filters.project.as_str()),
                ("mode", filters.mode.as_str()),
                ("since", filters.since.as_str()),
                ("until", filters.until.as_str()),
                ("cursor", cursor),
            ];
            pairs
                .iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(name, value)| format!("{name}={}", crate::cli::admin_client::encode(value)))
                .collect::<Vec<_>>()
                .join("&")
        });
    let mut endpoints: Vec<String> = state
        .endpoints
        .keys()
        .filter(|name| signed.caller.sees(&state, name))
        .cloned()
        .collect();
    endpoints.sort();
    html(
        StatusCode::OK,
        &views::EventsPage {
            rows: rows::<views::EventRow>(&answer, "events")
                .into_iter()
                .map(|mut row| {
                    row.received_at = views::readable(&row.received_at);
                    row
                })
                .collect(),
            filters,
            endpoints,
            next_page,
            nav: Some(nav),
        },
    )
}

/// The alert's figures worth a label, in reading order.
fn figures(alert: Option<&serde_json::Value>) -> Vec<(&'static str, String)> {
    let Some(alert) = alert else {
        return Vec::new();
    };
    let field = |name: &str| -> Option<String> {
        match alert.get(name)? {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    };
    let mut shown = Vec::new();
    for (label, name, suffix) in [
        ("Organisation", "organization", ""),
        ("Project", "project", ""),
        ("Usage", "usage_percent", "%"),
        ("Threshold", "threshold_percent", "%"),
        ("Amount", "amount", ""),
        ("Budget", "limit", ""),
        ("Currency", "currency", ""),
        ("Period", "period", ""),
        ("Period start", "period_start", ""),
        ("Period end", "period_end", ""),
    ] {
        if let Some(value) = field(name) {
            shown.push((label, format!("{value}{suffix}")));
        }
    }
    shown
}

/// `GET /ui/events/{endpoint}/{id}`.
pub async fn event(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    path: web::Path<(String, String)>,
    notice: web::Query<Notice>,
) -> HttpResponse {
    let signed = match signed_in(&request, &state, &ui, Scope::EventsRead).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let nav = signed.nav("events");
    let (endpoint, id) = path.into_inner();
    let answer = match admin::event_detail(&state, &signed.caller, &endpoint, &id).await {
        Ok(answer) => answer,
        Err(error) => return error_page(&error, Some(&nav)),
    };
    let text = |field: &str| {
        answer
            .get(field)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    // The body as stored, indented for reading (it parsed when it was accepted).
    let body = serde_json::from_str::<serde_json::Value>(&text("body"))
        .and_then(|body| serde_json::to_string_pretty(&body))
        .unwrap_or_else(|_| text("body"));
    html(
        StatusCode::OK,
        &views::EventPage {
            kind: text("type"),
            livemode: answer.get("livemode").and_then(serde_json::Value::as_bool),
            received_at: views::readable(&text("received_at")),
            expires_at: views::readable(&text("expires_at")),
            figures: figures(answer.get("alert")),
            body,
            notifications: rows::<views::NotificationRow>(&answer, "notifications")
                .into_iter()
                .map(|mut row| {
                    row.due_at = views::readable(&row.due_at);
                    row
                })
                .collect(),
            can_write: holds(&signed.caller, Scope::EventsWrite),
            notice: notice.sentence(),
            endpoint,
            id,
            nav: Some(nav),
        },
    )
}

fn holds(caller: &admin::Caller, scope: Scope) -> bool {
    caller.key.scopes.iter().any(|held| held == scope.name())
}

/// `GET /ui/refused`.
pub async fn refused(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    notice: web::Query<Notice>,
) -> HttpResponse {
    let signed = match signed_in(&request, &state, &ui, Scope::RefusedRead).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let nav = signed.nav("refused");
    match admin::list_refused(&state, &signed.caller, None, Some(200)).await {
        Ok(answer) => html(
            StatusCode::OK,
            &views::RefusedPage {
                rows: rows::<views::RefusedRow>(&answer, "refused")
                    .into_iter()
                    .map(|mut row| {
                        row.received_at = views::readable(&row.received_at);
                        row
                    })
                    .collect(),
                can_write: holds(&signed.caller, Scope::RefusedWrite),
                notice: notice.sentence(),
                nav: Some(nav),
            },
        ),
        Err(error) => error_page(&error, Some(&nav)),
    }
}

/// `GET /ui/refused/{id}/request`: the request file, as a download.
pub async fn refused_request(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    id: web::Path<String>,
) -> HttpResponse {
    let signed = match signed_in(&request, &state, &ui, Scope::RefusedRead).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    match admin::export_refused(&state, &signed.caller, &id).await {
        Ok(refused) => HttpResponse::Ok()
            .content_type("message/http")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{}.http\"", refused.id),
            ))
            .body(refused.request),
        Err(error) => error_page(&error, Some(&signed.nav("refused"))),
    }
}

/// `GET /ui/outbox`.
pub async fn outbox(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    notice: web::Query<Notice>,
) -> HttpResponse {
    let signed = match signed_in(&request, &state, &ui, Scope::EventsRead).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let nav = signed.nav("outbox");
    let list = |status: &'static str| {
        admin::list_jobs(&state, &signed.caller, Some(status), None, Some(200))
    };
    let (pending, dead) = match (list("pending").await, list("dead").await) {
        (Ok(pending), Ok(dead)) => (pending, dead),
        (Err(error), _) | (_, Err(error)) => return error_page(&error, Some(&nav)),
    };
    let jobs = |answer: &serde_json::Value| {
        rows::<views::JobRow>(answer, "jobs")
            .into_iter()
            .map(|mut row| {
                row.due_at = views::readable(&row.due_at);
                row
            })
            .collect()
    };
    html(
        StatusCode::OK,
        &views::OutboxPage {
            pending: jobs(&pending),
            dead: jobs(&dead),
            can_write: holds(&signed.caller, Scope::EventsWrite),
            notice: notice.sentence(),
            nav: Some(nav),
        },
    )
}

/// `GET /ui/keys` (`keys:admin`).
pub async fn keys(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
) -> HttpResponse {
    let signed = match signed_in(&request, &state, &ui, Scope::KeysAdmin).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let nav = signed.nav("keys");
    match admin::list_keys(&state, &signed.caller).await {
        Ok(answer) => html(
            StatusCode::OK,
            &views::KeysPage {
                keys: rows(&answer, "keys"),
                nav: Some(nav),
            },
        ),
        Err(error) => error_page(&error, Some(&nav)),
    }
}

/// `GET /ui/audit` (`audit:read`): the newest 200 entries.
pub async fn audit(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
) -> HttpResponse {
    let signed = match signed_in(&request, &state, &ui, Scope::AuditRead).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let nav = signed.nav("audit");
    let filter = AuditFilter {
        limit: Some(200),
        ..AuditFilter::default()
    };
    match admin::list_audit(&state, &signed.caller, &filter).await {
        Ok(answer) => html(
            StatusCode::OK,
            &views::AuditPage {
                entries: rows(&answer, "entries"),
                nav: Some(nav),
            },
        ),
        Err(error) => error_page(&error, Some(&nav)),
    }
}
