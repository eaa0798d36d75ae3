//! End-to-end tests of the access log as auditors use it: `audit verify` online and
//! from an export, incremental verification against the pinned checkpoint, and what
//! happens when the server's database is rewritten or rolled back underneath it.

use std::process::Command;

use vault_tests::{Person, Vault, json, run};

struct Audit {
    v: Vault,
    audrey: Person,
    key: String,
}

fn setup() -> Audit {
    let v = Vault::start();
    let audrey = v.enrol("audrey", "auditor");
    v.enrol("bob", "investigator");
    let key = v.log_key();
    assert!(key.starts_with("recording-vault/"), "{key}");
    Audit { v, audrey, key }
}

impl Audit {
    fn verify(&self, extra: &[&str]) -> vault_tests::Out {
        let mut args = vec!["--json", "audit", "verify", "--server-key", &self.key];
        args.extend_from_slice(extra);
        self.v.cli(&self.audrey, &args)
    }

    /// Some activity, so the log grows.
    fn activity(&self, n: usize) {
        for _ in 0..n {
            self.v.cli(&self.v.admin, &["user", "list"]).ok();
        }
    }
}

#[test]
fn verify_is_incremental_from_the_pinned_checkpoint() {
    let a = setup();
    let first = json(&a.verify(&[]).ok());
    let size1 = first["size"].as_u64().unwrap();
    assert_eq!(first["checked"].as_u64().unwrap(), size1, "first run checks everything");
    assert!(first["previous_size"].is_null());
    a.activity(3);
    let second = json(&a.verify(&[]).ok());
    let size2 = second["size"].as_u64().unwrap();
    assert_eq!(second["previous_size"].as_u64(), Some(size1));
    assert_eq!(second["checked"].as_u64().unwrap(), 0, "second run checks a consistency proof, reading no entry");
    assert!(size2 > size1 + 3, "three user lists and the checkpoint request are logged");
    assert_eq!(a.v.count("SELECT count(*) FROM access_log WHERE action = 'audit-proof'"), 1, "one proof was asked for");
    let full = json(&a.verify(&["--full"]).ok());
    assert_eq!(full["checked"].as_u64(), full["size"].as_u64());
}

#[test]
fn only_auditors_read_the_log_and_reading_is_logged() {
    let a = setup();
    let bob = Person { name: "bob".into(), key: a.v.dir.path().join("bob.key"), recipient: String::new() };
    a.v.cli(&bob, &["audit", "verify", "--server-key", &a.key]).denied("needs the role auditor");
    a.v.cli(&a.v.admin, &["audit", "log"]).denied("needs the role auditor");
    let (actor, action, outcome, _, _) = a.v.last_log();
    assert_eq!((actor.as_str(), action.as_str(), outcome.as_str()), ("alice", "audit-log", "refused"));
    a.verify(&[]).ok();
    let log = json(&a.v.cli(&a.audrey, &["--json", "audit", "log"]).ok());
    let actions: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions[0], "init");
    assert!(actions.contains(&"audit-export"), "{actions:?}");
    assert!(actions.contains(&"user-add"), "{actions:?}");
}

#[test]
fn audit_log_filters_by_case() {
    let a = setup();
    let case =
        a.v.cli(&a.v.admin, &["case", "create", "--kind", "customer", "--title", "T", "--purpose", "sales"]).ok();
    a.v.cli(&a.v.admin, &["case", "show", &case]).ok();
    let log = json(&a.v.cli(&a.audrey, &["--json", "audit", "log", "--case", &case]).ok());
    let entries = log.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{log}");
    assert!(entries.iter().all(|e| e["case_id"] == case.as_str()));
    assert_eq!(entries[0]["action"], "case-create");
    assert_eq!(entries[1]["action"], "case-show");
}

