//! Transport security: HTTPS end to end, and refusals to send credentials in clear.

use std::process::Command;

use vault_tests::{Out, Vault, run};

#[test]
fn the_whole_flow_works_over_https() {
    let v = Vault::start_tls();
    assert!(v.url.starts_with("https://127.0.0.1:"), "{}", v.url);
    let bob = v.enrol("bob", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    let case = v.cli(&v.admin, &["case", "create", "--kind", "customer", "--title", "T", "--purpose", "sales"]).ok();
    let file = v.dir.path().join("call.wav");
    std::fs::write(&file, vec![42u8; 300_000]).unwrap();
    let rec = v.cli(&pbx, &["upload", &case, file.to_str().unwrap()]).ok();
    v.cli(&v.admin, &["grant", &case, "bob", "--reason", "r"]).ok();
    let out = v.dir.path().join("out.wav");
    v.cli(&bob, &["fetch", &rec, "--reason", "r", "--out", out.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), vec![42u8; 300_000]);
}

/// The CLI stopped at the TLS handshake, said why, and no login reached the server.
#[track_caller]
fn refused_for_the_certificate(v: &Vault, o: &Out) {
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.to_lowercase().contains("certificate"), "{}", o.stderr);
    assert_eq!(v.count("SELECT count(*) FROM access_log WHERE action = 'login'"), 0, "a login got through");
}

#[test]
fn fail_a_client_that_does_not_trust_the_certificate_sends_nothing() {
    let v = Vault::start_tls();
    let o = run(v.cli_cmd(&v.admin).env_remove("VAULT_CA_CERT").arg("login"));
    refused_for_the_certificate(&v, &o);
}

#[test]
fn fail_a_ca_cert_for_another_certificate_is_refused_and_sends_nothing() {
    let v = Vault::start_tls();
    // A certificate for the same names that the server does not hold: --ca-cert is the
    // only root the CLI trusts, so the real server's certificate does not verify.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let other_pem = v.dir.path().join("other-ca.pem");
    std::fs::write(&other_pem, other.cert.pem()).unwrap();
    let o = run(v.cli_cmd(&v.admin).env("VAULT_CA_CERT", &other_pem).arg("login"));
    refused_for_the_certificate(&v, &o);
}

#[test]
fn fail_plain_http_beyond_loopback_is_refused_before_connecting() {
    let v = Vault::start();
    // A name that is never resolved: the refusal comes before any connection.
    let o = run(v.cli_cmd(&v.admin).env("VAULT_SERVER", "http://vault.example:8700").arg("login"));
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("refusing plain http://"), "{}", o.stderr);
    // And the server will not listen in clear beyond loopback (checked before binding).
    let o = run(Command::new(vault_tests::bin("vault-server"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(v.data()));
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("refusing to serve plain HTTP"), "{}", o.stderr);
}
