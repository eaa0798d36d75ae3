//! What to do about a server certificate the CLI refused. rustls names the problem in its
//! own terms (`CaUsedAsEndEntity`, `UnknownIssuer`); these hints say what is wrong with
//! the certificate in the terms of the tools people make certificates with, and how to
//! make one that works. The usual trap is the openssl one-liner for a self-signed
//! certificate, `openssl req -x509 -newkey ... -nodes`, whose certificate is a CA.

use std::error::Error as StdError;

use rustls::CertificateError;

/// A hint for the certificate error somewhere in `e`'s chain, if there is one.
pub fn hint(e: &(dyn StdError + 'static)) -> Option<String> {
    certificate_error(e).and_then(describe)
}

/// The certificate error in `e`'s chain. `io::Error` hides the error it wraps from
/// `source()` (it returns that error's source instead), and hyper nests one io::Error in
/// another, so the walk steps into each one's inner error instead.
fn certificate_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a CertificateError> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(c)) = err.downcast_ref::<rustls::Error>() {
            return Some(c);
        }
        next = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &dyn StdError),
            None => err.source(),
        };
    }
    None
}

fn describe(e: &CertificateError) -> Option<String> {
    let text = match e {
        CertificateError::Other(other) if is_ca_used_as_end_entity(other) => {
            "the server's TLS certificate is a CA certificate (basicConstraints CA:TRUE, which `openssl req -x509` \
             sets unless told otherwise), and a CA certificate cannot be a server's own. Make the server a leaf \
             certificate: self-signed with `openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE -addext \
             subjectAltName=DNS:HOST` (give that certificate to --ca-cert), or signed by your CA (give the CA to \
             --ca-cert / VAULT_CA_CERT and the leaf to vault-server --tls-cert)"
                .to_owned()
        }
        CertificateError::UnknownIssuer => "the server's TLS certificate is not signed by a CA this CLI trusts. With \
             --ca-cert (VAULT_CA_CERT), give the CA that signed the server's certificate (for a self-signed \
             certificate, that certificate itself); without it only the system's roots are trusted"
            .to_owned(),
        CertificateError::NotValidForName => {
            "the server's TLS certificate does not name the host in --server. Use a --server URL with a name the \
             certificate holds, or make the certificate with subjectAltName=DNS:HOST (or IP:ADDRESS)"
                .to_owned()
        }
        CertificateError::NotValidForNameContext { expected, presented } => format!(
            "the server's TLS certificate does not name {:?}, the host in --server (it names: {}). Use a --server URL \
             with one of those names, or make the certificate with subjectAltName=DNS:HOST (or IP:ADDRESS)",
            expected.to_str(),
            if presented.is_empty() {
                "no host at all".to_owned()
            } else {
                presented.iter().map(|n| subject_alt_name(n)).collect::<Vec<_>>().join(", ")
            }
        ),
        CertificateError::BadSignature => "the server's TLS certificate names the CA you gave (--ca-cert, \
             VAULT_CA_CERT) as its issuer but was not signed with that CA's key: a CA made again under the same \
             name? Give the CA certificate that signed the server's"
            .to_owned(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's TLS certificate has expired (or this machine's clock is wrong): the server's operator \
             must renew it"
                .to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's TLS certificate is not valid yet: this machine's clock, or the certificate's start date, \
             is wrong"
                .to_owned()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the server's TLS certificate is not for TLS servers (its extendedKeyUsage lacks serverAuth): make it \
             with -addext extendedKeyUsage=serverAuth, or without that extension"
                .to_owned()
        }
        _ => return None,
    };
    Some(text)
}

/// A name as rustls presents it (`DnsName("vault.example.org")`), as openssl writes it
/// (`DNS:vault.example.org`).
fn subject_alt_name(presented: &str) -> String {
    match presented.strip_prefix("DnsName(\"").and_then(|n| n.strip_suffix("\")")) {
        Some(dns) => format!("DNS:{dns}"),
        None => presented.to_owned(),
    }
}

/// webpki's `CaUsedAsEndEntity` reaches rustls's callers only as an "other" error.
fn is_ca_used_as_end_entity(other: &rustls::OtherError) -> bool {
    matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn wrapped(e: rustls::Error) -> Box<dyn StdError + Send + Sync> {
        // As reqwest and hyper hand it on: inside an io::Error, inside another error.
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        Box::new(Outer(std::io::Error::other(inner)))
    }

    #[test]
    fn a_ca_certificate_as_the_servers_gets_the_openssl_hint() {
        let e = wrapped(rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        )))));
        let text = hint(e.as_ref()).expect("a hint");
        assert!(text.contains("basicConstraints=critical,CA:FALSE"), "{text}");
    }

    #[test]
    fn other_errors_get_no_hint() {
        let e = wrapped(rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            webpki::Error::BadDer,
        )))));
        assert_eq!(hint(e.as_ref()), None);
        assert_eq!(hint(&std::io::Error::other("connection refused")), None);
    }
}
