//! actix-http's own answers get perfhook's JSON error body: a request it cannot parse (400),
//! a head that does not arrive in time (408) and a head too large (431).
//!
//! actix-http's HTTP/1 dispatcher builds these three itself, with an empty body and no hook
//! (`h1/dispatcher.rs` in actix-http 3). Each is the last answer written on its connection,
//! which closes after it. [`JsonErrors`] wraps the connection's stream, plain or inside TLS,
//! and when a write ends with exactly such an answer (status line, `content-length: 0`,
//! `connection: close` when present, `date`, nothing else), writes the JSON one in its
//! place, with `Strict-Transport-Security` over HTTPS. Only the bytes perfhook writes are
//! looked at, never the bytes a client sends.
//!
//! Why nothing else can match ([`Scope`]):
//! - On the receiver's listener, every answer has a body that holds no CR or LF at all
//!   (JSON, whose strings escape both, and the metrics text, whose lines end in LF alone),
//!   so no answer of its own can end in the blank line (CR LF CR LF) that ends an
//!   empty-bodied head.
//! - The operator API's listener sends stored requests back byte for byte (a refused
//!   delivery's download), so a sender could end a body there with a forged head. There only
//!   the connection's first write is rewritten, and only when it is wholly an own answer: a
//!   first write starts with a real head, so no body can come before it. That covers bytes
//!   that are not HTTP, a head that never arrives and a head too large on a new connection;
//!   after an answer on the same connection, actix-http's own stays as it is.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One of actix-http's own answers, and what perfhook says instead.
struct OwnAnswer {
    /// The status line after `HTTP/1.x `.
    status: &'static str,
    kind: &'static str,
    message: &'static str,
}

const OWN_ANSWERS: [OwnAnswer; 3] = [
    OwnAnswer {
        status: "400 Bad Request",
        kind: "malformed_request",
        message: "the request is not valid HTTP/1.1",
    },
    OwnAnswer {
        status: "408 Request Timeout",
        kind: "request_timeout",
        message: "the request head did not arrive within 5 s",
    },
    OwnAnswer {
        status: "431 Request Header Fields Too Large",
        kind: "headers_too_large",
        message: "the request head is over 128 KiB or has over 96 headers",
    },
];

/// The longest empty-bodied answer actix-http writes: the 431 status line, the three
/// header lines and the blank line come to 134 bytes.
const LONGEST_OWN_ANSWER: usize = 160;

/// Where `written`'s last answer starts and the JSON answer to write in its place, when that
/// answer is one of actix-http's own; `None` otherwise (nearly always: this returns at the
/// first test for any answer with a body).
fn rewrite(written: &[u8], hsts: Option<&str>) -> Option<(usize, Vec<u8>)> {
    if !written.ends_with(b"\r\n\r\n") {
        return None;
    }
    let window = written.len().saturating_sub(LONGEST_OWN_ANSWER);
    let tail = written.get(window..)?;
    let start = window + find_last(tail, b"HTTP/1.")?;
    let head = std::str::from_utf8(written.get(start..)?).ok()?;
    let mut lines = head.strip_suffix("\r\n\r\n")?.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let answer = OWN_ANSWERS.iter().find(|answer| answer.status == status)?;
    if lines.next()? != "content-length: 0" {
        return None;
    }
    let (mut close, mut date) = (false, None);
    for line in lines {
        match line {
            "connection: close" if !close && date.is_none() => close = true,
            _ if line.starts_with("date: ") && date.is_none() => date = Some(line),
            _ => return None,
        }
    }
    let date = date?;
    let body = json!({"error": {"type": answer.kind, "message": answer.message}}).to_string();
    let mut out = Vec::with_capacity(LONGEST_OWN_ANSWER + body.len() + 64);
    out.extend_from_slice(status_line.as_bytes());
    out.extend_from_slice(format!("\r\ncontent-length: {}\r\n", body.len()).as_bytes());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    if let Some(hsts) = hsts {
        out.extend_from_slice(format!("strict-transport-security: {hsts}\r\n").as_bytes());
    }
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    Some((start, out))
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
}

/// Which own answers a listener rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any, wherever it ends a write: for a listener none of whose answer bodies holds CR or LF.
    Anywhere,
    /// Only a connection's first write, when it is wholly an own answer.
    FirstWrite,
}

/// A connection's stream whose writes pass through [`rewrite`].
pub struct JsonErrors<T> {
    inner: T,
    scope: Scope,
    /// Whether any byte was written yet.
    wrote: bool,
    /// `Strict-Transport-Security`'s value, over HTTPS.
    hsts: Option<Arc<str>>,
    /// A rewritten answer not yet written, and how much of it is.
    pending: Vec<u8>,
    pending_written: usize,
    /// The length of the own answer being replaced, reported written once its replacement is.
    owed: usize,
}

