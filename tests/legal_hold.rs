//! End-to-end tests of legal hold and reopening (issue 14, point 5): on a covert case
//! closed with outcome `offence`, grantees with an active grant still fetch the evidence
//! (logged, with their reason and the hold marked); nothing new comes in until one admin
//! requests reopening and a second admin approves it. Every refusal is checked too, with
//! its access-log entry; refusal tests are named `fail_...`.

use vault_tests::{Out, Person, Vault};

struct W {
    v: Vault,
    alice: Person,
    carol: Person,
    bob: Person,
    eve: Person,
    audrey: Person,
    pbx: Person,
}

fn world() -> W {
    let v = Vault::start();
    let alice = v.admin.clone();
    let carol = v.enrol("carol", "admin");
    let bob = v.enrol("bob", "investigator");
    let eve = v.enrol("eve", "investigator");
    let audrey = v.enrol("audrey", "auditor");
    let pbx = v.enrol("pbx", "recorder");
    W { v, alice, carol, bob, eve, audrey, pbx }
}

/// The last access-log entry of `action` by `actor`: (outcome, case, reason, details).
type LogRow = (String, String, String, String);

impl W {
    /// A covert case with the AP's approval recorded, created by alice (its custodian).
    fn covert(&self) -> String {
        let c = self
            .v
            .cli(
                &self.alice,
                &[
                    "case",
                    "create",
                    "--kind",
                    "covert",
                    "--title",
                    "Fraud",
                    "--suspicion",
                    "theft",
                    "--dpia-ref",
                    "D-7",
                ],
            )
            .ok();
        self.v.cli(&self.alice, &["case", "approve", &c, "--ap-ref", "AP-2026-1"]).ok();
        c
    }

    fn upload(&self, case: &str, content: &[u8]) -> Out {
        self.upload_with(case, content, &[])
    }

    fn upload_with(&self, case: &str, content: &[u8], extra: &[&str]) -> Out {
        let p = self.v.dir.path().join(format!("call-{}.wav", self.v.log_len()));
        std::fs::write(&p, content).unwrap();
        let mut args = vec!["upload", case, p.to_str().unwrap(), "--announced", "none"];
        args.extend_from_slice(extra);
        self.v.cli(&self.pbx, &args)
    }

    /// A covert grant made usable: alice grants, carol approves (four eyes), alice (the
    /// custodian) delivers the key.
    fn grant_covert(&self, case: &str, user: &str) {
        self.v.cli(&self.alice, &["grant", case, user, "--reason", "investigation"]).ok();
        self.v.cli(&self.carol, &["grant", "approve", case, user]).ok();
        self.v.cli(&self.alice, &["grant", "deliver", case, user]).ok();
    }

    /// A covert case on legal hold: one recording of `EVIDENCE`, made long before the
    /// case's retention period (only the hold keeps it), bob granted, closed with outcome
    /// `offence`. Returns (case, recording).
    fn held(&self) -> (String, String) {
        let c = self.covert();
        let r = self.upload_with(&c, EVIDENCE, &["--recorded-at", "2020-01-01T10:00:00Z"]).ok();
        self.grant_covert(&c, "bob");
        self.v.cli(&self.alice, &["case", "close", &c, "--outcome", "offence"]).ok();
        assert_eq!(self.show(&c)["legal_hold"], true);
        (c, r)
    }

    /// `who` fetches `rec` into a fresh file; returns the result and the file.
    fn fetch(&self, who: &Person, rec: &str, reason: &str) -> (Out, std::path::PathBuf) {
        let out = self.v.dir.path().join(format!("fetched-{}-{}", who.name, self.v.log_len()));
        (self.v.cli(who, &["fetch", rec, "--reason", reason, "--out", out.to_str().unwrap()]), out)
    }

    fn show(&self, case: &str) -> serde_json::Value {
        serde_json::from_str(&self.v.cli(&self.alice, &["--json", "case", "show", case]).ok()).unwrap()
    }

    fn report(&self) -> serde_json::Value {
        serde_json::from_str(&self.v.cli(&self.alice, &["--json", "report"]).ok()).unwrap()
    }

