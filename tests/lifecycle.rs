//! End-to-end tests of the rules R1-R7 of SPEC §2: for each, the refusal, the allowed
//! path, and the access-log entry.

use vault_tests::{Backend, Out, Person, Vault, run};

struct W {
    v: Vault,
    alice: Person,
    carol: Person,
    bob: Person,
    pbx: Person,
}

fn world() -> W {
    world_on(Backend::Local, 0)
}

/// The world, keeping recordings in `backend`, its server purging every `secs` (0: not
/// at all).
fn world_on(backend: Backend, secs: u64) -> W {
    let v = Vault::start_on_purging_every(backend, secs);
    let alice = v.admin.clone();
    let carol = v.enrol("carol", "admin");
    let bob = v.enrol("bob", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    W { v, alice, carol, bob, pbx }
}

impl W {
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
                    "DPIA-7",
                ],
            )
            .ok();
        self.v.cli(&self.alice, &["case", "approve", &c, "--ap-ref", "AP-2026-1", "--date", "2026-01-10"]).ok();
        c
    }

    fn upload(&self, case: &str, content: &[u8], extra: &[&str]) -> Out {
        let p = self.v.dir.path().join(format!("u{}", content.len()));
        std::fs::write(&p, content).unwrap();
        let mut args = vec!["upload", case, p.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.v.cli(&self.pbx, &args)
    }

    fn show(&self, case: &str) -> serde_json::Value {
        serde_json::from_str(&self.v.cli(&self.alice, &["--json", "case", "show", case]).ok()).unwrap()
    }

    fn report(&self) -> serde_json::Value {
        serde_json::from_str(&self.v.cli(&self.alice, &["--json", "report"]).ok()).unwrap()
    }

    fn log_actions(&self, case: &str) -> Vec<(String, String)> {
        let db = self.v.db();
        let mut stmt = db.prepare("SELECT action, outcome FROM access_log WHERE case_id = ?1 ORDER BY seq").unwrap();
        stmt.query_map([case], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
    }
}

#[test]
fn r1_r2_cases_need_their_legal_basis_and_announced_recordings() {
    let w = world();
    let a = &w.alice;
    // R1: customer calls need a purpose from the list.
    w.v.cli(a, &["case", "create", "--kind", "customer", "--title", "t"]).error("needs --purpose");
    w.v.cli(a, &["case", "create", "--kind", "customer", "--title", "t", "--purpose", "spying"]).usage("invalid value");
    // R2: employee calls need a reason, works-council consent (or none), the AP informed, a DPIA.
    let base = ["case", "create", "--kind", "employee", "--title", "Call centre"];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    w.v.cli(a, &with(&base, &["--no-works-council", "--ap-informed", "2026-01-05", "--dpia-ref", "D"]))
        .error("needs --reason");
    w.v.cli(a, &with(&base, &["--reason", "quality", "--ap-informed", "2026-01-05", "--dpia-ref", "D"]))
        .error("works council must consent");
    w.v.cli(a, &with(&base, &["--reason", "quality", "--works-council-ref", "WC-3", "--dpia-ref", "D"]))
        .error("AP must be informed");
    w.v.cli(a, &with(&base, &["--reason", "quality", "--works-council-ref", "WC-3", "--ap-informed", "2026-01-05"]))
        .error("requires a DPIA");
    let employee =
        w.v.cli(
            a,
            &with(
                &base,
                &[
                    "--reason",
                    "quality",
                    "--works-council-ref",
                    "WC-3",
                    "--ap-informed",
                    "2026-01-05",
                    "--dpia-ref",
                    "D",
                ],
            ),
        )
        .ok();
    let show = w.show(&employee);
    assert_eq!(show["basis"]["works_council"]["reference"], "WC-3");
    assert_eq!(show["retention_days"], 90, "documented default for employee cases");
    // The server refuses an incomplete basis too, whatever the client sends.
    w.v.cli(a, &["login"]).ok();
    let token = w.v.token(a);
    let body = br#"{"title":"t","retention_days":null,"basis":{"kind":"covert","suspicion":" ","dpia_ref":"D"},"recipient":"x","envelope":"x","id":"case_0123456789abcdef0123456789abcdef","key_statement":{"statement":"x","signatures":[]}}"#;
    let (status, answer) = w.v.raw("POST", "/v1/cases", Some(&token), &[("content-type", "application/json")], body);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("suspicion of a criminal offence"), "{answer}");

    // Unannounced recordings are refused outside covert cases; announced ones are kept.
    w.upload(&employee, b"call", &["--announced", "none"]).error("must have been announced");
    assert_eq!(w.log_actions(&employee).last().unwrap(), &("upload".to_owned(), "refused".to_owned()));
    w.upload(&employee, b"call", &["--announced", "signal-tone"]).ok();
    let customer = w.v.cli(a, &["case", "create", "--kind", "customer", "--title", "Sales", "--purpose", "sales"]).ok();
    w.upload(&customer, b"call", &["--announced", "spoken-notice"]).ok();
}

