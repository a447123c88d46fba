//! Who sent a request: the peer address, or, when the peer is a trusted proxy, the right-most
//! address that is not a trusted proxy in the one forwarding header the operator names
//! (`X-Forwarded-For`, or `Forwarded` from RFC 7239). The header is read only from trusted
//! proxies, because anyone else can write it; only the configured one, because most proxies
//! append to one header and pass the other through as the client wrote it; and from the
//! right, because each proxy appends what it saw, so only the right end is vouched for.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

/// The forwarding header a trusted proxy sets (`server.client_ip_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardingHeader {
    /// `X-Forwarded-For: client, proxy1, …`.
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1, …` (RFC 7239).
    Forwarded,
}

impl ForwardingHeader {
    /// The header's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// A list of networks (`203.0.113.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses each entry; a bare address is a network of one.
    ///
    /// # Errors
    /// The entry that is neither a network nor an address.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| canonical_net(net.trunc()))
                    .map_err(|_| {
                        format!(
                            "{entry:?} is not an address or a network such as \"203.0.113.0/24\""
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `address` is in one of the networks. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`, what a dual-stack listener reports) counts as its IPv4 address.
    #[must_use]
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// Whether the list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as its IPv4 network, so it matches
/// the (canonical) IPv4 addresses it covers.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .network()
            .to_ipv4_mapped()
            .and_then(|v4| Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        _ => net,
    }
}

/// An IPv4-mapped IPv6 address as IPv4; any other address as it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// The client of a request from `peer`, given the lines of the configured forwarding
/// `header`, in order. `None` when the chain names an address perfhook cannot read
/// (`unknown`, an obfuscated name, garbage, an unclosed quote) before any untrusted one: the
/// client is then unknown, and no allowlist admits it.
#[must_use]
pub fn client_address<'a>(
    peer: IpAddr,
    trusted_proxies: &Networks,
    header: ForwardingHeader,
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> Option<IpAddr> {
    let peer = canonical(peer);
    if !trusted_proxies.contains(peer) {
        return Some(peer);
    }
    let mut chain: Vec<Option<IpAddr>> = Vec::new();
    for line in lines {
        // A quote left open would join the next proxy's entry to the client's own text
        // (`for=203.0.113.9;x="` then `, for=<real>`): the whole chain is unreadable then.
        let items = split_unquoted(line, b',')?;
        match header {
            ForwardingHeader::Forwarded => {
                for element in items {
                    chain.push(forwarded_for(element)?);
                }
            }
            ForwardingHeader::XForwardedFor => {
                chain.extend(items.into_iter().map(|item| parse_node(trim(item))));
            }
        }
    }
    for hop in chain.into_iter().rev() {
        match hop {
            Some(address) if trusted_proxies.contains(address) => {}
            Some(address) => return Some(canonical(address)),
            None => return None,
        }
    }
    // Every hop is a trusted proxy (or there were none): the request began at one of them.
    Some(peer)
}

/// The `for=` node of one `Forwarded` element: `Some(None)` when it has none or an unreadable
/// one; `None` when the element itself is malformed (an unclosed quote).
fn forwarded_for(element: &[u8]) -> Option<Option<IpAddr>> {
    Some(split_unquoted(element, b';')?.into_iter().find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|b| *b == b'=')?;
        let (name, value) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        name.eq_ignore_ascii_case(b"for")
            .then(|| parse_node(unquote(value)))
            .flatten()
    }))
}

