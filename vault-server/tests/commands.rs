//! `vault-server` commands that need no running server: init and verify refusals.
//! (Having an integration test here also makes `cargo test --workspace` build the
//! `vault-server` binary the end-to-end tests run.)

use std::process::Command;

fn server(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_vault-server")).args(args).output().expect("run vault-server");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into())
}

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

#[test]
fn init_creates_a_private_data_dir_and_refuses_twice() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let (code, err) = server(&["init", "--data-dir", d, "--admin", "alice", "--recipient", RECIPIENT]);
    assert_eq!(code, 0, "{err}");
    for f in ["jwt-key.pk8", "log-key.pk8", "vault.db"] {
        let mode = std::fs::metadata(data.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    let (code, err) = server(&["init", "--data-dir", d, "--admin", "bob", "--recipient", RECIPIENT]);
    assert_eq!(code, 1);
    assert!(err.contains("already holds a vault"), "{err}");
    let (code, err) = server(&["verify", "--data-dir", d]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn fail_bad_init_arguments_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let (code, err) = server(&["init", "--data-dir", d, "--admin", "alice", "--recipient", "age1nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("not an age X25519 recipient"), "{err}");
    let (code, _) = server(&["init", "--data-dir", d, "--admin", "../alice", "--recipient", RECIPIENT]);
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
