//! Checks the worked example of `schema/EVIDENCE.md` against the code, and the custody
//! selection against its definition there.

use vault_core::evidence::{CASE_ACTIONS, custody_digest, is_custody};
use vault_core::log::{Action, Entry};

fn entries() -> (Entry, Entry) {
    let e0 = Entry {
        seq: 0,
        time_ms: 1_780_000_000_000,
        actor: "alice".into(),
        action: "init".into(),
        case_id: String::new(),
        recording_id: String::new(),
        reason: String::new(),
        outcome: "allowed".into(),
        details: r#"{"admin":"alice"}"#.into(),
    };
    let e1 = Entry {
        seq: 1,
        time_ms: 1_780_000_001_500,
        actor: "bob".into(),
        action: "fetch".into(),
        case_id: "case_0123456789abcdef0123456789abcdef".into(),
        recording_id: "rec_00112233445566778899aabbccddeeff".into(),
        reason: "complaint 117".into(),
        outcome: "refused".into(),
        details: String::new(),
    };
    (e0, e1)
}

#[test]
fn the_custody_digest_example_is_what_the_code_computes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/EVIDENCE.md")).unwrap();
    let (e0, e1) = entries();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    e0.encode_into(&mut a);
    e1.encode_into(&mut b);
    let digest = custody_digest([a.as_slice(), b.as_slice()]);
    assert!(doc.contains(&format!("custody_digest  {digest}")), "EVIDENCE.md's example is not {digest}");
}

#[test]
fn custody_is_the_recording_and_the_case_events_named_in_the_format() {
    let (_, fetch) = entries();
    let (case, rec) = (fetch.case_id.clone(), fetch.recording_id.clone());
    assert!(is_custody(&fetch, &case, &rec), "a refused fetch of the recording is custody");
    let grant = Entry { action: "grant".into(), recording_id: String::new(), ..fetch.clone() };
    assert!(is_custody(&grant, &case, &rec));
    let listing = Entry { action: "recording-list".into(), recording_id: String::new(), ..fetch.clone() };
    assert!(!is_custody(&listing, &case, &rec), "a listing is not");
    let other_case = Entry { case_id: "case_ffffffffffffffffffffffffffffffff".into(), ..grant.clone() };
    assert!(!is_custody(&other_case, &case, &rec));
    // Every case action named is a real action, and the document lists each.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/EVIDENCE.md")).unwrap();
    for a in CASE_ACTIONS {
        assert!(Action::ALL.iter().any(|x| x.as_str() == *a), "{a} is not an action");
        assert!(doc.contains(&format!("`{a}`")), "EVIDENCE.md does not name {a}");
    }
}
