//! `raw_request`: the captured-HTTP-request reader behind `verify-signature --request`.
//! Invariants: no panic; an accepted capture's body is a slice of the input, cut exactly to
//! `Content-Length` when one is given; the request written back out (CRLF, `Name: value`,
//! the same body) reads back to the same request line, headers and body.

use crate::capture::parse_captured_request;
use crate::signature::{HeaderLookup, Lookup};

/// Runs the body on one input.
pub fn run(data: &[u8]) -> bool {
    let Ok(request) = parse_captured_request(data) else {
        return false;
    };
    assert!(
        super::is_within(data, request.body),
        "the body is not a slice of the input"
    );
    if let Lookup::One(length) = request.headers.lookup("content-length") {
        let declared = std::str::from_utf8(length)
            .ok()
            .and_then(|l| l.parse().ok());
        assert_eq!(declared, Some(request.body.len()));
    }
    let mut written = Vec::new();
    written.extend_from_slice(request.request_line.as_bytes());
    written.extend_from_slice(b"\r\n");
    for (name, value) in request.headers.iter() {
        written.extend_from_slice(name.as_bytes());
        written.extend_from_slice(b": ");
        written.extend_from_slice(value);
        written.extend_from_slice(b"\r\n");
    }
    written.extend_from_slice(b"\r\n");
    written.extend_from_slice(request.body);
    let again = parse_captured_request(&written);
    let Ok(again) = again else {
        panic!("a written-back capture does not read: {again:?}");
    };
    assert_eq!(again.request_line, request.request_line);
    assert_eq!(again.headers, request.headers);
    assert_eq!(again.body, request.body);
    true
}
