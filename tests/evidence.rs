//! Evidence bundles with the real binaries: a grantee exports a recording with its
//! custody, a court verifies it offline with only the log key and the trust root, and
//! opens it with standard tools (`tar`, `age`). Then the bundle is tampered with as
//! someone handling it might: a swapped recording, a fetch entry removed, a recording
//! "signed" by someone who is not an enrolled recorder, an edited report, another
//! organisation's trust root. Every one fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vault_tests::{Out, Person, Vault, run};

struct W {
    v: Vault,
    bob: Person,
    pbx: Person,
    key: String,
    case: String,
}

fn world() -> W {
    let v = Vault::start();
    let bob = v.enrol("bob", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    let key = v.log_key();
    let case = v
        .cli(
            &v.admin,
            &["case", "create", "--kind", "customer", "--title", "Complaint", "--purpose", "complaint-handling"],
        )
        .ok();
    v.cli(&v.admin, &["grant", &case, "bob", "--reason", "complaint 2026-117"]).ok();
    W { v, bob, pbx, key, case }
}

impl W {
    fn upload(&self, content: &[u8]) -> String {
        let p = self.v.dir.path().join(format!("call-{}.wav", self.v.log_len()));
        std::fs::write(&p, content).unwrap();
        self.v.cli(&self.pbx, &["upload", &self.case, p.to_str().unwrap(), "--announced", "signal-tone"]).ok()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.v.dir.path().join(name)
    }

    fn export(&self, rec: &str, name: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(name);
        let mut args =
            vec!["evidence", "export", rec, "--reason", "court case 2026-44", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--server-key", &self.key]);
        self.v.cli(&self.bob, &args).ok();
        out
    }

    /// `evidence verify FILE` as a court would run it: the log key and the trust root,
    /// no server (the URL names a closed port).
    fn verify(&self, file: &Path) -> Out {
        let mut c = self.v.cli_cmd(&self.bob);
        c.env("VAULT_SERVER", "http://127.0.0.1:9").args([
            "evidence",
            "verify",
            file.to_str().unwrap(),
            "--server-key",
            &self.key,
        ]);
        vault_tests::run(&mut c)
    }
}

/// `n` bytes that differ with `seed` (xorshift).
fn random(n: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Unpacks a bundle with the system's `tar`.
fn untar(file: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    run(Command::new("tar").arg("-xf").arg(file).arg("-C").arg(into)).ok();
}

/// Packs `names` from `dir`, in that order, into `file`.
fn retar(dir: &Path, names: &[&str], file: &Path) {
    let _ = std::fs::remove_file(file);
    run(Command::new("tar").arg("-cf").arg(file).arg("-C").arg(dir).args(names)).ok();
}

/// Removes the first fetch entry from a list of slice entries (JSON, encodings in base64).
fn remove_a_fetch(entries: &mut serde_json::Value) {
    let entries = entries.as_array_mut().unwrap();
    let at = entries
        .iter()
        .position(|e| {
            let enc = B64.decode(e["encoding"].as_str().unwrap()).unwrap();
            enc.windows(9).any(|w| w == b"\x00\x00\x00\x05fetch")
        })
        .expect("a fetch entry");
    entries.remove(at);
}

#[test]
fn a_grantee_exports_evidence_and_a_court_verifies_and_opens_it_with_standard_tools() {
    let w = world();
    let audio = random(300_000, 1);
    let rec = w.upload(&audio);
    let fetched = w.path("fetched.wav");
    w.v.cli(&w.bob, &["fetch", &rec, "--reason", "complaint 2026-117", "--out", fetched.to_str().unwrap()]).ok();

    // The decrypted recording in the bundle.
    let bundle = w.export(&rec, "plain.evidence", &[]);
    let out = w.verify(&bundle);
    let report = out.ok();
    for line in ["upload", "recording-sign", "fetch", "grant", "case-create", "evidence-export"] {
        assert!(report.contains(line), "the report lacks {line}: {report}");
    }
    assert!(report.contains("court case 2026-44") && report.contains("complaint 2026-117"), "{report}");
    let files = w.path("plain");
    untar(&bundle, &files);
    assert_eq!(std::fs::read(files.join("recording.plain")).unwrap(), audio);
    assert_eq!(std::fs::read_to_string(files.join("custody.txt")).unwrap().trim_end(), report);
    // The export is in the log, committing to what the bundle holds.
    let (actor, action, outcome, _, _) = w.v.last_log();
    assert_eq!((actor.as_str(), action.as_str(), outcome.as_str()), ("bob", "evidence-export", "allowed"));

    // For the prosecutor: the case key wrapped to their age recipient, opened with `age`.
    let prosecutor = w.v.keygen("prosecutor");
    let bundle = w.export(&rec, "wrapped.evidence", &["--to", &prosecutor.age_recipient()]);
    w.verify(&bundle).ok();
    let files = w.path("wrapped");
    untar(&bundle, &files);
    assert!(!files.join("recording.plain").exists(), "no plaintext when the key is wrapped");
    let case_key = files.join("case.key");
    // `age -d -i KEY -o OUT IN`: the input last, as age wants it.
    let age = |args: &[&str], out: &Path| {
        let (input, flags) = args.split_last().unwrap();
        let o = Command::new("age").args(flags).arg("-o").arg(out).arg(input).output().expect("the age tool");
        assert!(o.status.success(), "age {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    age(&["-d", "-i", prosecutor.key.to_str().unwrap(), files.join("recording.key.age").to_str().unwrap()], &case_key);
    let decrypted = files.join("decrypted.wav");
    age(&["-d", "-i", case_key.to_str().unwrap(), files.join("recording.age").to_str().unwrap()], &decrypted);
    assert_eq!(std::fs::read(decrypted).unwrap(), audio);
}

#[test]
fn fail_evidence_export_refused_without_an_active_grant() {
    let w = world();
    let rec = w.upload(b"a call");
    let eve = w.v.enrol("eve", "investigator");
    let out = w.path("eve.evidence");
    w.v.cli(
        &eve,
        &["evidence", "export", &rec, "--reason", "curious", "--out", out.to_str().unwrap(), "--server-key", &w.key],
    )
    .denied("");
    assert!(!out.exists(), "nothing written");
    w.v.cli(
        &w.pbx,
        &["evidence", "export", &rec, "--reason", "r", "--out", out.to_str().unwrap(), "--server-key", &w.key],
    )
    .denied("");
}

#[test]
fn fail_tampered_bundles_do_not_verify() {
    let w = world();
    let rec = w.upload(&random(50_000, 2));
    let other = w.upload(&random(50_000, 3));
    let fetched = w.path("fetched.wav");
    w.v.cli(&w.bob, &["fetch", &rec, "--reason", "complaint 2026-117", "--out", fetched.to_str().unwrap()]).ok();
    let bundle = w.export(&rec, "good.evidence", &[]);
    let second = w.export(&other, "other.evidence", &[]);
    w.verify(&bundle).ok();
    let (good, alt) = (w.path("good"), w.path("alt"));
    untar(&bundle, &good);
    untar(&second, &alt);
    let names = ["evidence.json", "custody.txt", "recording.age", "recording.plain"];
    let bad = w.path("bad.evidence");
    let work = w.path("work");
    let fresh = || {
        let _ = std::fs::remove_dir_all(&work);
        untar(&bundle, &work);
    };

    // A swapped recording: another recording's ciphertext (and plaintext).
    fresh();
    std::fs::copy(alt.join("recording.age"), work.join("recording.age")).unwrap();
    retar(&work, &names, &bad);
    w.verify(&bad).error("is not the recording its recorder signed");
    fresh();
    std::fs::copy(alt.join("recording.plain"), work.join("recording.plain")).unwrap();
    retar(&work, &names, &bad);
    w.verify(&bad).error("is not the decrypted recording the export logged");

    // A fetch entry removed from the custody log.
    fresh();
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(work.join("evidence.json")).unwrap()).unwrap();
    remove_a_fetch(&mut m["log"]["entries"]);
    std::fs::write(work.join("evidence.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    retar(&work, &names, &bad);
    w.verify(&bad).error("an entry was removed, added or altered");

    // The recording "signed" by bob, an investigator: no recorder's certificate.
    fresh();
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(work.join("evidence.json")).unwrap()).unwrap();
    let stmt = m["recording_statement"]["statement"].as_str().unwrap().replace("by: pbx\n", "by: bob\n");
    let identity = vault_core::crypto::read_identity_file(&w.bob.key).unwrap();
    let key = vault_core::trust::SigningKey::from_identity(&identity);
    let sig = key.sign(stmt.as_bytes());
    m["recording_statement"] =
        serde_json::json!({"statement": stmt, "signatures": [{"by": "bob", "sig": B64.encode(sig)}]});
    std::fs::write(work.join("evidence.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    retar(&work, &names, &bad);
    let out = w.verify(&bad);
    out.error("EVIDENCE VERIFICATION FAILED");
    assert!(out.stderr.contains("recorder"), "the missing role is named: {}", out.stderr);

    // The report edited.
    fresh();
    let report = std::fs::read_to_string(work.join("custody.txt")).unwrap().replace("bob", "eve");
    std::fs::write(work.join("custody.txt"), report).unwrap();
    retar(&work, &names, &bad);
    w.verify(&bad).error("custody.txt differs from what the bundle proves");

    // A file left out, or one added.
    fresh();
    retar(&work, &names[..3], &bad);
    w.verify(&bad).error("the bundle's files are not those its manifest names");

    // Another organisation's trust root.
    let mut c = w.v.cli_cmd(&w.bob);
    c.env("VAULT_TRUST_ROOT", "SHA256:e+FMl/xBkM+wDPfjbgXG4qs7w1jrQAuGO/83lpcgoiM").args([
        "evidence",
        "verify",
        bundle.to_str().unwrap(),
        "--server-key",
        &w.key,
    ]);
    vault_tests::run(&mut c).error("not the organisation's");
}

#[test]
fn fail_a_lying_server_cannot_make_the_exporter_write_a_bundle_with_a_custody_of_its_choosing() {
    let mut w = world();
    let rec = w.upload(&random(10_000, 4));
    let fetched = w.path("fetched.wav");
    w.v.cli(&w.bob, &["fetch", &rec, "--reason", "complaint 2026-117", "--out", fetched.to_str().unwrap()]).ok();
    let liar = vault_tests::proxy::Switch::default();
    let _proxy = w.v.behind_proxy(liar.clone());
    // The server leaves bob's fetch out of the custody it answers.
    liar.lie(|req, resp| {
        if req.path.ends_with("/evidence") {
            let mut v = resp.json();
            remove_a_fetch(&mut v["entries"]);
            resp.set_json(&v);
        }
    });
    let out = w.path("lied.evidence");
    let args =
        ["evidence", "export", &rec, "--reason", "court", "--out", out.to_str().unwrap(), "--server-key", &w.key];
    let r = w.v.cli(&w.bob, &args);
    r.error("EVIDENCE VERIFICATION FAILED");
    assert!(!out.exists(), "no bundle is written from a custody that does not verify");
    // Nor can it swap in a checkpoint it did not sign.
    liar.lie(|req, resp| {
        if req.path.ends_with("/evidence") {
            let mut v = resp.json();
            let note = v["checkpoint"].as_str().unwrap().replacen('\n', "\n1", 1);
            v["checkpoint"] = note.into();
            resp.set_json(&v);
        }
    });
    w.v.cli(&w.bob, &args).error("EVIDENCE VERIFICATION FAILED");
    assert!(!out.exists());
    liar.honest();
    w.v.cli(&w.bob, &args).ok();
}

#[test]
fn a_bundle_exported_after_a_log_key_rotation_verifies_with_the_earlier_key() {
    let mut w = world();
    let rec = w.upload(&random(50_000, 7));
    // The operator rotates the log key; the court (and bob) still hold the first one.
    w.v.kill();
    let out =
        run(Command::new(vault_tests::bin("vault-server")).args(["rotate-key", "log", "--data-dir"]).arg(w.v.data()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    w.v.restart();
    let new_key = w.v.log_key();
    assert_ne!(new_key, w.key);
    let bundle = w.export(&rec, "after-rotation.tar", &["--to", &w.pbx.age_recipient()]);
    w.verify(&bundle).ok();

    // Without the transitions, the earlier key cannot reach the signature; the current one can.
    let dir = w.path("untarred-rotation");
    untar(&bundle, &dir);
    let manifest = dir.join("evidence.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["key_transitions"].as_array().map(Vec::len), Some(1), "the bundle carries the change of key");
    m.as_object_mut().unwrap().remove("key_transitions");
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    // In the bundle's own order (evidence.json first).
    let listed = run(Command::new("tar").arg("-tf").arg(&bundle)).ok();
    let names: Vec<&str> = listed.lines().collect();
    let stripped = w.path("stripped.tar");
    retar(&dir, &names, &stripped);
    w.verify(&stripped).error("EVIDENCE VERIFICATION FAILED");
    w.key = new_key;
    w.verify(&stripped).ok();
}
