//! Checks that the worked example in `schema/TRUST.md` is what the code computes, so the
//! document an auditor writes their own verifier from cannot drift from the vault.

use std::str::FromStr;

use age::secrecy::ExposeSecret;
use vault_core::trust::{Enrol, PublicId, Root, Signed, SigningKey, Statement};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/TRUST.md")).unwrap()
}

/// The value after `label` on the line of the document that starts with it.
fn value(doc: &str, label: &str) -> String {
    doc.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("TRUST.md lacks a line starting with {label:?}"))
        .trim()
        .to_owned()
}

/// The identity whose 32 secret bytes are all `b`.
fn identity(b: u8) -> age::x25519::Identity {
    let hrp = bech32::Hrp::parse("AGE-SECRET-KEY-").unwrap();
    let text = bech32::encode_upper::<bech32::Bech32>(hrp, &[b; 32]).unwrap();
    age::x25519::Identity::from_str(&text).unwrap()
}

/// The example: alice (0x42) and bob (0x43) are the root; alice enrols ivan (0x44).
struct Example {
    alice: age::x25519::Identity,
    ids: [(&'static str, PublicId); 3],
    root: Root,
    enrol: Enrol,
    signed: Signed,
}

fn example() -> Example {
    let key = |b: u8| SigningKey::from_identity(&identity(b));
    let ids = [("alice", key(0x42).public_id()), ("bob", key(0x43).public_id()), ("ivan", key(0x44).public_id())];
    let root = Root::new(
        "recording-vault/0123456789abcdef".into(),
        vec![(ids[0].0.parse().unwrap(), ids[0].1.clone()), (ids[1].0.parse().unwrap(), ids[1].1.clone())],
    )
    .unwrap();
    let enrol = Enrol {
        vault: root.vault.clone(),
        name: "ivan".parse().unwrap(),
        role: vault_core::api::Role::Investigator,
        id: ids[2].1.clone(),
        by: "alice".parse().unwrap(),
        at: "2026-11-29T10:00:00.000Z".into(),
    };
    let signed = Signed::sign(&enrol, &key(0x42));
    Example { alice: identity(0x42), ids, root, enrol, signed }
}

/// The example's values, one `label: value` line each, as TRUST.md writes them.
fn labelled(x: &Example) -> Vec<(String, String)> {
    let mut v = vec![
        ("alice's identity:".to_owned(), x.alice.to_string().expose_secret().to_owned()),
        ("alice's recipient:".to_owned(), x.alice.to_public().to_string()),
        ("alice's Ed25519 public key:".to_owned(), hex::encode(x.ids[0].1.verify_key())),
    ];
    for (name, id) in &x.ids {
        v.push((format!("{name}'s public id:"), id.to_string()));
    }
    v.push(("fingerprint:".to_owned(), x.root.fingerprint()));
    v.push(("alice's signature:".to_owned(), x.signed.signatures[0].sig.clone()));
    v
}

#[test]
fn the_worked_example_is_what_the_code_computes() {
    let (doc, x) = (doc(), example());
    for (label, expected) in labelled(&x) {
        assert_eq!(value(&doc, &label), expected, "{label}");
    }
    let (root, text) = (x.root.text(), x.enrol.text());
    assert!(doc.contains(&format!("```\n{root}```")), "the root in TRUST.md differs from:\n{root}");
    assert!(doc.contains(&format!("```\n{text}```")), "the statement in TRUST.md differs from:\n{text}");
    assert!(doc.contains(&format!("all {} bytes including the final", text.len())), "the statement's length");
    let json = serde_json::to_string(&x.signed).unwrap();
    assert!(doc.contains(&json), "the signed statement's JSON in TRUST.md differs from:\n{json}");
    // And it verifies with the public id alone, as written in the document.
    let id = PublicId::from_str(&value(&doc, "alice's public id:")).unwrap();
    assert!(x.signed.signature_verifies(0, &id));
}

#[test]
#[ignore = "prints the worked example's values, to write TRUST.md"]
fn print_the_worked_example() {
    let x = example();
    for (label, value) in labelled(&x) {
        println!("{label} {value}");
    }
    print!("{}{}", x.root.text(), x.enrol.text());
    println!("{}", serde_json::to_string(&x.signed).unwrap());
}
