//! `forwarded`: who sent a request, from the peer, the trusted proxies and the forwarding
//! headers. Input: line 1 the peer address, line 2 the trusted networks (comma-separated),
//! then header lines, `F:` for `Forwarded` and `X:` for `X-Forwarded-For` (unparsable first
//! lines fall back to a peer of 10.0.0.1 behind 10.0.0.0/8). Invariants: no panic; an
//! untrusted peer is the client whatever the headers say; a client other than the peer is
//! never a trusted proxy; one more trusted hop on the right changes nothing.

use std::net::IpAddr;

use crate::client_ip::{client_address, Networks};

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
            forwarded.push(value);
        } else if let Some(value) = line.strip_prefix(b"X:") {
            x_forwarded_for.push(value);
        }
    }
    let client =
        |x: &[&[u8]]| client_address(peer, &trusted, forwarded.iter().copied(), x.iter().copied());
    let found = client(&x_forwarded_for);
    assert_eq!(found, client(&x_forwarded_for), "not deterministic");
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
    if forwarded.is_empty() {
        // The peer itself is trusted: one more hop naming it on the right is vouched for.
        let hop = peer.to_string();
        let mut longer = x_forwarded_for.clone();
        longer.push(hop.as_bytes());
        assert_eq!(
            client(&longer),
            found,
            "a trusted hop on the right changed the client"
        );
    }
    !(forwarded.is_empty() && x_forwarded_for.is_empty())
}