#[test]
fn r3_covert_cases_take_nothing_before_the_ap_approval() {
    let w = world();
    let c =
        w.v.cli(
            &w.alice,
            &["case", "create", "--kind", "covert", "--title", "F", "--suspicion", "theft", "--dpia-ref", "D"],
        )
        .ok();
    assert_eq!(w.show(&c)["status"], "pending-approval");
    assert_eq!(w.report()["pending_approvals"][0]["id"], c.as_str());
    w.upload(&c, b"too early", &["--announced", "none"]).denied("prior-check approval");
    w.v.cli(&w.bob, &["case", "approve", &c, "--ap-ref", "AP-1"]).denied("needs the role admin");
    w.v.cli(&w.alice, &["case", "approve", &c, "--ap-ref", "AP-1", "--date", "2099-01-01"]).error("in the future");
    w.v.cli(&w.alice, &["case", "approve", &c, "--ap-ref", "AP-1"]).ok();
    w.v.cli(&w.alice, &["case", "approve", &c, "--ap-ref", "AP-1"]).error("not pending approval");
    let show = w.show(&c);
    assert_eq!(show["status"], "open");
    assert_eq!(show["ap_ref"], "AP-1");
    assert!(w.report()["pending_approvals"].as_array().unwrap().is_empty());
    w.upload(&c, b"covert call", &["--announced", "none"]).ok();
    let actions = w.log_actions(&c);
    assert!(actions.contains(&("case-approve".into(), "allowed".into())), "{actions:?}");
}

// Destruction and purge delete ciphertext wherever it is kept: run on each blob store.
vault_tests::on_both_backends!(
    r5_closing_with_no_offence_destroys_everything_at_once,
    r5_a_destruction_interrupted_by_a_crash_completes_at_the_next_start,
    r7_retention_purges_expired_recordings_except_under_legal_hold,
    r7_the_server_purges_in_the_background,
);

