//! The forms: sign-in and sign-out, re-notify, retry and re-verify. Each checks its CSRF
//! token (the session's, or for sign-in the one tied to the form by a cookie) before it
//! does anything, then calls the same operation as the API and redirects back (303).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::session::{self, cookie, same_origin, set_cookie, tokens_match, COOKIE, SIGN_IN_COOKIE};
use super::views;
use super::{error_page, html, see_other, signed_in, SignedIn, UiState};
use crate::admin::{self, source, AdminError, AdminErrorKind, AdminState, Presented};
use crate::api_key::Scope;
use crate::audit::ActionKind;

/// How long a sign-in form stays usable.
const SIGN_IN_FORM_SECS: u64 = 15 * 60;

/// A form that changes state: only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct Protected {
    /// Absent reads as empty, which never matches: the form is refused with a page.
    #[serde(default)]
    csrf: String,
}

/// The refusal of a form without the right token.
fn forbidden_form() -> HttpResponse {
    error_page(
        &AdminError::new(AdminErrorKind::NotAllowed(
            "this form has expired or did not come from this page; reload it and try again"
                .to_owned(),
        )),
        None,
    )
}

/// The signed-in caller with `scope` whose form carries the session's token.
async fn checked(
    request: &HttpRequest,
    state: &AdminState,
    ui: &UiState,
    scope: Scope,
    form: &Protected,
) -> Result<SignedIn, HttpResponse> {
    if !same_origin(request) {
        return Err(forbidden_form());
    }
    let Some((_, session)) = ui.sessions.of(request) else {
        return Err(see_other("/ui/sign-in"));
    };
    if !tokens_match(&form.csrf, &session.csrf) {
        return Err(forbidden_form());
    }
    signed_in(request, state, ui, scope).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignInQuery {
    ended: Option<String>,
}

fn sign_in_page(ui: &UiState, notice: Option<String>, error: Option<String>) -> HttpResponse {
    let Ok(token) = session::random_token() else {
        return HttpResponse::ServiceUnavailable().body("no randomness for a sign-in form");
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut answer = html(
        status,
        &views::SignInPage {
            nav: None,
            form_token: token.clone(),
            notice,
            error,
        },
    );
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&set_cookie(
        SIGN_IN_COOKIE,
        &token,
        SIGN_IN_FORM_SECS,
        ui.secure,
    )) {
        answer
            .headers_mut()
            .append(actix_web::http::header::SET_COOKIE, value);
    }
    answer
}

/// `GET /ui/sign-in`.
pub async fn sign_in_form(ui: web::Data<UiState>, query: web::Query<SignInQuery>) -> HttpResponse {
    let notice = query
        .ended
        .as_ref()
        .map(|_| "Your session ended or your key is no longer valid; sign in again.".to_owned());
    sign_in_page(&ui, notice, None)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    form_token: String,
}

/// `POST /ui/sign-in`: the key is checked as an API call with `events:read` would be
/// (failures count against the source and are audited); the session keeps its id only.
pub async fn sign_in(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    form: web::Form<SignInForm>,
) -> HttpResponse {
    let tied = same_origin(&request)
        && cookie(&request, SIGN_IN_COOKIE)
            .is_some_and(|expected| tokens_match(&form.form_token, expected));
    if !tied {
        return sign_in_page(
            &ui,
            None,
            Some("This sign-in form expired; enter the key again.".to_owned()),
        );
    }
    let source = source(&request);
    let caller = match state
        .authorize_key(Presented::Key(form.key.trim()), source, Scope::EventsRead)
        .await
    {
        Ok(caller) => caller,
        Err(error) => {
            // The API's message, never the key typed.
            let message = match error.kind {
                AdminErrorKind::InsufficientScope(_) => {
                    "This key lacks the events:read scope the inspector needs.".to_owned()
                }
                AdminErrorKind::RateLimited(after) => {
                    format!("Too many failed sign-ins from here; try again in {after} s.")
                }
                _ => "That key is not valid (unknown, revoked or expired).".to_owned(),
            };
            return sign_in_page(&ui, None, Some(message));
        }
    };
    // A session this browser had before ends: a new sign-in never inherits one.
    if let Some((old, _)) = ui.sessions.of(&request) {
        ui.sessions.end(&old);
    }
    let Ok(token) = ui.sessions.start(&caller.key.id) else {
        return error_page(&AdminError::new(AdminErrorKind::Storage), None);
    };
    state
        .audit_by(
            &caller,
            "ui.sign_in",
            ActionKind::Auth,
            &caller.key.id,
            "ok",
        )
        .await;
    let mut answer = see_other("/ui/overview");
    for value in [
        set_cookie(COOKIE, &token, session::ABSOLUTE_SECS, ui.secure),
        set_cookie(SIGN_IN_COOKIE, "", 0, ui.secure),
    ] {
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&value) {
            answer
                .headers_mut()
                .append(actix_web::http::header::SET_COOKIE, value);
        }
    }
    answer
}

