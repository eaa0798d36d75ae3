//! Tamper cases for proofs and slices, as data files in `tests/data/proofs/`, so that an
//! auditor's own verifier can be run against the same files.
//!
//! Each `NAME.json` is one case, checked with the verifier key in `key.txt`:
//!
//! ```text
//! {"kind": "inclusion",   "checkpoint": NOTE, "encoding": BASE64, "proof": {"index", "size", "hashes"}}
//! {"kind": "consistency", "pinned": NOTE, "checkpoint": NOTE, "proof": {"from", "to", "hashes"}}
//! {"kind": "slice",       "slice": SLICE}
//! ```
//!
//! plus `"expect"`: `ok`, or a text the error must contain. Files named `fail_*` must
//! fail. They are made by `cargo test -p vault-core --test proofs -- --ignored
//! regenerate` from fixed keys and entries, so they are the same on every run.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::Ed25519KeyPair;
use serde_json::{Value, json};
use vault_core::export::verify_extends;
use vault_core::log::Entry;
use vault_core::merkle::{self, Hash};
use vault_core::note::{Checkpoint, VerifierKey};
use vault_core::proof::{ConsistencyProof, InclusionProof, SLICE_FORMAT, Slice, SliceEntry};

const ORIGIN: &str = "recording-vault/test-vectors";
const SEED: [u8; 32] = [7; 32];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/proofs")
}

fn key() -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&SEED).unwrap()
}

fn entry(seq: u64, actor: &str) -> Vec<u8> {
    let e = Entry {
        seq,
        time_ms: 1_780_000_000_000 + seq as i64 * 1000,
        actor: actor.into(),
        action: if seq.is_multiple_of(2) { "fetch" } else { "grant" }.into(),
        case_id: format!("case_{:032x}", seq % 3),
        recording_id: String::new(),
        reason: "complaint 2026-117".into(),
        outcome: "allowed".into(),
        details: String::new(),
    };
    let mut out = Vec::new();
    e.encode_into(&mut out);
    out
}

/// A log of `n` entries; `fork` changes the actor of every entry from that seq on.
fn log(n: u64, fork: Option<u64>) -> Vec<Vec<u8>> {
    (0..n).map(|i| entry(i, if fork.is_some_and(|f| i >= f) { "mallory" } else { "bob" })).collect()
}

fn leaves(log: &[Vec<u8>]) -> Vec<Hash> {
    log.iter().map(|e| merkle::leaf_hash(e)).collect()
}

fn note(log: &[Vec<u8>]) -> String {
    Checkpoint { origin: ORIGIN.into(), size: log.len() as u64, root: merkle::root(&leaves(log)) }.sign(&key())
}

fn inclusion(log: &[Vec<u8>], index: u64, size: u64) -> InclusionProof {
    InclusionProof { index, size, hashes: merkle::inclusion_proof(&leaves(log)[..], index, size).unwrap() }
}

fn consistency(log: &[Vec<u8>], from: u64, to: u64) -> ConsistencyProof {
    ConsistencyProof { from, to, hashes: merkle::consistency_proof(&leaves(log)[..], from, to).unwrap() }
}

fn flip(h: &mut Hash) {
    h[7] ^= 0x20;
}

fn inclusion_case(cp: &str, encoding: &[u8], proof: &InclusionProof, expect: &str) -> Value {
    json!({"kind": "inclusion", "checkpoint": cp, "encoding": B64.encode(encoding), "proof": proof, "expect": expect})
}

fn consistency_case(pinned: &str, cp: &str, proof: &ConsistencyProof, expect: &str) -> Value {
    json!({"kind": "consistency", "pinned": pinned, "checkpoint": cp, "proof": proof, "expect": expect})
}

fn slice_of(log: &[Vec<u8>], picks: &[u64]) -> Slice {
    let size = log.len() as u64;
    Slice {
        format: SLICE_FORMAT.into(),
        selection: format!("case case_{:032x}", 1),
        checkpoint: note(log),
        entries: picks
            .iter()
            .map(|&i| SliceEntry { encoding: log[i as usize].clone(), proof: inclusion(log, i, size).hashes })
            .collect(),
    }
}

