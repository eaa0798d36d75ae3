//! C2SP signed notes and log checkpoints (<https://c2sp.org/signed-note>,
//! <https://c2sp.org/tlog-checkpoint>), with Ed25519 signatures.
//!
//! A checkpoint commits the server to the first `size` entries of its access log by
//! signing the head of their Merkle tree. Auditors keep the last checkpoint they verified and check
//! that every later log extends it. The text format is the standard one, so note
//! verifiers outside this project can check the signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Signature type byte of Ed25519 keys in the signed-note key hash and verifier key.
const ALG_ED25519: u8 = 0x01;

/// Why a note or key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed verifier key: {0} (expected NAME+KEYHASH+BASE64, as printed by `vault-server log-key`)")]
    BadKey(&'static str),
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    #[error("the checkpoint carries no signature by key {0}; it was not signed by this server's log key")]
    NoSignature(String),
    #[error("the checkpoint signature by {0} is invalid: forged or altered checkpoint")]
    BadSignature(String),
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
}

/// The 4-byte key hash of an Ed25519 note key.
pub fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut data = Vec::with_capacity(name.len() + 34);
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(ALG_ED25519);
    data.extend_from_slice(public);
    let h = crate::sha256(&data);
    [h[0], h[1], h[2], h[3]]
}

/// A verifier key: a name and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub public: [u8; 32],
}

impl VerifierKey {
    pub fn new(name: &str, public: [u8; 32]) -> Self {
        Self { name: name.to_owned(), public }
    }

    pub fn from_pair(name: &str, pair: &Ed25519KeyPair) -> Self {
        let public = pair.public_key().as_ref().try_into().expect("Ed25519 public keys are 32 bytes");
        Self::new(name, public)
    }

    /// `name+hex(keyhash)+base64(0x01 || public key)`.
    pub fn to_text(&self) -> String {
        let mut k = vec![ALG_ED25519];
        k.extend_from_slice(&self.public);
        format!("{}+{}+{}", self.name, hex::encode(key_hash(&self.name, &self.public)), B64.encode(k))
    }

    pub fn parse(text: &str) -> Result<Self, NoteError> {
        // The base64 key may itself contain '+', so split off only the first two parts.
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("it must have three parts separated by '+'"));
        };
        if !valid_name(name) {
            return Err(NoteError::BadKey("bad key name"));
        }
        let raw = B64.decode(key).map_err(|_| NoteError::BadKey("key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(NoteError::BadKey("not an Ed25519 key"));
        }
        let public: [u8; 32] = raw[1..].try_into().expect("checked length");
        if hex::encode(key_hash(name, &public)) != hash {
            return Err(NoteError::BadKey("key hash does not match the key"));
        }
        Ok(Self::new(name, public))
    }

    pub fn key_hash(&self) -> [u8; 4] {
        key_hash(&self.name, &self.public)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+')
}

/// Signs `text` (which must end in a newline) and returns the whole signed note.
pub fn sign(text: &str, name: &str, pair: &Ed25519KeyPair) -> String {
    debug_assert!(text.ends_with('\n'));
    let key = VerifierKey::from_pair(name, pair);
    let mut sig = key.key_hash().to_vec();
    sig.extend_from_slice(pair.sign(text.as_bytes()).as_ref());
    format!("{text}\n\u{2014} {name} {}\n", B64.encode(sig))
}

/// A signed note's text and its signature lines, unchecked: split at the last blank line.
pub fn split(note: &str) -> Result<(&str, &str), NoteError> {
    let at = note.rfind("\n\n").ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    Ok((&note[..at + 1], &note[at + 2..]))
}

/// Checks that `note` carries a valid signature by `key`; returns the signed text.
pub fn open<'a>(note: &'a str, key: &VerifierKey) -> Result<&'a str, NoteError> {
    let (text, sigs) = split(note)?;
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed("signature lines must end with a newline"));
    }
    let want = key.key_hash();
    if sigs.lines().count() > MAX_SIGNATURES {
        return Err(NoteError::Malformed("more than 100 signature lines"));
    }
    for line in sigs.lines() {
        let rest =
            line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed("signature line must start with an em dash"))?;
        let (name, sig) = rest.split_once(' ').ok_or(NoteError::Malformed("signature line lacks a signature"))?;
        let sig = B64.decode(sig).map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if name != key.name || sig.len() != 68 || sig[..4] != want {
            continue;
        }
        return UnparsedPublicKey::new(&ED25519, &key.public)
            .verify(text.as_bytes(), &sig[4..])
            .map(|()| text)
            .map_err(|_| NoteError::BadSignature(key.name.clone()));
    }
    Err(NoteError::NoSignature(key.to_text()))
}

/// Most signature lines a note may carry (the log's own and witnesses' cosignatures): the
/// C2SP signed-note limit, so a note with thousands of lines is refused unread.
const MAX_SIGNATURES: usize = 100;

/// A log checkpoint: the log's origin, its size, and the RFC 6962 Merkle tree head of its
/// first `size` entries (C2SP tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
}

