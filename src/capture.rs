//! Reads a captured raw HTTP/1.x request (request line, headers, blank line, body), as saved
//! from `nc -l`, a proxy's debug log or a packet capture, for `verify-signature --request`.
//!
//! Lines may end in CRLF or a bare LF (files pass through editors). The body is every byte
//! after the blank line, cut to `Content-Length` when that header is present, so a newline an
//! editor appended does not break the signature.

use thiserror::Error;

use crate::signature::{is_header_name, HeaderList, HeaderLookup, Lookup};

/// More header lines than any real request carries; bounds the work on a hostile file.
const MAX_HEADERS: usize = 256;

/// A captured request: its headers and the body bytes, borrowed from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRequest<'a> {
    /// The request line (`POST /webhooks/perf HTTP/1.1`).
    pub request_line: &'a str,
    /// The headers in order.
    pub headers: HeaderList,
    /// The body exactly as sent.
    pub body: &'a [u8],
}

/// Why a file is not a readable HTTP/1.x request. Messages name the line, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CaptureError {
    /// There is no blank line ending the headers.
    #[error("no blank line after the headers")]
    NoHeaderEnd,
    /// The first line is not `METHOD TARGET HTTP/1.x`.
    #[error("line 1 is not an HTTP/1.x request line")]
    BadRequestLine,
    /// A header line is not `Name: value` with a token name.
    #[error("line {0} is not a `Name: value` header")]
    BadHeaderLine(usize),
    /// Too many header lines.
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    /// A `Transfer-Encoding` body cannot be verified from a capture.
    #[error("the body uses Transfer-Encoding; save the decoded body and pass it with --body")]
    TransferEncoding,
    /// `Content-Length` is not a number, or appears twice.
    #[error("Content-Length is not a single decimal number")]
    BadContentLength,
    /// The capture holds fewer body bytes than `Content-Length` says.
    #[error(
        "the body is {got} bytes but Content-Length says {declared}: the capture is cut short"
    )]
    TruncatedBody {
        /// What `Content-Length` declared.
        declared: usize,
        /// What the capture holds.
        got: usize,
    },
}

/// Parses a captured request.
///
/// # Errors
/// The [`CaptureError`] for the first problem found.
pub fn parse_captured_request(bytes: &[u8]) -> Result<CapturedRequest<'_>, CaptureError> {
    let (head, body) = split_head(bytes).ok_or(CaptureError::NoHeaderEnd)?;
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = lines
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .filter(|line| is_request_line(line))
        .ok_or(CaptureError::BadRequestLine)?;
    let mut headers = HeaderList::new();
    for (index, line) in lines.enumerate() {
        if index >= MAX_HEADERS {
            return Err(CaptureError::TooManyHeaders);
        }
        let line_number = index.saturating_add(2);
        let (name, value) = split_header(line).ok_or(CaptureError::BadHeaderLine(line_number))?;
        headers.push(name, value);
    }
    if headers.lookup("transfer-encoding") != Lookup::Missing {
        return Err(CaptureError::TransferEncoding);
    }
    let body = match headers.lookup("content-length") {
        Lookup::Missing => body,
        Lookup::Repeated => return Err(CaptureError::BadContentLength),
        Lookup::One(value) => {
            let declared = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(CaptureError::BadContentLength)?;
            body.get(..declared).ok_or(CaptureError::TruncatedBody {
                declared,
                got: body.len(),
            })?
        }
    };
    Ok(CapturedRequest {
        request_line,
        headers,
        body,
    })
}

/// Splits at the first empty line (CRLF CRLF, or LF LF): the head before, the body after.
fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut start = 0;
    loop {
        let end = start + bytes.get(start..)?.iter().position(|&b| b == b'\n')?;
        let line = bytes.get(start..end)?;
        if line.is_empty() || line == b"\r" {
            let head = bytes.get(..start.saturating_sub(1))?;
            let head = head.strip_suffix(b"\r").unwrap_or(head);
            return Some((head, bytes.get(end + 1..)?));
        }
        start = end + 1;
    }
}

fn is_request_line(line: &str) -> bool {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && !target.is_empty()
        && (version == "HTTP/1.1" || version == "HTTP/1.0")
}

/// Splits `Name: value`, trimming the optional whitespace around the value as HTTP does.
/// A line starting with whitespace (obsolete folding) is refused.
pub(crate) fn split_header(line: &[u8]) -> Option<(String, &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, rest) = line.split_at(colon);
    if !is_header_name(name) {
        return None;
    }
    let value = rest.get(1..)?.trim_ascii();
    Some((String::from_utf8(name.to_vec()).ok()?, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_capture_with_content_length_drops_trailing_bytes() {
        let raw = b"POST /webhooks/perf HTTP/1.1\r\nHost: x\r\nX-Perf-Signature:  t=1,v1=ab \r\nContent-Length: 5\r\n\r\nhello\n";
        let req = parse_captured_request(raw).expect("valid");
        assert_eq!(req.request_line, "POST /webhooks/perf HTTP/1.1");
        assert_eq!(req.body, b"hello");
        assert_eq!(
            req.headers.lookup("x-perf-signature"),
            Lookup::One(b"t=1,v1=ab")
        );
    }

    #[test]
    fn bare_lf_capture_without_length_keeps_the_whole_body() {
        let raw = b"POST / HTTP/1.1\nA: b\n\n{\"x\":1}\r\n";
        let req = parse_captured_request(raw).expect("valid");
        assert_eq!(req.body, b"{\"x\":1}\r\n");
        assert_eq!(req.headers.len(), 1);
    }

    #[test]
    fn empty_body_and_no_headers_parse() {
        let req = parse_captured_request(b"GET / HTTP/1.0\r\n\r\n").expect("valid");
        assert!(req.headers.is_empty());
        assert!(req.body.is_empty());
    }

    #[test]
    fn broken_captures_get_named_errors() {
        assert_eq!(
            parse_captured_request(b"POST / HTTP/1.1\r\nA: b\r\n"),
            Err(CaptureError::NoHeaderEnd)
        );
        assert_eq!(
            parse_captured_request(b"hello\r\n\r\n"),
            Err(CaptureError::BadRequestLine)
        );
        assert_eq!(
            parse_captured_request(b"POST / HTTP/2\r\n\r\n"),
            Err(CaptureError::BadRequestLine)
        );
        assert_eq!(
            parse_captured_request(b"POST / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n"),
            Err(CaptureError::BadHeaderLine(3))
        );
        assert_eq!(
            parse_captured_request(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
            Err(CaptureError::TruncatedBody {
                declared: 10,
                got: 3
            })
        );
        assert_eq!(
            parse_captured_request(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(CaptureError::BadContentLength)
        );
        assert_eq!(
            parse_captured_request(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            ),
            Err(CaptureError::TransferEncoding)
        );
    }
}
