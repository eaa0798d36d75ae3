//! Keys, envelopes and streaming encryption, all in the standard age format.
//!
//! * A person's identity is an age X25519 identity file, the same format `age-keygen`
//!   writes, so the standard `age` tool can use it.
//! * A case key is an age X25519 key pair. Its secret half only ever leaves a custodian's
//!   machine inside an *envelope*: the secret's text age-encrypted to one person.
//! * Recordings are age-encrypted to the case recipient, in a stream, so memory does not
//!   grow with a recording's size.
//!
//! Nothing here prompts or prints; errors say what went wrong and what to do.

use std::io::{self, Read, Write};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

mod error;
pub mod payload;

pub use error::CryptoError;
pub use payload::Encryption;

/// The largest envelope or challenge this module will decrypt into memory.
const SMALL_CIPHERTEXT_MAX: u64 = 64 * 1024;

/// Parses the text of an identity file: `#` comment lines, blank lines and exactly one
/// `AGE-SECRET-KEY-1...` line.
pub fn parse_identity(text: &str, source: &str) -> Result<age::x25519::Identity, CryptoError> {
    let mut keys = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(line), None) = (keys.next(), keys.next()) else {
        return Err(CryptoError::BadIdentityFile(source.to_owned()));
    };
    age::x25519::Identity::from_str(line).map_err(|_| CryptoError::BadIdentityFile(source.to_owned()))
}

/// Reads an identity file from disk.
pub fn read_identity_file(path: &std::path::Path) -> Result<age::x25519::Identity, CryptoError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read identity file {}: {e}", path.display())))?,
    );
    parse_identity(&text, &path.display().to_string())
}

/// The text of an identity file in the layout `age-keygen` uses.
pub fn identity_file_text(identity: &age::x25519::Identity) -> Zeroizing<String> {
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    Zeroizing::new(format!(
        "# created: {created}\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    ))
}

/// Parses an `age1...` recipient.
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, CryptoError> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|_| CryptoError::BadRecipient(s.chars().take(100).collect()))
}

/// Encrypts a small secret (a case key, a challenge) to one recipient.
pub fn encrypt_small(recipient: &age::x25519::Recipient, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + 256);
    encrypt_stream(recipient, &mut &plaintext[..], &mut out).expect("writing to memory cannot fail");
    out
}

/// Decrypts a small ciphertext (an envelope, a challenge) into zeroizing memory.
pub fn decrypt_small(identity: &age::x25519::Identity, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    // The plaintext is shorter than the ciphertext, which is already in memory; reserving
    // that much up front means the buffer never moves, so no unzeroed copy is left behind.
    let mut out = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    decrypt_stream(identity, ciphertext, &mut *out)?;
    if out.len() as u64 > SMALL_CIPHERTEXT_MAX {
        return Err(CryptoError::Malformed("larger than any envelope or challenge".into()));
    }
    Ok(out)
}

/// Prefix of a text sealed to a case key (see [`seal_text`]).
pub const SEALED_PREFIX: &str = "sealed:";

/// Encrypts a short text (such as the description of a suspicion) to a case recipient,
/// as `sealed:` and base64 of the age ciphertext, so the server keeps it without being
/// able to read it.
pub fn seal_text(recipient: &age::x25519::Recipient, text: &str) -> String {
    use base64::Engine;
    format!(
        "{SEALED_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(encrypt_small(recipient, text.as_bytes()))
    )
}

/// Opens a text made by [`seal_text`]; `None` if it is not sealed.
pub fn open_text(identity: &age::x25519::Identity, sealed: &str) -> Option<Result<Zeroizing<String>, CryptoError>> {
    use base64::Engine;
    let b64 = sealed.strip_prefix(SEALED_PREFIX)?;
    let open = || {
        let ct = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| CryptoError::Malformed("sealed text is not base64".into()))?;
        let plain = decrypt_small(identity, &ct)?;
        let text =
            std::str::from_utf8(&plain).map_err(|_| CryptoError::Malformed("sealed text is not UTF-8".into()))?;
        Ok(Zeroizing::new(text.to_owned()))
    };
    Some(open())
}

/// Encrypts an upload's call metadata to the case recipient, as base64 for the
/// `x-vault-meta` header: the server stores it without being able to read it.
pub fn seal_call_meta(recipient: &age::x25519::Recipient, call: &crate::api::CallMeta) -> String {
    use base64::Engine;
    let json = Zeroizing::new(serde_json::to_vec(call).expect("call metadata serialises"));
    base64::engine::general_purpose::STANDARD.encode(encrypt_small(recipient, &json))
}

/// Opens call metadata made by [`seal_call_meta`] with the case key it was sealed to.
pub fn open_call_meta(identity: &age::x25519::Identity, b64: &str) -> Result<crate::api::CallMeta, CryptoError> {
    use base64::Engine;
    let ct = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| CryptoError::Malformed("call metadata is not base64".into()))?;
    let plain = decrypt_small(identity, &ct)?;
    serde_json::from_slice(&plain)
        .map_err(|e| CryptoError::Malformed(format!("call metadata is not what this client expects: {e}")))
}

