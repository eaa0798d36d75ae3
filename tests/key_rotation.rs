//! Rotating the server's own keys (`vault-server rotate-key token|log`) with the real
//! binaries: sessions survive a token-key rotation and end when the retired key's tokens
//! would have expired; after a log-key rotation an auditor who trusts only the old key
//! follows the change, incrementally and in full, and a server (or a thief of the old
//! key) that forges, hides or forks a change is refused without the pin moving.

use std::path::Path;
use std::process::Command;

use vault_core::note::{Checkpoint, VerifierKey};
use vault_core::rotation::KeyTransition;
use vault_tests::proxy::{Request, Switch};
use vault_tests::{Out, Person, Vault, json, run};

fn server(args: &[&str], data: &Path) -> Out {
    run(Command::new(vault_tests::bin("vault-server")).args(args).arg("--data-dir").arg(data))
}

fn verify(v: &Vault, who: &Person, key: &str, extra: &[&str]) -> Out {
    let mut args = vec!["--json", "audit", "verify", "--server-key", key];
    args.extend_from_slice(extra);
    v.cli(who, &args)
}

/// Stops the server, rotates `which`, and starts it again.
fn rotate(v: &mut Vault, which: &str) -> Out {
    v.kill();
    let out = server(&["rotate-key", which], &v.data());
    v.restart();
    out
}

#[test]
fn rotation_is_refused_while_the_server_runs_and_changes_nothing() {
    let v = Vault::start();
    let before = v.log_key();
    let key_file = std::fs::read(v.data().join("log-key.pk8")).unwrap();
    for which in ["log", "token"] {
        server(&["rotate-key", which], &v.data()).error("another vault-server serve is running");
    }
    assert_eq!(v.log_key(), before);
    assert_eq!(std::fs::read(v.data().join("log-key.pk8")).unwrap(), key_file);
    assert_eq!(v.count("SELECT count(*) FROM access_log WHERE action = 'server-key-rotate'"), 0);
}

#[test]
fn sessions_survive_a_token_key_rotation_until_the_old_keys_tokens_expire() {
    let mut v = Vault::start();
    v.cli(&v.admin, &["user", "list"]).ok();
    let old_token = v.token(&v.admin);
    let old_key = std::fs::read(v.data().join("jwt-key.pk8")).unwrap();

    let out = rotate(&mut v, "token");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("rotated the token key"), "{}", out.stderr);
    let (actor, action, outcome, _, details) = v.last_log();
    assert_eq!(
        (actor.as_str(), action.as_str(), outcome.as_str()),
        ("vault-server rotate-key", "server-key-rotate", "allowed")
    );
    assert!(details.contains(r#""key":"token""#), "{details}");

    // The old private key is gone from the data directory; its public half is kept.
    let new_key = std::fs::read(v.data().join("jwt-key.pk8")).unwrap();
    assert_ne!(new_key, old_key);
    // ring's PKCS#8 document holds the private seed at bytes 16..48.
    assert!(vault_tests::grep_dir(&v.data(), &old_key[16..48]).is_empty(), "the old private key is gone");
    let retired = std::fs::read_to_string(v.data().join("jwt-retired.json")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(v.data().join("jwt-retired.json")).unwrap().permissions().mode() & 0o777, 0o600);

    // The token signed before the rotation still works, and new logins get the new key's.
    let (status, body) = v.raw("GET", "/v1/users", Some(&old_token), &[], b"");
    assert_eq!(status, 200, "{body}");
    let bob = v.enrol("bob", "investigator");
    v.cli(&bob, &["case", "list"]).ok();
    let header = |t: &str| {
        use base64::Engine;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.split('.').next().unwrap()).unwrap();
        json(std::str::from_utf8(&h).unwrap())
    };
    let new_kid = header(&v.token(&bob))["kid"].as_str().unwrap().to_owned();
    assert!(!retired.contains(&new_kid));
    assert!(details.contains(&new_kid), "the entry names the new key id: {details}");

    // Once the retired key's tokens would have expired, the key no longer checks any.
    let mut keys: serde_json::Value = json(&retired);
    keys[0]["retired_at"] = serde_json::json!(0);
    std::fs::write(v.data().join("jwt-retired.json"), keys.to_string()).unwrap();
    v.restart();
    let (status, body) = v.raw("GET", "/v1/users", Some(&old_token), &[], b"");
    assert_eq!(status, 401, "{body}");
    let (_, _, outcome, _, details) = v.last_log();
    assert_eq!(outcome, "refused");
    assert!(details.contains("does not know"), "the log says why: {details}");
}

/// A vault with an auditor who pinned the log under its first key, the server behind a
/// switchable lying proxy.
struct Rotated {
    v: Vault,
    audrey: Person,
    old_key: String,
    new_key: String,
    /// The first log key's private key, as a thief of it (or the operator) holds it.
    old_pkcs8: Vec<u8>,
    liar: Switch,
    proxy: vault_tests::proxy::Proxy,
}