    fn last(&self, action: &str, actor: &str) -> LogRow {
        self.v
            .db()
            .query_row(
                "SELECT outcome, case_id, reason, details FROM access_log WHERE action = ?1 AND actor = ?2
                 ORDER BY seq DESC LIMIT 1",
                [action, actor],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap_or_else(|e| panic!("no {action} entry by {actor}: {e}"))
    }

    /// Asserts that the last entry of `action` by `actor` is a refusal about `case`.
    #[track_caller]
    fn refused(&self, action: &str, actor: &str, case: &str) {
        let (outcome, logged_case, _, details) = self.last(action, actor);
        assert_eq!((outcome.as_str(), logged_case.as_str()), ("refused", case), "{action} by {actor}: {details}");
    }
}

const EVIDENCE: &[u8] = b"the covert call that proves the theft";

fn today_plus(days: i64) -> String {
    let out = std::process::Command::new("date").args(["-u", "-d", &format!("{days} days"), "+%Y-%m-%d"]).output();
    String::from_utf8(out.unwrap().stdout).unwrap().trim().to_owned()
}

#[test]
fn a_grantee_fetches_evidence_under_legal_hold_logged_with_reason_and_hold() {
    let w = world();
    let (c, r) = w.held();
    let (out, file) = w.fetch(&w.bob, &r, "court file 2026-44");
    out.ok();
    assert_eq!(std::fs::read(&file).unwrap(), EVIDENCE, "the plaintext is not what was recorded");
    let (outcome, case, reason, details) = w.last("fetch", "bob");
    assert_eq!((outcome.as_str(), case.as_str(), reason.as_str()), ("allowed", c.as_str(), "court file 2026-44"));
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(details["legal_hold"], true, "{details}");
    assert!(details["sha256"].is_string(), "{details}");

    // They can find what to fetch: the listing, and the file names (their own envelopes).
    let listed = w.v.cli(&w.bob, &["recordings", &c, "--names"]).ok();
    assert!(listed.contains(&r), "{listed}");
    let (outcome, _, _, details) = w.last("recording-list", "bob");
    assert_eq!(outcome, "allowed");
    assert!(details.contains(r#""legal_hold":true"#), "{details}");
    let (outcome, _, _, details) = w.last("case-envelopes", "bob");
    assert_eq!(outcome, "allowed");
    assert!(details.contains(r#""legal_hold":true"#), "{details}");

    // The hold is what the compliance report shows.
    let report = w.report();
    assert_eq!(report["holds"][0]["id"], c.as_str());
    let text = w.v.cli(&w.alice, &["report"]).ok();
    assert!(text.contains("Cases on legal hold (R7): 1") && text.contains(&c), "{text}");

    // A fetch from an ordinary open case carries no hold mark.
    let open = w.covert();
    let r2 = w.upload(&open, b"another call").ok();
    w.grant_covert(&open, "bob");
    w.fetch(&w.bob, &r2, "routine").0.ok();
    assert!(!w.last("fetch", "bob").3.contains("legal_hold"));
}

#[test]
fn fail_fetch_under_legal_hold_without_an_active_grant() {
    let w = world();
    let c = w.covert();
    let r = w.upload(&c, EVIDENCE).ok();
    let dave = w.v.enrol("dave", "investigator");
    let frank = w.v.enrol("frank", "investigator");
    let gina = w.v.enrol("gina", "investigator");
    for who in ["bob", "dave", "frank"] {
        w.grant_covert(&c, who);
    }
    // gina's grant is requested but never approved before the case closes.
    w.v.cli(&w.alice, &["grant", &c, "gina", "--reason", "late"]).ok();
    w.v.cli(&w.alice, &["case", "close", &c, "--outcome", "offence"]).ok();
    // Revoking still works under hold: it takes access away.
    w.v.cli(&w.carol, &["revoke", &c, "dave", "--reason", "left the team"]).ok();
    w.v.db_rw().execute("UPDATE grants SET until = date('now', '-1 day') WHERE grantee = 'frank'", []).unwrap();

    let refusals: [(&Person, &str); 4] = [
        (&w.eve, "no grant on this case"),
        (&dave, "was revoked"),
        (&frank, "expired after"),
        (&gina, "waiting for a second admin"),
    ];
    for (who, why) in refusals {
        let (out, file) = w.fetch(who, &r, "curious");
        out.denied(why);
        assert!(!file.exists(), "{} got a file", who.name);
        w.refused("fetch", &who.name, &c);
        w.v.cli(who, &["recordings", &c]).denied(why);
        w.refused("recording-list", &who.name, &c);
    }
    // Auditors and recorders never fetch.
    w.fetch(&w.audrey, &r, "audit").0.denied("needs the role");
    w.fetch(&w.pbx, &r, "pbx").0.denied("needs the role");
    // The grantee with an active grant still can.
    w.fetch(&w.bob, &r, "trial").0.ok();
}

#[test]
fn fail_fetch_on_cases_closed_completed_or_no_offence() {
    let w = world();
    // no-offence: destroyed at once (R5), nothing is served again.
    let c = w.covert();
    let r = w.upload(&c, EVIDENCE).ok();
    w.grant_covert(&c, "bob");
    w.v.cli(&w.alice, &["case", "close", &c, "--outcome", "no-offence"]).ok();
    w.fetch(&w.bob, &r, "r").0.denied("or it does not exist");
    w.refused("fetch", "bob", "");
    w.v.cli(&w.bob, &["recordings", &c]).denied("");
    w.refused("recording-list", "bob", &c);

    // completed (an employee case): closed, so refused as before, saying why.
    let e =
        w.v.cli(
            &w.alice,
            &[
                "case",
                "create",
                "--kind",
                "employee",
                "--title",
                "Call centre",
                "--reason",
                "quality",
                "--no-works-council",
                "--ap-informed",
                "2026-01-05",
                "--dpia-ref",
                "D",
            ],
        )
        .ok();
    let p = w.v.dir.path().join("employee.wav");
    std::fs::write(&p, b"an announced call").unwrap();
    let r = w.v.cli(&w.pbx, &["upload", &e, p.to_str().unwrap(), "--announced", "signal-tone"]).ok();
    w.v.cli(&w.alice, &["grant", &e, "bob", "--reason", "quality review"]).ok();
    w.fetch(&w.bob, &r, "before closing").0.ok();
    w.v.cli(&w.alice, &["case", "close", &e, "--outcome", "completed"]).ok();
    assert_eq!(w.show(&e)["legal_hold"], false);
    let (out, file) = w.fetch(&w.bob, &r, "after closing");
    out.denied("the case is closed");
    assert!(!file.exists());
    w.refused("fetch", "bob", &e);
    w.v.cli(&w.bob, &["recordings", &e]).denied("the case is closed");
    w.refused("recording-list", "bob", &e);
}

#[test]
fn fail_fetch_after_the_hold_is_released() {
    let w = world();
    let (c, r) = w.held();
    w.fetch(&w.bob, &r, "before release").0.ok();
    w.v.cli(&w.alice, &["case", "release-hold", &c, "--reason", "verdict final"]).ok();
    // An ordinary closed case now: nothing is released, and it says why.
    let (out, file) = w.fetch(&w.bob, &r, "after release");
    out.denied("legal hold was released");
    assert!(!file.exists());
    w.refused("fetch", "bob", &c);
    w.v.cli(&w.bob, &["recordings", &c]).denied("legal hold was released");
    w.refused("recording-list", "bob", &c);
    assert!(w.report()["holds"].as_array().unwrap().is_empty());
}

#[test]
fn fail_nothing_new_on_a_case_on_legal_hold() {
    let w = world();
    let c = w.covert();
    w.upload(&c, EVIDENCE).ok();
    // Grants requested before the closing: one waits for approval, one for its key.
    w.v.cli(&w.alice, &["grant", &c, "bob", "--reason", "r"]).ok();
    w.v.cli(&w.alice, &["grant", &c, "eve", "--reason", "r"]).ok();
    w.v.cli(&w.carol, &["grant", "approve", &c, "eve"]).ok();
    w.v.cli(&w.alice, &["case", "close", &c, "--outcome", "offence"]).ok();
    let hint = "case reopen";

    w.upload(&c, b"a late call").denied("takes no new recordings");
    w.upload(&c, b"a late call").denied(hint);
    w.refused("case-recipient", "pbx", &c);
    let dave = w.v.enrol("dave", "investigator");
    w.v.cli(&w.alice, &["grant", &c, &dave.name, "--reason", "r"]).error("no new grants");
    w.refused("grant", "alice", &c);
    w.v.cli(&w.carol, &["grant", "approve", &c, "bob"]).error("no grant is approved on a closed case");
    w.refused("grant-approve", "carol", &c);
    w.v.cli(&w.alice, &["grant", "deliver", &c, "eve"]).error("no key is delivered on a closed case");
    w.refused("grant-deliver", "alice", &c);
    w.v.cli(&w.alice, &["case", "rotate-key", &c]).error("no longer rotated");
    w.refused("rotate-key", "alice", &c);
    w.v.cli(&w.alice, &["case", "add-custodian", &c, "carol"]).error("no custodian is added to a closed case");
    w.refused("add-custodian", "alice", &c);
    w.v.cli(&w.alice, &["case", "add-custodian", &c, "carol"]).error(hint);

    // Nothing changed: one recording, no envelope for bob, eve or dave, one custodian.
    let show = w.show(&c);
    assert_eq!((show["recordings"].as_u64(), show["key_version"].as_u64()), (Some(1), Some(1)));
    assert_eq!(show["custodians"].as_array().unwrap().len(), 1);
    let holders = w.v.count(&format!("SELECT count(*) FROM envelopes WHERE case_id = '{c}' AND holder <> 'alice'"));
    assert_eq!(holders, 0);
    w.fetch(&w.eve, &w.v.db().query_row("SELECT id FROM recordings", [], |r| r.get::<_, String>(0)).unwrap(), "r")
        .0
        .denied("waiting for a custodian to deliver the key");
}

#[test]
fn reopening_needs_a_second_admin_then_the_case_takes_recordings_and_grants_again() {
    let w = world();
    let (c, r) = w.held();
    let root2 = w.v.second.clone();

    // Not for people who are not admins.
    for who in [&w.bob, &w.audrey, &w.pbx] {
        w.v.cli(who, &["case", "reopen", &c, "--reason", "new evidence"]).denied("needs the role admin");
        w.refused("case-reopen", &who.name, &c);
    }
    w.v.cli(&w.alice, &["case", "reopen", &c, "--reason", " "]).error("--reason must not be empty");
    w.refused("case-reopen", "alice", &c);
    // Nothing to approve before someone asks.
    w.v.cli(&w.carol, &["case", "reopen", "approve", &c]).error("no request to reopen this case waits");
    w.refused("case-reopen-approve", "carol", &c);

    // One admin's request leaves the case closed: nothing new comes in, the evidence stays readable.
    w.v.cli(&w.alice, &["case", "reopen", &c, "--reason", "a second suspect came forward"]).ok();
    let (outcome, _, reason, _) = w.last("case-reopen", "alice");
    assert_eq!((outcome.as_str(), reason.as_str()), ("allowed", "a second suspect came forward"));
    let show = w.show(&c);
    assert_eq!((show["status"].as_str(), show["legal_hold"].as_bool()), (Some("closed"), Some(true)));
    assert_eq!(show["reopenings"][0]["requested_by"], "alice");
    assert!(show["reopenings"][0]["approved_by"].is_null());
    w.upload(&c, b"too early").denied("takes no new recordings");
    w.v.cli(&w.alice, &["grant", &c, "eve", "--reason", "r"]).error("no new grants");
    w.fetch(&w.bob, &r, "still on hold").0.ok();
    assert_eq!(w.report()["reopen_requests"][0]["case"]["id"], c.as_str());
    let text = w.v.cli(&w.alice, &["report"]).ok();
    assert!(text.contains("waiting for a second admin: 1"), "{text}");

    // One request at a time.
    w.v.cli(&w.alice, &["case", "reopen", &c, "--reason", "again"]).error("a second admin must approve it");
    w.refused("case-reopen", "alice", &c);
    w.v.cli(&w.carol, &["case", "reopen", &c, "--reason", "me too"]).error("alice requested reopening");
    w.refused("case-reopen", "carol", &c);

    // Four eyes: not the requester, not someone who is not an admin.
    w.v.cli(&w.alice, &["case", "reopen", "approve", &c]).denied("four eyes");
    w.refused("case-reopen-approve", "alice", &c);
    for who in [&w.bob, &w.audrey, &w.pbx] {
        w.v.cli(who, &["case", "reopen", "approve", &c]).denied("needs the role admin");
        w.refused("case-reopen-approve", &who.name, &c);
    }
    assert_eq!(w.show(&c)["status"], "closed");

    // The second admin approves: open again, without outcome or hold.
    w.v.cli(&w.carol, &["case", "reopen", "approve", &c]).ok();
    let (outcome, _, _, details) = w.last("case-reopen-approve", "carol");
    assert_eq!(outcome, "allowed");
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(details["requested_by"], "alice");
    assert_eq!(details["request_reason"], "a second suspect came forward");
    let show = w.show(&c);
    assert_eq!(show["status"], "open");
    assert!(show["outcome"].is_null() && show["closed_at"].is_null(), "{show}");
    // The hold stays: retention purges none of the evidence while the case is open again.
    assert_eq!(show["legal_hold"], true);
    let purge = vault_tests::run(
        std::process::Command::new(vault_tests::bin("vault-server")).args(["purge", "--data-dir"]).arg(w.v.data()),
    );
    assert_eq!(purge.ok(), "0");
    assert_eq!(w.v.count(&format!("SELECT count(*) FROM recordings WHERE id = '{r}'")), 1);
    assert_eq!(show["reopenings"][0]["approved_by"], "carol");
    assert_eq!(show["reopenings"][0]["closed_outcome"], "offence");
    assert_eq!(show["reopenings"][0]["closed_by"], "alice");
    let text = w.v.cli(&w.carol, &["case", "show", &c]).ok();
    assert!(text.contains("approved by carol") && text.contains("by alice with outcome offence"), "{text}");
    // The duty to tell the employee stays on record (R6); its telling waits for the next
    // closing, deferring it is allowed.
    assert_eq!(show["notification"]["status"], "outstanding");
    let today = today_plus(0);
    w.v.cli(&w.alice, &["case", "notify", &c, "--date", &today, "--how", "letter"]).error("reopened");
    w.v.cli(&w.alice, &["case", "notify", &c, "--defer-until", &today_plus(60), "--reason", "reopened"]).ok();
    let report = w.report();
    assert_eq!(report["holds"][0]["id"], c.as_str());
    assert!(report["reopen_requests"].as_array().unwrap().is_empty());
    // The evidence of the first closing is not destroyed behind the hold's back.
    w.v.cli(&w.alice, &["case", "close", &c, "--outcome", "no-offence"]).error("on legal hold");
    w.refused("case-close", "alice", &c);
    w.v.cli(&root2, &["case", "reopen", "approve", &c]).error("only a closed case can be reopened");

    // It takes recordings and grants again; the old grantee still reads.
    let r2 = w.upload(&c, b"the second suspect's call").ok();
    w.grant_covert(&c, "eve");
    let (out, file) = w.fetch(&w.eve, &r2, "second suspect");
    out.ok();
    assert_eq!(std::fs::read(file).unwrap(), b"the second suspect's call");
    w.fetch(&w.bob, &r, "back at work").0.ok();
    assert!(!w.last("fetch", "bob").3.contains("legal_hold"), "the case is open, not on hold");

    // Closed again with offence: on hold again, with the duty as it was (deferred).
    w.v.cli(&w.alice, &["case", "close", &c, "--outcome", "offence"]).ok();
    let show = w.show(&c);
    assert_eq!((show["status"].as_str(), show["legal_hold"].as_bool()), (Some("closed"), Some(true)));
    assert_eq!(show["notification"]["status"], "deferred");
    w.upload(&c, b"too late").denied("takes no new recordings");
    w.fetch(&w.eve, &r2, "trial").0.ok();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&w.last("fetch", "eve").3).unwrap()["legal_hold"], true);

    // The chain holds through all of it.
    let verify = vault_tests::run(
        std::process::Command::new(vault_tests::bin("vault-server")).args(["verify", "--data-dir"]).arg(w.v.data()),
    );
    assert!(verify.ok().starts_with("ok: "));
}

#[test]
fn fail_reopen_of_a_case_that_is_not_on_legal_hold() {
    let w = world();
    let refuse = |case: &str, why: &str| {
        w.v.cli(&w.alice, &["case", "reopen", case, "--reason", "r"]).error(why);
        w.refused("case-reopen", "alice", case);
        w.v.cli(&w.carol, &["case", "reopen", "approve", case]).error(why);
        w.refused("case-reopen-approve", "carol", case);
    };
    // Open, and pending approval.
    let open = w.covert();
    refuse(&open, "only a closed case can be reopened");
    let pending = w
        .v
        .cli(&w.alice, &["case", "create", "--kind", "covert", "--title", "P", "--suspicion", "s", "--dpia-ref", "D"])
        .ok();
    refuse(&pending, "only a closed case can be reopened");
    // no-offence: destroyed.
    let destroyed = w.covert();
    w.upload(&destroyed, EVIDENCE).ok();
    w.v.cli(&w.alice, &["case", "close", &destroyed, "--outcome", "no-offence"]).ok();
    refuse(&destroyed, "were destroyed (R5); it cannot be reopened");
    // completed: its purpose has ended.
    let customer =
        w.v.cli(&w.alice, &["case", "create", "--kind", "customer", "--title", "S", "--purpose", "sales"]).ok();
    w.v.cli(&w.alice, &["case", "close", &customer, "--outcome", "completed"]).ok();
    refuse(&customer, "outcome completed, which ends its purpose");
    // offence, but the hold was released.
    let (released, _) = w.held();
    w.v.cli(&w.alice, &["case", "release-hold", &released, "--reason", "verdict final"]).ok();
    refuse(&released, "legal hold was released");
    // offence and on hold, but the employee was told (R6).
    let (told, _) = w.held();
    w.v.cli(&w.alice, &["case", "notify", &told, "--date", &today_plus(0), "--how", "letter"]).ok();
    refuse(&told, "the employee was told");
    // Every refusal says what to do instead.
    w.v.cli(&w.alice, &["case", "reopen", &customer, "--reason", "r"]).error("vault-cli case create");
    // Nothing was reopened or requested.
    for c in [&open, &pending, &destroyed, &customer, &released, &told] {
        assert!(w.show(c)["reopenings"].as_array().unwrap().is_empty(), "{c}");
    }
    assert_eq!(w.show(&told)["status"], "closed");
}

#[test]
fn fail_a_request_by_an_admin_disabled_since_does_not_count() {
    let w = world();
    let (c, _) = w.held();
    let dan = w.v.enrol("dan", "admin");
    w.v.cli(&dan, &["case", "reopen", &c, "--reason", "trust me"]).ok();
    w.v.cli(&w.alice, &["user", "disable", "dan"]).ok();
    // carol's approval would be the second pair of eyes on a request nobody stands behind.
    w.v.cli(&w.carol, &["case", "reopen", "approve", &c]).error("has been disabled since");
    w.refused("case-reopen-approve", "carol", &c);
    assert_eq!(w.show(&c)["status"], "closed");
    // An enabled admin's new request replaces it; its author still cannot approve it.
    w.v.cli(&w.carol, &["case", "reopen", &c, "--reason", "new evidence"]).ok();
    let (_, _, _, details) = w.last("case-reopen", "carol");
    assert!(details.contains(r#""replaces_request_of":"dan""#), "{details}");
    w.v.cli(&w.carol, &["case", "reopen", "approve", &c]).denied("four eyes");
    assert_eq!(w.show(&c)["status"], "closed");
    w.v.cli(&w.alice, &["case", "reopen", "approve", &c]).ok();
    let show = w.show(&c);
    assert_eq!(show["status"], "open");
    let requests: Vec<&str> =
        show["reopenings"].as_array().unwrap().iter().map(|o| o["requested_by"].as_str().unwrap()).collect();
    assert_eq!(requests, ["carol"], "the stale request is gone, the log keeps it");
}

#[test]
fn fail_releasing_the_hold_drops_a_waiting_request() {
    let w = world();
    let (c, _) = w.held();
    w.v.cli(&w.alice, &["case", "reopen", &c, "--reason", "new evidence"]).ok();
    w.v.cli(&w.carol, &["case", "release-hold", &c, "--reason", "verdict final"]).ok();
    assert!(w.last("release-hold", "carol").3.contains(r#""reopen_request_dropped":"alice""#));
    w.v.cli(&w.carol, &["case", "reopen", "approve", &c]).error("legal hold was released");
    w.refused("case-reopen-approve", "carol", &c);
    assert_eq!(w.show(&c)["status"], "closed");
    assert!(w.report()["reopen_requests"].as_array().unwrap().is_empty());
}

#[test]
fn fail_reopen_once_no_enabled_custodian_holds_the_key() {
    let w = world();
    // dan creates the case, so he is its only custodian.
    let dan = w.v.enrol("dan", "admin");
    let c =
        w.v.cli(&dan, &["case", "create", "--kind", "covert", "--title", "F", "--suspicion", "s", "--dpia-ref", "D"])
            .ok();
    w.v.cli(&dan, &["case", "approve", &c, "--ap-ref", "AP-1"]).ok();
    let r = w.upload(&c, EVIDENCE).ok();
    w.v.cli(&dan, &["grant", &c, "bob", "--reason", "investigation"]).ok();
    w.v.cli(&w.carol, &["grant", "approve", &c, "bob"]).ok();
    w.v.cli(&dan, &["grant", "deliver", &c, "bob"]).ok();
    // While the case is open, its only custodian cannot leave.
    w.v.cli(&w.alice, &["user", "disable", "dan"]).error("only custodian");
    w.v.cli(&dan, &["case", "close", &c, "--outcome", "offence"]).ok();
    // Closed, it needs no custodian (nobody grants on it), and none can be added.
    w.v.cli(&dan, &["case", "add-custodian", &c, "carol"]).error("no custodian is added to a closed case");
    w.v.cli(&w.alice, &["user", "disable", "dan"]).ok();
    // The grantee keeps reading the evidence with its own envelope...
    let (out, file) = w.fetch(&w.bob, &r, "trial");
    out.ok();
    assert_eq!(std::fs::read(file).unwrap(), EVIDENCE);
    // ...but the case cannot be reopened: nobody could grant on it again.
    w.v.cli(&w.alice, &["case", "reopen", &c, "--reason", "new evidence"]).error("no enabled admin is a custodian");
    w.refused("case-reopen", "alice", &c);
}

/// `vault-server log-key` of the test vault.
fn log_key(v: &Vault) -> String {
    vault_tests::run(
        std::process::Command::new(vault_tests::bin("vault-server")).args(["log-key", "--data-dir"]).arg(v.data()),
    )
    .ok()
}

#[test]
fn a_grantee_exports_evidence_under_legal_hold_for_the_prosecutor() {
    let w = world();
    let (c, r) = w.held();
    let key = log_key(&w.v);
    let prosecutor = w.v.keygen("prosecutor");
    let out = w.v.dir.path().join("court.evidence");
    let args = [
        "evidence",
        "export",
        &r,
        "--reason",
        "handed to the public prosecutor, file 2026-44",
        "--to",
        &prosecutor.age_recipient(),
        "--out",
        out.to_str().unwrap(),
        "--server-key",
        &key,
    ];
    w.v.cli(&w.bob, &args).ok();
    let (outcome, case, reason, details) = w.last("evidence-export", "bob");
    assert_eq!((outcome.as_str(), case.as_str()), ("allowed", c.as_str()));
    assert_eq!(reason, "handed to the public prosecutor, file 2026-44");
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(details["legal_hold"], true, "{details}");
    assert_eq!(details["to"], prosecutor.age_recipient().as_str());
    // The court checks it without the server.
    let report = w.v.cli(&w.audrey, &["evidence", "verify", out.to_str().unwrap(), "--server-key", &key]).ok();
    assert!(report.contains("case-close") && report.contains("evidence-export"), "{report}");
}

#[test]
fn fail_evidence_export_after_the_hold_is_released() {
    let w = world();
    let (c, r) = w.held();
    let key = log_key(&w.v);
    w.v.cli(&w.alice, &["case", "release-hold", &c, "--reason", "verdict final"]).ok();
    let out = w.v.dir.path().join("late.evidence");
    w.v.cli(
        &w.bob,
        &["evidence", "export", &r, "--reason", "late", "--out", out.to_str().unwrap(), "--server-key", &key],
    )
    .denied("legal hold was released");
    assert!(!out.exists());
    w.refused("fetch", "bob", &c);
}