/// A case key pair, generated on a custodian's machine.
pub struct CaseKey {
    identity: age::x25519::Identity,
}

impl CaseKey {
    pub fn generate() -> Self {
        Self { identity: age::x25519::Identity::generate() }
    }

    /// The recipient recorders encrypt to; stored by the server in clear.
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    pub fn identity(&self) -> &age::x25519::Identity {
        &self.identity
    }

    /// Wraps the case secret to one person: the envelope the server stores for them.
    pub fn wrap_to(&self, person: &age::x25519::Recipient) -> Vec<u8> {
        let secret = self.identity.to_string();
        encrypt_small(person, secret.expose_secret().as_bytes())
    }

    /// Opens an envelope with a person's identity and checks that it holds the secret of
    /// `expected_recipient`, so a custodian cannot slip a different key into a case.
    pub fn unwrap(
        envelope: &[u8],
        person: &age::x25519::Identity,
        expected_recipient: &str,
    ) -> Result<Self, CryptoError> {
        let plain = decrypt_small(person, envelope)?;
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::WrongCaseKey("not a key".into()))?;
        let identity = age::x25519::Identity::from_str(text.trim())
            .map_err(|_| CryptoError::WrongCaseKey("not an age identity".into()))?;
        if identity.to_public().to_string() != expected_recipient.trim() {
            return Err(CryptoError::WrongCaseKey(format!(
                "it opens {}, not the case recipient {}",
                identity.to_public(),
                expected_recipient.trim()
            )));
        }
        Ok(Self { identity })
    }
}

/// Encrypts everything `input` yields to `recipient`, writing age ciphertext to `output`
/// as it goes. Returns the number of plaintext bytes. (The chunk loop runs on `ring`; see
/// [`payload`].)
pub fn encrypt_stream<R: Read + ?Sized, W: Write>(
    recipient: &age::x25519::Recipient,
    input: &mut R,
    output: W,
) -> io::Result<u64> {
    payload::encrypt(recipient, input, output)
}

/// Decrypts `input` to `output` in a stream. Returns the number of plaintext bytes. On
/// error, `output` holds a prefix of unauthenticated plaintext: write it to a temporary
/// file and throw that away.
pub fn decrypt_stream<R: Read, W: Write + ?Sized>(
    identity: &age::x25519::Identity,
    input: R,
    output: &mut W,
) -> Result<u64, CryptoError> {
    payload::decrypt(identity, input, output)
}

/// Checks that `header` (the first bytes of an upload) starts like age ciphertext. The
/// server cannot decrypt, but it can refuse what is plainly not age output.
pub fn looks_like_age(prefix: &[u8]) -> bool {
    const MAGIC: &[u8] = b"age-encryption.org/v1\n";
    let n = prefix.len().min(MAGIC.len());
    prefix[..n] == MAGIC[..n]
}

/// Returns true when `buf` holds a complete age header (the `---` MAC line), by the same
/// reading [`decrypt_stream`] does.
pub fn has_complete_header(buf: &[u8]) -> bool {
    header_len(buf).is_some()
}

/// The length of the age header at the start of `buf`, through its `---` MAC line, by
/// the same reading [`decrypt_stream`] does; `None` unless `buf` holds a complete one.
/// What follows it is the payload.
pub fn header_len(buf: &[u8]) -> Option<usize> {
    payload::header_len(buf)
}