impl Rotated {
    fn new() -> Self {
        let mut v = Vault::start();
        let audrey = v.enrol("audrey", "auditor");
        let liar = Switch::default();
        let proxy = v.behind_proxy(liar.clone());
        let old_key = v.log_key();
        let old_pkcs8 = std::fs::read(v.data().join("log-key.pk8")).unwrap();
        let first = json(&verify(&v, &audrey, &old_key, &[]).ok());
        assert!(first["previous_size"].is_null());
        v.cli(&v.admin, &["user", "list"]).ok();
        let out = rotate(&mut v, "log");
        assert_eq!(out.code, 0, "{}", out.stderr);
        proxy.set_upstream(&v.url);
        v.url = proxy.url.clone();
        let new_key = v.log_key();
        assert_ne!(new_key, old_key);
        // Nothing can carry the old key's signature any more: its private key is gone.
        assert!(vault_tests::grep_dir(&v.data(), &old_pkcs8[16..48]).is_empty(), "the old log key is deleted");
        assert!(out.stderr.contains(&new_key), "rotate-key prints the new key: {}", out.stderr);
        Rotated { v, audrey, old_key, new_key, old_pkcs8, liar, proxy }
    }

    fn pin_size(&self) -> u64 {
        // What the auditor has pinned is what the next honest run reports as previous.
        self.liar.honest();
        json(&verify(&self.v, &self.audrey, &self.old_key, &[]).ok())["previous_size"].as_u64().unwrap()
    }
}

#[test]
fn an_auditor_who_trusts_the_old_log_key_follows_the_rotation() {
    let r = Rotated::new();
    let (v, audrey) = (&r.v, &r.audrey);
    let pinned = json(&verify(v, audrey, &r.old_key, &[]).ok());
    // Before the rotation she had pinned the log; now a consistency proof carries the pin.
    assert_eq!(pinned["checked"].as_u64(), Some(0));
    let out = verify(v, audrey, &r.old_key, &[]);
    let again = json(&out.ok());
    assert!(!out.stderr.contains("key changed"), "followed once, remembered: {}", out.stderr);
    assert!(again["size"].as_u64() > pinned["size"].as_u64());
    // The rotation is in the log, naming both keys.
    let entries = json(&v.cli(audrey, &["--json", "audit", "log", "--server-key", &r.old_key]).ok());
    let rotation = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "server-key-rotate")
        .expect("the rotation is logged");
    let details = rotation["details"].as_str().unwrap();
    assert!(details.contains(&r.old_key) && details.contains(&r.new_key), "{details}");
    // A full verification with only the old key, and a new auditor with only the old key.
    let full = json(&verify(v, audrey, &r.old_key, &["--full"]).ok());
    assert_eq!(full["checked"].as_u64(), full["size"].as_u64());
    let ada = v.enrol("ada", "auditor");
    let out = verify(v, &ada, &r.old_key, &[]);
    assert!(out.stderr.contains("the log's key changed at entry"), "{}", out.stderr);
    json(&out.ok());
    // And with the new key directly.
    json(&verify(v, &ada, &r.new_key, &[]).ok());
    // Only enrolled users read the transitions.
    let (status, _) = v.raw("GET", "/v1/log/key-transitions", None, &[], b"");
    assert_eq!(status, 401);
    // The server checks the transitions offline too.
    let out = server(&["verify"], &v.data());
    assert!(out.stderr.contains("the log key changed 1 times"), "{}", out.stderr);
}

#[test]
fn a_server_that_hides_the_rotation_is_refused_and_the_pin_stays() {
    let r = Rotated::new();
    r.liar.lie(|req: &Request, resp| {
        if req.path.starts_with("/v1/log/key-transitions") {
            resp.set_json(&serde_json::json!([]));
        }
    });
    let out = verify(&r.v, &r.audrey, &r.old_key, &[]);
    out.error("ACCESS LOG VERIFICATION FAILED");
    assert!(out.stderr.contains("no signature"), "{}", out.stderr);
    let before_size = r.pin_size();
    assert!(before_size > 0);
}

#[test]
fn a_transition_signed_by_the_new_key_alone_is_refused() {
    let r = Rotated::new();
    // The server (which holds the new key) claims the old key handed over to a key of its
    // choosing: it cannot produce the old key's signature.
    let rng = ring::rand::SystemRandom::new();
    let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let rogue = ring::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    let old_key = r.old_key.clone();
    r.liar.lie(move |req: &Request, resp| {
        if req.path.starts_with("/v1/log/key-transitions") {
            let mut all: Vec<KeyTransition> = serde_json::from_slice(&resp.body).unwrap();
            let cp = Checkpoint::parse(vault_core::note::split(&all[0].note).unwrap().0).unwrap();
            let forged = KeyTransition::sign(&cp, &rogue, &rogue);
            all[0].note = forged.note;
            all[0].old_key = old_key.clone();
            resp.set_json(&serde_json::to_value(&all).unwrap());
        }
    });
    let out = verify(&r.v, &r.audrey, &r.old_key, &[]);
    out.error("a change of the log's key");
}