fn cases() -> Vec<(&'static str, Value)> {
    let good = log(13, None);
    let cp = note(&good);
    let mut out = vec![("ok_inclusion", inclusion_case(&cp, &good[6], &inclusion(&good, 6, 13), "ok"))];
    out.push(("ok_inclusion_of_the_last_entry", inclusion_case(&cp, &good[12], &inclusion(&good, 12, 13), "ok")));
    // An entry altered: its leaf is not the one the path starts from.
    out.push((
        "fail_inclusion_wrong_leaf",
        inclusion_case(&cp, &entry(6, "mallory"), &inclusion(&good, 6, 13), "does not lead to the tree head"),
    ));
    let mut sibling = inclusion(&good, 6, 13);
    flip(&mut sibling.hashes[1]);
    out.push((
        "fail_inclusion_wrong_sibling",
        inclusion_case(&cp, &good[6], &sibling, "does not lead to the tree head"),
    ));
    // A proof valid in the tree of 12 entries, offered for the checkpoint of 13.
    out.push((
        "fail_inclusion_proof_for_another_size",
        inclusion_case(&cp, &good[6], &inclusion(&good, 6, 12), "the proof is for a tree of 12 leaves"),
    ));
    // The right hashes, claimed for the tree of 13: the path is the wrong length.
    let relabelled = InclusionProof { size: 13, ..inclusion(&good, 6, 12) };
    out.push(("fail_inclusion_path_of_another_tree", inclusion_case(&cp, &good[6], &relabelled, "does not lead")));
    // Entry 6 presented as entry 7.
    let moved = InclusionProof { index: 7, ..inclusion(&good, 6, 13) };
    out.push(("fail_inclusion_wrong_index", inclusion_case(&cp, &good[6], &moved, "does not lead to the tree head")));
    out.push((
        "fail_inclusion_index_beyond_size",
        inclusion_case(&cp, &good[6], &InclusionProof { index: 13, size: 13, hashes: vec![] }, "is not in a tree"),
    ));

    let pinned = note(&good[..5]);
    out.push(("ok_consistency", consistency_case(&pinned, &cp, &consistency(&good, 5, 13), "ok")));
    out.push((
        "ok_consistency_from_a_power_of_two",
        consistency_case(&note(&good[..8]), &cp, &consistency(&good, 8, 13), "ok"),
    ));
    out.push(("ok_consistency_same_checkpoint", consistency_case(&cp, &cp, &consistency(&good, 13, 13), "ok")));
    // Two genuinely signed checkpoints of logs that part at entry 3: no proof joins them.
    let forked = log(13, Some(3));
    out.push((
        "fail_consistency_forked_logs",
        consistency_case(&pinned, &note(&forked), &consistency(&forked, 5, 13), "does not extend"),
    ));
    let mut bad = consistency(&good, 5, 13);
    flip(&mut bad.hashes[0]);
    out.push(("fail_consistency_altered_hash", consistency_case(&pinned, &cp, &bad, "does not extend")));
    let mut short = consistency(&good, 5, 13);
    short.hashes.pop();
    out.push(("fail_consistency_truncated_proof", consistency_case(&pinned, &cp, &short, "does not extend")));
    // Same size, other root: a split view at one size.
    out.push((
        "fail_consistency_same_size_other_root",
        consistency_case(&note(&forked), &cp, &consistency(&good, 13, 13), "does not extend"),
    ));
    out.push((
        "fail_consistency_rolled_back",
        consistency_case(
            &cp,
            &pinned,
            &ConsistencyProof { from: 13, to: 5, hashes: vec![] },
            "truncated or rolled back",
        ),
    ));
    // A proof between other sizes than the pin's and the checkpoint's.
    out.push((
        "fail_consistency_proof_for_other_sizes",
        consistency_case(&pinned, &cp, &consistency(&good, 6, 13), "for other sizes"),
    ));

    let slice = slice_of(&good, &[1, 4, 7, 10]);
    out.push(("ok_slice", json!({"kind": "slice", "slice": slice, "expect": "ok"})));
    let mut altered = slice.clone();
    altered.entries[2].encoding = entry(7, "mallory");
    out.push((
        "fail_slice_altered_entry",
        json!({"kind": "slice", "slice": altered, "expect": "entry 7: is not in the log"}),
    ));
    let mut forged = slice.clone();
    forged.checkpoint = forged.checkpoint.replacen("\n13\n", "\n14\n", 1);
    out.push(("fail_slice_forged_checkpoint", json!({"kind": "slice", "slice": forged, "expect": "is invalid"})));
    // The entries of a forked log under the genuine log's checkpoint.
    let mut foreign = slice_of(&forked, &[1, 4, 7, 10]);
    foreign.checkpoint = slice.checkpoint.clone();
    out.push((
        "fail_slice_entries_of_another_log",
        json!({"kind": "slice", "slice": foreign, "expect": "entry 1: is not in the log"}),
    ));
    let mut reordered = slice.clone();
    reordered.entries.swap(0, 1);
    out.push(("fail_slice_out_of_order", json!({"kind": "slice", "slice": reordered, "expect": "out of order"})));
    out
}

