//! Orphan blobs (issue 13, point 7): ciphertext in `blobs/` that no recording names, as a
//! crash between an upload's rename and its row leaves, or a destroyed recording's file
//! brought back. `vault-server verify` reports them and removes nothing; the next start
//! removes each under an access-log entry of its own, and leaves files it does not
//! recognise alone.

use std::process::Command;

use vault_tests::{Backend, Person, Vault, bin, run};

/// A recording id no upload made (ids are 128 random bits, so none will ever collide).
const CUT_OFF: &str = "rec_0123456789abcdef0123456789abcdef";

fn upload(v: &Vault, pbx: &Person, case: &str, name: &str, content: &[u8], announced: &str) -> String {
    let p = v.dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    let id = v.cli(pbx, &["upload", case, p.to_str().unwrap(), "--announced", announced]).ok();
    assert!(id.starts_with("rec_"), "{id}");
    id
}

fn verify(v: &Vault) -> vault_tests::Out {
    run(Command::new(bin("vault-server")).args(["verify", "--data-dir"]).arg(v.data()).args(v.store_flags()))
}

vault_tests::on_both_backends!(orphan_blobs_are_reported_by_verify_and_removed_with_a_log_entry_at_start_up);

fn orphan_blobs_are_reported_by_verify_and_removed_with_a_log_entry_at_start_up(backend: Backend) {
    let mut v = Vault::start_on(backend);
    let alice = v.admin.clone();
    let carol = v.enrol("carol", "admin");
    let bob = v.enrol("bob", "investigator");
    let pbx = v.enrol("pbx", "recorder");

    // A recording that stays, granted to bob.
    let case = v.cli(&alice, &["case", "create", "--kind", "customer", "--title", "Q3", "--purpose", "sales"]).ok();
    let content = b"a call that is kept".repeat(1000);
    let kept = upload(&v, &pbx, &case, "kept.wav", &content, "signal-tone");
    v.cli(&alice, &["grant", &case, "bob", "--reason", "complaint 9"]).ok();

    // A covert case closed with no offence (R5): its recording is destroyed, and a copy
    // of its ciphertext is kept, as a backup would.
    let covert = v
        .cli(
            &alice,
            &["case", "create", "--kind", "covert", "--title", "F", "--suspicion", "theft", "--dpia-ref", "D-1"],
        )
        .ok();
    v.cli(&alice, &["case", "approve", &covert, "--ap-ref", "AP-1", "--date", "2026-01-10"]).ok();
    let destroyed = upload(&v, &pbx, &covert, "covert.wav", b"a covert call", "none");
    let blobs = v.blob_path(&kept).parent().unwrap().to_owned();
    let blob = |id: &str| blobs.join(format!("{id}.age"));
    let backup = std::fs::read(blob(&destroyed)).unwrap();
    v.cli(&carol, &["case", "close", &covert, "--outcome", "no-offence"]).ok();
    assert!(!blob(&destroyed).exists());

    // The server dies; on disk, ciphertext no row names: an upload cut off between its
    // rename into blobs/ and its row (a copy of a real blob, so it looks the part), the
    // destroyed recording's file restored from the backup, and a file that is not a blob.
    v.kill();
    std::fs::copy(blob(&kept), blob(CUT_OFF)).unwrap();
    std::fs::write(blob(&destroyed), &backup).unwrap();
    std::fs::write(blobs.join("notes.txt"), b"left here by an operator").unwrap();

    // verify reports them, removes nothing, and still passes the chain.
    let out = verify(&v);
    assert!(out.ok().starts_with("ok: "), "{out:?}");
    let mut ids = [CUT_OFF, destroyed.as_str()];
    ids.sort();
    assert!(out.stderr.contains(&format!("2 orphan blobs: {}, {}", ids[0], ids[1])), "{}", out.stderr);
    assert!(out.stderr.contains("1 unrecognised files in blobs/: notes.txt"), "{}", out.stderr);
    for f in [blob(CUT_OFF), blob(&destroyed), blobs.join("notes.txt"), blob(&kept)] {
        assert!(f.exists(), "verify removed {}", f.display());
    }

    // The next start removes the orphans, each logged, and leaves the rest.
    let log_before = v.log_len();
    v.restart();
    assert!(!blob(CUT_OFF).exists(), "the cut-off upload's blob survived the start");
    assert!(!blob(&destroyed).exists(), "the destroyed recording's ciphertext survived the start");
    assert!(blobs.join("notes.txt").exists(), "a file the server does not understand was removed");
    assert!(blob(&kept).exists());
    let server_log = std::fs::read_to_string(v.server_log()).unwrap();
    assert!(server_log.contains("notes.txt"), "the unrecognised file was not reported: {server_log}");

    let entries: Vec<(i64, String, String, String, String, String)> = v
        .db()
        .prepare(
            "SELECT seq, actor, action, outcome, recording_id, case_id || ' ' || details FROM access_log \
             WHERE action = 'remove-orphan' ORDER BY recording_id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for (seq, actor, _, outcome, _, _) in &entries {
        assert!(*seq >= log_before, "an old entry: {entries:?}");
        assert_eq!((actor.as_str(), outcome.as_str()), ("system", "allowed"), "{entries:?}");
    }
    let of = |id: &str| entries.iter().find(|e| e.4 == id).map(|e| e.5.clone()).expect("an entry for each orphan");
    let kept_size = std::fs::metadata(blob(&kept)).unwrap().len();
    assert_eq!(of(CUT_OFF), format!(" {{\"cause\":\"no-recording\",\"size\":{kept_size}}}"));
    assert_eq!(of(&destroyed), format!("{covert} {{\"cause\":\"recording-destroyed\",\"size\":{}}}", backup.len()));

    // The vault serves as before: the kept recording fetches, the chain verifies, and a
    // second start finds nothing more to do.
    let out_file = v.dir.path().join("out.wav");
    v.cli(&bob, &["fetch", &kept, "--reason", "complaint 9", "--out", out_file.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&out_file).unwrap(), content);
    let out = verify(&v);
    out.ok();
    assert!(!out.stderr.contains("orphan blobs"), "{}", out.stderr);
    let n = v.log_len();
    v.restart();
    assert_eq!(v.count("SELECT count(*) FROM access_log WHERE action = 'remove-orphan'"), 2);
    assert_eq!(v.log_len(), n);
}