#[test]
fn a_forked_transition_signed_with_a_stolen_old_key_does_not_extend_the_pin() {
    let r = Rotated::new();
    // A thief of the old key (and the new one: the server's disk) signs a transition over
    // a rewritten history. The auditor's pin exposes it.
    let old = ring::signature::Ed25519KeyPair::from_pkcs8(&r.old_pkcs8).unwrap();
    let new_pkcs8 = std::fs::read(r.v.data().join("log-key.pk8")).unwrap();
    let new = ring::signature::Ed25519KeyPair::from_pkcs8(&new_pkcs8).unwrap();
    r.liar.lie(move |req: &Request, resp| {
        if req.path.starts_with("/v1/log/key-transitions") {
            let mut all: Vec<KeyTransition> = serde_json::from_slice(&resp.body).unwrap();
            let mut cp = Checkpoint::parse(vault_core::note::split(&all[0].note).unwrap().0).unwrap();
            cp.root[0] ^= 1;
            all[0] = KeyTransition::sign(&cp, &old, &new);
            resp.set_json(&serde_json::to_value(&all).unwrap());
        }
    });
    let out = verify(&r.v, &r.audrey, &r.old_key, &[]);
    out.error("does not extend the log you verified");
    // Honest again, the auditor's pin is still the one from before the rotation.
    let key = VerifierKey::parse(&r.old_key).unwrap();
    assert_eq!(key.name, VerifierKey::parse(&r.new_key).unwrap().name);
    let _ = &r.proxy;
    assert!(r.pin_size() < r.v.log_len() as u64);
}

#[test]
fn an_interrupted_log_key_rotation_is_completed_or_abandoned_at_start() {
    let mut v = Vault::start();
    let first = v.log_key();
    let first_file = std::fs::read(v.data().join("log-key.pk8")).unwrap();
    // A new key written but never recorded (a crash before the commit): abandoned.
    v.kill();
    std::fs::write(v.data().join("log-key.pk8.new"), b"not even a key").unwrap();
    v.restart();
    assert!(!v.data().join("log-key.pk8.new").exists());
    assert_eq!(v.log_key(), first);
    // Recorded, but the crash came before the new key replaced the old: completed.
    let out = rotate(&mut v, "log");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let second = v.log_key();
    v.kill();
    std::fs::rename(v.data().join("log-key.pk8"), v.data().join("log-key.pk8.new")).unwrap();
    std::fs::write(v.data().join("log-key.pk8"), &first_file).unwrap();
    v.restart();
    assert!(!v.data().join("log-key.pk8.new").exists());
    assert_eq!(v.log_key(), second);
    // A log key that is not the one the transitions lead to is refused at start.
    v.kill();
    std::fs::write(v.data().join("log-key.pk8"), &first_file).unwrap();
    let out = run(Command::new(vault_tests::bin("vault-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(v.data()));
    out.error("is not the log key the last transition introduced");
}

#[test]
fn a_backup_never_pairs_a_log_with_a_key_from_the_other_side_of_a_rotation() {
    let mut v = Vault::start();
    let first_file = std::fs::read(v.data().join("log-key.pk8")).unwrap();
    let out = rotate(&mut v, "log");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let second_file = std::fs::read(v.data().join("log-key.pk8")).unwrap();
    // The key file from before the rotation beside the log that records it: what a copy
    // of the keys taken before the rotation's rename would pair with its snapshot.
    v.kill();
    std::fs::write(v.data().join("log-key.pk8"), &first_file).unwrap();
    let dest = v.dir.path().join("backup-1");
    let out = run(Command::new(vault_tests::bin("vault-server"))
        .args(["backup", "--data-dir"])
        .arg(v.data())
        .arg("--out")
        .arg(&dest));
    out.error("the server's keys changed while the backup was taken");
    assert!(out.stderr.contains("is not the log key the last transition introduced"), "{}", out.stderr);
    assert!(!dest.exists(), "no backup was written");
    let leftovers: Vec<_> = std::fs::read_dir(v.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "nothing half-written is left: {leftovers:?}");
    // `vault-server verify` says the same of the data dir.
    server(&["verify"], &v.data()).error("is not the log key the last transition introduced");
    // With the right key, the backup is taken, and its restore serves the new key.
    std::fs::write(v.data().join("log-key.pk8"), &second_file).unwrap();
    let out = run(Command::new(vault_tests::bin("vault-server"))
        .args(["backup", "--data-dir"])
        .arg(v.data())
        .arg("--out")
        .arg(&dest));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read(dest.join("log-key.pk8")).unwrap(), second_file);
}
