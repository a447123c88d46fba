//! Inspector sessions, kept on the server: the browser holds only a random token in an
//! HttpOnly, SameSite=Strict cookie (Secure under TLS); each session has its own CSRF
//! token for the forms that change state. Nothing of the API key is kept but its id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Clock;

/// The session cookie.
pub const COOKIE: &str = "perfhook_ui";
/// The cookie that ties the sign-in form to the browser that fetched it.
pub const SIGN_IN_COOKIE: &str = "perfhook_ui_sign_in";
/// A session unused this long ends.
pub const IDLE_SECS: u64 = 30 * 60;
/// A session ends this long after sign-in, used or not.
pub const ABSOLUTE_SECS: u64 = 12 * 3600;
/// Sessions kept at most; the least recently used goes first.
const MAX_SESSIONS: usize = 1_000;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The API key it signed in with (its id only).
    pub key_id: String,
    /// The token its forms must carry.
    pub csrf: String,
    /// Unix seconds of sign-in.
    pub created: u64,
    /// Unix seconds of its last request.
    pub last_seen: u64,
}

/// The sessions of this process (a restart signs everyone out).
#[derive(Debug)]
pub struct Sessions {
    by_token_hash: Mutex<HashMap<[u8; 32], Session>>,
    clock: Arc<dyn Clock>,
}

/// 32 random bytes, hex: a session or CSRF token.
///
/// # Errors
/// When the OS has no randomness to give.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two tokens are equal, in constant time; an empty one never matches.
#[must_use]
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    !expected.is_empty()
        && presented.len() == expected.len()
        && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Whether a form was posted by a page of this listener. Browsers share cookies and
/// SameSite across the ports of one host, so without this another web app on the same
/// machine could post forms here. `Sec-Fetch-Site` decides when the browser sends it (every
/// current one does): `same-origin`, or `none` for what the user typed. Without it, an
/// `Origin` must be this listener's own; under `Referrer-Policy: no-referrer` browsers send
/// `Origin: null` on every POST, which therefore proves nothing either way.
#[must_use]
pub fn same_origin(request: &HttpRequest) -> bool {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap_or_default())
    };
    if let Some(site) = header("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    match header("origin") {
        None | Some("null") => true,
        // The Host header as the browser sent it (the admin listener takes no forwarding
        // header), against the origin's host and port.
        Some(origin) => {
            let host = header("host").unwrap_or_default();
            let origin_host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            !host.is_empty() && origin_host == Some(host)
        }
    }
}

/// A cookie's value in the request, if sent once.
#[must_use]
pub fn cookie<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: path `/ui`, HttpOnly, SameSite=Strict, Secure under TLS; `max_age`
/// 0 deletes it.
#[must_use]
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

impl Sessions {
    /// No sessions yet.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            by_token_hash: Mutex::default(),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_token_hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session for `key_id`; returns its cookie token.
    ///
    /// # Errors
    /// When the OS has no randomness to give.
    pub fn start(&self, key_id: &str) -> Result<String, getrandom::Error> {
        let token = random_token()?;
        let now = self.clock.now();
        let session = Session {
            key_id: key_id.to_owned(),
            csrf: random_token()?,
            created: now,
            last_seen: now,
        };
        let mut sessions = self.lock();
        sessions.retain(|_, kept| live(kept, now));
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, kept)| kept.last_seen)
                .map(|(hash, _)| *hash)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(hash(&token), session);
        Ok(token)
    }

    /// The session the request's cookie names, if it has not ended; marks it used.
    #[must_use]
    pub fn of(&self, request: &HttpRequest) -> Option<(String, Session)> {
        let token = cookie(request, COOKIE)?;
        let now = self.clock.now();
        let mut sessions = self.lock();
        let key = hash(token);
        let session = sessions.get_mut(&key)?;
        if !live(session, now) {
            sessions.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some((token.to_owned(), session.clone()))
    }

    /// Ends the session with this token.
    pub fn end(&self, token: &str) {
        self.lock().remove(&hash(token));
    }

    /// Ends every session of a key (it was revoked, or it failed authentication).
    pub fn end_for_key(&self, key_id: &str) {
        self.lock().retain(|_, session| session.key_id != key_id);
    }
}