fn r5_closing_with_no_offence_destroys_everything_at_once(backend: Backend) {
    let w = world_on(backend, 0);
    let c = w.covert();
    let r1 = w.upload(&c, b"first covert call", &["--announced", "none"]).ok();
    let r2 = w.upload(&c, b"second covert call", &["--announced", "none"]).ok();
    w.v.cli(&w.alice, &["grant", &c, "bob", "--reason", "investigation"]).ok();
    w.v.cli(&w.carol, &["grant", "approve", &c, "bob"]).ok();
    w.v.cli(&w.alice, &["grant", "deliver", &c, "bob"]).ok();
    let out = w.v.dir.path().join("x.wav");
    w.v.cli(&w.bob, &["fetch", &r1, "--reason", "r", "--out", out.to_str().unwrap()]).ok();
    std::fs::remove_file(&out).unwrap();
    // A stray copy of a blob, as a backup would keep.
    let stray = std::fs::read(w.v.blob_path(&r1)).unwrap();
    assert_eq!(w.v.blob_files().len(), 2);

    // Only the right outcome for the kind, only admins.
    w.v.cli(&w.alice, &["case", "close", &c, "--outcome", "completed"]).error("offence or no-offence");
    w.v.cli(&w.bob, &["case", "close", &c, "--outcome", "no-offence"]).denied("needs the role admin");
    w.v.cli(&w.alice, &["case", "close", &c, "--outcome", "no-offence"]).ok();

    let show = w.show(&c);
    assert_eq!(show["status"], "destroyed");
    assert_eq!(show["recordings"], 0);
    let destroyed = show["destroyed"].as_array().unwrap();
    assert_eq!(destroyed.len(), 2);
    assert!(destroyed.iter().all(|d| d["cause"] == "no-offence" && d["destroyed_by"] == "alice"));
    assert!(destroyed.iter().any(|d| d["id"] == r2.as_str() && d["size"].as_u64().unwrap() > 0));
    assert_eq!(w.v.count(&format!("SELECT count(*) FROM envelopes WHERE case_id = '{c}'")), 0, "keys not shredded");
    assert!(!w.v.blob_path(&r1).exists() && !w.v.blob_path(&r2).exists());
    assert!(w.v.blob_files().is_empty(), "ciphertext left: {:?}", w.v.blob_files());
    assert_eq!(w.v.count("SELECT count(*) FROM destroyed_recordings WHERE blob_deleted = 1"), 2);
    // Nothing is served again, and the stray copy opens with no key the vault still holds.
    w.v.cli(&w.bob, &["fetch", &r1, "--reason", "r", "--out", out.to_str().unwrap()]).denied("or it does not exist");
    w.v.cli(&w.bob, &["recordings", &c]).denied("");
    assert!(stray.starts_with(b"age-encryption.org/v1"));
    // The certificate, for people.
    let text = w.v.cli(&w.alice, &["case", "show", &c]).ok();
    assert!(text.contains("DESTRUCTION CERTIFICATE") && text.contains(&r1) && text.contains(&r2), "{text}");
    // The log keeps a destruction record per recording, with its hash, and the closing.
    let actions = w.log_actions(&c);
    assert_eq!(actions.iter().filter(|a| a.0 == "destroy").count(), 2, "{actions:?}");
    let db = w.v.db();
    let details: String = db
        .query_row("SELECT details FROM access_log WHERE action = 'destroy' AND recording_id = ?1", [&r1], |r| r.get(0))
        .unwrap();
    assert!(details.contains("sha256") && details.contains("no-offence"), "{details}");
    w.v.cli(&w.alice, &["case", "close", &c, "--outcome", "no-offence"]).error("already destroyed");
    // Closed cases take no recordings.
    w.upload(&c, b"late", &["--announced", "none"]).denied("closed");
}

fn r5_a_destruction_interrupted_by_a_crash_completes_at_the_next_start(backend: Backend) {
    let mut w = world_on(backend, 0);
    let c = w.covert();
    let r = w.upload(&c, b"covert", &["--announced", "none"]).ok();
    w.v.kill();
    // Simulate a crash after the commit but before the file was deleted: the rows say
    // destroyed, the blob is still on disk.
    let db = w.v.db_rw();
    db.execute_batch(&format!(
        "INSERT INTO destroyed_recordings (recording_id, case_id, sha256, size, key_version, recorded_at, destroyed_at, destroyed_by, cause)
         SELECT id, case_id, sha256, size, key_version, recorded_at, '2026-01-01T00:00:00.000Z', 'alice', 'no-offence' FROM recordings WHERE id = '{r}';
         DELETE FROM recordings WHERE id = '{r}';"
    ))
    .unwrap();
    drop(db);
    assert!(w.v.blob_path(&r).exists());
    w.v.restart();
    assert!(!w.v.blob_path(&r).exists(), "start-up did not finish the destruction");
    assert_eq!(w.v.count("SELECT count(*) FROM destroyed_recordings WHERE blob_deleted = 0"), 0);
}