impl<T> JsonErrors<T> {
    /// Wraps `inner`, rewriting own answers within `scope`; `hsts` is the header's value
    /// when the connection is HTTPS.
    pub fn new(inner: T, scope: Scope, hsts: Option<Arc<str>>) -> Self {
        Self {
            inner,
            scope,
            wrote: false,
            hsts,
            pending: Vec::new(),
            pending_written: 0,
            owed: 0,
        }
    }
}

impl<T> std::fmt::Debug for JsonErrors<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonErrors")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes what a rewrite left pending.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self
            .pending
            .get(self.pending_written..)
            .filter(|rest| !rest.is_empty())
        {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_written += n;
            self.wrote = true;
        }
        self.pending.clear();
        self.pending_written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    /// Bytes before an own answer are written as they are; the own answer is taken only
    /// once its replacement is wholly written to the inner stream (until then the write is
    /// pending), so a caller that stops at its first error loses nothing it was told went out.
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.owed == 0 {
            let found = rewrite(buf, this.hsts.as_deref())
                .filter(|(start, _)| this.scope == Scope::Anywhere || (!this.wrote && *start == 0));
            match found {
                None => {
                    let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
                    this.wrote |= written > 0;
                    return Poll::Ready(Ok(written));
                }
                // What comes before goes out first; the own answer comes back in a later call.
                Some((start, _)) if start > 0 => {
                    let before = buf.get(..start).unwrap_or(buf);
                    let written = ready!(Pin::new(&mut this.inner).poll_write(cx, before))?;
                    this.wrote |= written > 0;
                    return Poll::Ready(Ok(written));
                }
                Some((_, replacement)) => {
                    this.pending = replacement;
                    this.pending_written = 0;
                    this.owed = buf.len();
                }
            }
        }
        // `buf` starts with the own answer whose replacement is under way (a caller retries
        // a pending write with the same bytes): once that is out, the own answer's bytes
        // are reported written, and nothing after them.
        ready!(this.poll_pending(cx))?;
        let owed = std::mem::take(&mut this.owed);
        Poll::Ready(Ok(owed.min(buf.len())))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Tue, 01 Dec 2026 23:03:25 GMT";

    fn body_of(answer: &[u8]) -> serde_json::Value {
        let text = String::from_utf8_lossy(answer);
        let (_, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        serde_json::from_str(body).unwrap_or_default()
    }

    #[test]
    fn each_own_answer_gets_the_json_error_with_its_length_and_date() {
        for (status, kind) in [
            ("400 Bad Request", "malformed_request"),
            ("408 Request Timeout", "request_timeout"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
        ] {
            let own = format!(
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n{DATE}\r\n\r\n"
            );
            let (start, out) = rewrite(own.as_bytes(), None).unwrap_or_default();
            assert_eq!(start, 0);
            let text = String::from_utf8_lossy(&out).into_owned();
            let body = body_of(&out);
            assert_eq!(body["error"]["type"], kind, "{text}");
            let length = format!("content-length: {}\r\n", body.to_string().len());
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{text}"
            );
            assert!(text.contains(&length), "{text}");
            assert!(text.contains("connection: close\r\n"), "{text}");
            assert!(
                text.contains("content-type: application/json\r\n"),
                "{text}"
            );
            assert!(text.contains(DATE), "{text}");
            assert!(!text.contains("strict-transport-security"), "{text}");
            assert!(own.len() <= LONGEST_OWN_ANSWER, "{own}");
        }
    }

    #[test]
    fn a_pipelined_answer_before_it_is_kept_and_hsts_is_added_over_https() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json\r\ndate: x\r\n\r\n{\"status\":\"ok\"}";
        let own = format!("{ok}HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{DATE}\r\n\r\n");
        let (start, out) = rewrite(own.as_bytes(), Some("max-age=600")).unwrap_or_default();
        assert_eq!(
            start,
            ok.len(),
            "the answer before is left to pass as it is"
        );
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(
            text.contains("strict-transport-security: max-age=600\r\n"),
            "{text}"
        );
        assert!(!text.contains("connection: close"), "{text}");
        assert_eq!(body_of(&out)["error"]["type"], "malformed_request");
    }

    /// An inner stream that takes at most 7 bytes a call and is not ready every other call.
    #[derive(Default)]
    struct Trickle {
        out: Vec<u8>,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.calls += 1;
            if self.calls.is_multiple_of(2) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(7);
            self.out.extend_from_slice(buf.get(..n).unwrap_or_default());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Written the way actix-http's dispatcher writes: the rest of its buffer each call,
    /// again after a pending one (here with a flush between). Everything before the own answer arrives unchanged, then
    /// the whole replacement, and the own answer is reported written only once it is.
    #[test]
    fn partial_and_pending_writes_deliver_every_byte_once() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json\r\ndate: x\r\n\r\n{\"status\":\"ok\"}";
        let own = format!("HTTP/1.0 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n{DATE}\r\n\r\n");
        let buffer = format!("{ok}{own}");
        let (_, replacement) = rewrite(own.as_bytes(), None).unwrap_or_default();
        let mut stream = JsonErrors::new(Trickle::default(), Scope::Anywhere, None);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut written = 0;
        let mut reported = Vec::new();
        while written < buffer.len() {
            let rest = buffer.as_bytes().get(written..).unwrap_or_default();
            match Pin::new(&mut stream).poll_write(&mut cx, rest) {
                Poll::Ready(result) => {
                    let n = result.unwrap_or_default();
                    assert!(n > 0, "wrote nothing");
                    reported.push((written, n));
                    written += n;
                }
                // A flush between the retries may finish the replacement; the retry must
                // then report the own answer written, not write its replacement again.
                Poll::Pending => {
                    let _ = Pin::new(&mut stream).poll_flush(&mut cx);
                }
            }
        }
        // The own answer was taken in one call, after all of its replacement went out.
        assert_eq!(reported.last(), Some(&(ok.len(), own.len())));
        let mut expected = ok.as_bytes().to_vec();
        expected.extend_from_slice(&replacement);
        assert_eq!(
            String::from_utf8_lossy(&stream.inner.out),
            String::from_utf8_lossy(&expected)
        );
        assert!(
            String::from_utf8_lossy(&replacement).starts_with("HTTP/1.0 408 Request Timeout\r\n")
        );
    }

    /// Writes `buf` whole (through pending and partial writes) and returns what reached
    /// the inner stream.
    fn write_all(stream: &mut JsonErrors<Trickle>, buf: &[u8]) -> Vec<u8> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let before = stream.inner.out.len();
        let mut written = 0;
        while written < buf.len() {
            let rest = buf.get(written..).unwrap_or_default();
            if let Poll::Ready(result) = Pin::new(&mut *stream).poll_write(&mut cx, rest) {
                written += result.unwrap_or_default();
            }
        }
        stream.inner.out.get(before..).unwrap_or_default().to_vec()
    }

    /// The operator API's scope: a forged head at the end of a first write's body, and an
    /// own answer after another one, pass unchanged; an own answer as the first write is
    /// rewritten.
    #[test]
    fn first_write_scope_rewrites_only_a_first_write_that_is_wholly_an_own_answer() {
        let own = format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{DATE}\r\n\r\n");
        let download = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{own}",
            own.len()
        );
        let mut forged = JsonErrors::new(Trickle::default(), Scope::FirstWrite, None);
        assert_eq!(
            write_all(&mut forged, download.as_bytes()),
            download.as_bytes()
        );
        assert_eq!(write_all(&mut forged, own.as_bytes()), own.as_bytes());
        let mut fresh = JsonErrors::new(Trickle::default(), Scope::FirstWrite, None);
        let out = write_all(&mut fresh, own.as_bytes());
        assert_eq!(body_of(&out)["error"]["type"], "malformed_request");
        // The same forged body on the receiver's scope would be rewritten: which is why that
        // scope serves only answers whose bodies never hold CR or LF.
        let mut anywhere = JsonErrors::new(Trickle::default(), Scope::Anywhere, None);
        assert_ne!(
            write_all(&mut anywhere, download.as_bytes()),
            download.as_bytes()
        );
    }

    #[test]
    fn any_other_answer_passes_unchanged() {
        for other in [
            // perfhook's own refusals carry a body.
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\ncontent-type: application/json\r\n\r\n{\"error\":{}}".to_owned(),
            // Another status, an extra header, a header out of order, no date.
            format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{DATE}\r\n\r\n"),
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-extra: 1\r\n{DATE}\r\n\r\n"),
            format!("HTTP/1.1 400 Bad Request\r\n{DATE}\r\ncontent-length: 0\r\n\r\n"),
            "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n".to_owned(),
            "HTTP/1.1 100 Continue\r\n\r\n".to_owned(),
            String::new(),
        ] {
            assert!(rewrite(other.as_bytes(), None).is_none(), "{other}");
        }
    }
}
