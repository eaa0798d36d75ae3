//! `vault-server` commands that need no running server: init and verify refusals.
//! (Having an integration test here also makes `cargo test --workspace` build the
//! `vault-server` binary the end-to-end tests run.)

use std::process::Command;

fn server(args: &[&str]) -> (i32, String) {
    let (code, _, err) = server_out(args);
    (code, err)
}

fn server_out(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_vault-server")).args(args).output().expect("run vault-server");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

/// A fresh person's public id.
fn public_id() -> String {
    vault_core::trust::SigningKey::from_identity(&age::x25519::Identity::generate()).public_id().to_string()
}

#[test]
fn init_creates_a_private_data_dir_and_refuses_twice() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let (a, b) = (public_id(), public_id());
    let (code, out, err) = server_out(&[
        "init",
        "--data-dir",
        d,
        "--admin",
        "alice",
        "--recipient",
        &a,
        "--admin",
        "bob",
        "--recipient",
        &b,
    ]);
    assert_eq!(code, 0, "{err}");
    // The trust root's fingerprint, alone on stdout: what every client is given.
    assert!(out.trim().starts_with("SHA256:") && out.trim().lines().count() == 1, "{out}");
    assert!(!err.contains("warning"), "{err}");
    for f in ["jwt-key.pk8", "log-key.pk8", "vault.db"] {
        let mode = std::fs::metadata(data.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    let (code, err) = server(&["init", "--data-dir", d, "--admin", "bob", "--recipient", &public_id()]);
    assert_eq!(code, 1);
    assert!(err.contains("already holds a vault"), "{err}");
    let (code, err) = server(&["verify", "--data-dir", d]);
    assert_eq!(code, 0, "{err}");
    // The operator can print the fingerprint again later, with the root itself.
    let (code, again, root) = server_out(&["trust-root", "--data-dir", d]);
    assert_eq!((code, again.trim()), (0, out.trim()), "{root}");
    assert!(root.contains(&format!("admin: alice {a}\nadmin: bob {b}\n")), "{root}");
}

#[test]
fn fail_bad_init_arguments_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let id = public_id();
    for (args, told) in [
        (vec!["--admin", "alice", "--recipient", RECIPIENT], "bare age recipient, which carries no signing key"),
        (vec!["--admin", "alice", "--recipient", "vault1nope"], "not valid Bech32"),
        (vec!["--admin", "alice", "--recipient", &id, "--admin", "bob"], "one --recipient for each --admin"),
        (vec!["--admin", "alice", "--recipient", &id, "--admin", "bob", "--recipient", &id], "appears twice"),
        (vec!["--admin", "alice", "--recipient", &id, "--admin", "alice", "--recipient", RECIPIENT], "bare age"),
    ] {
        let mut all = vec!["init", "--data-dir", d];
        all.extend(args);
        let (code, err) = server(&all);
        assert_eq!(code, 1, "{all:?}: {err}");
        assert!(err.contains(told), "{all:?}: {err}");
    }
    let (code, _) = server(&["init", "--data-dir", d, "--admin", "../alice", "--recipient", &id]);
    assert_eq!(code, 2);
    assert!(!data.exists(), "a refused init left files behind");
}

#[test]
fn fail_verify_on_an_uninitialised_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = server(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not an initialised vault"), "{err}");
}

#[test]
fn one_initial_admin_is_allowed_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let (code, out, err) =
        server_out(&["init", "--data-dir", d.to_str().unwrap(), "--admin", "a", "--recipient", &public_id()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("SHA256:"), "{out}");
    assert!(err.contains("warning: with one initial admin no further admin can ever be enrolled"), "{err}");
}

/// A data dir from before signed trust (schema version 4) is refused, untouched, with the
/// way forward.
#[test]
fn fail_a_data_dir_from_before_signed_trust_is_refused_not_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for sub in ["blobs", "tmp"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    let db = rusqlite::Connection::open(data.join("vault.db")).unwrap();
    for sql in [
        include_str!("../../schema/migrations/0001_initial.sql"),
        include_str!("../../schema/migrations/0002_lifecycle.sql"),
        include_str!("../../schema/migrations/0003_scale.sql"),
        include_str!("../../schema/migrations/0004_counts.sql"),
    ] {
        db.execute_batch(sql).unwrap();
    }
    db.execute_batch("PRAGMA user_version = 4;").unwrap();
    drop(db);
    let d = data.to_str().unwrap();
    for args in [vec!["serve", "--data-dir", d, "--listen", "127.0.0.1:0"], vec!["verify", "--data-dir", d]] {
        let (code, err) = server(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains("before signed trust (schema version 4)"), "{err}");
        assert!(err.contains("Upgrading from a vault without signed trust"), "{err}");
    }
    let db = rusqlite::Connection::open(data.join("vault.db")).unwrap();
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 4, "a refused data dir was changed");
}
