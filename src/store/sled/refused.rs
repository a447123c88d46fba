//! Refused deliveries in the sled tree: `r` endpoint NUL received_ms sequence → meta length
//! (u32 BE), meta JSON, the request bytes. Written straight to the tree (no group flush of
//! their own: an acknowledgement never depends on them), bounded per endpoint by count and
//! bytes, oldest dropped first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::layout::{key, REFUSED};
use super::read;
use crate::store::{parse_refused_id, refused_id, RefusedBounds, RefusedDelivery, StoreError};

/// Per-endpoint counts and the sequence numbers of new entries.
#[derive(Debug)]
pub(super) struct Refused {
    /// Endpoint → (entries, request bytes), filled from the tree on first use.
    totals: Mutex<HashMap<String, (usize, u64)>>,
    /// Seeded from the clock's nanoseconds, so ids stay unique across restarts.
    sequence: AtomicU64,
}

impl Default for Refused {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_nanos() % u128::from(u64::MAX / 2)).unwrap_or(0)
            });
        Self {
            totals: Mutex::new(HashMap::new()),
            sequence: AtomicU64::new(seed),
        }
    }
}

fn prefix(endpoint: &str) -> Vec<u8> {
    key(REFUSED, &[endpoint.as_bytes(), &[0]])
}

fn entry_key(endpoint: &str, received_at_ms: u64, sequence: u64) -> Vec<u8> {
    key(
        REFUSED,
        &[
            endpoint.as_bytes(),
            &[0],
            &received_at_ms.to_be_bytes(),
            &sequence.to_be_bytes(),
        ],
    )
}

fn encode(refused: &RefusedDelivery) -> Result<Vec<u8>, StoreError> {
    let meta = serde_json::to_vec(refused)
        .map_err(|e| StoreError::unavailable(format!("cannot encode a refused delivery: {e}")))?;
    let len = u32::try_from(meta.len())
        .map_err(|_| StoreError::unavailable("a refused delivery's details are too large"))?;
    let mut value = Vec::with_capacity(4 + meta.len() + refused.request.len());
    value.extend_from_slice(&len.to_be_bytes());
    value.extend_from_slice(&meta);
    value.extend_from_slice(&refused.request);
    Ok(value)
}

/// Decodes one stored refused delivery.
pub(super) fn decode(value: &[u8]) -> Result<RefusedDelivery, StoreError> {
    let corrupt = || StoreError::corrupt("a refused delivery is truncated");
    let len = value
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(corrupt)?;
    let end = usize::try_from(len)
        .map_err(StoreError::corrupt)?
        .saturating_add(4);
    let mut refused: RefusedDelivery =
        serde_json::from_slice(value.get(4..end).ok_or_else(corrupt)?)
            .map_err(|e| StoreError::corrupt_json(&e))?;
    refused.request = value.get(end..).ok_or_else(corrupt)?.to_vec();
    Ok(refused)
}

impl Refused {
    /// Stores `refused` under a new id, then trims its endpoint to `bounds`.
    pub(super) fn keep(
        &self,
        tree: &sled::Tree,
        mut refused: RefusedDelivery,
        bounds: RefusedBounds,
    ) -> Result<String, StoreError> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        refused.id = refused_id(&refused.endpoint, refused.received_at_ms, sequence);
        let bytes = refused.request.len() as u64;
        let endpoint = refused.endpoint.clone();
        // Counting, inserting and trimming under one lock, so the totals match the tree.
        let mut totals = self
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !totals.contains_key(&endpoint) {
            // First use since the store opened: count what is there.
            let mut counted = (0, 0);
            for entry in tree.scan_prefix(prefix(&endpoint)) {
                let (_, value) = read(entry)?;
                counted.0 += 1;
                counted.1 += decode(&value).map_or(0, |r| r.request.len() as u64);
            }
            totals.insert(endpoint.clone(), counted);
        }
        let previous = read(tree.insert(
            entry_key(&endpoint, refused.received_at_ms, sequence),
            encode(&refused)?,
        ))?;
        let Some(total) = totals.get_mut(&endpoint) else {
            return Ok(refused.id);
        };
        if previous.is_none() {
            total.0 += 1;
            total.1 += bytes;
        }
        while total.0 > bounds.max_count || (total.1 > bounds.max_bytes && total.0 > 1) {
            let Some(oldest) = tree.scan_prefix(prefix(&endpoint)).next() else {
                break;
            };
            let (oldest_key, _) = read(oldest)?;
            if let Some(value) = read(tree.remove(&oldest_key))? {
                total.0 = total.0.saturating_sub(1);
                total.1 = total
                    .1
                    .saturating_sub(decode(&value).map_or(0, |r| r.request.len() as u64));
            }
        }
        Ok(refused.id)
    }

    /// Newest first, of one endpoint or all.
    pub(super) fn list(
        tree: &sled::Tree,
        endpoint: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RefusedDelivery>, StoreError> {
        let mut found = Vec::new();
        match endpoint {
            Some(endpoint) => {
                for entry in tree.scan_prefix(prefix(endpoint)).rev().take(limit) {
                    found.push(decode(&read(entry)?.1)?);
                }
            }
            None => {
                for entry in tree.scan_prefix([REFUSED]) {
                    found.push(decode(&read(entry)?.1)?);
                }
                found.sort_by(|a, b| (b.received_at_ms, &b.id).cmp(&(a.received_at_ms, &a.id)));
                found.truncate(limit);
            }
        }
        Ok(found)
    }

    /// One, by id.
    pub(super) fn get(tree: &sled::Tree, id: &str) -> Result<Option<RefusedDelivery>, StoreError> {
        let Some((endpoint, ms, sequence)) = parse_refused_id(id) else {
            return Ok(None);
        };
        read(tree.get(entry_key(endpoint, ms, sequence)))?
            .map(|value| decode(&value))
            .transpose()
    }

    /// Removes one, by id.
    pub(super) fn remove(&self, tree: &sled::Tree, id: &str) -> Result<bool, StoreError> {
        let Some((endpoint, ms, sequence)) = parse_refused_id(id) else {
            return Ok(false);
        };
        let mut totals = self
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let removed = read(tree.remove(entry_key(endpoint, ms, sequence)))?;
        if let Some(value) = &removed {
            if let Some(total) = totals.get_mut(endpoint) {
                total.0 = total.0.saturating_sub(1);
                total.1 = total
                    .1
                    .saturating_sub(decode(value).map_or(0, |r| r.request.len() as u64));
            }
        }
        Ok(removed.is_some())
    }

    /// Removes every one that arrived before `before_ms`.
    pub(super) fn purge(&self, tree: &sled::Tree, before_ms: u64) -> Result<usize, StoreError> {
        let mut totals = self
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut old = Vec::new();
        for entry in tree.scan_prefix([REFUSED]) {
            let (entry_key, value) = read(entry)?;
            if decode(&value).map_or(true, |r| r.received_at_ms < before_ms) {
                old.push(entry_key);
            }
        }
        for entry_key in &old {
            read(tree.remove(entry_key))?;
        }
        if !old.is_empty() {
            // Recounted from the tree on next use.
            totals.clear();
        }
        Ok(old.len())
    }
}
