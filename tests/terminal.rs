//! End-to-end tests of terminal injection: text that other people wrote (an access
//! reason, a case title, a file name, a notification note) or that the server sends (its
//! error messages) reaches a terminal only with its control characters escaped, so it
//! cannot move the cursor, erase lines, retitle the window or reorder what is shown.
//!
//! Each test plays the attacker with `vault-cli` itself, then reads what the victim's
//! `vault-cli` printed byte by byte.

use vault_tests::{Out, Vault};

/// What an investigator gives as the reason for a fetch: a carriage return and "erase
/// line", then a harmless-looking entry to be seen in place of their own.
const FAKE_REASON: &str = "complaint 17\r\x1b[2K99  2026-01-01 09:00:00  bob  fetch  allowed  routine quality check";
const FAKE_REASON_SHOWN: &str = "complaint 17\\r\\u{1b}[2K99  2026-01-01 09:00:00  bob  fetch  allowed";

/// A case title that would retitle the terminal window (OSC 0 ... BEL) and, with a
/// right-to-left override, show its end reversed.
const TITLE: &str = "Complaints\x1b]0;owned\x07 Q3\u{202E}lanif";
const TITLE_SHOWN: &str = "Complaints\\u{1b}]0;owned\\u{7} Q3\\u{202e}lanif";

/// Asserts that nothing in `out` can steer a terminal: no C0 control but the line feed,
/// no DEL, no C1 control, no bidi control or invisible formatting character.
#[track_caller]
fn assert_clean(what: &str, out: &Out) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let raw: Vec<u8> = text.bytes().filter(|&b| (b < 0x20 && b != b'\n') || b == 0x7f).collect();
        assert!(raw.is_empty(), "{what}: {stream} holds raw control bytes {raw:x?}: {text:?}");
        let hidden: Vec<char> = text
            .chars()
            .filter(|&c| {
                c.is_control() && c != '\n'
                    || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
            })
            .collect();
        assert!(hidden.is_empty(), "{what}: {stream} holds {hidden:?}: {text:?}");
    }
}

/// The stdout of `vault-cli` output that must succeed and be clean.
#[track_caller]
fn clean_ok(what: &str, out: &Out) -> String {
    assert_clean(what, out);
    out.ok();
    out.stdout.clone()
}

#[test]
fn fail_a_reason_title_or_file_name_cannot_steer_the_readers_terminal() {
    let v = Vault::start();
    let alice = v.admin.clone();
    let bob = v.enrol("bob", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    let audrey = v.enrol("audrey", "auditor");

    let case = v.cli(&alice, &["case", "create", "--kind", "customer", "--title", TITLE, "--purpose", "sales"]).ok();
    assert!(case.starts_with("case_"), "{case}");
    // The recorder's file name travels (encrypted) with the recording.
    let file = v.dir.path().join("call\x1b[31m\u{9b}2J.wav");
    std::fs::write(&file, b"a call").unwrap();
    let rec = v.cli(&pbx, &["upload", &case, file.to_str().unwrap(), "--announced", "signal-tone"]).ok();
    assert!(rec.starts_with("rec_"), "{rec}");
    v.cli(&alice, &["grant", &case, "bob", "--reason", "review\x1b[8m hidden\x1b[0m"]).ok();

    // The server takes such a reason as it is and logs it verbatim: the escaping is the
    // printer's job, and `--json` keeps the exact text for scripts.
    let out = v.dir.path().join("out.wav");
    let fetched = v.cli(&bob, &["fetch", &rec, "--reason", FAKE_REASON, "--out", out.to_str().unwrap()]);
    clean_ok("fetch", &fetched);
    assert!(fetched.stderr.contains("uploaded as call\\u{1b}[31m\\u{9b}2J.wav"), "{}", fetched.stderr);
    let (actor, action, outcome, reason, _) = v.last_log();
    assert_eq!((actor.as_str(), action.as_str(), outcome.as_str()), ("bob", "fetch", "allowed"));
    assert_eq!(reason, FAKE_REASON);
    let entries: serde_json::Value =
        serde_json::from_str(&v.cli(&audrey, &["--json", "audit", "log"]).ok()).expect("audit log JSON");
    assert!(entries.as_array().unwrap().iter().any(|e| e["reason"] == FAKE_REASON), "{entries}");

    // The auditor sees bob's fetch with the reason he gave, on his own line.
    let log = clean_ok("audit log", &v.cli(&audrey, &["audit", "log"]));
    let line = log.lines().find(|l| l.contains(FAKE_REASON_SHOWN)).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("  bob  ") && line.contains("  fetch  ") && line.contains(&rec), "{line}");
    assert!(!log.lines().any(|l| l.starts_with("99  2026-01-01")), "a forged line: {log}");
    assert!(log.contains("review\\u{1b}[8m hidden\\u{1b}[0m"), "{log}");

    let list = clean_ok("case list", &v.cli(&audrey, &["case", "list"]));
    assert!(list.lines().any(|l| l.starts_with(&case) && l.ends_with(TITLE_SHOWN)), "{list}");
    let show = clean_ok("case show", &v.cli(&alice, &["case", "show", &case]));
    assert!(show.contains(&format!("title       {TITLE_SHOWN}\n")), "{show}");
    assert!(show.contains("review\\u{1b}[8m hidden\\u{1b}[0m"), "the grant's reason: {show}");
    let names = clean_ok("recordings --names", &v.cli(&bob, &["recordings", &case, "--names"]));
    assert!(names.contains("call\\u{1b}[31m\\u{9b}2J.wav"), "{names}");
}

