//! The memory budget for request bodies: bytes every request together may hold, and the
//! share one source address may hold, reserved before a body is read. Without it, thousands
//! of unauthenticated connections that send most of a large body and stall hold that memory
//! for the whole read deadline; with it they are refused `503 overloaded` at once, and one
//! source cannot crowd out another (the sender's real deliveries still fit).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// How much of the budget one source may hold: an eighth, so a single flooding address
/// leaves the rest to everyone else.
const SOURCE_SHARE_DIVISOR: usize = 8;

/// Body bytes in flight, in total and per source address.
#[derive(Debug)]
pub struct BodyBudget {
    total: usize,
    per_source: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Bytes reserved for one request's body; returned to the budget when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BodyBudget>,
    source: IpAddr,
    bytes: usize,
}

impl BodyBudget {
    /// A budget of `total` bytes; one source may hold an eighth of it, and never less than
    /// `largest_body` (so a source may always send one body of the largest size).
    #[must_use]
    pub fn new(total: usize, largest_body: usize) -> Self {
        Self {
            total,
            per_source: (total / SOURCE_SHARE_DIVISOR).max(largest_body).min(total),
            held: Mutex::new(Held::default()),
        }
    }

    /// Reserves `bytes` for a body from `source`, or `None` when that would pass the total or
    /// the source's share. Never waits. An IPv6 source is its /64: one host usually holds a
    /// whole /64, so its addresses are one source.
    #[must_use]
    pub fn try_reserve(self: &Arc<Self>, source: IpAddr, bytes: usize) -> Option<Reservation> {
        let source = source_key(source);
        let mut held = self.held.lock().ok()?;
        let by_source = held.by_source.get(&source).copied().unwrap_or(0);
        let fits = held
            .total
            .checked_add(bytes)
            .is_some_and(|t| t <= self.total)
            && by_source
                .checked_add(bytes)
                .is_some_and(|s| s <= self.per_source);
        if !fits {
            return None;
        }
        held.total += bytes;
        held.by_source.insert(source, by_source + bytes);
        Some(Reservation {
            budget: Arc::clone(self),
            source,
            bytes,
        })
    }

    /// Bytes reserved now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.held.lock().map_or(0, |held| held.total)
    }
}

/// The budget's key for a source: an IPv4 address, or an IPv6 address's /64 prefix.
fn source_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
        IpAddr::V4(_) => source,
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // A poisoned lock means a panic elsewhere while holding it; the budget then stays
        // reserved rather than be corrupted, and requests see `overloaded`.
        let Ok(mut held) = self.budget.held.lock() else {
            return;
        };
        held.total = held.total.saturating_sub(self.bytes);
        if let Some(by_source) = held.by_source.get_mut(&self.source) {
            *by_source = by_source.saturating_sub(self.bytes);
            if *by_source == 0 {
                held.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn one_source_gets_its_share_others_the_rest_and_dropping_returns_it() {
        let budget = Arc::new(BodyBudget::new(800, 10));
        let a: Vec<_> = (0..10).map_while(|_| budget.try_reserve(A, 10)).collect();
        assert_eq!(a.len(), 10, "A's share is 100 of 800");
        assert!(budget.try_reserve(A, 1).is_none());
        let b = budget.try_reserve(B, 100).expect("B is not crowded out");
        assert_eq!(budget.in_flight(), 200);
        drop(a);
        drop(b);
        assert_eq!(budget.in_flight(), 0);
        assert!(budget.try_reserve(A, 100).is_some());
    }

    #[test]
    fn the_addresses_of_one_ipv6_64_are_one_source() {
        let budget = Arc::new(BodyBudget::new(800, 10));
        let host = |n: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, n));
        let held: Vec<_> = (0..100)
            .filter_map(|n| budget.try_reserve(host(n), 10))
            .collect();
        assert_eq!(held.len(), 10, "one /64 holds one share");
        let other = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(
            budget.try_reserve(other, 100).is_some(),
            "the next /64 is another source"
        );
    }

    #[test]
    fn the_total_holds_across_sources_and_one_largest_body_always_fits_a_source() {
        let budget = Arc::new(BodyBudget::new(100, 60));
        let first = budget
            .try_reserve(A, 60)
            .expect("a source may send one largest body");
        assert!(budget.try_reserve(B, 60).is_none(), "the total is 100");
        let second = budget.try_reserve(B, 40).expect("what is left");
        assert!(budget
            .try_reserve(IpAddr::from([192, 0, 2, 3]), 1)
            .is_none());
        drop((first, second));
        assert!(budget.try_reserve(A, usize::MAX).is_none(), "no overflow");
    }
}