#[test]
fn an_export_verifies_offline_and_tampering_with_it_is_caught() {
    let a = setup();
    let file = a.v.dir.path().join("log.export");
    let f = file.to_str().unwrap();
    assert_eq!(a.v.cli(&a.audrey, &["audit", "export", "--out", f]).ok(), f);
    // Offline: no server needed, only the key.
    let offline = Command::new(vault_tests::bin("vault-cli"))
        .args(["--json", "audit", "verify", "--file", f, "--server-key", &a.key])
        .env("VAULT_CONFIG_DIR", a.v.dir.path().join("offline-cfg"))
        .output()
        .unwrap();
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));

    // Flip one byte of an entry's text: the entry is named.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(8).position(|w| w == b"user-add").expect("an entry to alter");
    bytes[at] = b'U';
    let bad = a.v.dir.path().join("bad.export");
    std::fs::write(&bad, &bytes).unwrap();
    let out = a.v.cli(&a.audrey, &["audit", "verify", "--file", bad.to_str().unwrap(), "--server-key", &a.key]);
    out.error("VERIFICATION FAILED");
    assert!(out.stderr.contains("stored hash does not match"), "{}", out.stderr);
    // Entry 0 is init, 1 the challenge alice's login asked for, 2 her login, 3 the first
    // user-add.
    assert!(out.stderr.contains("entry 3:"), "the first user-add is entry 3: {}", out.stderr);

    // The wrong key refuses the checkpoint.
    let other = Vault::start();
    let out = a.v.cli(&a.audrey, &["audit", "verify", "--file", f, "--server-key", &other.log_key()]);
    out.error("no signature by key");
}

#[test]
fn a_rewritten_database_is_detected_against_the_pinned_checkpoint() {
    let mut a = setup();
    a.activity(2);
    a.verify(&[]).ok();
    // The operator rewrites history below the triggers and re-hashes the whole chain,
    // with the server's own key: every link is consistent again.
    a.v.kill();
    {
        let db = a.v.db_rw();
        db.execute_batch("DROP TRIGGER access_log_no_update; UPDATE access_log SET actor = 'mallory' WHERE seq = 2;")
            .unwrap();
        rehash(&db);
    }
    a.v.restart();
    // The consistency proof from the pinned checkpoint does not lead to the new root.
    let out = a.verify(&[]);
    out.error("VERIFICATION FAILED");
    assert!(out.stderr.contains("does not extend the one of"), "{}", out.stderr);
    // A full re-verification names where the pinned history ends.
    let out = a.verify(&["--full"]);
    assert!(out.stderr.contains("the log was rewritten"), "{}", out.stderr);
}

#[test]
fn a_rolled_back_database_is_detected() {
    let mut a = setup();
    a.v.kill();
    let backup = a.v.dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    let files = ["vault.db", "vault.db-wal"];
    for f in files {
        std::fs::copy(a.v.data().join(f), backup.join(f)).unwrap();
    }
    a.v.restart();
    a.activity(3);
    a.verify(&[]).ok();
    // Restore the old database: a valid, shorter chain, genuinely signed.
    a.v.kill();
    let _ = std::fs::remove_file(a.v.data().join("vault.db-shm"));
    for f in files {
        std::fs::copy(backup.join(f), a.v.data().join(f)).unwrap();
    }
    a.v.restart();
    let out = a.verify(&[]);
    out.error("VERIFICATION FAILED");
    assert!(out.stderr.contains("truncated or rolled back"), "{}", out.stderr);
}

#[test]
fn concurrent_requests_make_one_linear_chain() {
    let a = setup();
    let base = a.v.cli_cmd(&a.v.admin);
    let program = base.get_program().to_owned();
    let envs: Vec<_> = base.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (program, envs) = (program.clone(), envs.clone());
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let mut c = Command::new(&program);
                    for (k, v) in &envs {
                        match v {
                            Some(v) => c.env(k, v),
                            None => c.env_remove(k),
                        };
                    }
                    let o = c.args(["user", "list"]).output().unwrap();
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let verified = json(&a.verify(&[]).ok());
    assert!(verified["size"].as_u64().unwrap() >= 40);
    let server = run(Command::new(vault_tests::bin("vault-server")).args(["verify", "--data-dir"]).arg(a.v.data()));
    assert!(server.ok().starts_with("ok: "));
}

