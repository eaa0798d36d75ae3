//! End-to-end tests of grants over time and the case key's lifecycle: expiry,
//! custodians, disabling, revocation and rotation.

use vault_tests::{Person, Vault};

struct W {
    v: Vault,
    alice: Person,
    carol: Person,
    bob: Person,
    dave: Person,
    pbx: Person,
    case: String,
}

fn world() -> W {
    let v = Vault::start();
    let alice = v.admin.clone();
    let carol = v.enrol("carol", "admin");
    let bob = v.enrol("bob", "investigator");
    let dave = v.enrol("dave", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    let case = v.cli(&alice, &["case", "create", "--kind", "customer", "--title", "Q", "--purpose", "quality"]).ok();
    W { v, alice, carol, bob, dave, pbx, case }
}

impl W {
    fn upload(&self, content: &[u8]) -> String {
        let p = self.v.dir.path().join(format!("in-{}", content.len()));
        std::fs::write(&p, content).unwrap();
        self.v.cli(&self.pbx, &["upload", &self.case, p.to_str().unwrap()]).ok()
    }

    fn fetch(&self, who: &Person, rec: &str) -> vault_tests::Out {
        let out = self.v.dir.path().join(format!("out-{}-{}", who.name, vault_tests_counter()));
        let o = self.v.cli(who, &["fetch", rec, "--reason", "review", "--out", out.to_str().unwrap()]);
        if o.code == 0 {
            assert!(out.exists());
        } else {
            assert!(!out.exists(), "a refused fetch wrote {}", out.display());
        }
        o
    }

    fn grant_status(&self, user: &str) -> String {
        let show: serde_json::Value =
            serde_json::from_str(&self.v.cli(&self.alice, &["--json", "case", "show", &self.case]).ok()).unwrap();
        show["grants"].as_array().unwrap().iter().find(|g| g["user"] == user).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn vault_tests_counter() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

#[test]
fn an_expired_grant_refuses_at_once() {
    let w = world();
    let rec = w.upload(b"call");
    let until = chrono_today_plus(30);
    w.v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "r", "--until", &until]).ok();
    w.fetch(&w.bob, &rec).ok();
    assert_eq!(w.grant_status("bob"), "active");
    // Time passes: the grant's last day is now yesterday (edited in the database, the
    // only clock the server trusts for dates).
    let db = w.v.db_rw();
    db.execute("UPDATE grants SET until = date('now', '-1 day') WHERE grantee = 'bob'", []).unwrap();
    w.fetch(&w.bob, &rec).denied("expired after");
    w.v.cli(&w.bob, &["recordings", &w.case]).denied("expired after");
    assert_eq!(w.grant_status("bob"), "expired");
    // A grant that would end in the past is refused outright.
    w.v.cli(&w.alice, &["grant", &w.case, "dave", "--reason", "r", "--until", "2020-01-01"]).error("in the past");
}

/// A grantee whose grant expired gets no new key version at rotation, and a pending covert
/// grant gets none either: envelopes exist only for grants that are usable.
#[test]
fn rotation_wraps_only_to_usable_grants() {
    let w = world();
    let until = chrono_today_plus(30);
    w.v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "r", "--until", &until]).ok();
    w.v.cli(&w.alice, &["grant", &w.case, "dave", "--reason", "r"]).ok();
    let db = w.v.db_rw();
    db.execute("UPDATE grants SET until = date('now', '-1 day') WHERE grantee = 'bob'", []).unwrap();
    w.v.cli(&w.alice, &["case", "rotate-key", &w.case]).ok();
    let holders = |version: i64| -> Vec<String> {
        let mut st =
            db.prepare("SELECT holder FROM envelopes WHERE case_id = ?1 AND version = ?2 ORDER BY holder").unwrap();
        st.query_map(rusqlite::params![w.case, version], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(holders(1), ["alice", "bob", "dave"]);
    assert_eq!(holders(2), ["alice", "dave"], "an expired grantee received the new key version");
}

/// Disabling a recorder stops its uploads at once, and the signed disabling makes clients
/// trust nothing it signs from then on; what it signed before (its recordings) stays
/// evidence.
#[test]
fn a_disabled_recorders_earlier_recordings_stay_verifiable() {
    let w = world();
    let rec = w.upload(b"recorded before");
    w.v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "r"]).ok();
    w.v.cli(&w.alice, &["user", "disable", "pbx"]).ok();
    let (_, action, _, _, details) = w.v.last_log();
    assert_eq!(action, "user-disable");
    assert!(details.contains("type: disable") && details.contains("name: pbx"), "{details}");
    let p = w.v.dir.path().join("later.wav");
    std::fs::write(&p, b"recorded after").unwrap();
    w.v.cli(&w.pbx, &["upload", &w.case, p.to_str().unwrap()]).denied("disabled");
    let o = w.fetch(&w.bob, &rec);
    o.ok();
    assert!(o.stderr.contains("recorded by pbx"), "{}", o.stderr);
}

