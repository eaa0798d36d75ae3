//! `/healthz` and `/readyz` with the real server: no token needed, no access-log entry
//! written, nothing about the vault's contents said, and `/readyz` refusing (503) when the
//! data directory's disk is below the configured free space.

use vault_tests::Vault;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn probes_need_no_token_and_write_no_log_entry() {
    let v = Vault::start();
    let before = v.log_len();
    for _ in 0..5 {
        let (status, body) = v.raw("GET", "/healthz", None, &[], b"");
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["status"], "alive");
        let (status, body) = v.raw("GET", "/readyz", None, &[], b"");
        assert_eq!(status, 200, "{body}");
        let b = json(&body);
        assert_eq!(b["ready"], true, "{body}");
        assert_eq!(b["checks"]["database_writable"], true);
        assert!(b["checks"]["disk_free_bytes"].as_u64().unwrap() > 0);
    }
    assert_eq!(v.log_len(), before, "probes are not access-log entries");
    // Neither says anything about users, cases or recordings.
    let (_, body) = v.raw("GET", "/readyz", None, &[], b"");
    for word in ["alice", "case_", "rec_", "admin"] {
        assert!(!body.contains(word), "{body}");
    }
}

#[test]
fn fail_readyz_says_not_ready_when_the_disk_is_short_of_space() {
    // More free space wanted than any disk has.
    let v = Vault::start_with(&["--ready-min-free-mib", "999999999999"]);
    let before = v.log_len();
    let (status, body) = v.raw("GET", "/readyz", None, &[], b"");
    assert_eq!(status, 503, "{body}");
    let b = json(&body);
    assert_eq!((b["ready"].as_bool(), b["checks"]["disk_free_enough"].as_bool()), (Some(false), Some(false)));
    assert_eq!(b["checks"]["database_writable"], true);
    // Alive all the same, and still no entry.
    assert_eq!(v.raw("GET", "/healthz", None, &[], b"").0, 200);
    assert_eq!(v.log_len(), before);
}