/// Splits on `separator` outside double-quoted strings (which may hold it, with `\` escapes);
/// `None` when a quote or an escape is left open.
fn split_unquoted(text: &[u8], separator: u8) -> Option<Vec<&[u8]>> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, &byte) in text.iter().enumerate() {
        match (quoted, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, _, b'"') => quoted = !quoted,
            (false, _, b) if b == separator => {
                parts.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted || escaped {
        return None;
    }
    parts.push(text.get(start..).unwrap_or_default());
    Some(parts)
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// A quoted string's content (escapes are not expected in an address, and keep it invalid).
fn unquote(value: &[u8]) -> &[u8] {
    let value = trim(value);
    value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value)
}

/// A node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(node: &[u8]) -> Option<IpAddr> {
    let node = std::str::from_utf8(node).ok()?;
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok.then(|| address.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))?;
    }
    let (address, port) = node.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Networks {
        Networks::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("nets")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    /// The client through `Forwarded` lines when there are any, else `X-Forwarded-For` lines.
    fn client(peer: &str, trusted: &[&str], forwarded: &[&str], xff: &[&str]) -> Option<IpAddr> {
        let (header, lines) = if forwarded.is_empty() {
            (ForwardingHeader::XForwardedFor, xff)
        } else {
            (ForwardingHeader::Forwarded, forwarded)
        };
        client_address(
            ip(peer),
            &nets(trusted),
            header,
            lines.iter().map(|l| l.as_bytes()),
        )
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        assert_eq!(
            client(
                "198.51.100.7",
                &["10.0.0.0/8"],
                &["for=203.0.113.9"],
                &["203.0.113.9"]
            ),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = ["10.0.0.0/8", "2001:db8:ffff::/48"];
        // A client that forged a left-most entry gets its real address read.
        assert_eq!(
            client(
                "10.0.0.2",
                &trusted,
                &[],
                &["203.0.113.9, 198.51.100.1, 10.0.0.1"]
            ),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(
            client("10.0.0.2", &trusted, &[], &["203.0.113.9", "10.0.0.1"]),
            Some(ip("203.0.113.9")),
            "several header lines are one list"
        );
        assert_eq!(
            client("10.0.0.2", &trusted, &[], &["10.0.0.5"]),
            Some(ip("10.0.0.2")),
            "all trusted: the request began at a proxy"
        );
        assert_eq!(client("10.0.0.2", &trusted, &[], &[]), Some(ip("10.0.0.2")));
    }

    #[test]
    fn forwarded_grammar_is_read() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            client(
                "10.0.0.2",
                &trusted,
                &[r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#],
                &["198.51.100.1"]
            ),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            client(
                "10.0.0.2",
                &trusted,
                &[r#"for="192.0.2.1:80", for=10.0.0.9"#],
                &[]
            ),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            client("10.0.0.2", &trusted, &[r#"proto="a,b";for=192.0.2.8"#], &[]),
            Some(ip("192.0.2.8")),
            "a comma inside a quoted string does not split"
        );
    }

    /// A review finding: the client wrote `for=203.0.113.9;x="` and the proxy appended
    /// `, for=<real address>` to the same line; an open quote used to swallow the real one.
    #[test]
    fn an_unclosed_quote_cannot_hide_the_hop_a_proxy_appended() {
        let line = r#"for=203.0.113.9;x=", for=198.51.100.1"#;
        assert_eq!(client("10.0.0.2", &["10.0.0.0/8"], &[line], &[]), None);
        let line = r#"for=203.0.113.9;x="a\", for=198.51.100.1"#;
        assert_eq!(client("10.0.0.2", &["10.0.0.0/8"], &[line], &[]), None);
        assert_eq!(
            client(
                "10.0.0.2",
                &["10.0.0.0/8"],
                &[],
                &["203.0.113.9\"", "198.51.100.1"]
            ),
            None
        );
    }

    #[test]
    fn an_unreadable_hop_makes_the_client_unknown() {
        for (forwarded, xff) in [
            (&["for=unknown"][..], &[][..]),
            (&["for=_hidden"], &[]),
            (&["proto=https"], &[]),
            (&[], &["not-an-ip"]),
            (&[], &["203.0.113.9:99999999"]),
        ] {
            assert_eq!(
                client("10.0.0.2", &["10.0.0.0/8"], forwarded, xff),
                None,
                "{forwarded:?} {xff:?}"
            );
        }
    }

    #[test]
    fn networks_parse_addresses_and_mapped_ipv6_counts_as_ipv4() {
        let list = nets(&[
            "203.0.113.0/24",
            "2001:db8::/32",
            "192.0.2.7",
            "198.51.100.77/24",
        ]);
        assert!(list.contains(ip("203.0.113.200")));
        assert!(list.contains(ip("::ffff:203.0.113.1")));
        assert!(list.contains(ip("2001:db8::1")));
        assert!(list.contains(ip("192.0.2.7")) && !list.contains(ip("192.0.2.8")));
        assert!(list.contains(ip("198.51.100.1")), "host bits are dropped");
        assert!(!list.contains(ip("127.0.0.1")));
        assert!(
            nets(&["::ffff:10.0.0.0/104"]).contains(ip("10.1.2.3")),
            "a mapped network"
        );
        assert!(Networks::parse(&["10.0.0.0/33".to_owned()]).is_err());
        assert!(Networks::parse(&["example.com".to_owned()]).is_err());
    }
}