fn live(session: &Session, now: u64) -> bool {
    now.saturating_sub(session.last_seen) < IDLE_SECS
        && now.saturating_sub(session.created) < ABSOLUTE_SECS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    fn request_with(token: &str) -> HttpRequest {
        actix_web::test::TestRequest::default()
            .insert_header(("Cookie", format!("other=1; {COOKIE}={token}")))
            .to_http_request()
    }

    #[test]
    fn a_session_ends_when_idle_and_at_its_absolute_limit() {
        let clock = Arc::new(FixedClock::at(1_000_000));
        let sessions = Sessions::new(clock.clone());
        let token = sessions.start("phk_live_a").expect("random");
        assert_eq!(
            sessions.of(&request_with(&token)).map(|(_, s)| s.key_id),
            Some("phk_live_a".to_owned())
        );
        assert!(sessions
            .of(&request_with("0".repeat(64).as_str()))
            .is_none());
        clock.advance(std::time::Duration::from_secs(IDLE_SECS - 1));
        assert!(
            sessions.of(&request_with(&token)).is_some(),
            "used: still live"
        );
        clock.advance(std::time::Duration::from_secs(IDLE_SECS));
        assert!(
            sessions.of(&request_with(&token)).is_none(),
            "idle too long"
        );

        let token = sessions.start("phk_live_a").expect("random");
        for _ in 0..(ABSOLUTE_SECS / (IDLE_SECS - 1)) {
            clock.advance(std::time::Duration::from_secs(IDLE_SECS - 1));
            let _ = sessions.of(&request_with(&token));
        }
        clock.advance(std::time::Duration::from_secs(IDLE_SECS - 1));
        assert!(
            sessions.of(&request_with(&token)).is_none(),
            "absolute limit"
        );
    }

    #[test]
    fn ending_a_key_ends_its_sessions_only() {
        let sessions = Sessions::new(Arc::new(FixedClock::at(1_000_000)));
        let a = sessions.start("phk_live_a").expect("random");
        let b = sessions.start("phk_live_b").expect("random");
        sessions.end_for_key("phk_live_a");
        assert!(sessions.of(&request_with(&a)).is_none());
        assert!(sessions.of(&request_with(&b)).is_some());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("ab", "abc"));
        assert!(!tokens_match("", ""), "an empty token never matches");
    }

    #[test]
    fn a_form_from_another_origin_is_not_same_origin() {
        let posted = |headers: &[(&str, &str)]| {
            let mut request = actix_web::test::TestRequest::post()
                .uri("/ui/sign-in")
                .insert_header(("Host", "127.0.0.1:8081"));
            for header in headers {
                request = request.insert_header(*header);
            }
            same_origin(&request.to_http_request())
        };
        assert!(
            posted(&[]),
            "an old browser or a script sends neither header"
        );
        assert!(posted(&[
            ("Origin", "http://127.0.0.1:8081"),
            ("Sec-Fetch-Site", "same-origin")
        ]));
        assert!(
            !posted(&[("Origin", "http://127.0.0.1:3000")]),
            "another port"
        );
        assert!(!posted(&[("Sec-Fetch-Site", "same-site")]));
        assert!(!posted(&[("Sec-Fetch-Site", "cross-site")]));
        assert!(
            posted(&[("Origin", "null"), ("Sec-Fetch-Site", "same-origin")]),
            "no-referrer makes every POST's Origin null"
        );
        assert!(!posted(&[
            ("Origin", "null"),
            ("Sec-Fetch-Site", "cross-site")
        ]));
    }
}