#[test]
fn fail_a_second_server_on_a_served_data_dir_is_refused() {
    // It would sweep the first one's uploads in progress as crash leftovers.
    let v = Vault::start();
    let second =
        run(Command::new(bin("vault-server")).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(v.data()));
    second.error("another vault-server serve is running");
    // The first one still serves.
    v.cli(&v.admin, &["case", "list"]).ok();
}

#[test]
fn uploads_never_signed_are_removed_after_an_hour_with_a_log_entry() {
    let mut v = Vault::start();
    let alice = v.admin.clone();
    let pbx = v.enrol("pbx", "recorder");
    let case = v.cli(&alice, &["case", "create", "--kind", "customer", "--title", "Q3", "--purpose", "sales"]).ok();
    let signed = upload(&v, &pbx, &case, "signed.wav", &b"a signed call".repeat(500), "signal-tone");
    // Two uploads whose recorder never signed them (it crashed between the upload and
    // its signature): the same ciphertext sent again, as an upload of its own.
    let ciphertext = std::fs::read(v.data().join("blobs").join(format!("{signed}.age"))).unwrap();
    let token = v.token(&pbx);
    let length = ciphertext.len().to_string();
    let mut unsigned = Vec::new();
    for _ in 0..2 {
        let (status, body) = v.raw(
            "POST",
            &format!("/v1/cases/{case}/recordings?announced=signal-tone"),
            Some(&token),
            &[("x-vault-upload-length", &length)],
            &ciphertext,
        );
        assert_eq!(status, 200, "{body}");
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].as_str().unwrap().to_owned();
        unsigned.push(id);
    }
    // One of them, and the signed one, were uploaded two hours ago.
    v.kill();
    let two_hours_ago = "2000-01-01T00:00:00.000Z";
    let db = v.db_rw();
    for id in [&unsigned[0], &signed] {
        db.execute("UPDATE recordings SET uploaded_at = ?1 WHERE id = ?2", [two_hours_ago, id.as_str()]).unwrap();
    }
    drop(db);
    let before = v.log_len();
    v.restart();

    // The old unsigned one is gone, row and file, under an entry; the others stay.
    let exists = |id: &str| v.count(&format!("SELECT count(*) FROM recordings WHERE id = '{id}'")) == 1;
    assert!(!exists(&unsigned[0]), "an upload never signed outlived its grace");
    assert!(!v.data().join("blobs").join(format!("{}.age", unsigned[0])).exists());
    assert!(exists(&unsigned[1]), "a fresh unsigned upload must get its time to be signed");
    assert!(exists(&signed), "a signed recording is not an orphan, however old");
    let (actor, action, details): (String, String, String) = v
        .db()
        .query_row(
            "SELECT actor, action, details FROM access_log WHERE seq >= ?1 AND recording_id = ?2",
            rusqlite::params![before, unsigned[0]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("an entry for the removal");
    assert_eq!((actor.as_str(), action.as_str()), ("system", "remove-orphan"));
    assert!(details.contains("never-signed"), "{details}");
    verify(&v).ok();
}
