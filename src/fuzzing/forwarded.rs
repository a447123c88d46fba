//! `forwarded`: who sent a request, from the peer, the trusted proxies and the forwarding
//! header. Input: line 1 the peer address, line 2 the trusted networks (comma-separated),
//! then header lines, `F:` for `Forwarded` and `X:` for `X-Forwarded-For` (the configured
//! header is `Forwarded` when there are `F:` lines; unparsable first lines fall back to a
//! peer of 10.0.0.1 behind 10.0.0.0/8). Invariants: no panic; an untrusted peer is the
//! client whatever the headers say; a client other than the peer is never a trusted proxy;
//! one more trusted hop on the right changes nothing; an untrusted hop a proxy appends to
//! the last line is the answer, or the client is unknown, never someone else.

use std::net::IpAddr;

use crate::client_ip::{client_address, ForwardingHeader, Networks};

/// Runs the body on one input.
pub fn run(data: &[u8]) -> bool {
    let mut lines = data.split(|b| *b == b'\n');
    let peer = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.trim().parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::from([10, 0, 0, 1]));
    let trusted = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| {
            let entries: Vec<String> = l.split(',').map(|e| e.trim().to_owned()).collect();
            Networks::parse(&entries).ok()
        })
        .unwrap_or_else(|| {
            Networks::parse(&["10.0.0.0/8".to_owned()]).expect("a fixed network parses")
        });
    let (mut forwarded, mut x_forwarded_for) = (Vec::new(), Vec::new());
    for line in lines {
        if let Some(value) = line.strip_prefix(b"F:") {
            forwarded.push(value.to_vec());
        } else if let Some(value) = line.strip_prefix(b"X:") {
            x_forwarded_for.push(value.to_vec());
        }
    }
    // The configured header: `Forwarded` when the input has such lines.
    let (header, header_lines) = if forwarded.is_empty() {
        (ForwardingHeader::XForwardedFor, x_forwarded_for)
    } else {
        (ForwardingHeader::Forwarded, forwarded)
    };
    let client =
        |lines: &[Vec<u8>]| client_address(peer, &trusted, header, lines.iter().map(Vec::as_slice));
    let found = client(&header_lines);
    assert_eq!(found, client(&header_lines), "not deterministic");
    let canonical_peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        IpAddr::V4(_) => peer,
    };
    if !trusted.contains(peer) {
        assert_eq!(
            found,
            Some(canonical_peer),
            "headers read from an untrusted peer"
        );
        return false;
    }
    if let Some(address) = found.filter(|a| *a != canonical_peer) {
        assert!(
            !trusted.contains(address),
            "a trusted proxy named as the client"
        );
    }
    // The peer is trusted: one more hop naming a trusted proxy on the right changes nothing.
    let mut longer = header_lines.clone();
    longer.push(match header {
        ForwardingHeader::Forwarded => format!("for=\"{peer}\"").into_bytes(),
        ForwardingHeader::XForwardedFor => peer.to_string().into_bytes(),
    });
    if matches!(peer, IpAddr::V4(_)) || header == ForwardingHeader::XForwardedFor {
        assert_eq!(
            client(&longer),
            found,
            "a trusted hop on the right changed the client"
        );
    }
    // What a proxy appends to the client's own last line is never lost: the answer is that
    // untrusted hop, or unknown (a review finding: an unclosed quote used to swallow it).
    let appended = IpAddr::from([192, 0, 2, 123]);
    if !trusted.contains(appended) {
        let mut lines = header_lines.clone();
        let tail = match header {
            ForwardingHeader::Forwarded => format!(", for={appended}"),
            ForwardingHeader::XForwardedFor => format!(", {appended}"),
        };
        match lines.last_mut() {
            Some(last) => last.extend_from_slice(tail.as_bytes()),
            None => lines.push(tail.trim_start_matches(", ").as_bytes().to_vec()),
        }
        let answer = client(&lines);
        assert!(
            answer.is_none() || answer == Some(appended),
            "a hop the proxy appended was hidden: {answer:?}"
        );
    }
    !header_lines.is_empty()
}