impl Checkpoint {
    /// The checkpoint body in tlog-checkpoint form.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Parses a checkpoint body strictly: exactly three lines, each ending in a newline;
    /// the origin a valid key name; the size in decimal without a sign or leading zeros;
    /// the root 44 characters of padded standard base64 of 32 bytes. The vault's log
    /// never writes extension lines, so a body with one is refused rather than ignored:
    /// what the log key signed must mean exactly what the vault reads.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let body = text.strip_suffix('\n').ok_or(NoteError::BadCheckpoint("the text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| valid_name(o))
            .ok_or(NoteError::BadCheckpoint("the first line must be the origin"))?;
        let size = lines.next().and_then(parse_decimal).ok_or(NoteError::BadCheckpoint(
            "the second line must be the log size in decimal, without sign or leading zeros",
        ))?;
        let root = lines
            .next()
            .filter(|h| h.len() == 44)
            .and_then(|h| B64.decode(h).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or(NoteError::BadCheckpoint("the third line must be the base64 root hash"))?;
        if lines.next().is_some() {
            return Err(NoteError::BadCheckpoint("extension lines after the root hash are not allowed"));
        }
        Ok(Self { origin: origin.to_owned(), size, root })
    }

    pub fn sign(&self, pair: &Ed25519KeyPair) -> String {
        sign(&self.to_text(), &self.origin, pair)
    }

    /// Verifies a signed checkpoint against `key`, whose name must be the log origin.
    pub fn open(note: &str, key: &VerifierKey) -> Result<Self, NoteError> {
        let cp = Self::parse(open(note, key)?)?;
        if cp.origin != key.name {
            return Err(NoteError::BadCheckpoint("its origin is not the name of the verifier key"));
        }
        Ok(cp)
    }
}

/// A decimal number as tlog-checkpoint writes sizes: ASCII digits, no sign, no leading
/// zero (except `0` itself), within u64.
fn parse_decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap()
    }

    #[test]
    fn checkpoint_round_trip() {
        let p = pair();
        let key = VerifierKey::from_pair("vault.example/log", &p);
        let key = VerifierKey::parse(&key.to_text()).unwrap();
        let cp = Checkpoint { origin: "vault.example/log".into(), size: 42, root: [7; 32] };
        let note = cp.sign(&p);
        assert!(note.contains("\n\n\u{2014} vault.example/log "));
        assert_eq!(Checkpoint::open(&note, &key).unwrap(), cp);
    }

    #[test]
    fn fail_forged_altered_or_wrong_key() {
        let p = pair();
        let key = VerifierKey::from_pair("o", &p);
        let note = Checkpoint { origin: "o".into(), size: 5, root: [1; 32] }.sign(&p);
        let altered = note.replacen("\n5\n", "\n4\n", 1);
        assert_eq!(Checkpoint::open(&altered, &key), Err(NoteError::BadSignature("o".into())));
        let other = VerifierKey::from_pair("o", &pair());
        assert!(matches!(Checkpoint::open(&note, &other), Err(NoteError::NoSignature(_))));
        assert!(VerifierKey::parse("o+00000000+AQ==").is_err());
        let text = key.to_text();
        let bad_hash = format!("o+ffffffff+{}", text.rsplit('+').next().unwrap());
        assert!(VerifierKey::parse(&bad_hash).is_err());
    }

    /// What tlog-checkpoint leaves open is closed: one spelling of a size, 44 characters
    /// of root, no extension lines, no missing newline.
    #[test]
    fn fail_checkpoint_bodies_that_are_not_canonical() {
        let root = B64.encode([9u8; 32]);
        assert!(Checkpoint::parse(&format!("o\n12\n{root}\n")).is_ok());
        assert!(Checkpoint::parse(&format!("o\n0\n{root}\n")).is_ok());
        for bad in [
            format!("o\n012\n{root}\n"),
            format!("o\n+12\n{root}\n"),
            format!("o\n 12\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n12\n{}\n", root.trim_end_matches('=')),
            format!("o\n12\n{root}"),
            format!("o\n12\n{root}\nextension\n"),
            format!("\n12\n{root}\n"),
            format!("o p\n12\n{root}\n"),
            format!("o\n12\n{}\n", B64.encode([9u8; 31])),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "accepted {bad:?}");
        }
    }

    /// The key hash follows the signed-note spec: SHA-256(name || 0x0A || 0x01 || key)[:4].
    #[test]
    fn key_hash_matches_the_spec_definition() {
        let public = [0u8; 32];
        let mut data = b"example.com/log\n\x01".to_vec();
        data.extend_from_slice(&public);
        assert_eq!(key_hash("example.com/log", &public)[..], crate::sha256(&data)[..4]);
    }

    /// The reference vector of golang.org/x/mod/sumdb/note: our verifier accepts Go's
    /// note, and our signer reproduces it byte for byte (Ed25519 is deterministic).
    #[test]
    fn go_sumdb_note_reference_vector() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let text =
            "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let note = format!(
            "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        let key = VerifierKey::parse(vkey).unwrap();
        assert_eq!(key.to_text(), vkey);
        assert_eq!(open(&note, &key).unwrap(), text);
        assert!(open(&note.replace("cryptography", "cryptographY"), &key).is_err());
        let seed = B64.decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap();
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed[1..]).unwrap();
        assert_eq!(sign(text, "PeterNeumann", &pair), note);
    }
}