/// Checks, without the key, that `len` bytes after an age header can be a payload anyone
/// could decrypt (see [`payload::check_payload_len`]); on refusal, says what is wrong.
/// The server checks uploads with it, so it stores nothing that no one could ever decrypt.
pub fn payload_len_is_possible(len: u64) -> Result<(), &'static str> {
    payload::check_payload_len(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(data: &[u8]) -> Vec<u8> {
        let id = age::x25519::Identity::generate();
        let mut ct = Vec::new();
        encrypt_stream(&id.to_public(), &mut &data[..], &mut ct).unwrap();
        let mut out = Vec::new();
        decrypt_stream(&id, &ct[..], &mut out).unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn stream_roundtrip(data in proptest::collection::vec(any::<u8>(), 0..200_000)) {
            prop_assert_eq!(roundtrip(&data), data);
        }

        #[test]
        fn envelope_roundtrip(_seed in 0u8..8) {
            let key = CaseKey::generate();
            let person = age::x25519::Identity::generate();
            let env = key.wrap_to(&person.to_public());
            let back = CaseKey::unwrap(&env, &person, &key.recipient()).unwrap();
            prop_assert_eq!(back.recipient(), key.recipient());
        }

        #[test]
        fn fail_truncated_ciphertext(data in proptest::collection::vec(any::<u8>(), 1..150_000), cut in 1usize..64) {
            let id = age::x25519::Identity::generate();
            let mut ct = Vec::new();
            encrypt_stream(&id.to_public(), &mut &data[..], &mut ct).unwrap();
            let keep = ct.len() - cut.min(ct.len());
            let mut out = Vec::new();
            prop_assert!(decrypt_stream(&id, &ct[..keep], &mut out).is_err());
        }

        #[test]
        fn fail_corrupted_ciphertext(data in proptest::collection::vec(any::<u8>(), 1..100_000), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let id = age::x25519::Identity::generate();
            let mut ct = Vec::new();
            encrypt_stream(&id.to_public(), &mut &data[..], &mut ct).unwrap();
            let i = pos.index(ct.len());
            ct[i] ^= 1 << bit;
            let mut out = Vec::new();
            prop_assert!(decrypt_stream(&id, &ct[..], &mut out).is_err());
        }
    }

    #[test]
    fn fail_wrong_identity() {
        let key = CaseKey::generate();
        let alice = age::x25519::Identity::generate();
        let mallory = age::x25519::Identity::generate();
        let env = key.wrap_to(&alice.to_public());
        assert!(matches!(CaseKey::unwrap(&env, &mallory, &key.recipient()), Err(CryptoError::NotForThisIdentity)));
        let mut ct = Vec::new();
        encrypt_stream(&alice.to_public(), &mut &b"secret call"[..], &mut ct).unwrap();
        assert!(matches!(decrypt_stream(&mallory, &ct[..], &mut Vec::new()), Err(CryptoError::NotForThisIdentity)));
    }

    #[test]
    fn fail_envelope_with_another_case_key() {
        let key = CaseKey::generate();
        let other = CaseKey::generate();
        let person = age::x25519::Identity::generate();
        let env = other.wrap_to(&person.to_public());
        assert!(matches!(CaseKey::unwrap(&env, &person, &key.recipient()), Err(CryptoError::WrongCaseKey(_))));
    }

    #[test]
    fn fail_not_age_at_all() {
        let id = age::x25519::Identity::generate();
        for junk in [&b""[..], b"hello world", b"age-encryption.org/v1\n-> X25519 garbage\n"] {
            assert!(matches!(decrypt_stream(&id, junk, &mut Vec::new()), Err(CryptoError::Malformed(_))));
        }
    }

    #[test]
    fn identity_file_round_trip_and_refusals() {
        let id = age::x25519::Identity::generate();
        let text = identity_file_text(&id);
        let back = parse_identity(&text, "test").unwrap();
        assert_eq!(back.to_public().to_string(), id.to_public().to_string());
        assert!(parse_identity("# only a comment\n", "x").is_err());
        assert!(parse_identity("AGE-SECRET-KEY-1XYZ\n", "x").is_err());
        let twice = format!("{}\n{}", id.to_string().expose_secret(), id.to_string().expose_secret());
        assert!(parse_identity(&twice, "x").is_err());
    }

    #[test]
    fn sealed_text_round_trip_and_refusals() {
        let key = CaseKey::generate();
        let sealed = seal_text(&parse_recipient(&key.recipient()).unwrap(), "suspected theft of customer data");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("theft"));
        assert_eq!(open_text(key.identity(), &sealed).unwrap().unwrap().as_str(), "suspected theft of customer data");
        assert!(open_text(key.identity(), "plain words").is_none());
        let other = CaseKey::generate();
        assert!(matches!(open_text(other.identity(), &sealed), Some(Err(CryptoError::NotForThisIdentity))));
    }

    #[test]
    fn call_meta_round_trip_and_refusals() {
        let key = CaseKey::generate();
        let call = crate::api::CallMeta {
            file_name: Some("jan-2026-03-01.wav".into()),
            plaintext_size: Some(7),
            ..Default::default()
        };
        let sealed = seal_call_meta(&parse_recipient(&key.recipient()).unwrap(), &call);
        assert!(!sealed.contains("jan-2026"));
        let back = open_call_meta(key.identity(), &sealed).unwrap();
        assert_eq!((back.file_name.as_deref(), back.plaintext_size), (Some("jan-2026-03-01.wav"), Some(7)));
        let other = CaseKey::generate();
        assert!(matches!(open_call_meta(other.identity(), &sealed), Err(CryptoError::NotForThisIdentity)));
        assert!(matches!(open_call_meta(key.identity(), "not base64!"), Err(CryptoError::Malformed(_))));
        let not_json = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            encrypt_small(&parse_recipient(&key.recipient()).unwrap(), b"[1,2"),
        );
        assert!(matches!(open_call_meta(key.identity(), &not_json), Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn header_checks() {
        let id = age::x25519::Identity::generate();
        let ct = encrypt_small(&id.to_public(), b"x");
        assert!(looks_like_age(&ct[..5]));
        assert!(has_complete_header(&ct));
        assert!(!has_complete_header(&ct[..30]));
        assert!(!looks_like_age(b"RIFF....WAVE"));
    }
}
