//! The two entries of the worked example in `schema/LOG-FORMAT.md` §6, which
//! `EVIDENCE.md`'s example builds on too.

use vault_core::log::Entry;

pub fn example_entries() -> (Entry, Entry) {
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
