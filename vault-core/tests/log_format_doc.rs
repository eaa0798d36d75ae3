//! Checks that the worked example in `schema/LOG-FORMAT.md` is what the code computes,
//! so the document an auditor implements from cannot drift from the implementation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vault_core::log::{Action, Outcome, genesis};

mod common;
use vault_core::merkle;
use vault_core::note::{Checkpoint, VerifierKey};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/LOG-FORMAT.md")).unwrap()
}

/// The value printed after `label` on a line of the document (the first such line whose
/// value is a single word).
fn value(doc: &str, label: &str) -> String {
    doc.lines()
        .filter_map(|l| l.strip_prefix(label).map(|v| v.trim().to_owned()))
        .find(|v| !v.is_empty() && !v.contains(' '))
        .unwrap_or_else(|| panic!("LOG-FORMAT.md lacks a line starting with {label:?}"))
}

#[test]
fn worked_example_matches_the_code() {
    let doc = doc();
    let (e0, e1) = common::example_entries();
    assert_eq!(value(&doc, "genesis "), hex::encode(genesis()));
    let mut enc = Vec::new();
    e0.encode_into(&mut enc);
    assert_eq!(value(&doc, "encode(e0) "), hex::encode(&enc));
    let h0 = e0.chain_hash(&genesis(), &mut Vec::new());
    assert_eq!(value(&doc, "hash(0) "), hex::encode(h0));
    enc.clear();
    e1.encode_into(&mut enc);
    assert_eq!(value(&doc, "encode(e1) "), hex::encode(&enc));
    let h1 = e1.chain_hash(&h0, &mut Vec::new());
    assert_eq!(value(&doc, "hash(1) "), hex::encode(h1));

    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
    let key = VerifierKey::from_pair("recording-vault/example", &pair);
    assert_eq!(value(&doc, "recording-vault/example+"), key.to_text()["recording-vault/example+".len()..]);
    let mut enc0 = Vec::new();
    e0.encode_into(&mut enc0);
    let (l0, l1) = (merkle::leaf_hash(&enc0), merkle::leaf_hash(&enc));
    assert_eq!(value(&doc, "leaf(0) "), hex::encode(l0));
    assert_eq!(value(&doc, "leaf(1) "), hex::encode(l1));
    let root = merkle::root(&[l0, l1]);
    assert_eq!(value(&doc, "root(2) "), hex::encode(root));
    assert_eq!(root, merkle::node_hash(&l0, &l1));
    let note = Checkpoint { origin: "recording-vault/example".into(), size: 2, root }.sign(&pair);
    assert!(doc.contains(&format!("```\n{note}```")), "the note in LOG-FORMAT.md differs from:\n{note}");
    assert!(doc.contains(&B64.encode(root)));
    // The proofs of the example: leaf 0's inclusion in the tree of 2 is leaf 1's hash,
    // and so is the consistency proof from 1 entry to 2.
    assert_eq!(merkle::inclusion_proof(&[l0, l1][..], 0, 2).unwrap(), [l1]);
    assert_eq!(merkle::consistency_proof(&[l0, l1][..], 1, 2).unwrap(), [l1]);
    assert!(doc.contains(&format!("{{\"index\":0,\"size\":2,\"hashes\":[\"{}\"]}}", B64.encode(l1))));
}

#[test]
fn every_action_and_outcome_is_documented() {
    let doc = doc();
    let table = &doc[doc.find("### Actions").expect("LOG-FORMAT.md has an Actions section")..];
    let table = &table[..table.find("\n\n## ").unwrap_or(table.len())];
    let documented: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| l.split('|').nth(1).unwrap().split(',').map(|a| a.trim().trim_matches('`')))
        .collect();
    let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
    for a in &known {
        assert!(documented.contains(a), "action {a} is not in LOG-FORMAT.md's table");
    }
    for a in &documented {
        assert!(known.contains(a), "LOG-FORMAT.md documents {a}, which the code does not write");
    }
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(outcomes, ["allowed", "refused"], "LOG-FORMAT.md says the outcome is `allowed` or `refused`");
}
