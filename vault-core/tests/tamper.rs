//! Tamper cases for the access-log verifier, as data files in `tests/data/log/`.
//!
//! Each `NAME.export` is checked with the verifier key in `key.txt`, against the pinned
//! checkpoint in `NAME.pin` when there is one. `NAME.expect` holds `ok` or a text the
//! error must contain; files named `fail_*` must fail. The files are made by
//! `cargo test -p vault-core --test tamper -- --ignored regenerate`, from a fixed key and
//! fixed entries, so they are the same on every run.

use std::path::{Path, PathBuf};

use ring::signature::Ed25519KeyPair;
use vault_core::export::{ExportWriter, Pin, verify};
use vault_core::log::{Entry, genesis};
use vault_core::merkle;
use vault_core::note::{Checkpoint, VerifierKey};

const ORIGIN: &str = "recording-vault/test-vectors";
/// Fixed Ed25519 seeds: the log key, and another key for the wrong-key case.
const SEED: [u8; 32] = [7; 32];
const OTHER_SEED: [u8; 32] = [9; 32];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/log")
}

fn pair(seed: &[u8; 32]) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(seed).unwrap()
}

#[derive(Clone)]
struct Rec {
    enc: Vec<u8>,
    prev: [u8; 32],
    hash: [u8; 32],
}