/// Recomputes every hash of the log, as an operator with database access could.
fn rehash(db: &rusqlite::Connection) {
    db.execute_batch("DROP TRIGGER IF EXISTS access_log_no_update;").unwrap();
    let rows: Vec<vault_core_entry::Row> = vault_core_entry::read(db);
    let mut prev = vault_core_entry::genesis();
    for r in rows {
        let hash = vault_core_entry::hash(&r, &prev);
        db.execute(
            "UPDATE access_log SET prev = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![&prev[..], &hash[..], r.seq],
        )
        .unwrap();
        prev = hash;
    }
    // And the Merkle tree: dropped, so that the server builds it again from the
    // rewritten entries when it opens the database, as it does for a log older than the
    // tree. A thorough forger leaves every stored structure consistent.
    db.execute_batch("DROP TRIGGER IF EXISTS merkle_nodes_no_delete; DELETE FROM merkle_nodes;").unwrap();
}

/// The canonical encoding, written again here from LOG-FORMAT.md: an independent
/// implementation of what an attacker (or an auditor) would compute.
mod vault_core_entry {
    use ring_free_sha256::sha256;

    pub struct Row {
        pub seq: i64,
        time_ms: i64,
        fields: Vec<String>,
    }

    pub fn read(db: &rusqlite::Connection) -> Vec<Row> {
        let mut stmt = db
            .prepare("SELECT seq, time_ms, actor, action, case_id, recording_id, reason, outcome, details FROM access_log ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| {
            Ok(Row { seq: r.get(0)?, time_ms: r.get(1)?, fields: (2..9).map(|i| r.get(i)).collect::<Result<_, _>>()? })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    pub fn genesis() -> [u8; 32] {
        sha256(b"recording-vault access log genesis v1")
    }

    pub fn hash(r: &Row, prev: &[u8; 32]) -> [u8; 32] {
        let mut b = prev.to_vec();
        b.extend_from_slice(&(r.seq as u64).to_be_bytes());
        b.extend_from_slice(&r.time_ms.to_be_bytes());
        for f in &r.fields {
            b.extend_from_slice(&(f.len() as u32).to_be_bytes());
            b.extend_from_slice(f.as_bytes());
        }
        sha256(&b)
    }

    mod ring_free_sha256 {
        /// SHA-256 through the `sha256sum` tool, to stay independent of the vault's code.
        pub fn sha256(data: &[u8]) -> [u8; 32] {
            use std::io::Write;
            let mut child = std::process::Command::new("sha256sum")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("sha256sum");
            child.stdin.take().unwrap().write_all(data).unwrap();
            let out = child.wait_with_output().unwrap();
            let hex = String::from_utf8(out.stdout).unwrap();
            let mut h = [0u8; 32];
            for (i, b) in h.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
            }
            h
        }
    }
}

#[test]
fn fail_a_tree_node_altered_on_disk_is_refused_by_verify() {
    // The Merkle tree is checked node by node, as the chain is entry by entry: an inner
    // node altered below the triggers (one no tree head of this size folds in) is found.
    let mut a = setup();
    a.activity(2);
    a.v.kill();
    {
        let db = a.v.db_rw();
        db.execute_batch(
            "DROP TRIGGER merkle_nodes_no_update; UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 1;",
        )
        .unwrap();
    }
    let out =
        vault_tests::run(Command::new(vault_tests::bin("vault-server")).args(["verify", "--data-dir"]).arg(a.v.data()));
    out.error("node (1, 1) is not the hash of its children");
}

#[test]
fn audit_log_limit_prints_that_many_entries() {
    let a = setup();
    a.activity(3);
    for n in [1usize, 3] {
        let log = json(&a.v.cli(&a.audrey, &["--json", "audit", "log", "--limit", &n.to_string()]).ok());
        assert_eq!(log.as_array().unwrap().len(), n, "--limit {n}: {log}");
    }
    let from = json(&a.v.cli(&a.audrey, &["--json", "audit", "log", "--from", "2", "--limit", "2"]).ok());
    let seqs: Vec<u64> = from.as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [2, 3]);
}