/// Runs one case; `Ok` if it verified.
fn check(case: &Value, key: &VerifierKey) -> Result<(), String> {
    let open = |field: &str| Checkpoint::open(case[field].as_str().unwrap(), key).map_err(|e| e.to_string());
    match case["kind"].as_str().unwrap() {
        "inclusion" => {
            let cp = open("checkpoint")?;
            let proof: InclusionProof = serde_json::from_value(case["proof"].clone()).unwrap();
            let enc = B64.decode(case["encoding"].as_str().unwrap()).unwrap();
            proof.verify(&enc, &cp).map_err(|e| e.to_string())
        }
        "consistency" => {
            let (pinned, cp) = (open("pinned")?, open("checkpoint")?);
            let proof: ConsistencyProof = serde_json::from_value(case["proof"].clone()).unwrap();
            if proof.from != pinned.size || proof.to != cp.size {
                return Err("a consistency proof for other sizes than the two checkpoints'".into());
            }
            verify_extends(pinned.size, &pinned.root, &cp, &proof.hashes).map_err(|e| e.to_string())
        }
        "slice" => {
            let slice: Slice = serde_json::from_value(case["slice"].clone()).unwrap();
            slice.verify(key).map(|_| ()).map_err(|e| e.to_string())
        }
        other => panic!("unknown kind {other}"),
    }
}

#[test]
#[ignore = "writes the test data files; run when the cases change"]
fn regenerate() {
    let d = dir();
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("key.txt"), VerifierKey::from_pair(ORIGIN, &key()).to_text() + "\n").unwrap();
    for (name, case) in cases() {
        std::fs::write(d.join(format!("{name}.json")), serde_json::to_string_pretty(&case).unwrap() + "\n").unwrap();
    }
}

#[test]
fn data_files_match_their_generator() {
    for (name, case) in cases() {
        let stored = std::fs::read_to_string(dir().join(format!("{name}.json")))
            .unwrap_or_else(|_| panic!("{name}.json missing: run the ignored `regenerate` test"));
        let stored: Value = serde_json::from_str(&stored).unwrap();
        assert!(stored == case, "{name}.json is stale: run the ignored `regenerate` test");
    }
}

#[test]
fn every_proof_tamper_case_is_caught() {
    let d = dir();
    let key = VerifierKey::parse(&std::fs::read_to_string(d.join("key.txt")).unwrap()).unwrap();
    let mut seen = 0;
    for f in std::fs::read_dir(&d).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let expect = case["expect"].as_str().unwrap();
        match (name.starts_with("fail_"), check(&case, &key)) {
            (false, Ok(())) => assert_eq!(expect, "ok", "{name}"),
            (true, Err(e)) => assert!(e.contains(expect), "{name}: got {e:?}, wanted {expect:?}"),
            (false, Err(e)) => panic!("{name} must verify: {e}"),
            (true, Ok(())) => panic!("{name} verified, but it is tampered"),
        }
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} cases found");
}
