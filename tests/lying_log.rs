//! The server lies about its access log, between the auditor's CLI and the real server:
//! it answers a consistency proof that does not hold, replays an older (genuinely signed)
//! checkpoint, rewrites an entry it shows, moves an entry to another position, or strips
//! a proof. Every lie is refused, and the auditor's pin does not move.

use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vault_tests::proxy::Request;
use vault_tests::{Person, Vault, run};

/// Honest until told a lie.
type Liar = vault_tests::proxy::Switch;

fn is(req: &Request, path: &str) -> bool {
    req.path.split('?').next() == Some(path)
}

struct Setup {
    v: Vault,
    audrey: Person,
    key: String,
    liar: Liar,
    _proxy: vault_tests::proxy::Proxy,
}

fn setup() -> Setup {
    let mut v = Vault::start();
    let audrey = v.enrol("audrey", "auditor");
    v.enrol("bob", "investigator");
    let key = run(Command::new(vault_tests::bin("vault-server")).args(["log-key", "--data-dir"]).arg(v.data())).ok();
    let liar = Liar::default();
    let proxy = v.behind_proxy(liar.clone());
    Setup { v, audrey, key, liar, _proxy: proxy }
}

impl Setup {
    /// `vault-cli --json ARGS --server-key KEY` as audrey.
    fn cli(&self, args: &[&str]) -> vault_tests::Out {
        let mut a: Vec<&str> = vec!["--json"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--server-key", &self.key]);
        self.v.cli(&self.audrey, &a)
    }

    fn verify(&self) -> vault_tests::Out {
        self.cli(&["audit", "verify"])
    }

    fn pinned_size(&self) -> u64 {
        let dir = self.v.dir.path().join("cfg-audrey").join("checkpoints");
        let note = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".tree.note"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .expect("a tree pin");
        note.lines().nth(1).unwrap().parse().unwrap()
    }

    fn activity(&self) {
        for _ in 0..3 {
            self.v.cli(&self.v.admin, &["user", "list"]).ok();
        }
    }
}

/// Flips one bit of the first hash in a proof answer's `hashes`.
fn corrupt_first_hash(v: &mut serde_json::Value, field: &str) {
    let h = v[field][0].as_str().expect("a proof with a hash").to_owned();
    let mut raw = B64.decode(h).unwrap();
    raw[0] ^= 1;
    v[field][0] = B64.encode(raw).into();
}

#[test]
fn fail_a_consistency_proof_that_does_not_hold_is_refused_and_the_pin_stays() {
    let s = setup();
    s.verify().ok();
    let pinned = s.pinned_size();
    s.activity();
    s.liar.lie(|req, resp| {
        if is(req, "/v1/audit/consistency") {
            let mut v = resp.json();
            corrupt_first_hash(&mut v, "hashes");
            resp.set_json(&v);
        }
    });
    let out = s.verify();
    out.error("VERIFICATION FAILED");
    assert!(out.stderr.contains("does not extend the one of"), "{}", out.stderr);
    assert_eq!(s.pinned_size(), pinned, "a refused checkpoint is not pinned");
    // A proof for other sizes than asked is refused too.
    s.liar.lie(|req, resp| {
        if is(req, "/v1/audit/consistency") {
            let mut v = resp.json();
            v["from"] = (v["from"].as_u64().unwrap() - 1).into();
            resp.set_json(&v);
        }
    });
    s.verify().error("consistency proof for other sizes");
    s.liar.honest();
    s.verify().ok();
    assert!(s.pinned_size() > pinned);
}

#[test]
fn fail_a_replayed_older_checkpoint_is_a_rollback() {
    let s = setup();
    let old: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let keep = old.clone();
    s.liar.lie(move |req, resp| {
        if is(req, "/v1/audit/checkpoint") {
            keep.lock().unwrap().get_or_insert_with(|| resp.body.clone());
        }
    });
    s.v.cli(&s.audrey, &["audit", "log", "--limit", "1", "--server-key", &s.key]).ok();
    s.verify().ok();
    s.activity();
    s.verify().ok();
    // The server now answers the first checkpoint it ever signed for audrey: genuine,
    // but smaller than her pin.
    let replay = old.lock().unwrap().clone().unwrap();
    s.liar.lie(move |req, resp| {
        if is(req, "/v1/audit/checkpoint") {
            resp.body = replay.clone();
        }
    });
    let out = s.verify();
    out.error("VERIFICATION FAILED");
    assert!(out.stderr.contains("truncated or rolled back"), "{}", out.stderr);
}

#[test]
fn fail_entries_rewritten_moved_or_unproven_are_refused_by_audit_log() {
    let s = setup();
    s.verify().ok();
    let honest = s.cli(&["audit", "log"]);
    let entries: serde_json::Value = serde_json::from_str(&honest.ok()).unwrap();
    assert!(entries.as_array().unwrap().len() > 5);
    assert!(honest.stderr.contains("each proven to be in the log"), "{}", honest.stderr);

    // An entry's actor rewritten: its leaf is not the one the proof leads from.
    s.liar.lie(|req, resp| {
        if is(req, "/v1/audit/entries") {
            let mut v = resp.json();
            v[3]["actor"] = "mallory".into();
            resp.set_json(&v);
        }
    });
    let out = s.cli(&["audit", "log"]);
    out.error("VERIFICATION FAILED");
    assert!(out.stderr.contains("entry 3 is not in the log"), "{}", out.stderr);

    // A sibling hash of a proof altered.
    s.liar.lie(|req, resp| {
        if is(req, "/v1/audit/entries") {
            let mut v = resp.json();
            let mut e = v[2].take();
            corrupt_first_hash(&mut e, "proof");
            v[2] = e;
            resp.set_json(&v);
        }
    });
    s.cli(&["audit", "log"]).error("entry 2 is not in the log");

    // An entry shown at another position (renumbered, with the other position's proof).
    s.liar.lie(|req, resp| {
        if is(req, "/v1/audit/entries") {
            let mut v = resp.json();
            let proof = v[5]["proof"].clone();
            v[4]["seq"] = 5.into();
            v[4]["proof"] = proof;
            resp.set_json(&v);
        }
    });
    s.cli(&["audit", "log"]).error("entry 5 is not in the log");

    // Proofs stripped.
    s.liar.lie(|req, resp| {
        if is(req, "/v1/audit/entries") {
            let mut v = resp.json();
            for e in v.as_array_mut().unwrap() {
                e.as_object_mut().unwrap().remove("proof");
            }
            resp.set_json(&v);
        }
    });
    s.cli(&["audit", "log"]).error("missing field `proof`");
}

#[test]
fn a_slice_of_one_case_verifies_offline_and_fails_when_altered() {
    let s = setup();
    s.verify().ok();
    let case =
        s.v.cli(&s.v.admin, &["case", "create", "--kind", "customer", "--title", "T", "--purpose", "quality"]).ok();
    s.v.cli(&s.v.admin, &["case", "show", &case]).ok();
    let out = s.v.dir.path().join("slice.json");
    let out = out.to_str().unwrap();
    s.cli(&["audit", "export", "--case", &case, "--out", out]).ok();
    let verified: serde_json::Value = serde_json::from_str(&s.cli(&["audit", "verify", "--file", out]).ok()).unwrap();
    assert_eq!(verified["entries"].as_array().unwrap().len(), 2, "case-create and case-show: {verified}");
    assert_eq!(verified["selection"], format!("case {case}"));

    // The same file with one entry's reason altered, and with a forged checkpoint.
    let text = std::fs::read_to_string(out).unwrap();
    let mut slice: serde_json::Value = serde_json::from_str(&text).unwrap();
    let enc = B64.decode(slice["entries"][1]["encoding"].as_str().unwrap()).unwrap();
    let at = enc.windows(9).position(|w| w == b"case-show").unwrap();
    let mut altered = enc.clone();
    altered[at] = b'C';
    slice["entries"][1]["encoding"] = B64.encode(&altered).into();
    let bad = s.v.dir.path().join("bad-slice.json");
    std::fs::write(&bad, serde_json::to_vec(&slice).unwrap()).unwrap();
    let r = s.cli(&["audit", "verify", "--file", bad.to_str().unwrap()]);
    r.error("SLICE VERIFICATION FAILED");
    assert!(r.stderr.contains("is not in the log the checkpoint signs"), "{}", r.stderr);

    let mut forged: serde_json::Value = serde_json::from_str(&text).unwrap();
    let note = forged["checkpoint"].as_str().unwrap().to_owned();
    let mut lines: Vec<&str> = note.split('\n').collect();
    let bigger = (lines[1].parse::<u64>().unwrap() + 1).to_string();
    lines[1] = &bigger;
    forged["checkpoint"] = lines.join("\n").into();
    std::fs::write(&bad, serde_json::to_vec(&forged).unwrap()).unwrap();
    s.cli(&["audit", "verify", "--file", bad.to_str().unwrap()]).error("is invalid: forged or altered checkpoint");
}
