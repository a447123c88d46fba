//! The inspector: server-rendered pages under `/ui/` on the admin listener, for the people
//! who read the alerts. Its only data source is the operator API's own operations, called
//! with the signed-in key, so every page goes through the same scopes, rate limits and
//! audit log as an API call. No JavaScript; one embedded stylesheet.

mod actions;
mod chart;
mod pages;
pub mod session;
mod views;

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::admin::{source, AdminError, AdminErrorKind, AdminState, Caller};
use crate::api_key::Scope;
use crate::clock::Clock;
use session::{Session, Sessions};

/// The policy every inspector answer carries: nothing but this origin's stylesheet and
/// forms, no script at all, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The stylesheet, embedded in the binary.
const STYLESHEET: &str = include_str!("style.css");

/// What the inspector keeps between requests.
#[derive(Debug)]
pub struct UiState {
    /// Signed-in browsers.
    pub sessions: Sessions,
    /// Whether the admin listener speaks TLS (cookies are then Secure).
    pub secure: bool,
}

impl UiState {
    /// No sessions yet.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>, secure: bool) -> Self {
        Self {
            sessions: Sessions::new(clock),
            secure,
        }
    }
}

/// The routes under `/ui/`, with their security headers.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/ui")
            .wrap(
                DefaultHeaders::new()
                    .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
                    .add(("X-Frame-Options", "DENY"))
                    .add(("Referrer-Policy", "no-referrer"))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Cross-Origin-Opener-Policy", "same-origin"))
                    .add(("Cache-Control", "no-store")),
            )
            .route("", web::get().to(pages::home))
            .route("/", web::get().to(pages::home))
            .route("/style.css", web::get().to(stylesheet))
            .route("/sign-in", web::get().to(actions::sign_in_form))
            .route("/sign-in", web::post().to(actions::sign_in))
            .route("/sign-out", web::post().to(actions::sign_out))
            .route("/overview", web::get().to(pages::overview))
            .route("/budgets", web::get().to(pages::budgets))
            .route("/events", web::get().to(pages::events))
            .route("/events/{endpoint}/{id}", web::get().to(pages::event))
            .route(
                "/events/{endpoint}/{id}/renotify",
                web::post().to(actions::renotify),
            )
            .route("/refused", web::get().to(pages::refused))
            .route("/refused/reverify", web::post().to(actions::reverify))
            .route(
                "/refused/{id}/request",
                web::get().to(pages::refused_request),
            )
            .route("/outbox", web::get().to(pages::outbox))
            .route(
                "/outbox/{endpoint}/{id}/{notifier}/retry",
                web::post().to(actions::retry),
            )
            .route("/keys", web::get().to(pages::keys))
            .route("/audit", web::get().to(pages::audit))
            .default_service(web::to(pages::not_found)),
    );
}

/// `GET /ui/style.css`.
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLESHEET)
}

/// A signed-in request: its session and the caller the session's key makes.
struct SignedIn {
    session: Session,
    caller: Caller,
}

/// The session and an admitted caller with `scope`, or the answer to give instead: to
/// the sign-in page without a live session (or once its key stops being valid), an error
/// page otherwise.
async fn signed_in(
    request: &HttpRequest,
    state: &AdminState,
    ui: &UiState,
    scope: Scope,
) -> Result<SignedIn, HttpResponse> {
    let Some((_, session)) = ui.sessions.of(request) else {
        return Err(to_sign_in(None));
    };
    match state
        .authorize_key_id(&session.key_id, source(request), scope)
        .await
    {
        Ok(caller) => Ok(SignedIn { session, caller }),
        Err(error) if error.kind == AdminErrorKind::InvalidApiKey => {
            ui.sessions.end_for_key(&session.key_id);
            Err(to_sign_in(Some(
                "Your key is no longer valid; sign in again.",
            )))
        }
        Err(error) => Err(error_page(&error, Some(&session_nav(&session, None)))),
    }
}

