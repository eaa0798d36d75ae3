//! Proofs about the access log as they travel: inclusion proofs of entries and
//! consistency proofs between checkpoints (JSON, hashes in standard base64), and log
//! slices: some entries with their inclusion proofs under one signed checkpoint, which
//! verify offline without the rest of the log.
//!
//! ```json
//! {"index": 0, "size": 2, "hashes": ["2guX6Zly..."]}                   inclusion
//! {"from": 1, "to": 2, "hashes": ["2guX6Zly..."]}                      consistency
//! ```
//!
//! `schema/LOG-FORMAT.md` §4 and §5 state the same in prose, with a worked example.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::log::{ChainedEntry, Entry};
use crate::merkle::{self, Hash, ProofError};
use crate::note::{Checkpoint, NoteError, VerifierKey};

/// Most hashes a proof of a tree of up to 2^64 leaves can need (an inclusion proof has at
/// most 64, a consistency proof at most 2 * 64); anything longer is refused unread.
pub const MAX_PROOF_HASHES: usize = 130;

/// The inclusion proof of entry `index` in the tree of the first `size` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    #[serde(with = "b64_hashes")]
    pub hashes: Vec<Hash>,
}

impl InclusionProof {
    /// Checks that `encoded` (an entry's canonical encoding) is entry `self.index` of
    /// the tree `cp` signs. The proof must be for exactly that tree's size.
    pub fn verify(&self, encoded: &[u8], cp: &Checkpoint) -> Result<(), ProofError> {
        if self.size != cp.size {
            return Err(ProofError::WrongSize { proof: self.size, checkpoint: cp.size });
        }
        included(self.index, encoded, &self.hashes, cp)
    }
}

/// Checks that `encoded` is entry `index` of the tree `cp` signs, by the proof `hashes`
/// in the tree of `cp`'s size.
pub fn included(index: u64, encoded: &[u8], hashes: &[Hash], cp: &Checkpoint) -> Result<(), ProofError> {
    merkle::verify_inclusion(index, cp.size, &merkle::leaf_hash(encoded), hashes, &cp.root)
}

/// The consistency proof from the tree of the first `from` entries to that of `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    #[serde(with = "b64_hashes")]
    pub hashes: Vec<Hash>,
}

/// An entry as the server hands it to auditors, with its inclusion proof in the tree of
/// the size they asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenEntry {
    #[serde(flatten)]
    pub chained: ChainedEntry,
    #[serde(with = "b64_hashes")]
    pub proof: Vec<Hash>,
}

impl ProvenEntry {
    /// Checks the entry is entry `seq` of the tree `cp` signs.
    pub fn verify(&self, cp: &Checkpoint) -> Result<(), ProofError> {
        let mut enc = Vec::with_capacity(512);
        self.chained.entry.encode_into(&mut enc);
        included(self.chained.entry.seq, &enc, &self.proof, cp)
    }
}

/// The format name of a log slice file.
pub const SLICE_FORMAT: &str = "recording-vault log slice v1";

/// A slice of the log: entries about one case or one recording, each with its inclusion
/// proof in the tree of the signed checkpoint, so that it verifies offline with only the
/// log's verifier key. A slice proves that each of its entries is in the log; it cannot
/// prove that no other entry about the same case is (see `schema/LOG-FORMAT.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slice {
    pub format: String,
    /// What the slice was selected by, for people: `case CASE` or `recording REC`.
    pub selection: String,
    /// The signed checkpoint (a C2SP signed note) the proofs lead to.
    pub checkpoint: String,
    pub entries: Vec<SliceEntry>,
}

/// An entry of a slice: its canonical encoding and inclusion proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceEntry {
    #[serde(with = "b64_bytes")]
    pub encoding: Vec<u8>,
    #[serde(with = "b64_hashes")]
    pub proof: Vec<Hash>,
}

/// Why a slice was refused.
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error("not a log slice: {0}")]
    Format(String),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("entry {index} of the slice: not a canonical entry encoding")]
    Malformed { index: usize },
    #[error("entry {seq}: is not in the log the checkpoint signs ({why}): altered, or not from this log")]
    NotIncluded { seq: u64, why: ProofError },
    #[error("entry {seq}: appears twice, or the slice's entries are out of order")]
    Order { seq: u64 },
}

impl Slice {
    /// Checks the checkpoint's signature and every entry's inclusion; returns the
    /// checkpoint and the entries, decoded.
    pub fn verify(&self, key: &VerifierKey) -> Result<(Checkpoint, Vec<Entry>), SliceError> {
        if self.format != SLICE_FORMAT {
            return Err(SliceError::Format(format!("format is {:?}, not {SLICE_FORMAT:?}", self.format)));
        }
        let cp = Checkpoint::open(&self.checkpoint, key)?;
        let mut out = Vec::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            let entry = Entry::decode(&e.encoding).ok_or(SliceError::Malformed { index: i })?;
            if out.last().is_some_and(|p: &Entry| p.seq >= entry.seq) {
                return Err(SliceError::Order { seq: entry.seq });
            }
            included(entry.seq, &e.encoding, &e.proof, &cp)
                .map_err(|why| SliceError::NotIncluded { seq: entry.seq, why })?;
            out.push(entry);
        }
        Ok((cp, out))
    }
}

/// Hashes as a JSON list of standard base64 strings, at most [`MAX_PROOF_HASHES`].
pub mod b64_hashes {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|h| B64.encode(h)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        if list.len() > MAX_PROOF_HASHES {
            return Err(serde::de::Error::custom("a proof of more than 130 hashes"));
        }
        list.iter()
            .map(|s| {
                B64.decode(s)
                    .ok()
                    .and_then(|b| Hash::try_from(b).ok())
                    .ok_or_else(|| serde::de::Error::custom("a proof hash is not base64 of 32 bytes"))
            })
            .collect()
    }
}

/// Bytes as one standard base64 string.
mod b64_bytes {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s).map_err(serde::de::Error::custom)
    }
}
