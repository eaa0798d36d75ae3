//! Checks that the worked example in `schema/TRUST.md` is what the code computes, so the
//! document an auditor writes their own verifier from cannot drift from the vault.

use std::str::FromStr;

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

#[test]
fn the_worked_example_is_what_the_code_computes() {
    let doc = doc();
    let (alice, bob, ivan) = (identity(0x42), identity(0x43), identity(0x44));
    let key = |i: &age::x25519::Identity| SigningKey::from_identity(i);
    // Identities and keys.
    use age::secrecy::ExposeSecret;
    assert_eq!(value(&doc, "alice's identity:"), alice.to_string().expose_secret());
    assert_eq!(value(&doc, "alice's recipient:"), alice.to_public().to_string());
    assert_eq!(value(&doc, "alice's Ed25519 public key:"), hex::encode(key(&alice).public_id().verify_key()));
    assert_eq!(value(&doc, "alice's public id:"), key(&alice).public_id().to_string());
    assert_eq!(value(&doc, "bob's public id:"), key(&bob).public_id().to_string());
    assert_eq!(value(&doc, "ivan's public id:"), key(&ivan).public_id().to_string());
    // The root.
    let root = Root::new(
        "recording-vault/0123456789abcdef".into(),
        vec![("alice".parse().unwrap(), key(&alice).public_id()), ("bob".parse().unwrap(), key(&bob).public_id())],
    )
    .unwrap();
    assert!(doc.contains(&format!("```\n{}```", root.text())), "the root in TRUST.md differs from:\n{}", root.text());
    assert_eq!(value(&doc, "fingerprint:"), root.fingerprint());
    // A statement and its signature.
    let e = Enrol {
        vault: root.vault.clone(),
        name: "ivan".parse().unwrap(),
        role: vault_core::api::Role::Investigator,
        id: key(&ivan).public_id(),
        by: "alice".parse().unwrap(),
        at: "2026-11-29T10:00:00.000Z".into(),
    };
    assert!(doc.contains(&format!("```\n{}```", e.text())), "the statement in TRUST.md differs from:\n{}", e.text());
    assert!(doc.contains(&format!("all {} bytes including the final", e.text().len())), "the statement's length");
    let signed = Signed::sign(&e, &key(&alice));
    assert_eq!(value(&doc, "alice's signature:"), signed.signatures[0].sig);
    let json = serde_json::to_string(&signed).unwrap();
    assert!(doc.contains(&json), "the signed statement's JSON in TRUST.md differs from:\n{json}");
    // And it verifies with the public id alone.
    let id = PublicId::from_str(&value(&doc, "alice's public id:")).unwrap();
    assert!(signed.signature_verifies(0, &id));
}

#[test]
#[ignore = "prints the worked example's values, to write TRUST.md"]
fn print_the_worked_example() {
    let (alice, bob, ivan) = (identity(0x42), identity(0x43), identity(0x44));
    let key = |i: &age::x25519::Identity| SigningKey::from_identity(i);
    use age::secrecy::ExposeSecret;
    println!("alice's identity: {}", alice.to_string().expose_secret());
    println!("alice's recipient: {}", alice.to_public());
    println!("alice's Ed25519 public key: {}", hex::encode(key(&alice).public_id().verify_key()));
    println!("alice's public id: {}", key(&alice).public_id());
    println!("bob's public id: {}", key(&bob).public_id());
    println!("ivan's public id: {}", key(&ivan).public_id());
    let root = Root::new(
        "recording-vault/0123456789abcdef".into(),
        vec![("alice".parse().unwrap(), key(&alice).public_id()), ("bob".parse().unwrap(), key(&bob).public_id())],
    )
    .unwrap();
    print!("{}", root.text());
    println!("fingerprint: {}", root.fingerprint());
    let e = Enrol {
        vault: root.vault.clone(),
        name: "ivan".parse().unwrap(),
        role: vault_core::api::Role::Investigator,
        id: key(&ivan).public_id(),
        by: "alice".parse().unwrap(),
        at: "2026-11-29T10:00:00.000Z".into(),
    };
    print!("{}", e.text());
    let signed = Signed::sign(&e, &key(&alice));
    println!("alice's signature: {}", signed.signatures[0].sig);
    println!("{}", serde_json::to_string(&signed).unwrap());
}