/// `POST /ui/sign-out`.
pub async fn sign_out(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    form: web::Form<Protected>,
) -> HttpResponse {
    let Some((token, session)) = ui.sessions.of(&request) else {
        return see_other("/ui/sign-in");
    };
    if !same_origin(&request) || !tokens_match(&form.csrf, &session.csrf) {
        return forbidden_form();
    }
    ui.sessions.end(&token);
    state
        .audit(
            Some(&session.key_id),
            source(&request),
            "ui.sign_out",
            ActionKind::Auth,
            Some(&session.key_id),
            "ok",
        )
        .await;
    let mut answer = see_other("/ui/sign-in");
    if let Ok(value) =
        actix_web::http::header::HeaderValue::from_str(&set_cookie(COOKIE, "", 0, ui.secure))
    {
        answer
            .headers_mut()
            .append(actix_web::http::header::SET_COOKIE, value);
    }
    answer
}

fn count(answer: &serde_json::Value, field: &str) -> u64 {
    match answer.get(field) {
        Some(serde_json::Value::Number(number)) => number.as_u64().unwrap_or(0),
        Some(serde_json::Value::Array(items)) => u64::try_from(items.len()).unwrap_or(0),
        _ => 0,
    }
}

/// `POST /ui/events/{endpoint}/{id}/renotify`.
pub async fn renotify(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    path: web::Path<(String, String)>,
    form: web::Form<Protected>,
) -> HttpResponse {
    let signed = match checked(&request, &state, &ui, Scope::EventsWrite, &form).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let (endpoint, id) = path.into_inner();
    match admin::renotify_event(&state, &signed.caller, &endpoint, &id, None).await {
        Ok(answer) => see_other(&format!(
            "/ui/events/{}/{}?done=renotify:{}",
            crate::cli::admin_client::encode(&endpoint),
            crate::cli::admin_client::encode(&id),
            count(&answer, "queued")
        )),
        Err(error) => error_page(&error, Some(&signed.nav("events"))),
    }
}

/// `POST /ui/outbox/{endpoint}/{id}/{notifier}/retry`.
pub async fn retry(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    path: web::Path<(String, String, String)>,
    form: web::Form<Protected>,
) -> HttpResponse {
    let signed = match checked(&request, &state, &ui, Scope::EventsWrite, &form).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let (endpoint, id, notifier) = path.into_inner();
    match admin::retry_job(&state, &signed.caller, &endpoint, &id, notifier).await {
        Ok(answer) => see_other(&format!(
            "/ui/outbox?done=retry:{}",
            count(&answer, "queued")
        )),
        Err(error) => error_page(&error, Some(&signed.nav("outbox"))),
    }
}

/// `POST /ui/refused/reverify`: every refused delivery the key sees.
pub async fn reverify(
    request: HttpRequest,
    state: web::Data<AdminState>,
    ui: web::Data<UiState>,
    form: web::Form<Protected>,
) -> HttpResponse {
    let signed = match checked(&request, &state, &ui, Scope::RefusedWrite, &form).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    match admin::reverify_refused(&state, &signed.caller, None).await {
        Ok(answer) => see_other(&format!(
            "/ui/refused?done=reverify:{}",
            count(&answer, "accepted")
        )),
        Err(error) => error_page(&error, Some(&signed.nav("refused"))),
    }
}