#[test]
fn r6_the_employee_must_be_told_afterwards() {
    let w = world();
    let c = w.covert();
    w.v.cli(&w.alice, &["case", "notify", &c, "--date", "2026-01-20", "--how", "letter"]).error("no notification duty");
    w.v.cli(&w.alice, &["case", "close", &c, "--outcome", "offence"]).ok();
    let show = w.show(&c);
    assert_eq!(show["notification"]["status"], "outstanding");
    let report = w.report();
    assert_eq!(report["notifications"][0]["case"]["id"], c.as_str());
    // A deferral needs a reason and a future review date.
    w.v.cli(&w.alice, &["case", "notify", &c, "--defer-until", "2020-01-01", "--reason", "r"]).error("after today");
    w.v.cli(&w.alice, &["case", "notify", &c, "--defer-until", "2099-01-01"]).usage("--reason");
    w.v.cli(&w.alice, &["case", "notify", &c, "--defer-until", "2099-01-01", "--reason", "prosecution pending"]).ok();
    assert_eq!(w.show(&c)["notification"]["status"], "deferred");
    // The review date passes: the deferral is due again (the date is moved in the database).
    let db = w.v.db_rw();
    db.execute("UPDATE notifications SET deferred_until = date('now', '-1 day')", []).unwrap();
    assert_eq!(w.report()["notifications"][0]["notification"]["status"], "deferral-due");
    // Overdue without a deferral.
    db.execute("UPDATE notifications SET deferred_until = NULL, due = date('now', '-1 day')", []).unwrap();
    assert_eq!(w.show(&c)["notification"]["status"], "overdue");
    w.v.cli(&w.bob, &["case", "notify", &c, "--date", "2026-01-20", "--how", "letter"]).denied("needs the role admin");
    w.v.cli(&w.alice, &["case", "notify", &c, "--date", "2099-01-20", "--how", "letter"]).error("between the closing");
    let today = chrono_today();
    w.v.cli(&w.alice, &["case", "notify", &c, "--date", &today, "--how", "letter by HR"]).ok();
    assert_eq!(w.show(&c)["notification"]["status"], "told");
    assert!(w.report()["notifications"].as_array().unwrap().is_empty());
    let actions = w.log_actions(&c);
    assert!(actions.contains(&("notify-defer".into(), "allowed".into())), "{actions:?}");
    assert!(actions.contains(&("notify".into(), "allowed".into())), "{actions:?}");
}

fn chrono_today() -> String {
    let out = std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn r7_retention_purges_expired_recordings_except_under_legal_hold(backend: Backend) {
    let w = world_on(backend, 0);
    let a = &w.alice;
    let customer =
        w.v.cli(
            a,
            &["case", "create", "--kind", "customer", "--title", "S", "--purpose", "sales", "--retention-days", "30"],
        )
        .ok();
    let old = w.upload(&customer, b"old call", &["--recorded-at", "2020-01-01T10:00:00Z"]).ok();
    let fresh = w.upload(&customer, b"fresh call", &[]).ok();
    w.upload(&customer, b"future", &["--recorded-at", "2099-01-01T10:00:00Z"]).error("in the future");
    let covert = w.covert();
    let held = w.upload(&covert, b"evidence", &["--announced", "none", "--recorded-at", "2020-01-01T10:00:00Z"]).ok();
    w.v.cli(a, &["case", "close", &covert, "--outcome", "offence"]).ok();
    assert_eq!(w.show(&covert)["legal_hold"], true);

    let report = w.report();
    let due: Vec<&str> =
        report["purges_due"].as_array().unwrap().iter().map(|p| p["case"]["id"].as_str().unwrap()).collect();
    assert_eq!(due, [customer.as_str()], "held cases are not due");
    assert_eq!(report["holds"][0]["id"], covert.as_str());

    // On demand, while the server runs.
    let purge = run(std::process::Command::new(vault_tests::bin("vault-server"))
        .args(["purge", "--data-dir"])
        .arg(w.v.data())
        .args(w.v.store_flags()));
    assert_eq!(purge.ok(), "1");
    assert_eq!(w.v.count(&format!("SELECT count(*) FROM recordings WHERE id = '{old}'")), 0);
    assert!(!w.v.blob_path(&old).exists());
    assert!(w.v.blob_path(&fresh).exists());
    assert_eq!(w.v.count(&format!("SELECT count(*) FROM recordings WHERE id IN ('{fresh}', '{held}')")), 2);
    let db = w.v.db();
    let actor: String = db
        .query_row("SELECT actor FROM access_log WHERE action = 'purge' AND recording_id = ?1", [&old], |r| r.get(0))
        .unwrap();
    assert_eq!(actor, "vault-server purge");
    assert_eq!(w.show(&customer)["destroyed"][0]["cause"], "retention");

    // Releasing the hold lets retention apply; the server's own purge task takes it.
    w.v.cli(&w.bob, &["case", "release-hold", &covert, "--reason", "verdict final"]).denied("needs the role admin");
    w.v.cli(a, &["case", "release-hold", &covert, "--reason", "verdict final"]).ok();
    w.v.cli(a, &["case", "release-hold", &covert, "--reason", "again"]).error("not on legal hold");
    let purge = run(std::process::Command::new(vault_tests::bin("vault-server"))
        .args(["purge", "--data-dir"])
        .arg(w.v.data())
        .args(w.v.store_flags()));
    assert_eq!(purge.ok(), "1");
    assert_eq!(w.v.count(&format!("SELECT count(*) FROM recordings WHERE id = '{held}'")), 0);
    assert!(!w.v.blob_path(&held).exists());
    // The chain stays valid through purges by another process.
    let verify = run(std::process::Command::new(vault_tests::bin("vault-server"))
        .args(["verify", "--data-dir"])
        .arg(w.v.data())
        .args(w.v.store_flags()));
    assert!(verify.ok().starts_with("ok: "));
}

fn r7_the_server_purges_in_the_background(backend: Backend) {
    let w = world_on(backend, 1);
    let a = &w.alice;
    let customer = w.v.cli(a, &["case", "create", "--kind", "customer", "--title", "S", "--purpose", "sales"]).ok();
    let old = w.upload(&customer, b"old call", &["--recorded-at", "2020-01-01T10:00:00Z"]).ok();
    // This test's server purges every second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // Done once its ciphertext is deleted, which the certificate records.
    while w
        .v
        .count(&format!("SELECT count(*) FROM destroyed_recordings WHERE recording_id = '{old}' AND blob_deleted = 1"))
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "the background purge did not run");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let actor: String =
        w.v.db().query_row("SELECT actor FROM access_log WHERE action = 'purge'", [], |r| r.get(0)).unwrap();
    assert_eq!(actor, "system");
    assert!(!w.v.blob_path(&old).exists(), "the purge left the ciphertext");
}

