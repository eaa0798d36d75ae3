//! Checks that the worked example in `schema/WITNESS.md` is what the code computes, so
//! the document a witness operator or an auditor writes their own code from cannot drift
//! from the vault. `schema/witness_example.py` checks the same values with independent
//! code.

use std::str::FromStr;

use age::secrecy::ExposeSecret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::Ed25519KeyPair;
use vault_core::cosign::{self, Cosigner};
use vault_core::merkle::{self, Hash};
use vault_core::note::VerifierKey;
use vault_core::witness::{self, AddCheckpoint, TreeHead};

const ORIGIN: &str = "recording-vault/0123456789abcdef";
const NAME: &str = "witness.example.org/dpo";
const T1: u64 = 1_795_000_000;
const T2: u64 = 1_795_000_060;

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/WITNESS.md")).unwrap()
}

/// The value after `label` on the line of the document that starts with it.
fn value(doc: &str, label: &str) -> String {
    doc.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("WITNESS.md lacks a line starting with {label:?}"))
        .trim()
        .to_owned()
}

/// The identity whose 32 secret bytes are all `b`.
fn identity(b: u8) -> age::x25519::Identity {
    let hrp = bech32::Hrp::parse("AGE-SECRET-KEY-").unwrap();
    let text = bech32::encode_upper::<bech32::Bech32>(hrp, &[b; 32]).unwrap();
    age::x25519::Identity::from_str(&text).unwrap()
}

fn log_pair() -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[0x4c; 32]).unwrap()
}

fn leaves() -> Vec<Hash> {
    (0..5).map(|i| merkle::leaf_hash(format!("entry {i}").as_bytes())).collect()
}

fn text(size: usize) -> String {
    format!("{ORIGIN}\n{size}\n{}\n", B64.encode(merkle::root(&leaves()[..size])))
}

struct Example {
    witness: Cosigner,
    first: AddCheckpoint,
    second: AddCheckpoint,
    line1: String,
    line2: String,
}

fn example() -> Example {
    let witness = Cosigner::from_identity(NAME, &identity(0x57)).unwrap();
    let keys = [VerifierKey::from_pair(ORIGIN, &log_pair())];
    let first =
        AddCheckpoint { old_size: 0, proof: vec![], checkpoint: vault_core::note::sign(&text(3), ORIGIN, &log_pair()) };
    let a = witness::check(&first, &keys, None).unwrap();
    let line1 = a.cosign(&witness, T1).unwrap();
    let second = AddCheckpoint {
        old_size: 3,
        proof: merkle::consistency_proof(&leaves()[..], 3, 5).unwrap(),
        checkpoint: vault_core::note::sign(&text(5), ORIGIN, &log_pair()),
    };
    let b = witness::check(&second, &keys, Some(TreeHead { size: 3, root: merkle::root(&leaves()[..3]) })).unwrap();
    let line2 = b.cosign(&witness, T2).unwrap();
    Example { witness, first, second, line1, line2 }
}

fn labelled(x: &Example) -> Vec<(&'static str, String)> {
    let key = x.witness.verifier();
    vec![
        ("log's Ed25519 seed:", hex::encode([0x4c; 32])),
        ("log's verifier key:", VerifierKey::from_pair(ORIGIN, &log_pair()).to_text()),
        ("witness's identity:", identity(0x57).to_string().expose_secret().to_owned()),
        ("witness's Ed25519 public key:", hex::encode(key.public)),
        ("witness's key hash:", hex::encode(key.key_hash())),
        ("witness's verifier key:", key.to_text()),
        ("root of 3:", B64.encode(merkle::root(&leaves()[..3]))),
        ("root of 5:", B64.encode(merkle::root(&leaves()))),
        ("first cosignature:", x.line1.trim_end().to_owned()),
        ("second cosignature:", x.line2.trim_end().to_owned()),
    ]
}

#[test]
fn the_worked_example_is_what_the_code_computes() {
    let (doc, x) = (doc(), example());
    for (label, expected) in labelled(&x) {
        assert_eq!(value(&doc, label), expected, "{label}");
    }
    for block in [
        x.first.to_body(),
        x.second.to_body(),
        String::from_utf8(cosign::signed_message(T1, &text(3))).unwrap(),
        format!("{}{}", x.second.checkpoint, x.line2),
    ] {
        assert!(doc.contains(&format!("```\n{block}```")), "WITNESS.md lacks the block:\n{block}");
    }
    let message = cosign::signed_message(T1, &text(3));
    assert!(doc.contains(&format!("these {} bytes:", message.len())), "the signed message's length");
    assert!(doc.contains(&format!("`{}`, the timestamp", hex::encode(T1.to_be_bytes()))));
    // As written in the document, the cosigned checkpoint verifies with the witness key.
    let key = cosign::WitnessKey::parse(&value(&doc, "witness's verifier key:")).unwrap();
    let note = format!("{}{}", x.second.checkpoint, x.line2);
    assert_eq!(cosign::verify(&note, &[key]).unwrap()[0].timestamp, T2);
}

#[test]
#[ignore = "prints the worked example's values, to write WITNESS.md"]
fn print_the_worked_example() {
    let x = example();
    for (label, value) in labelled(&x) {
        println!("{label} {value}");
    }
    println!("---\n{}---", x.first.to_body());
    println!("---\n{}---", String::from_utf8(cosign::signed_message(T1, &text(3))).unwrap());
    println!("---\n{}---", x.second.to_body());
    println!("---\n{}{}---", x.second.checkpoint, x.line2);
}