fn entry(seq: u64) -> Entry {
    let (actor, action, outcome, reason) = match seq % 5 {
        0 => ("alice", "login", "allowed", ""),
        1 => ("alice", "grant", "allowed", "complaint 2026-117"),
        2 => ("pbx", "upload", "allowed", ""),
        3 => ("bob", "fetch", "allowed", "complaint 2026-117"),
        _ => ("bob", "fetch", "refused", "curious"),
    };
    Entry {
        seq,
        time_ms: 1_780_000_000_000 + seq as i64 * 1000,
        actor: actor.into(),
        action: action.into(),
        case_id: "case_0123456789abcdef0123456789abcdef".into(),
        recording_id: if seq % 5 >= 2 { "rec_00112233445566778899aabbccddeeff".into() } else { String::new() },
        reason: reason.into(),
        outcome: outcome.into(),
        details: if seq % 5 == 4 { r#"{"refusal":"no grant"}"#.into() } else { String::new() },
    }
}

fn chain_of(entries: &[Entry]) -> Vec<Rec> {
    let mut prev = genesis();
    let mut scratch = Vec::new();
    entries
        .iter()
        .map(|e| {
            let hash = e.chain_hash(&prev, &mut scratch);
            let mut enc = Vec::new();
            e.encode_into(&mut enc);
            let r = Rec { enc, prev, hash };
            prev = hash;
            r
        })
        .collect()
}

fn export(recs: &[Rec], cp: &Checkpoint, key: &Ed25519KeyPair) -> Vec<u8> {
    export_with_note(recs, &cp.sign(key))
}

fn export_with_note(recs: &[Rec], note: &str) -> Vec<u8> {
    let mut w = ExportWriter::new(Vec::new(), note).unwrap();
    for r in recs {
        w.entry(&r.enc, &r.prev, &r.hash).unwrap();
    }
    w.finish()
}

fn tree_root(recs: &[Rec]) -> [u8; 32] {
    merkle::root(&recs.iter().map(|r| merkle::leaf_hash(&r.enc)).collect::<Vec<_>>())
}

fn cp_for(recs: &[Rec]) -> Checkpoint {
    Checkpoint { origin: ORIGIN.into(), size: recs.len() as u64, root: tree_root(recs) }
}

/// A pin of the tree of `recs`: `tree SIZE HEX(ROOT)`.
fn pin_text(recs: &[Rec]) -> String {
    format!("tree {} {}\n", recs.len(), hex::encode(tree_root(recs)))
}

/// A pin from before the tree, of the chain's head: `chain SIZE HEX(HASH)`.
fn chain_pin_text(recs: &[Rec]) -> String {
    format!("chain {} {}\n", recs.len(), hex::encode(recs.last().unwrap().hash))
}

/// Every case: (name, export bytes, optional pin, expected).
fn cases() -> Vec<(&'static str, Vec<u8>, Option<String>, &'static str)> {
    let key = pair(&SEED);
    let entries: Vec<Entry> = (0..10).map(entry).collect();
    let good = chain_of(&entries);
    let cp = cp_for(&good);
    let mut out = vec![("ok_ten_entries", export(&good, &cp, &key), None, "ok")];
    out.push(("ok_extends_pin", export(&good, &cp, &key), Some(pin_text(&good[..6])), "ok"));

    let mut modified = good.clone();
    let mut e = entries[4].clone();
    e.reason = "routine check".into();
    modified[4].enc.clear();
    e.encode_into(&mut modified[4].enc);
    out.push(("fail_modified_field", export(&modified, &cp, &key), None, "entry 4: stored hash does not match"));

    let mut deleted = good.clone();
    deleted.remove(5);
    out.push(("fail_deleted_entry", export(&deleted, &cp, &key), None, "entry 5: missing or out of order"));

    let mut reordered = good.clone();
    reordered.swap(3, 4);
    out.push(("fail_reordered_entries", export(&reordered, &cp, &key), None, "entry 3: missing or out of order"));

    // A forged entry 7 chained onto entry 6, the rest renumbered but not re-hashed.
    let mut forged_entries = entries.clone();
    let mut forged = entries[6].clone();
    forged.seq = 7;
    forged.actor = "alice".into();
    forged.action = "revoke".into();
    forged_entries.insert(7, forged);
    for (i, e) in forged_entries.iter_mut().enumerate() {
        e.seq = i as u64;
    }
    let rehashed = chain_of(&forged_entries);
    let mut inserted = rehashed[..8].to_vec();
    for (i, r) in good[7..].iter().enumerate() {
        let mut e = entries[7 + i].clone();
        e.seq += 1;
        let mut enc = Vec::new();
        e.encode_into(&mut enc);
        inserted.push(Rec { enc, ..r.clone() });
    }
    out.push(("fail_inserted_forged_entry", export(&inserted, &cp, &key), None, "entry 8: its prev is not the hash"));
    // The same forgery re-hashed all the way, under the old (genuine) checkpoint...
    out.push(("fail_inserted_and_rehashed", export(&rehashed, &cp, &key), None, "entry 10: beyond the 10 entries"));
    // ...and against a checkpoint the auditor pinned before the forgery.
    out.push((
        "fail_inserted_and_rehashed_against_pin",
        export(&rehashed, &cp, &key),
        Some(pin_text(&good[..8])),
        "entry 7: differs from the checkpoint you verified last",
    ));

    out.push((
        "fail_truncated_tail",
        export_with_note(&good[..8], &cp.sign(&key)),
        None,
        "entry 8: missing; the export ends before the 10 entries",
    ));
    // A database restored from an old backup: genuinely signed, but shorter than the pin.
    out.push((
        "fail_rolled_back",
        export(&good[..7], &cp_for(&good[..7]), &key),
        Some(pin_text(&good)),
        "the log has 7 entries but the checkpoint you verified last covers 10",
    ));
    let forged_note = cp.sign(&key).replacen("\n10\n", "\n11\n", 1);
    out.push((
        "fail_forged_checkpoint",
        export_with_note(&good, &forged_note),
        None,
        "signature by recording-vault/test-vectors is invalid",
    ));
    let other = Checkpoint { origin: ORIGIN.into(), ..cp.clone() };
    out.push((
        "fail_wrong_key_signature",
        export(&good, &other, &pair(&OTHER_SEED)),
        None,
        "carries no signature by key",
    ));
    let mut damaged = export(&good, &cp, &key);
    let n = damaged.len();
    damaged.truncate(n - 40);
    out.push(("fail_cut_off_record", damaged, None, "entry 9 cut off"));
    // Entries altered and the chain re-hashed, under a checkpoint signing another tree.
    let mut other_entries = entries.clone();
    other_entries[2].actor = "mallory".into();
    let rechained = chain_of(&other_entries);
    out.push((
        "fail_altered_and_rechained",
        export(&rechained, &cp, &key),
        None,
        "differs from the signed checkpoint's root",
    ));
    // A signed checkpoint with a root that is not the tree's (the chain is intact).
    let wrong_root = Checkpoint { root: [0x55; 32], ..cp.clone() };
    out.push((
        "fail_root_not_the_tree_head",
        export(&good, &wrong_root, &key),
        None,
        "differs from the signed checkpoint's root",
    ));
    out.push(("ok_carries_over_a_chain_pin", export(&good, &cp, &key), Some(chain_pin_text(&good[..6])), "ok"));
    out.push((
        "fail_rewritten_against_chain_pin",
        export(&rechained, &cp_for(&rechained), &key),
        Some(chain_pin_text(&good[..6])),
        "entry 5: differs from the checkpoint you verified last",
    ));
    out
}

fn parse_pin(text: &str) -> Pin {
    let mut parts = text.split_whitespace();
    let (kind, size, hash) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let mut h = [0u8; 32];
    hex::decode_to_slice(hash, &mut h).unwrap();
    let size = size.parse().unwrap();
    match kind {
        "tree" => Pin::Tree { size, root: h },
        "chain" => Pin::Chain { size, head: h },
        other => panic!("unknown pin kind {other}"),
    }
}

#[test]
#[ignore = "writes the test data files; run when the cases change"]
fn regenerate() {
    let d = dir();
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("key.txt"), VerifierKey::from_pair(ORIGIN, &pair(&SEED)).to_text() + "\n").unwrap();
    for (name, bytes, pin, expect) in cases() {
        std::fs::write(d.join(format!("{name}.export")), bytes).unwrap();
        std::fs::write(d.join(format!("{name}.expect")), format!("{expect}\n")).unwrap();
        if let Some(p) = pin {
            std::fs::write(d.join(format!("{name}.pin")), p).unwrap();
        }
    }
}

