//! The command line's own contract, without a server: usage errors exit 2, ids are
//! checked before anything is sent, keygen output. (Having an integration test here also
//! makes `cargo test --workspace` build the `vault-cli` binary the end-to-end tests run.)

use std::process::Command;

fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_vault-cli"))
        .args(args)
        .env("VAULT_CONFIG_DIR", std::env::temp_dir().join("vault-cli-usage-test"))
        .env("VAULT_SERVER", "http://127.0.0.1:9")
        .output()
        .expect("run vault-cli");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn fail_usage_errors_exit_2() {
    for args in [
        &["nonsense"][..],
        &["fetch", "rec_0123456789abcdef0123456789abcdef", "--out", "x"], // no --reason
        &["fetch", "../../etc/passwd", "--reason", "r", "--out", "x"],
        &["upload", "case_1", "f"],
        &["user", "add", "Bad/Name", "--role", "admin", "--recipient", "age1x"],
        &["user", "add", "bob", "--role", "superuser", "--recipient", "age1x"],
        &["case", "create", "--kind", "secret", "--title", "t"],
    ] {
        let (code, stdout, stderr) = cli(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?} printed {stdout}");
    }
}

#[test]
fn help_documents_the_exit_statuses() {
    let (code, stdout, _) = cli(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("3 access denied"), "{stdout}");
}

#[test]
fn keygen_prints_only_the_public_id_of_a_standard_identity_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let (code, stdout, stderr) = cli(&["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let id = stdout.trim();
    assert!(id.starts_with("vault1") && !id.contains('\n'), "{stdout}");
    let id: vault_core::trust::PublicId = id.parse().unwrap();
    // The file is an age identity whose recipient and derived signing key the id carries.
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.contains(&format!("# public key: {}", id.recipient())), "{text}");
    let identity = vault_core::crypto::parse_identity(&text, "k").unwrap();
    assert_eq!(vault_core::trust::SigningKey::from_identity(&identity).public_id(), id);
    assert!(stderr.contains(&id.recipient().to_string()), "stderr names the age recipient: {stderr}");
    assert!(!stdout.contains("AGE-SECRET-KEY"), "the secret went to stdout");
    // `public-id` prints the same id again, from the file or from --identity.
    let (code, again, stderr) = cli(&["public-id", key.to_str().unwrap()]);
    assert_eq!((code, again.trim()), (0, id.to_string().as_str()), "{stderr}");
    let (code, again, _) = cli(&["--identity", key.to_str().unwrap(), "public-id"]);
    assert_eq!((code, again.trim()), (0, id.to_string().as_str()));
    let (code, _, stderr) = cli(&["public-id", dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read identity file"), "{stderr}");
}

#[test]
fn unreachable_server_is_a_plain_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    cli(&["keygen", "--out", key.to_str().unwrap()]);
    let (code, _, stderr) = cli(&["--user", "bob", "--identity", key.to_str().unwrap(), "login"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
}
