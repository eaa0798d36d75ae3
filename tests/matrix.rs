//! The authorisation matrix of SPEC §6 as data, checked against the real server.
//!
//! Two tables. `ROLE_MATRIX`: every API route against every kind of caller, where the
//! answer depends on the role (and custodianship) alone. `GRANT_MATRIX`: the routes that
//! read a case's recordings, against every state a caller's access can be in. Each cell
//! says `allow` or `deny`; a denied request must answer 401/403 *and* leave a refused
//! entry in the access log; an allowed one must not be refused for lack of rights
//! (its body may still be rejected as malformed: these requests are not meant to change
//! anything).

use vault_tests::{Person, Vault};

/// Callers of the role matrix.
const CALLERS: [&str; 6] = ["custodian", "admin", "investigator", "auditor", "recorder", "anonymous"];

/// (method, path, body, expected per caller in CALLERS order). `{case}` is an open
/// customer case whose custodian is `custodian`, `{rec}` one of its recordings,
/// `{target}` a spare investigator. `investigator` has an active grant on `{case}`.
const ROLE_MATRIX: &[(&str, &str, &str, [&str; 6])] = &[
    // users: admins only
    ("GET", "/v1/users", "", ["allow", "allow", "deny", "deny", "deny", "deny"]),
    ("POST", "/v1/users", "{}", ["allow", "allow", "deny", "deny", "deny", "deny"]),
    ("GET", "/v1/users/{target}", "", ["allow", "allow", "deny", "deny", "deny", "deny"]),
    ("POST", "/v1/users/nosuchuser/disable", "", ["allow", "allow", "deny", "deny", "deny", "deny"]),
    (
        "POST",
        "/v1/users/nosuchuser/approve",
        r#"{"signature":"x"}"#,
        ["allow", "allow", "deny", "deny", "deny", "deny"],
    ),
    // the trust root and enrolments: anyone signed in
    ("GET", "/v1/trust", "", ["allow", "allow", "allow", "allow", "allow", "deny"]),
    // cases: admins create and approve; everyone but recorders may list what they may see
    ("GET", "/v1/cases", "", ["allow", "allow", "allow", "allow", "deny", "deny"]),
    ("POST", "/v1/cases", "{}", ["allow", "allow", "deny", "deny", "deny", "deny"]),
    ("GET", "/v1/cases/{case}", "", ["allow", "allow", "allow", "allow", "deny", "deny"]),
    ("POST", "/v1/cases/{case}/approve", "{}", ["allow", "allow", "deny", "deny", "deny", "deny"]),
    // reopening a case on legal hold: any admin requests, a second admin approves
    ("POST", "/v1/cases/{case}/reopen", r#"{"reason":"r"}"#, ["allow", "allow", "deny", "deny", "deny", "deny"]),
    ("POST", "/v1/cases/{case}/reopen/approve", "", ["allow", "allow", "deny", "deny", "deny", "deny"]),
    // keys: custodians only
    ("GET", "/v1/cases/{case}/key", "", ["allow", "deny", "deny", "deny", "deny", "deny"]),
    (
        "POST",
        "/v1/cases/{case}/custodians",
        r#"{"admin":"admin","envelopes":[],"statement":{"statement":"x","signatures":[]}}"#,
        ["allow", "deny", "deny", "deny", "deny", "deny"],
    ),
    (
        "POST",
        "/v1/cases/{case}/rotate",
        r#"{"from_version":1,"recipient":"x","envelopes":[],"key_statement":{"statement":"x","signatures":[]}}"#,
        ["allow", "deny", "deny", "deny", "deny", "deny"],
    ),
    // grants: custodians grant, any admin approves or revokes
    (
        "POST",
        "/v1/cases/{case}/grants",
        r#"{"user":"target","reason":"r","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#,
        ["allow", "deny", "deny", "deny", "deny", "deny"],
    ),
    ("POST", "/v1/cases/{case}/grants/target/approve", "", ["allow", "allow", "deny", "deny", "deny", "deny"]),
    (
        "POST",
        "/v1/cases/{case}/grants/target/revoke",
        r#"{"reason":"r"}"#,
        ["allow", "allow", "deny", "deny", "deny", "deny"],
    ),
    // recordings: recorders upload and read nothing; reading needs a grant (auditors: metadata)
    ("GET", "/v1/cases/{case}/recipient", "", ["deny", "deny", "deny", "deny", "allow", "deny"]),
    (
        "POST",
        "/v1/cases/{case}/recordings?announced=signal-tone",
        "not age",
        ["deny", "deny", "deny", "deny", "allow", "deny"],
    ),
    (
        "POST",
        "/v1/recordings/{rec}/signature",
        r#"{"statement":{"statement":"x","signatures":[]}}"#,
        ["deny", "deny", "deny", "deny", "allow", "deny"],
    ),
    ("GET", "/v1/cases/{case}/recordings", "", ["deny", "deny", "allow", "allow", "deny", "deny"]),
    ("GET", "/v1/cases/{case}/envelopes", "", ["deny", "deny", "allow", "deny", "deny", "deny"]),
    ("POST", "/v1/recordings/{rec}/fetch", r#"{"reason":"matrix"}"#, ["deny", "deny", "allow", "deny", "deny", "deny"]),
    // the access log: auditors only
    ("GET", "/v1/audit/checkpoint", "", ["deny", "deny", "deny", "allow", "deny", "deny"]),
    ("GET", "/v1/audit/export", "", ["deny", "deny", "deny", "allow", "deny", "deny"]),
    ("GET", "/v1/audit/entries", "", ["deny", "deny", "deny", "allow", "deny", "deny"]),
];

/// States a grantable caller's access to a case can be in. `held`: an active grant on a
/// covert case closed with outcome `offence`, on legal hold; `released`: the same once
/// the hold is released.
const STATES: [&str; 10] =
    ["none", "pending", "active", "expired", "revoked", "disabled", "closed", "destroyed", "held", "released"];

/// (route, caller role, expected per state in STATES order). Admins and investigators
/// read recordings only with an active grant on a live case, or on a case on legal hold;
/// an investigator sees a case's metadata while a grant is pending or active; auditors
/// are not grantable and covered by the role matrix.
#[rustfmt::skip]
const GRANT_MATRIX: &[(&str, &str, [&str; 10])] = &[
    ("recordings", "investigator", ["deny", "deny", "allow", "deny", "deny", "deny", "deny", "deny", "allow", "deny"]),
    ("recordings", "admin", ["deny", "deny", "allow", "deny", "deny", "deny", "deny", "deny", "allow", "deny"]),
    ("fetch", "investigator", ["deny", "deny", "allow", "deny", "deny", "deny", "deny", "deny", "allow", "deny"]),
    ("fetch", "admin", ["deny", "deny", "allow", "deny", "deny", "deny", "deny", "deny", "allow", "deny"]),
    ("envelopes", "investigator", ["deny", "deny", "allow", "deny", "deny", "deny", "deny", "deny", "allow", "deny"]),
    ("envelopes", "admin", ["deny", "deny", "allow", "deny", "deny", "deny", "deny", "deny", "allow", "deny"]),
    ("show", "investigator", ["deny", "allow", "allow", "allow", "deny", "deny", "allow", "allow", "allow", "allow"]),
    ("show", "admin", ["allow", "allow", "allow", "allow", "allow", "deny", "allow", "allow", "allow", "allow"]),
];

fn token(v: &Vault, who: &Person) -> String {
    v.cli(who, &["login"]).ok();
    v.token(who)
}

/// Sends one request and checks the cell.
#[track_caller]
fn check(v: &Vault, who: &str, token: Option<&str>, method: &str, path: &str, body: &str, expect: &str) {
    let before = v.log_len();
    let headers: &[(&str, &str)] = if body.starts_with('{') { &[("content-type", "application/json")] } else { &[] };
    let (status, answer) = v.raw(method, path, token, headers, body.as_bytes());
    let cell = format!("{method} {path} as {who}: expected {expect}, got {status} {answer}");
    match expect {
        "allow" => assert!(status != 401 && status != 403 && status != 0, "{cell}"),
        "deny" => {
            assert!(status == 401 || status == 403, "{cell}");
            assert!(v.log_len() > before, "{cell}: refusal not logged");
            let (_, _, outcome, _, _) = v.last_log();
            assert_eq!(outcome, "refused", "{cell}");
        }
        other => panic!("bad cell {other}"),
    }
}

#[test]
fn role_matrix() {
    let v = Vault::start();
    let custodian = v.admin.clone();
    let people: Vec<Person> = vec![
        custodian.clone(),
        v.enrol("admin", "admin"),
        v.enrol("investigator", "investigator"),
        v.enrol("auditor", "auditor"),
        v.enrol("recorder", "recorder"),
    ];
    v.enrol("target", "investigator");
    let case = v.cli(&custodian, &["case", "create", "--kind", "customer", "--title", "M", "--purpose", "sales"]).ok();
    let file = v.dir.path().join("m.wav");
    std::fs::write(&file, b"matrix").unwrap();
    let rec = v.cli(&people[4], &["upload", &case, file.to_str().unwrap()]).ok();
    v.cli(&custodian, &["grant", &case, "investigator", "--reason", "matrix"]).ok();
    let tokens: Vec<Option<String>> = people.iter().map(|p| Some(token(&v, p))).chain(std::iter::once(None)).collect();
    for (method, path, body, expected) in ROLE_MATRIX {
        let path = path.replace("{case}", &case).replace("{rec}", &rec).replace("{target}", "target");
        for (i, who) in CALLERS.iter().enumerate() {
            check(&v, who, tokens[i].as_deref(), method, &path, body, expected[i]);
        }
    }
    // Nothing above changed who holds what.
    // (The five callers with accounts, the spare investigator, and the second initial admin.)
    assert_eq!(v.count("SELECT count(*) FROM users WHERE enabled = 1"), 7);
    assert_eq!(v.count("SELECT count(*) FROM recordings"), 1);
    assert_eq!(v.count("SELECT count(*) FROM grants"), 1);
}

#[test]
fn grant_matrix() {
    let v = Vault::start();
    let custodian = v.admin.clone();
    let carol = v.enrol("carol", "admin"); // approves covert grants
    let recorder = v.enrol("recorder", "recorder");
    let file = v.dir.path().join("g.wav");
    std::fs::write(&file, b"grant matrix").unwrap();
    let db = v.db_rw();

    // One case per state and role, so that states cannot leak into each other.
    let mut cells = Vec::new();
    for role in ["investigator", "admin"] {
        for state in STATES {
            let name = format!("{}-{state}", &role[..3]);
            let who = v.enrol(&name, role);
            let covert = matches!(state, "pending" | "held" | "released");
            let case = if covert {
                let c = v
                    .cli(
                        &custodian,
                        &["case", "create", "--kind", "covert", "--title", "C", "--suspicion", "s", "--dpia-ref", "D"],
                    )
                    .ok();
                v.cli(&custodian, &["case", "approve", &c, "--ap-ref", "AP"]).ok();
                c
            } else {
                v.cli(&custodian, &["case", "create", "--kind", "customer", "--title", "C", "--purpose", "sales"]).ok()
            };
            let rec = v.cli(&recorder, &["upload", &case, file.to_str().unwrap(), "--announced", "signal-tone"]).ok();
            let tok = token(&v, &who);
            if state != "none" {
                v.cli(&custodian, &["grant", &case, &name, "--reason", "matrix"]).ok();
            }
            match state {
                "expired" => {
                    db.execute("UPDATE grants SET until = date('now', '-1 day') WHERE grantee = ?1", [&name]).unwrap();
                }
                "revoked" => v.cli(&custodian, &["revoke", &case, &name, "--reason", "matrix"]).ok().truncate(0),
                "disabled" => v.cli(&carol, &["user", "disable", &name]).ok().truncate(0),
                // Closing and destruction come with the case lifecycle; the policy that
                // guards reads is what is checked here.
                "closed" | "destroyed" => {
                    db.execute("UPDATE cases SET status = ?2 WHERE id = ?1", [&case, state]).unwrap();
                }
                // Legal hold, through the lifecycle: a usable covert grant, then the closing.
                "held" | "released" => {
                    v.cli(&carol, &["grant", "approve", &case, &name]).ok();
                    v.cli(&custodian, &["grant", "deliver", &case, &name]).ok();
                    v.cli(&custodian, &["case", "close", &case, "--outcome", "offence"]).ok();
                    if state == "released" {
                        v.cli(&custodian, &["case", "release-hold", &case, "--reason", "matrix"]).ok();
                    }
                }
                _ => {}
            }
            cells.push((role, state, name, tok, case, rec));
        }
    }
    for (route, role, expected) in GRANT_MATRIX {
        for (i, state) in STATES.iter().enumerate() {
            let (_, _, name, tok, case, rec) = cells.iter().find(|c| c.0 == *role && c.1 == *state).unwrap();
            let (method, path, body) = match *route {
                "recordings" => ("GET", format!("/v1/cases/{case}/recordings"), ""),
                "fetch" => ("POST", format!("/v1/recordings/{rec}/fetch"), r#"{"reason":"matrix"}"#),
                "envelopes" => ("GET", format!("/v1/cases/{case}/envelopes"), ""),
                _ => ("GET", format!("/v1/cases/{case}"), ""),
            };
            check(&v, name, Some(tok), method, &path, body, expected[i]);
        }
    }
    // Refusals say why, in words.
    for (state, why) in [
        ("pending", "second admin"),
        ("expired", "expired after"),
        ("revoked", "was revoked"),
        ("closed", "is closed"),
        ("released", "legal hold was released"),
    ] {
        let (_, _, _, tok, _, rec) = cells.iter().find(|c| c.0 == "investigator" && c.1 == state).unwrap();
        let (_, body) = v.raw(
            "POST",
            &format!("/v1/recordings/{rec}/fetch"),
            Some(tok),
            &[("content-type", "application/json")],
            br#"{"reason":"r"}"#,
        );
        assert!(body.contains(why), "{state}: {body}");
    }
}