#[test]
fn data_files_match_their_generator() {
    for (name, bytes, _, _) in cases() {
        let stored = std::fs::read(dir().join(format!("{name}.export")))
            .unwrap_or_else(|_| panic!("{name}.export missing: run the ignored `regenerate` test"));
        assert!(stored == bytes, "{name}.export is stale: run the ignored `regenerate` test");
    }
}

#[test]
fn every_tamper_case_is_caught_and_names_the_first_bad_entry() {
    let d = dir();
    let key = VerifierKey::parse(&std::fs::read_to_string(d.join("key.txt")).unwrap()).unwrap();
    let mut seen = 0;
    for f in std::fs::read_dir(&d).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_none_or(|e| e != "export") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let expect = std::fs::read_to_string(d.join(format!("{name}.expect"))).unwrap().trim().to_owned();
        let pin = std::fs::read_to_string(d.join(format!("{name}.pin"))).ok().map(|t| parse_pin(&t));
        let result = verify(std::fs::File::open(&path).unwrap(), &key, pin);
        match (name.starts_with("fail_"), result) {
            (false, Ok(v)) => assert_eq!(expect, "ok", "{name}: {v:?}"),
            (true, Err(e)) => assert!(e.to_string().contains(&expect), "{name}: got {e:?}, wanted {expect:?}"),
            (false, Err(e)) => panic!("{name} must verify: {e}"),
            (true, Ok(_)) => panic!("{name} verified, but it is tampered"),
        }
        seen += 1;
    }
    assert!(seen >= 12, "only {seen} cases found");
}

#[test]
fn a_pin_of_the_chain_from_before_the_tree_is_carried_over_by_a_full_verification() {
    let key = pair(&SEED);
    let vk = VerifierKey::from_pair(ORIGIN, &key);
    let entries: Vec<Entry> = (0..10).map(entry).collect();
    let good = chain_of(&entries);
    let pin = parse_pin(&chain_pin_text(&good[..6]));
    let v = verify(&export(&good, &cp_for(&good), &key)[..], &vk, Some(pin)).unwrap();
    assert_eq!(v.checked, 10);
    // A log whose entry 5 differs from the pinned chain head is a rewrite.
    let other = chain_of(&(0..10).map(|s| Entry { reason: "x".into(), ..entry(s) }).collect::<Vec<_>>());
    let err = verify(&export(&other, &cp_for(&other), &key)[..], &vk, Some(pin)).unwrap_err();
    assert!(err.to_string().contains("entry 5: differs from the checkpoint"), "{err}");
}