fn chrono_today_plus(days: i64) -> String {
    let out =
        std::process::Command::new("date").args(["-u", "-d", &format!("+{days} days"), "+%Y-%m-%d"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn custodians_keep_a_case_manageable_when_an_admin_leaves() {
    let w = world();
    let rec = w.upload(b"call");
    // carol is no custodian yet: she cannot grant.
    w.v.cli(&w.carol, &["grant", &w.case, "bob", "--reason", "r"]).denied("not a custodian");
    // alice is the only custodian: she cannot be disabled.
    w.v.cli(&w.carol, &["user", "disable", "alice"]).error("only custodian");
    w.v.cli(&w.alice, &["case", "add-custodian", &w.case, "bob"]).error("only admins can be custodians");
    w.v.cli(&w.bob, &["case", "add-custodian", &w.case, "carol"]).denied("needs the role admin");
    w.v.cli(&w.alice, &["case", "add-custodian", &w.case, "carol"]).ok();
    w.v.cli(&w.alice, &["case", "add-custodian", &w.case, "carol"]).error("already a custodian");
    // Now alice may leave, and carol runs the case.
    w.v.cli(&w.carol, &["user", "disable", "alice"]).ok();
    assert_eq!(
        w.v.count("SELECT count(*) FROM envelopes WHERE holder = 'alice'"),
        0,
        "a disabled admin kept envelopes"
    );
    assert_eq!(w.v.count("SELECT count(*) FROM custodians WHERE admin = 'alice'"), 0);
    w.v.cli(&w.carol, &["grant", &w.case, "bob", "--reason", "r"]).ok();
    w.fetch(&w.bob, &rec).ok();
    // Disabling bob drops his grant and envelopes, logged.
    w.v.cli(&w.carol, &["user", "disable", "bob"]).ok();
    let (_, action, outcome, _, details) = w.v.last_log();
    assert_eq!((action.as_str(), outcome.as_str()), ("user-disable", "allowed"));
    assert!(details.contains(r#""grants_revoked":1"#), "{details}");
    assert_eq!(w.v.count("SELECT count(*) FROM envelopes WHERE holder = 'bob'"), 0);
}

#[test]
fn rotation_serves_new_recordings_under_a_new_key_and_revoked_people_get_nothing() {
    let w = world();
    let old = w.upload(b"before rotation");
    w.v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "r"]).ok();
    w.v.cli(&w.alice, &["grant", &w.case, "dave", "--reason", "r"]).ok();
    w.fetch(&w.dave, &old).ok();
    w.v.cli(&w.alice, &["revoke", &w.case, "dave", "--reason", "left the team"]).ok();
    // Non-custodians cannot rotate.
    w.v.cli(&w.carol, &["case", "rotate-key", &w.case]).denied("not a custodian");
    assert_eq!(w.v.cli(&w.alice, &["case", "rotate-key", &w.case]).ok(), "2");
    let (_, action, _, _, details) = w.v.last_log();
    assert_eq!(action, "rotate-key");
    assert!(details.contains(r#""holders":2"#), "alice and bob hold the new key: {details}");
    let new = w.upload(b"after rotation");
    let list: serde_json::Value =
        serde_json::from_str(&w.v.cli(&w.bob, &["--json", "recordings", &w.case]).ok()).unwrap();
    let versions: Vec<u64> = list.as_array().unwrap().iter().map(|r| r["key_version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(w.v.count("SELECT count(*) FROM envelopes WHERE holder = 'dave'"), 0);
    // The revoked investigator gets neither the old nor the new recording.
    w.fetch(&w.dave, &old).denied("revoked");
    w.fetch(&w.dave, &new).denied("revoked");
    // bob reads both; a grant made after the rotation carries both key versions.
    w.fetch(&w.bob, &old).ok();
    w.fetch(&w.bob, &new).ok();
    w.v.cli(&w.alice, &["grant", &w.case, "carol", "--reason", "second opinion"]).ok();
    assert_eq!(w.v.count("SELECT count(*) FROM envelopes WHERE holder = 'carol'"), 2);
    w.fetch(&w.carol, &old).ok();
    w.fetch(&w.carol, &new).ok();
    // Re-granting dave after the rotation gives him the keys again, openly and logged.
    w.v.cli(&w.alice, &["grant", &w.case, "dave", "--reason", "back on the team"]).ok();
    w.fetch(&w.dave, &new).ok();
}

#[test]
fn covert_grants_need_a_second_admin_and_release_nothing_before() {
    let w = world();
    let covert =
        w.v.cli(
            &w.alice,
            &["case", "create", "--kind", "covert", "--title", "F", "--suspicion", "fraud", "--dpia-ref", "D"],
        )
        .ok();
    w.v.cli(&w.alice, &["case", "approve", &covert, "--ap-ref", "AP-1"]).ok();
    let p = w.v.dir.path().join("c.wav");
    std::fs::write(&p, b"covert").unwrap();
    let rec = w.v.cli(&w.pbx, &["upload", &covert, p.to_str().unwrap(), "--announced", "none"]).ok();
    w.v.cli(&w.alice, &["grant", &covert, "bob", "--reason", "investigation"]).ok();
    let bob_envelopes =
        || w.v.count(&format!("SELECT count(*) FROM envelopes WHERE case_id = '{covert}' AND holder = 'bob'"));
    // Pending: no list, no ciphertext, and no envelope in the database at all.
    w.v.cli(&w.bob, &["recordings", &covert]).denied("second admin");
    w.fetch(&w.bob, &rec).denied("second admin");
    assert_eq!(bob_envelopes(), 0, "an envelope exists for a covert grant before its approval");
    // Neither the requester nor the grantee may approve.
    w.v.cli(&w.alice, &["grant", "approve", &covert, "bob"]).denied("four eyes");
    w.v.cli(&w.bob, &["grant", "approve", &covert, "bob"]).denied("needs the role admin");
    // carol approves; she holds no key, so a custodian delivers it after.
    w.v.cli(&w.carol, &["grant", "approve", &covert, "bob"]).ok();
    w.v.cli(&w.carol, &["grant", "approve", &covert, "bob"]).error("not pending");
    assert_eq!(bob_envelopes(), 0);
    w.fetch(&w.bob, &rec).denied("waiting for a custodian to deliver the key");
    w.v.cli(&w.carol, &["grant", "deliver", &covert, "bob"]).denied("not a custodian");
    w.v.cli(&w.alice, &["grant", "deliver", &covert, "bob"]).ok();
    assert_eq!(bob_envelopes(), 1);
    w.fetch(&w.bob, &rec).ok();
    w.v.cli(&w.alice, &["grant", "deliver", &covert, "bob"]).error("no key to deliver");
    // An approver who is a custodian delivers the key with the approval.
    w.v.cli(&w.alice, &["case", "add-custodian", &covert, "carol"]).ok();
    w.v.cli(&w.alice, &["grant", &covert, "dave", "--reason", "second pair of ears"]).ok();
    w.v.cli(&w.carol, &["grant", "approve", &covert, "dave"]).ok();
    w.fetch(&w.dave, &rec).ok();
    // A grant to an admin needs approval by a third admin, never the grantee herself.
    w.v.cli(&w.alice, &["grant", &covert, "carol", "--reason", "review"]).ok();
    w.v.cli(&w.carol, &["grant", "approve", &covert, "carol"]).denied("cannot approve a grant to yourself");
}

#[test]
fn a_custodian_wraps_only_to_the_key_an_admin_signed_for() {
    let w = world();
    w.v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "r"]).ok();
    // Someone with the server's disk names mallory's key for bob: the columns the server
    // reads are not what custodians trust, so the envelope still opens only for bob.
    let mallory = w.v.keygen("mallory");
    let db = w.v.db_rw();
    db.execute(
        "UPDATE users SET recipient = ?1, public_id = ?2 WHERE name = 'bob'",
        [mallory.age_recipient(), mallory.recipient.clone()],
    )
    .unwrap();
    let other =
        w.v.cli(&w.alice, &["case", "create", "--kind", "customer", "--title", "Q2", "--purpose", "sales"]).ok();
    w.v.cli(&w.alice, &["grant", &other, "bob", "--reason", "r"]).ok();
    let envelope: Vec<u8> = db
        .query_row("SELECT envelope FROM envelopes WHERE case_id = ?1 AND holder = 'bob'", [&other], |r| r.get(0))
        .unwrap();
    // Opened with the age tool: bob's identity opens it, mallory's does not.
    let env_file = w.v.dir.path().join("bob.envelope");
    std::fs::write(&env_file, &envelope).unwrap();
    let open = |who: &vault_tests::Person| {
        vault_tests::run(std::process::Command::new("age").args(["-d", "-i"]).arg(&who.key).arg(&env_file)).code
    };
    assert_ne!(open(&mallory), 0, "wrapped to mallory");
    assert_eq!(open(&w.bob), 0);
    // Rewriting bob's signed enrolment to name mallory's key breaks alice's signature:
    // nothing is wrapped to bob at all until an admin enrols him again.
    let enrolment: String = db.query_row("SELECT enrolment FROM users WHERE name = 'bob'", [], |r| r.get(0)).unwrap();
    let bob_id = w.bob.recipient.clone();
    db.execute("UPDATE users SET enrolment = ?1 WHERE name = 'bob'", [enrolment.replace(&bob_id, &mallory.recipient)])
        .unwrap();
    let third =
        w.v.cli(&w.alice, &["case", "create", "--kind", "customer", "--title", "Q3", "--purpose", "sales"]).ok();
    w.v.cli(&w.alice, &["grant", &third, "bob", "--reason", "r"]).error("alice's signature does not verify");
    assert_eq!(w.v.count(&format!("SELECT count(*) FROM envelopes WHERE case_id = '{third}' AND holder = 'bob'")), 0);
    // Rotation refuses to wrap to him as well, and rotates nothing.
    w.v.cli(&w.alice, &["case", "rotate-key", &w.case]).error("alice's signature does not verify");
    assert_eq!(w.v.count(&format!("SELECT key_version FROM cases WHERE id = '{}'", w.case)), 1);
}
