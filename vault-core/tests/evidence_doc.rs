//! Checks the worked example of `schema/EVIDENCE.md` against the code, and the custody
//! selection against its definition there.

use vault_core::evidence::{CASE_ACTIONS, custody_digest, is_custody};
use vault_core::log::{Action, Entry};

mod common;

fn entries() -> (Entry, Entry) {
    common::example_entries()
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
