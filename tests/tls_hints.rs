//! The CLI's hints for server certificates it refuses, against the real server over TLS
//! with certificates made the ways people get them wrong: a CA certificate as the
//! server's own (what `openssl req -x509 -newkey ... -nodes` makes), a certificate for
//! another name, an expired one, and one signed by a CA the CLI was not given. Each is
//! refused with what is wrong and what to do; a CA-signed leaf, the right way, logs in.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use vault_tests::Vault;

/// A CA (self-signed, CA:TRUE), as `openssl req -x509` makes one.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// Serves `v` over TLS with `cert` (PEM) and `key`, and has its CLI trust `trusted` (PEM).
fn serve(v: &mut Vault, cert: &str, key: &KeyPair, trusted: &str) {
    let dir = v.dir.path();
    let (cert_path, key_path, ca_path) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"), dir.join("ca.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&ca_path, trusted).unwrap();
    v.serve_with(&[
        "--tls-cert".into(),
        cert_path.to_str().unwrap().into(),
        "--tls-key".into(),
        key_path.to_str().unwrap().into(),
    ]);
    assert!(v.url.starts_with("https://127.0.0.1:"), "{}", v.url);
    v.ca_cert = Some(ca_path);
}

/// A leaf certificate for `names`, signed by `issuer`.
fn leaf(
    names: &[&str],
    issuer: &CertifiedIssuer<'static, KeyPair>,
    edit: impl FnOnce(&mut CertificateParams),
) -> (String, KeyPair) {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    edit(&mut p);
    let key = KeyPair::generate().unwrap();
    (p.signed_by(&key, issuer).unwrap().pem(), key)
}

/// Logging in fails with exit 1, the hint, and no bare rustls name alone.
#[track_caller]
fn login_fails_with(v: &Vault, hint: &str) -> String {
    let out = v.cli(&v.admin, &["login"]);
    out.error(hint);
    out.stderr
}

#[test]
fn fail_a_ca_certificate_as_the_servers_own_says_how_to_make_a_leaf() {
    let mut v = Vault::start();
    let ca = ca("vault.example.org");
    let pem = ca.pem();
    serve(&mut v, &pem, ca.key(), &pem);
    let stderr = login_fails_with(&v, "is a CA certificate (basicConstraints CA:TRUE");
    assert!(stderr.contains("-addext basicConstraints=critical,CA:FALSE"), "{stderr}");
    // The hint comes first; rustls's own words stay at the end of the chain for a search.
    assert!(stderr.starts_with("vault-cli: error: the server's TLS certificate is a CA"), "{stderr}");
    assert!(stderr.contains("CaUsedAsEndEntity"), "{stderr}");
    // The server said so when it started, and serves all the same (other clients may take it).
    let log = std::fs::read_to_string(v.server_log()).unwrap();
    assert!(log.contains("--tls-cert is a CA certificate (basicConstraints CA:TRUE"), "{log}");
}

#[test]
fn fail_a_certificate_for_another_name_names_both() {
    let mut v = Vault::start();
    let ca = ca("vault CA");
    let (cert, key) = leaf(&["vault.example.org"], &ca, |_| {});
    serve(&mut v, &cert, &key, &ca.pem());
    let stderr = login_fails_with(&v, "does not name \"127.0.0.1\"");
    assert!(stderr.contains("it names: DNS:vault.example.org"), "{stderr}");
}

#[test]
fn fail_an_expired_certificate_says_renew() {
    let mut v = Vault::start();
    let ca = ca("vault CA");
    let (cert, key) = leaf(&["127.0.0.1"], &ca, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    serve(&mut v, &cert, &key, &ca.pem());
    login_fails_with(&v, "has expired (or this machine's clock is wrong)");
}

#[test]
fn fail_a_certificate_from_another_ca_says_which_ca_to_give() {
    let mut v = Vault::start();
    let (signer, other) = (ca("vault CA"), ca("some other CA"));
    let (cert, key) = leaf(&["127.0.0.1"], &signer, |_| {});
    serve(&mut v, &cert, &key, &other.pem());
    login_fails_with(&v, "not signed by a CA this CLI trusts. With --ca-cert (VAULT_CA_CERT), give the CA");
}

#[test]
fn fail_a_certificate_from_a_ca_of_the_same_name_says_so() {
    let mut v = Vault::start();
    let (signer, twin) = (ca("vault CA"), ca("vault CA"));
    let (cert, key) = leaf(&["127.0.0.1"], &signer, |_| {});
    serve(&mut v, &cert, &key, &twin.pem());
    login_fails_with(&v, "was not signed with that CA's key");
}

#[test]
fn a_leaf_signed_by_the_given_ca_logs_in() {
    let mut v = Vault::start();
    let ca = ca("vault CA");
    let (cert, key) = leaf(&["127.0.0.1", "localhost"], &ca, |_| {});
    serve(&mut v, &cert, &key, &ca.pem());
    let out = v.cli(&v.admin, &["login"]);
    out.ok();
    let log = std::fs::read_to_string(v.server_log()).unwrap();
    assert!(!log.contains("is a CA certificate"), "{log}");
}
