//! Access-log entries: their canonical encoding and the hash chain.
//!
//! The server writes entries with this code and auditors verify them with the same code,
//! so there is exactly one definition of the bytes that are hashed:
//!
//! ```text
//! hash = SHA-256(prev || encode(entry))
//! encode(entry) = u64be(seq) || i64be(time_ms)
//!              || field(actor) || field(action) || field(case) || field(recording)
//!              || field(reason) || field(outcome) || field(details)
//! field(s)      = u32be(len(s)) || utf8(s)
//! ```
//!
//! Entry 0 chains from [`genesis`]. `schema/LOG-FORMAT.md` states the same in prose.

use serde::{Deserialize, Serialize};

/// The text whose SHA-256 is the `prev` of entry 0.
pub const GENESIS_TEXT: &[u8] = b"recording-vault access log genesis v1";

/// The `prev` value of entry 0.
pub fn genesis() -> [u8; 32] {
    crate::sha256(GENESIS_TEXT)
}

string_enum!(
    /// What happened to a request: the `outcome` field of an entry.
    Outcome { Allowed = "allowed", Refused = "refused" }
);

string_enum!(
    /// What an entry records: the `action` field. One value per API route, plus the
    /// server's own acts (`init`, `destroy`, `purge`, `remove-orphan`, `log-restore`).
    /// `schema/LOG-FORMAT.md` lists them with their meaning. Entries keep the action as
    /// text, so that a verifier reads logs written by newer servers with actions it does
    /// not know.
    Action {
        Init = "init",
        LoginChallenge = "login-challenge",
        Login = "login",
        UserList = "user-list",
        UserAdd = "user-add",
        UserShow = "user-show",
        UserApprove = "user-approve",
        UserDisable = "user-disable",
        Trust = "trust",
        CaseList = "case-list",
        CaseCreate = "case-create",
        CaseShow = "case-show",
        CaseApprove = "case-approve",
        CaseClose = "case-close",
        Notify = "notify",
        NotifyDefer = "notify-defer",
        ReleaseHold = "release-hold",
        CaseReopen = "case-reopen",
        CaseReopenApprove = "case-reopen-approve",
        Report = "report",
        CaseKey = "case-key",
        AddCustodian = "add-custodian",
        CaseEnvelopes = "case-envelopes",
        RotateKey = "rotate-key",
        CaseRecipient = "case-recipient",
        Grant = "grant",
        GrantApprove = "grant-approve",
        GrantDeliver = "grant-deliver",
        Revoke = "revoke",
        RecordingList = "recording-list",
        Upload = "upload",
        RecordingSign = "recording-sign",
        Fetch = "fetch",
        EvidenceExport = "evidence-export",
        Destroy = "destroy",
        Purge = "purge",
        RemoveOrphan = "remove-orphan",
        AuditCheckpoint = "audit-checkpoint",
        AuditExport = "audit-export",
        AuditLog = "audit-log",
        AuditProof = "audit-proof",
        LogCheckpoint = "log-checkpoint",
        ServerKeyRotate = "server-key-rotate",
        Request = "request",
        Aggregated = "aggregated",
        LogRestore = "log-restore",
    }
);

/// One access-log entry. Empty strings stand for "not applicable".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Milliseconds since the Unix epoch, UTC.
    pub time_ms: i64,
    pub actor: String,
    pub action: String,
    pub case_id: String,
    pub recording_id: String,
    pub reason: String,
    pub outcome: String,
    /// Small details as compact JSON, or empty.
    pub details: String,
}

/// Number of text fields in an entry.
pub const FIELDS: usize = 7;

/// Appends the canonical encoding of an entry given as parts (fields in the order
/// actor, action, case, recording, reason, outcome, details) to `out`.
pub fn encode_parts(out: &mut Vec<u8>, seq: u64, time_ms: i64, fields: [&[u8]; FIELDS]) {
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time_ms.to_be_bytes());
    for f in fields {
        let len = u32::try_from(f.len()).expect("log fields are far smaller than 4 GiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(f);
    }
}

/// Checks that `encoded` is exactly one canonical entry (every field UTF-8, nothing left
/// over) and returns its sequence number, without allocating.
pub fn check_encoding(encoded: &[u8]) -> Option<u64> {
    let seq = u64::from_be_bytes(encoded.get(..8)?.try_into().ok()?);
    let mut rest = encoded.get(16..)?;
    for _ in 0..FIELDS {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let field = rest.get(4..4 + len)?;
        std::str::from_utf8(field).ok()?;
        rest = &rest[4 + len..];
    }
    rest.is_empty().then_some(seq)
}

