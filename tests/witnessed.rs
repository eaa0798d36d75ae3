//! Witnesses between the server and its auditors, with the real binaries: the server
//! pushes its checkpoints to two `vault-cli witness serve` processes, and an auditor who
//! requires both trusts no checkpoint without both cosignatures. The server lies (a
//! proxy strips or forges cosignatures, or passes off its own unwitnessed checkpoint) and
//! rewrites its history (which no witness cosigns): every lie is refused.

use std::process::Command;
use std::sync::{Arc, Mutex};

use vault_core::log::Entry;
use vault_core::note::VerifierKey;
use vault_tests::witness::Witness;
use vault_tests::{Person, Vault, run};

/// Honest until told a lie.
type Liar = vault_tests::proxy::Switch;

struct Setup {
    v: Vault,
    audrey: Person,
    key: String,
    /// Both witnesses' verifier keys, comma-separated, as auditors set them.
    required: String,
    witnesses: Vec<Witness>,
}

fn setup() -> Setup {
    setup_with(&[])
}

/// As [`setup`], with `extra` arguments for `vault-server serve`.
fn setup_with(extra: &[&str]) -> Setup {
    let mut v = Vault::start();
    let audrey = v.enrol("audrey", "auditor");
    let key = run(Command::new(vault_tests::bin("vault-server")).args(["log-key", "--data-dir"]).arg(v.data())).ok();
    let log_key = VerifierKey::parse(&key).unwrap();
    let witnesses = vec![
        Witness::start("dpo.example/witness", &[&log_key]),
        Witness::start("works-council.example/w", &[&log_key]),
    ];
    let mut args: Vec<String> = Vec::new();
    for w in &witnesses {
        args.extend(["--witness".to_owned(), w.server_arg()]);
    }
    args.extend(["--witness-every-secs".to_owned(), "0".to_owned()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    v.serve_with(&args);
    let required = witnesses.iter().map(|w| w.key().to_text()).collect::<Vec<_>>().join(",");
    Setup { v, audrey, key, required, witnesses }
}

impl Setup {
    /// `vault-cli --json ARGS --server-key KEY --witness-key BOTH` as audrey.
    fn audit(&self, args: &[&str]) -> vault_tests::Out {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--server-key", &self.key, "--witness-key", &self.required]);
        self.v.cli(&self.audrey, &a)
    }

    fn activity(&self) {
        for _ in 0..3 {
            self.v.cli(&self.v.admin, &["user", "list"]).ok();
        }
    }

    /// The size each witness's state holds for this log.
    fn witnessed_sizes(&self, origin: &str) -> Vec<u64> {
        self.witnesses
            .iter()
            .map(|w| {
                let v: serde_json::Value = serde_json::from_slice(&std::fs::read(w.state()).unwrap()).unwrap();
                v["logs"][origin]["size"].as_u64().unwrap_or(0)
            })
            .collect()
    }
}

fn json(out: &vault_tests::Out) -> serde_json::Value {
    serde_json::from_str(&out.ok()).unwrap()
}

#[test]
fn auditors_trust_only_checkpoints_every_witness_cosigned() {
    let s = setup();
    let first = json(&s.audit(&["audit", "verify"]));
    let origin = first["origin"].as_str().unwrap().to_owned();
    let size1 = first["size"].as_u64().unwrap();
    // The first run reads every entry (of the export), then pins the witnessed
    // checkpoint, shown consistent with the export's.
    assert!(first["checked"].as_u64().unwrap() > 0, "the first run reads every entry");
    assert_eq!(s.witnessed_sizes(&origin), [size1, size1], "both witnesses cosigned what audrey pinned");

    s.activity();
    let second = json(&s.audit(&["audit", "verify"]));
    let size2 = second["size"].as_u64().unwrap();
    assert!(size2 > size1 + 3);
    assert_eq!(second["checked"].as_u64(), Some(0), "a consistency proof, no entries");
    assert_eq!(s.witnessed_sizes(&origin), [size2, size2]);

    // Entries are proven against the witnessed checkpoint; a slice carries it, and its
    // cosignatures verify offline.
    let log = s.audit(&["audit", "log"]);
    assert!(log.stderr.contains("each proven to be in the log"), "{}", log.stderr);
    let slice = s.v.dir.path().join("users.slice");
    let slice = slice.to_str().unwrap();
    s.audit(&["audit", "export", "--recording", "rec_00000000000000000000000000000000", "--out", slice]).ok();
    s.audit(&["audit", "verify", "--file", slice]).ok();
    // A witness the slice's checkpoint was never shown to is missing from it.
    let stranger = Witness::start("stranger.example/w", &[&VerifierKey::parse(&s.key).unwrap()]);
    let r = s.v.cli(
        &s.audrey,
        &["audit", "verify", "--file", slice, "--server-key", &s.key, "--witness-key", &stranger.key().to_text()],
    );
    r.error("the checkpoint is not witnessed");
}

#[test]
fn fail_a_checkpoint_stripped_of_a_cosignature_forged_or_unwitnessed_is_refused() {
    let mut s = setup();
    s.audit(&["audit", "verify"]).ok();
    let liar = Liar::default();
    let _proxy = s.v.behind_proxy(liar.clone());
    s.audit(&["audit", "verify"]).ok();

    // One witness's line removed.
    let works_council = s.witnesses[1].key();
    let name = works_council.name.clone();
    liar.lie(move |req, resp| {
        if req.path.starts_with("/v1/log/checkpoint") {
            let note = String::from_utf8(resp.body.clone()).unwrap();
            let kept: Vec<&str> =
                note.split_inclusive('\n').filter(|l| !l.starts_with(&format!("\u{2014} {name} "))).collect();
            resp.body = kept.concat().into_bytes();
        }
    });
    let out = s.audit(&["audit", "verify"]);
    out.error("the checkpoint is not witnessed");
    assert!(out.stderr.contains(&works_council.to_text()), "the missing witness is named: {}", out.stderr);

    // A cosignature altered (a byte of its signature).
    let name = works_council.name.clone();
    liar.lie(move |req, resp| {
        if req.path.starts_with("/v1/log/checkpoint") {
            let note = String::from_utf8(resp.body.clone()).unwrap();
            let forged: Vec<String> = note
                .split_inclusive('\n')
                .map(|l| {
                    if l.starts_with(&format!("\u{2014} {name} ")) {
                        let (head, sig) = l.trim_end().rsplit_once(' ').unwrap();
                        let sig =
                            if sig.starts_with('A') { sig.replacen('A', "B", 1) } else { format!("A{}", &sig[1..]) };
                        format!("{head} {sig}\n")
                    } else {
                        l.to_owned()
                    }
                })
                .collect();
            resp.body = forged.concat().into_bytes();
        }
    });
    s.audit(&["audit", "verify"]).error("the checkpoint is not witnessed");

    // The server's own, fresh checkpoint passed off as the witnessed one.
    let fresh: Arc<Mutex<Vec<u8>>> = Arc::default();
    let keep = fresh.clone();
    liar.lie(move |req, resp| {
        if req.path.starts_with("/v1/audit/checkpoint") {
            *keep.lock().unwrap() = resp.body.clone();
        }
    });
    s.v.cli(&s.audrey, &["audit", "verify", "--server-key", &s.key]).ok();
    let fresh = fresh.lock().unwrap().clone();
    assert!(!fresh.is_empty());
    liar.lie(move |req, resp| {
        if req.path.starts_with("/v1/log/checkpoint") {
            resp.body = fresh.clone();
        }
    });
    s.audit(&["audit", "verify"]).error("the checkpoint is not witnessed");
}

#[test]
fn fail_a_rewritten_history_is_cosigned_by_no_witness() {
    let mut s = setup();
    s.activity();
    let pinned = json(&s.audit(&["audit", "verify"]))["size"].as_u64().unwrap();
    // The operator rewrites entry 3 below the triggers and makes every stored structure
    // consistent again with the server's own code: the chain re-hashed, the tree dropped
    // for the server to rebuild, the witnessed checkpoint left as it was.
    s.v.kill();
    {
        let db = s.v.db_rw();
        db.execute_batch(
            "DROP TRIGGER IF EXISTS access_log_no_update; DROP TRIGGER IF EXISTS merkle_nodes_no_delete;
             UPDATE access_log SET actor = 'mallory' WHERE seq = 3; DELETE FROM merkle_nodes;",
        )
        .unwrap();
        let rows: Vec<Entry> = db
            .prepare("SELECT seq, time_ms, actor, action, case_id, recording_id, reason, outcome, details FROM access_log ORDER BY seq")
            .unwrap()
            .query_map([], |r| {
                Ok(Entry {
                    seq: r.get::<_, i64>(0)? as u64,
                    time_ms: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    case_id: r.get(4)?,
                    recording_id: r.get(5)?,
                    reason: r.get(6)?,
                    outcome: r.get(7)?,
                    details: r.get(8)?,
                })
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut prev = vault_core::log::genesis();
        for e in rows {
            let hash = e.chain_hash(&prev, &mut Vec::new());
            db.execute(
                "UPDATE access_log SET prev = ?1, hash = ?2 WHERE seq = ?3",
                rusqlite::params![&prev[..], &hash[..], e.seq as i64],
            )
            .unwrap();
            prev = hash;
        }
    }
    s.v.restart();
    s.activity();
    // The witnesses refuse the rewritten log, so the server has nothing newer to show.
    let again = json(&s.audit(&["audit", "verify"]));
    assert_eq!(again["size"].as_u64(), Some(pinned), "no checkpoint of the rewritten log is witnessed");
    let log = std::fs::read_to_string(s.v.server_log()).unwrap();
    assert!(log.contains("not every witness cosigned"), "the server says why: {log}");
    // And the rewritten entries are not in the history the witnesses saw: entry 3 differs,
    // so every proof through the subtree holding it fails, from entry 0 on.
    let out = s.audit(&["audit", "log"]);
    out.error("VERIFICATION FAILED");
    assert!(out.stderr.contains("is not in the log the checkpoint of"), "{}", out.stderr);
    // A full verification reads the rewritten log, whose own checkpoint the server signs,
    // and finds it inconsistent with the witnessed one.
    let out = s.audit(&["audit", "verify", "--full"]);
    out.error("VERIFICATION FAILED");
}

#[test]
fn an_evidence_bundle_carries_the_witnesses_cosignatures() {
    let s = setup();
    let bob = s.v.enrol("bob", "investigator");
    let pbx = s.v.enrol("pbx", "recorder");
    let case =
        s.v.cli(&s.v.admin, &["case", "create", "--kind", "customer", "--title", "T", "--purpose", "quality"]).ok();
    s.v.cli(&s.v.admin, &["grant", &case, "bob", "--reason", "complaint"]).ok();
    let call = s.v.dir.path().join("call.wav");
    std::fs::write(&call, b"a recorded call").unwrap();
    let rec = s.v.cli(&pbx, &["upload", &case, call.to_str().unwrap(), "--announced", "signal-tone"]).ok();
    let out = s.v.dir.path().join("court.evidence");
    let out = out.to_str().unwrap();
    s.v.cli(
        &bob,
        &[
            "evidence",
            "export",
            &rec,
            "--reason",
            "court",
            "--out",
            out,
            "--server-key",
            &s.key,
            "--witness-key",
            &s.required,
        ],
    )
    .ok();
    // The court requires the same witnesses, offline.
    s.v.cli(&bob, &["evidence", "verify", out, "--server-key", &s.key, "--witness-key", &s.required]).ok();
    let stranger = Witness::start("stranger.example/w", &[&VerifierKey::parse(&s.key).unwrap()]);
    s.v.cli(&bob, &["evidence", "verify", out, "--server-key", &s.key, "--witness-key", &stranger.key().to_text()])
        .error("the checkpoint is not witnessed");
}

#[test]
fn fail_clients_cannot_make_the_server_push_at_their_request_rate() {
    // Pushes that requests trigger at most once a minute (the default is once a second).
    let s = setup_with(&["--witness-on-demand-millis", "60000"]);
    let first = json(&s.audit(&["audit", "verify"]));
    let origin = first["origin"].as_str().unwrap().to_owned();
    let pushed = s.witnessed_sizes(&origin);
    for _ in 0..5 {
        s.audit(&["audit", "verify"]).ok();
    }
    assert_eq!(s.witnessed_sizes(&origin), pushed, "no further push within the interval");
    // Each of those requests was logged; the witnessed checkpoint simply lags.
    let again = json(&s.audit(&["audit", "verify"]));
    assert_eq!(again["size"].as_u64(), first["size"].as_u64());
}
