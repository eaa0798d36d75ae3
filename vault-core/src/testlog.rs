//! Synthetic access logs for benchmarks and tests: realistic entries, a fixed key.
//! Compiled only with the `testlog` feature.

use ring::signature::Ed25519KeyPair;

use crate::export::ExportWriter;
use crate::log::{Action, Entry, Outcome, genesis};
use crate::merkle::{Frontier, leaf_hash};
use crate::note::{Checkpoint, VerifierKey};

/// The origin of synthetic logs.
pub const ORIGIN: &str = "recording-vault/synthetic";

/// The signing key of synthetic logs (a fixed test key; never use it for anything real).
pub fn key() -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[42u8; 32]).expect("valid seed")
}

pub fn verifier_key() -> VerifierKey {
    VerifierKey::from_pair(ORIGIN, &key())
}

/// Entry `seq` of a synthetic log: fetches, grants and refusals with realistic ids.
pub fn entry(seq: u64) -> Entry {
    let actions = [Action::Fetch, Action::RecordingList, Action::Upload, Action::Grant, Action::Login];
    Entry {
        seq,
        time_ms: 1_780_000_000_000 + seq as i64 * 37,
        actor: format!("investigator{:02}", seq % 40),
        action: actions[(seq % 5) as usize].to_string(),
        case_id: format!("case_{:032x}", seq / 1000),
        recording_id: format!("rec_{:032x}", seq),
        reason: "complaint 2026-117 follow-up".into(),
        outcome: if seq.is_multiple_of(17) { Outcome::Refused } else { Outcome::Allowed }.to_string(),
        details: if seq.is_multiple_of(17) { r#"{"refusal":"no grant"}"#.into() } else { String::new() },
    }
}

/// Writes an export of entries `0..n` signed by [`key`]; returns its checkpoint.
pub fn write_export<W: std::io::Write>(w: W, n: u64) -> std::io::Result<Checkpoint> {
    // The checkpoint comes first in the file, so compute the tree head first.
    let mut scratch = Vec::with_capacity(512);
    let mut tree = Frontier::default();
    for seq in 0..n {
        scratch.clear();
        entry(seq).encode_into(&mut scratch);
        tree.push(leaf_hash(&scratch));
    }
    let cp = Checkpoint { origin: ORIGIN.into(), size: n, root: tree.root() };
    let mut out = ExportWriter::new(w, &cp.sign(&key()))?;
    let mut prev = genesis();
    for seq in 0..n {
        let e = entry(seq);
        let hash = e.chain_hash(&prev, &mut scratch);
        out.entry(&scratch, &prev, &hash)?;
        prev = hash;
    }
    out.finish().flush()?;
    Ok(cp)
}