#[test]
fn the_report_counts_cases_and_recordings_per_kind() {
    let w = world();
    let a = &w.alice;
    let customer = w.v.cli(a, &["case", "create", "--kind", "customer", "--title", "S", "--purpose", "sales"]).ok();
    w.upload(&customer, b"one", &[]).ok();
    w.upload(&customer, b"two!", &[]).ok();
    w.covert();
    w.v.cli(&w.bob, &["report"]).denied("needs the role admin");
    let totals = w.report()["totals"].clone();
    let by_kind = |k: &str| totals.as_array().unwrap().iter().find(|t| t["kind"] == k).unwrap().clone();
    assert_eq!(by_kind("customer")["cases"], 1);
    assert_eq!(by_kind("customer")["recordings"], 2);
    assert_eq!(by_kind("covert")["cases"], 1);
    assert_eq!(by_kind("employee")["cases"], 0);
    let text = w.v.cli(a, &["report"]).ok();
    assert!(text.contains("Covert cases waiting") && text.contains("KIND"), "{text}");
}

#[test]
fn the_suspicion_is_sealed_to_the_case_and_revealed_to_custodians_only() {
    let w = world();
    let c =
        w.v.cli(
            &w.alice,
            &[
                "case",
                "create",
                "--kind",
                "covert",
                "--title",
                "F",
                "--suspicion",
                "SUSPICION-MARKER theft by J.",
                "--dpia-ref",
                "D",
            ],
        )
        .ok();
    assert!(
        vault_tests::grep_dir(&w.v.data(), b"SUSPICION-MARKER").is_empty(),
        "the suspicion is readable on the server"
    );
    let shown = w.v.cli(&w.alice, &["case", "show", &c]).ok();
    assert!(shown.contains("sealed to the case key") && !shown.contains("SUSPICION-MARKER"), "{shown}");
    let revealed = w.v.cli(&w.alice, &["case", "show", &c, "--reveal"]).ok();
    assert!(revealed.contains("SUSPICION-MARKER theft by J."), "{revealed}");
    // Not for an admin who holds no key of the case; the attempt is logged.
    w.v.cli(&w.carol, &["case", "show", &c, "--reveal"]).denied("not a custodian");
    assert_eq!(w.log_actions(&c).last().unwrap(), &("case-key".to_owned(), "refused".to_owned()));
    // After a key rotation the custodian still opens it (sealed under version 1).
    w.v.cli(&w.alice, &["case", "approve", &c, "--ap-ref", "AP-9"]).ok();
    w.v.cli(&w.alice, &["case", "rotate-key", &c]).ok();
    let revealed = w.v.cli(&w.alice, &["case", "show", &c, "--reveal"]).ok();
    assert!(revealed.contains("SUSPICION-MARKER"), "{revealed}");
}