impl Entry {
    /// Appends the canonical encoding of this entry to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        encode_parts(
            out,
            self.seq,
            self.time_ms,
            [
                self.actor.as_bytes(),
                self.action.as_bytes(),
                self.case_id.as_bytes(),
                self.recording_id.as_bytes(),
                self.reason.as_bytes(),
                self.outcome.as_bytes(),
                self.details.as_bytes(),
            ],
        );
    }

    /// Parses a canonical encoding.
    pub fn decode(encoded: &[u8]) -> Option<Self> {
        let seq = check_encoding(encoded)?;
        let time_ms = i64::from_be_bytes(encoded[8..16].try_into().ok()?);
        let mut rest = &encoded[16..];
        let mut field = || {
            let len = u32::from_be_bytes(rest[..4].try_into().expect("checked")) as usize;
            let s = std::str::from_utf8(&rest[4..4 + len]).expect("checked").to_owned();
            rest = &rest[4 + len..];
            s
        };
        Some(Self {
            seq,
            time_ms,
            actor: field(),
            action: field(),
            case_id: field(),
            recording_id: field(),
            reason: field(),
            outcome: field(),
            details: field(),
        })
    }

    /// `SHA-256(prev || encode(self))`. `scratch` is reused to avoid an allocation per entry.
    pub fn chain_hash(&self, prev: &[u8; 32], scratch: &mut Vec<u8>) -> [u8; 32] {
        scratch.clear();
        self.encode_into(scratch);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(prev);
        ctx.update(scratch);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

/// A stored entry with its links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedEntry {
    #[serde(flatten)]
    pub entry: Entry,
    #[serde(with = "hex32")]
    pub prev: [u8; 32],
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

/// The first thing wrong with a chain.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("entry {seq}: not a canonical entry encoding (damaged record)")]
    Malformed { seq: u64 },
    #[error("entry {expected}: missing or out of order (entry {seq} stands in its place)")]
    Sequence { seq: u64, expected: u64 },
    #[error(
        "entry {seq}: its prev is not the hash of the entry before it (an entry was inserted, removed or replaced here)"
    )]
    BrokenLink { seq: u64 },
    #[error("entry {seq}: stored hash does not match its contents (modified entry)")]
    BadHash { seq: u64 },
}

/// Checks a chain one entry at a time, without allocating per entry.
pub struct ChainVerifier {
    next_seq: u64,
    prev: [u8; 32],
}

impl ChainVerifier {
    /// Starts at entry `start_seq`, whose `prev` must be `prev` (the [`genesis`] value
    /// for entry 0, or the head of a checkpoint already verified).
    pub fn new(start_seq: u64, prev: [u8; 32]) -> Self {
        Self { next_seq: start_seq, prev }
    }

    /// Checks the next entry given as its canonical encoding and stored links.
    pub fn push(&mut self, encoded: &[u8], prev: &[u8; 32], hash: &[u8; 32]) -> Result<(), ChainError> {
        let expected = self.next_seq;
        let seq = check_encoding(encoded).ok_or(ChainError::Malformed { seq: expected })?;
        if seq != expected {
            return Err(ChainError::Sequence { seq, expected });
        }
        if *prev != self.prev {
            return Err(ChainError::BrokenLink { seq });
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(prev);
        ctx.update(encoded);
        if ctx.finish().as_ref() != hash {
            return Err(ChainError::BadHash { seq });
        }
        self.prev = *hash;
        self.next_seq += 1;
        Ok(())
    }

    /// The sequence number the next entry must have: the number of entries so far.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The hash of the last entry checked.
    pub fn head(&self) -> [u8; 32] {
        self.prev
    }
}

/// Checks entries starting at `start_seq` whose predecessor hash is `prev`. Returns the
/// head hash.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = &'a ChainedEntry>,
    start_seq: u64,
    prev: [u8; 32],
) -> Result<[u8; 32], ChainError> {
    let mut v = ChainVerifier::new(start_seq, prev);
    let mut scratch = Vec::with_capacity(512);
    for e in entries {
        scratch.clear();
        e.entry.encode_into(&mut scratch);
        v.push(&scratch, &e.prev, &e.hash)?;
    }
    Ok(v.head())
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <&str>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(n: u64) -> Vec<ChainedEntry> {
        let mut prev = genesis();
        let mut scratch = Vec::new();
        (0..n)
            .map(|seq| {
                let entry = Entry {
                    seq,
                    time_ms: 1_700_000_000_000 + seq as i64,
                    actor: "alice".into(),
                    action: "fetch".into(),
                    case_id: String::new(),
                    recording_id: String::new(),
                    reason: format!("reason {seq}"),
                    outcome: Outcome::Allowed.to_string(),
                    details: String::new(),
                };
                let hash = entry.chain_hash(&prev, &mut scratch);
                let e = ChainedEntry { entry, prev, hash };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn fields_are_length_prefixed_so_boundaries_cannot_shift() {
        let mut a = chain(1).remove(0).entry;
        let mut b = a.clone();
        a.actor = "ab".into();
        a.action = "c".into();
        b.actor = "a".into();
        b.action = "bc".into();
        let g = genesis();
        assert_ne!(a.chain_hash(&g, &mut Vec::new()), b.chain_hash(&g, &mut Vec::new()));
    }

    #[test]
    fn decode_inverts_encode() {
        let e = chain(3).remove(2).entry;
        let mut buf = Vec::new();
        e.encode_into(&mut buf);
        assert_eq!(Entry::decode(&buf), Some(e));
        buf.push(0);
        assert_eq!(check_encoding(&buf), None, "trailing bytes accepted");
        assert_eq!(check_encoding(&buf[..buf.len() - 3]), None, "truncated record accepted");
    }

    proptest! {
        #[test]
        fn chain_verifies(n in 0u64..50) {
            let c = chain(n);
            let head = verify_chain(&c, 0, genesis()).unwrap();
            prop_assert_eq!(head, c.last().map_or(genesis(), |e| e.hash));
        }

        #[test]
        fn fail_modified_entry(n in 1u64..30, i in any::<prop::sample::Index>()) {
            let mut c = chain(n);
            let k = i.index(c.len());
            c[k].entry.reason.push('!');
            prop_assert_eq!(verify_chain(&c, 0, genesis()), Err(ChainError::BadHash { seq: k as u64 }));
        }

        #[test]
        fn fail_deleted_entry(n in 2u64..30, i in any::<prop::sample::Index>()) {
            let mut c = chain(n);
            let k = i.index(c.len() - 1);
            c.remove(k);
            prop_assert!(verify_chain(&c, 0, genesis()).is_err());
        }
    }
}
