//! A look at the certificate `serve --tls-cert` was given, for the mistake rustls clients
//! (vault-cli among them) refuse but OpenSSL-based ones accept: a CA certificate as the
//! server's own, which is what `openssl req -x509 -newkey ... -nodes` makes by default.
//! The server still serves (curl and browsers may take it); the warning says why
//! vault-cli will not.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};

pub const CA_AS_SERVER_CERT: &str = "--tls-cert is a CA certificate (basicConstraints CA:TRUE, the default of \
    `openssl req -x509`); vault-cli and other rustls clients refuse it as a server's certificate. Make a leaf: \
    `openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:HOST`, or sign one \
    with your CA and give clients the CA (VAULT_CA_CERT)";

/// Whether `leaf` says it is a CA. webpki has no accessor for basicConstraints, but it
/// checks them first when it verifies a certificate as a server's, and names this case.
pub fn is_ca(leaf: &CertificateDer<'_>, provider: &CryptoProvider) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(leaf) else { return false };
    let Ok(anchor) = webpki::anchor_from_trusted_cert(leaf) else { return false };
    let anchors = [anchor];
    let verified = ee
        .verify_for_usage(
            provider.signature_verification_algorithms.all,
            &anchors,
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ());
    matches!(verified, Err(webpki::Error::CaUsedAsEndEntity))
}