/// A redirect to the sign-in page, with a notice.
fn to_sign_in(notice: Option<&str>) -> HttpResponse {
    let location = match notice {
        Some(_) => "/ui/sign-in?ended=1",
        None => "/ui/sign-in",
    };
    see_other(location)
}

/// `303 See Other` to `location` (after a form, so reloading does not post it again).
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Renders a page as HTML with `status`.
fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ))
            .body(body),
        Err(error) => {
            tracing::error!(%error, "inspector: a page failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("this page failed to render; the log says why")
        }
    }
}

/// The navigation: which pages the signed-in key may open.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    /// The key's id.
    pub key_id: String,
    /// The CSRF token the sign-out form carries.
    pub csrf: String,
    /// The page shown.
    pub current: &'static str,
    /// Refused deliveries readable.
    pub refused: bool,
    /// Keys readable.
    pub keys: bool,
    /// Audit log readable.
    pub audit: bool,
}

fn session_nav(session: &Session, caller: Option<&Caller>) -> Nav {
    let holds = |scope: Scope| {
        caller.is_some_and(|caller| caller.key.scopes.iter().any(|held| held == scope.name()))
    };
    Nav {
        key_id: session.key_id.clone(),
        csrf: session.csrf.clone(),
        current: "",
        refused: holds(Scope::RefusedRead),
        keys: holds(Scope::KeysAdmin),
        audit: holds(Scope::AuditRead),
    }
}

impl SignedIn {
    fn nav(&self, current: &'static str) -> Nav {
        Nav {
            current,
            ..session_nav(&self.session, Some(&self.caller))
        }
    }
}

/// An error as a page, with the status the API would give.
fn error_page(error: &AdminError, nav: Option<&Nav>) -> HttpResponse {
    let status = actix_web::ResponseError::status_code(error);
    let page = views::ErrorPage {
        nav: nav.cloned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        message: error.to_string(),
    };
    let mut response = html(status, &page);
    if let AdminErrorKind::RateLimited(after) = error.kind {
        if let Ok(value) = HeaderValue::from_str(&after.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::STYLESHEET;

    /// The `--name: #rrggbb` colours the stylesheet defines, and white.
    fn colour(name: &str) -> [f64; 3] {
        let hex = if name == "white" {
            "ffffff"
        } else {
            let marker = format!("--{name}: #");
            let start = STYLESHEET.find(&marker).map(|at| at + marker.len());
            start
                .and_then(|at| STYLESHEET.get(at..at + 6))
                .unwrap_or_else(|| panic!("--{name} is defined"))
        };
        let channel = |at: usize| {
            let value = u8::from_str_radix(hex.get(at..at + 2).unwrap_or("00"), 16).unwrap_or(0);
            let value = f64::from(value) / 255.0;
            if value <= 0.039_28 {
                value / 12.92
            } else {
                ((value + 0.055) / 1.055).powf(2.4)
            }
        };
        [channel(0), channel(2), channel(4)]
    }

    /// WCAG 2 contrast ratio of two colours.
    fn contrast(a: &str, b: &str) -> f64 {
        let luminance = |[r, g, b]: [f64; 3]| 0.2126 * r + 0.7152 * g + 0.0722 * b;
        let (x, y) = (luminance(colour(a)), luminance(colour(b)));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn every_text_colour_passes_wcag_aa_on_its_background() {
        // (text, background) as the stylesheet pairs them.
        for (text, background) in [
            ("ink", "white"),
            ("ink", "panel"),
            ("muted", "white"),
            ("muted", "panel"),
            ("link", "white"),
            ("link", "panel"),
            ("white", "link"),
            ("bad", "white"),
            ("accent", "white"),
            ("warn-ink", "warn-bg"),
            ("placeholder", "white"),
        ] {
            let ratio = contrast(text, background);
            assert!(ratio >= 4.5, "{text} on {background}: {ratio:.2}:1");
        }
    }
}
