//! `GET /admin/v1/budgets` (`events:read`): per organisation, project and mode (live and
//! test figures never share a chart), the usage figures
//! of its alerts in the current billing period, oldest first, with the thresholds that
//! fired: what the inspector draws as a chart.

use std::collections::BTreeMap;

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::{AdminError, AdminErrorKind, ErrorBody};
use super::{AdminState, Caller};
use crate::api_key::Scope;
use crate::event::Alert;
use crate::notify::rfc3339;
use crate::store::EventQuery;

/// Events read at most, newest first (the answer says when it stopped there).
const MAX_SCAN: usize = 5_000;
/// Events read per store page.
const SCAN_PAGE: usize = 500;

/// The query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetParams {
    /// Only this endpoint.
    pub endpoint: Option<String>,
}

/// `GET /admin/v1/budgets?endpoint=`.
#[utoipa::path(
    tag = "events",
    params(("endpoint" = Option<String>, Query, description = "only this endpoint")),
    responses(
        (status = 200, description = "{budgets:[{organization, project, livemode, runs_out_at (the straight-line projection of this period's figures to 100%, or null), currency, limit, period_start, period_end, period_start_unix, period_end_unix, usage_percent, amount, thresholds_fired, points:[{at, at_unix, usage_percent, threshold_percent, type, endpoint, id}]}], scanned, complete}"),
        (status = 404, description = "an endpoint the key does not see", body = ErrorBody),
        (status = 401, description = "no key, or one that is malformed, unknown, revoked or expired", body = ErrorBody),
        (status = 403, description = "the key lacks the scope", body = ErrorBody),
        (status = 429, description = "over the key's limit (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = ["events:read"]))
)]
#[get("/budgets")]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let caller = state.authorize(&request, Scope::EventsRead).await?;
    let params: BudgetParams = caller.query(&request)?;
    Ok(caller.json(&budgets(&state, &caller, &params).await?))
}

/// One usage figure.
struct Point {
    at: u64,
    alert: Alert,
    kind: String,
    endpoint: String,
    id: String,
}

/// Unix seconds of an RFC 3339 time as the sender wrote it.
fn unix(text: Option<&str>) -> Option<u64> {
    let time = humantime::parse_rfc3339_weak(text?).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|since| since.as_secs())
}

/// The budgets `GET /admin/v1/budgets` answers.
///
/// # Errors
/// 404 for an endpoint the key does not see, 503 when the store fails.
pub async fn budgets(
    state: &AdminState,
    caller: &Caller,
    params: &BudgetParams,
) -> Result<serde_json::Value, AdminError> {
    if let Some(endpoint) = &params.endpoint {
        if !caller.sees(state, endpoint) {
            return Err(caller.fail(AdminErrorKind::NotFound(format!(
                "no endpoint {endpoint:?} for this key"
            ))));
        }
    }
    let storage = |_| caller.fail(AdminErrorKind::Storage);
    // (live?, organisation, project) -> figures, newest first as read; live sorts first.
    let mut groups: BTreeMap<(bool, String, String), Vec<Point>> = BTreeMap::new();
    let mut scanned = 0;
    let mut cursor = None;
    let complete = loop {
        let page = state
            .store
            .list(&EventQuery {
                endpoint: params.endpoint.clone(),
                cursor: cursor.take(),
                limit: SCAN_PAGE,
                ..EventQuery::default()
            })
            .await
            .map_err(storage)?;
        // Every event read counts toward the bound, seen by this key or not.
        scanned += page.events.len();
        for summary in page
            .events
            .iter()
            .filter(|event| caller.sees(state, &event.endpoint))
        {
            let Some(detail) = state
                .store
                .event(&summary.endpoint, &summary.id)
                .await
                .map_err(storage)?
            else {
                continue;
            };
            let alert = Alert::from_body_with(
                detail.record.body.as_bytes(),
                &state.fields_of(&summary.endpoint),
            );
            if alert.usage_percent.is_none() {
                continue;
            }
            let key = (
                summary.livemode == Some(false),
                alert.organization.clone().unwrap_or_default(),
                alert.project.clone().unwrap_or_default(),
            );
            groups.entry(key).or_default().push(Point {
                at: summary.received_at,
                alert,
                kind: summary.kind.clone(),
                endpoint: summary.endpoint.clone(),
                id: summary.id.clone(),
            });
        }
        match page.next_cursor {
            None => break true,
            Some(_) if scanned >= MAX_SCAN => break false,
            Some(next) => cursor = Some(next),
        }
    };
    let budgets: Vec<serde_json::Value> = groups
        .into_iter()
        .filter_map(|((test, organization, project), points)| {
            let newest = points.first()?;
            let period = (
                newest.alert.period_start.clone(),
                newest.alert.period_end.clone(),
            );
            // The current billing period: the newest figure's; older periods are history.
            let mut current: Vec<&Point> = points
                .iter()
                .filter(|point| {
                    (
                        point.alert.period_start.clone(),
                        point.alert.period_end.clone(),
                    ) == period
                })
                .collect();
            current.reverse();
            let mut fired: Vec<u64> = current
                .iter()
                .filter_map(|point| point.alert.threshold_percent)
                .collect();
            fired.sort_unstable();
            fired.dedup();
            let series: Vec<serde_json::Value> = current
                .iter()
                .map(|point| {
                    json!({
                        "at": rfc3339(point.at),
                        "at_unix": point.at,
                        "usage_percent": point.alert.usage_percent,
                        "threshold_percent": point.alert.threshold_percent,
                        "type": point.kind,
                        "endpoint": point.endpoint,
                        "id": point.id,
                    })
                })
                .collect();
            let figures: Vec<(u64, u64)> = current
                .iter()
                .filter_map(|point| Some((point.at, point.alert.usage_percent?)))
                .collect();
            Some(json!({
                "runs_out_at": crate::projection::runs_out_at(&figures).map(rfc3339),
                "organization": organization,
                "project": project,
                "livemode": !test,
                "currency": newest.alert.currency,
                "limit": newest.alert.limit,
                "amount": newest.alert.amount,
                "usage_percent": newest.alert.usage_percent,
                "period_start": period.0,
                "period_end": period.1,
                "period_start_unix": unix(period.0.as_deref()),
                "period_end_unix": unix(period.1.as_deref()),
                "thresholds_fired": fired,
                "points": series,
            }))
        })
        .collect();
    Ok(json!({ "budgets": budgets, "scanned": scanned, "complete": complete }))
}