#[test]
fn fail_covert_case_notes_are_escaped_in_show_and_report() {
    let v = Vault::start();
    let alice = v.admin.clone();
    let args = [
        "case",
        "create",
        "--kind",
        "covert",
        "--title",
        TITLE,
        // DEL and a C1 CSI, which JSON leaves as they are: `case show` prints the basis as JSON.
        "--suspicion",
        "theft\x7f\u{9b}2J",
        "--dpia-ref",
        "DPIA\u{2066}7",
    ];
    let case = v.cli(&alice, &args).ok();
    // Waiting for the AP's approval, the case is in the report.
    let report = clean_ok("report", &v.cli(&alice, &["report"]));
    assert!(report.contains(&format!("{case}  {TITLE_SHOWN}  since")), "{report}");
    v.cli(&alice, &["case", "approve", &case, "--ap-ref", "AP\r\x1b[1A-1"]).ok();
    v.cli(&alice, &["case", "close", &case, "--outcome", "offence"]).ok();
    v.cli(&alice, &["case", "notify", &case, "--defer-until", "2099-01-01", "--reason", "pending\x1b[2J\x1b[H"]).ok();

    let show = clean_ok("case show --reveal", &v.cli(&alice, &["case", "show", &case, "--reveal"]));
    assert!(show.contains("theft\\u{7f}\\u{9b}2J"), "{show}");
    assert!(show.contains("DPIA\\u{2066}7"), "{show}");
    assert!(show.contains("AP approval AP\\r\\u{1b}[1A-1 of "), "{show}");
    assert!(show.contains("deferred until 2099-01-01: pending\\u{1b}[2J\\u{1b}[H"), "{show}");
    let report = clean_ok("report", &v.cli(&alice, &["report"]));
    assert!(report.contains(TITLE_SHOWN), "on legal hold and to be told: {report}");
}

#[test]
fn fail_a_lying_servers_error_message_is_escaped() {
    let mut v = Vault::start();
    let alice = v.admin.clone();
    let _proxy = v.behind_proxy(|req: &vault_tests::proxy::Request, resp: &mut vault_tests::proxy::Response| {
        let message = match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/cases") => "busy\r\x1b[2Kvault-cli: all cases purged\x1b]0;owned\x07",
            ("GET", "/v1/report") => "denied\u{202E}txet desrever\u{9b}1m",
            _ => return,
        };
        resp.status = if req.path == "/v1/report" { 403 } else { 409 };
        resp.set_json(&serde_json::json!({ "error": "conflict", "message": message }));
    });
    let out = v.cli(&alice, &["case", "list"]);
    assert_clean("case list error", &out);
    out.error("busy\\r\\u{1b}[2Kvault-cli: all cases purged\\u{1b}]0;owned\\u{7}");
    let out = v.cli(&alice, &["report"]);
    assert_clean("report refusal", &out);
    out.denied("denied\\u{202e}txet desrever\\u{9b}1m");
}
