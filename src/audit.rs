//! The audit log: one entry per operator action (keys made, rotated, revoked, used from a
//! new address; failed authentications, at most one per source a minute; refused deliveries
//! exported and re-verified). Each entry carries the SHA-256 of the one before it, so an
//! edited, removed or reordered entry is found by [`verify`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first entry follows.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What kind of action an entry records (for filtering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Something made.
    Create,
    /// Something read or exported.
    Read,
    /// Something changed.
    Update,
    /// Something removed or revoked.
    Delete,
    /// An authentication.
    Auth,
}

/// An action to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Unix seconds.
    pub at: u64,
    /// The acting key's id; `None` for the command line on the data directory.
    pub key: Option<String>,
    /// The source address, or `cli`.
    pub source: String,
    /// What happened (`key.create`, `refused.reverify`, `auth.failed`, ...).
    pub action: String,
    /// Its kind.
    pub kind: ActionKind,
    /// What it was done to (a key id, a refused delivery, ...).
    pub target: Option<String>,
    /// `ok`, or what refused it.
    pub outcome: String,
}

/// A recorded action, chained to the one before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its position, from 1, without gaps.
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// The acting key's id.
    pub key: Option<String>,
    /// The source address, or `cli`.
    pub source: String,
    /// What happened.
    pub action: String,
    /// Its kind.
    pub kind: ActionKind,
    /// What it was done to.
    pub target: Option<String>,
    /// `ok`, or what refused it.
    pub outcome: String,
    /// The previous entry's hash ([`GENESIS`] for the first).
    pub prev: String,
    /// SHA-256 of `prev` and this entry's fields.
    pub hash: String,
}

impl AuditEntry {
    /// The entry that follows `prev_seq`/`prev_hash`.
    #[must_use]
    pub fn chain(new: NewAuditEntry, prev_seq: u64, prev_hash: &str) -> Self {
        let mut entry = Self {
            seq: prev_seq.saturating_add(1),
            at: new.at,
            key: new.key,
            source: new.source,
            action: new.action,
            kind: new.kind,
            target: new.target,
            outcome: new.outcome,
            prev: prev_hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = entry.computed_hash();
        entry
    }

    /// The hash its fields give (not the stored one).
    #[must_use]
    pub fn computed_hash(&self) -> String {
        let fields = serde_json::json!([
            self.seq,
            self.at,
            self.key,
            self.source,
            self.action,
            self.kind,
            self.target,
            self.outcome,
            self.prev
        ]);
        hex::encode(Sha256::digest(fields.to_string().as_bytes()))
    }
}

/// One entry as stored: where it was found and what it decoded to.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// The sequence number its storage position says.
    pub position: u64,
    /// The entry, or why it cannot be read.
    pub entry: Result<AuditEntry, String>,
}

/// Checks a whole log, in storage order, starting after `anchor` (the sequence number and
/// hash of the last entry retention removed; `(0, GENESIS)` when none was). Returns every
/// problem found, each naming the entry.
#[must_use]
pub fn verify(entries: &[StoredEntry], anchor: (u64, &str)) -> Vec<String> {
    let mut problems = Vec::new();
    let (mut expected_seq, mut prev_hash) = (anchor.0.saturating_add(1), anchor.1.to_owned());
    // After an entry already reported, the next one's link cannot be judged: report each
    // tampered entry once, not the whole tail after it.
    let mut prev_trusted = true;
    for stored in entries {
        let found_before = problems.len();
        let entry = match &stored.entry {
            Ok(entry) => entry,
            Err(why) => {
                problems.push(format!("entry {}: unreadable ({why})", stored.position));
                expected_seq = stored.position.saturating_add(1);
                prev_trusted = false;
                continue;
            }
        };
        if stored.position > expected_seq {
            problems.push(if stored.position - expected_seq == 1 {
                format!("entry {expected_seq} is missing")
            } else {
                format!(
                    "entries {expected_seq} to {} are missing",
                    stored.position - 1
                )
            });
        }
        if entry.seq != stored.position {
            problems.push(format!(
                "entry {} holds entry {}: entries were swapped or moved",
                stored.position, entry.seq
            ));
        } else if entry.computed_hash() != entry.hash {
            problems.push(format!("entry {} was edited", entry.seq));
        } else if entry.prev != prev_hash && stored.position == expected_seq && prev_trusted {
            problems.push(format!(
                "entry {} does not follow entry {}",
                entry.seq,
                expected_seq.saturating_sub(1)
            ));
        }
        prev_trusted = problems.len() == found_before;
        expected_seq = stored.position.saturating_add(1);
        prev_hash = entry.hash.clone();
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64) -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let (seq, hash) = entries
                .last()
                .map_or((0, GENESIS.to_owned()), |e| (e.seq, e.hash.clone()));
            entries.push(AuditEntry::chain(
                NewAuditEntry {
                    at: 1_000 + i,
                    key: Some("phk_live_AAAAAAAA".into()),
                    source: "127.0.0.1".into(),
                    action: "key.create".into(),
                    kind: ActionKind::Create,
                    target: Some(format!("k{i}")),
                    outcome: "ok".into(),
                },
                seq,
                &hash,
            ));
        }
        entries
    }

    fn stored(entries: &[AuditEntry]) -> Vec<StoredEntry> {
        entries
            .iter()
            .map(|e| StoredEntry {
                position: e.seq,
                entry: Ok(e.clone()),
            })
            .collect()
    }

    #[test]
    fn an_intact_log_verifies() {
        assert_eq!(verify(&stored(&log(5)), (0, GENESIS)), Vec::<String>::new());
    }

    #[test]
    fn an_edit_a_removal_and_a_swap_are_each_named() {
        let mut edited = stored(&log(5));
        if let Ok(entry) = &mut edited[2].entry {
            entry.outcome = "refused".into();
        }
        assert_eq!(verify(&edited, (0, GENESIS)), ["entry 3 was edited"]);

        let mut removed = stored(&log(5));
        removed.remove(1);
        assert_eq!(verify(&removed, (0, GENESIS)), ["entry 2 is missing"]);

        let mut swapped = stored(&log(5));
        let (a, b) = (swapped[1].entry.clone(), swapped[3].entry.clone());
        swapped[1].entry = b;
        swapped[3].entry = a;
        assert_eq!(
            verify(&swapped, (0, GENESIS)),
            [
                "entry 2 holds entry 4: entries were swapped or moved",
                "entry 4 holds entry 2: entries were swapped or moved"
            ]
        );
    }

    #[test]
    fn a_purged_head_is_accepted_only_from_its_anchor() {
        let entries = log(5);
        let tail = stored(&entries[2..]);
        let anchor = (entries[1].seq, entries[1].hash.as_str());
        assert!(verify(&tail, anchor).is_empty());
        assert_eq!(verify(&tail, (0, GENESIS)), ["entries 1 to 2 are missing"]);
    }
}
