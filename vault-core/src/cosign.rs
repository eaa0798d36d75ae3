//! Witness cosignatures on log checkpoints: C2SP tlog-cosignature v1, Ed25519
//! (<https://c2sp.org/tlog-cosignature>).
//!
//! A witness (the DPO, a works council, another company) keeps the last checkpoint it
//! cosigned for each log and cosigns a new one only if the log proves it extends that one.
//! A client that requires the cosignatures of witnesses it trusts then knows the server
//! cannot show it a log that those witnesses were not shown: a rewritten or forked log
//! needs every required witness to be fooled, or to collude. This module is the format:
//! the signed message, the signature line, the witness's verifier key, and the check that
//! a signed checkpoint carries a valid cosignature from each required witness. The
//! protocol a witness speaks is [`crate::witness`]; `schema/WITNESS.md` gives every byte.
//!
//! ```text
//! message   = "cosignature/v1\n" || "time " || decimal(timestamp) || "\n" || checkpoint text
//! line      = "\u{2014} " || name || " " || base64(key_hash || u64be(timestamp) || signature) || "\n"
//! key_hash  = SHA-256(name || "\n" || 0x04 || public key)[0..4]
//! verifier  = name || "+" || hex(key_hash) || "+" || base64(0x04 || public key)
//! ```
//!
//! The signed message does not name the witness, so one Ed25519 key must never serve two
//! witness names: [`Cosigner::from_identity`] binds the name into the key's derivation.

use std::fmt;

use age::secrecy::ExposeSecret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

/// Signature type byte of Ed25519 cosignature/v1 keys, in the key hash and verifier key.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The first line of every cosigned message: the domain separation of cosignature/v1.
pub const HEADER: &str = "cosignature/v1";
/// The largest timestamp the format allows (2^63 - 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;
/// The largest signed note this module reads: a checkpoint and its signatures are a few
/// hundred bytes each.
pub const MAX_NOTE_BYTES: usize = 32 * 1024;
/// The most signature lines a note may carry (the limit of Go's `sumdb/note`).
pub const MAX_SIGNATURES: usize = 100;
/// HKDF salt of the witness-key derivation from an age identity.
pub const DERIVE_SALT: &[u8] = b"recording-vault witness key v1";
/// HKDF info of the witness-key derivation, followed by the witness's name.
pub const DERIVE_INFO_PREFIX: &[u8] = b"ed25519 cosigner seed for ";

/// Bytes of a cosignature after the key hash: the timestamp and the Ed25519 signature.
const TIMESTAMPED_SIGNATURE_LEN: usize = 8 + 64;

/// Why a key, a note or a cosignature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignError {
    /// A witness verifier key that cannot be read.
    #[error(
        "malformed witness key: {0} (expected NAME+KEYHASH+BASE64 with key type 04, as printed by `vault-cli witness key`)"
    )]
    BadKey(&'static str),
    /// A witness name that signed notes cannot carry.
    #[error(
        "bad witness name {0:?}: it must be non-empty, without spaces, control characters or '+' (e.g. witness.example.org/dpo)"
    )]
    BadName(String),
    /// A note that breaks the signed-note format: nothing in it is trusted.
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    /// A required witness did not cosign the checkpoint.
    #[error(
        "the checkpoint carries no cosignature by witness {0}; ask the server to obtain one, or check the witness key"
    )]
    Missing(String),
    /// A line claims to be a required witness's cosignature but does not verify.
    #[error("the cosignature by witness {0} is invalid: forged, or the checkpoint was altered after it was cosigned")]
    Invalid(String),
    /// A timestamp the format does not allow.
    #[error("timestamp {0} is beyond 2^63 - 1")]
    BadTimestamp(u64),
}

/// The 4-byte key hash of a cosignature/v1 key.
pub fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut data = Vec::with_capacity(name.len() + 34);
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(ALG_COSIGNATURE_V1);
    data.extend_from_slice(public);
    let h = crate::sha256(&data);
    [h[0], h[1], h[2], h[3]]
}

/// Whether `name` can name a key in a signed note.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c.is_control() || c == '+')
}

/// The exact bytes a witness signs for `text` (a checkpoint, ending in a newline) at
/// `timestamp`.
pub fn signed_message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("{HEADER}\ntime {timestamp}\n{text}").into_bytes()
}

/// The note signature line of a cosignature, newline included.
pub fn signature_line(name: &str, key_hash: [u8; 4], timestamp: u64, signature: &[u8; 64]) -> String {
    let mut raw = Vec::with_capacity(4 + TIMESTAMPED_SIGNATURE_LEN);
    raw.extend_from_slice(&key_hash);
    raw.extend_from_slice(&timestamp.to_be_bytes());
    raw.extend_from_slice(signature);
    format!("\u{2014} {name} {}\n", B64.encode(raw))
}

/// A witness's verifier key: its name and Ed25519 public key. What clients and the vault
/// server are configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    pub name: String,
    pub public: [u8; 32],
}

impl WitnessKey {
    pub fn new(name: &str, public: [u8; 32]) -> Result<Self, CosignError> {
        if !valid_name(name) {
            return Err(CosignError::BadName(name.chars().take(100).collect()));
        }
        Ok(Self { name: name.to_owned(), public })
    }

    /// `name+hex(key_hash)+base64(0x04 || public key)`.
    pub fn to_text(&self) -> String {
        let mut k = vec![ALG_COSIGNATURE_V1];
        k.extend_from_slice(&self.public);
        format!("{}+{}+{}", self.name, hex::encode(self.key_hash()), B64.encode(k))
    }

    /// Reads a verifier key. Only type 0x04 (Ed25519 cosignature/v1) is accepted: a log's
    /// note key (type 0x01) given by mistake is refused, not reinterpreted.
    pub fn parse(text: &str) -> Result<Self, CosignError> {
        if text.len() > 1024 {
            return Err(CosignError::BadKey("too long"));
        }
        // The base64 key may itself contain '+': split off only the first two parts.
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CosignError::BadKey("it must have three parts separated by '+'"));
        };
        if !valid_name(name) {
            return Err(CosignError::BadKey("bad key name"));
        }
        if hash.len() != 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CosignError::BadKey("the key hash must be 8 hex digits"));
        }
        let raw = B64.decode(key).map_err(|_| CosignError::BadKey("the key is not base64"))?;
        match raw.first() {
            Some(&ALG_COSIGNATURE_V1) if raw.len() == 33 => {}
            Some(0x01) => return Err(CosignError::BadKey("this is a note signing key (type 01), not a witness key")),
            _ => return Err(CosignError::BadKey("not an Ed25519 cosignature/v1 key")),
        }
        let public: [u8; 32] = raw[1..].try_into().expect("checked length");
        let key = Self { name: name.to_owned(), public };
        if !hash.eq_ignore_ascii_case(&hex::encode(key.key_hash())) {
            return Err(CosignError::BadKey("the key hash does not match the key"));
        }
        Ok(key)
    }

    pub fn key_hash(&self) -> [u8; 4] {
        key_hash(&self.name, &self.public)
    }

    /// Whether `signature` is this witness's cosignature of `text` at `timestamp`.
    pub fn verifies(&self, text: &str, timestamp: u64, signature: &[u8]) -> bool {
        timestamp <= MAX_TIMESTAMP
            && UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(&signed_message(timestamp, text), signature)
                .is_ok()
    }
}

impl fmt::Display for WitnessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A witness's signing key. Not `Clone`, and its `Debug` shows only the public half.
pub struct Cosigner {
    name: String,
    pair: Ed25519KeyPair,
}

struct Seed;

impl ring::hkdf::KeyType for Seed {
    fn len(&self) -> usize {
        32
    }
}

impl Cosigner {
    /// The cosigner whose Ed25519 seed (RFC 8032 private key) is `seed`.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, CosignError> {
        if !valid_name(name) {
            return Err(CosignError::BadName(name.chars().take(100).collect()));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("any 32 bytes are an Ed25519 seed");
        Ok(Self { name: name.to_owned(), pair })
    }

    /// The witness key of `name`, derived from an age X25519 identity (`schema/WITNESS.md`):
    /// HKDF-SHA256 of the identity's secret, with a salt of its own (so it is never the
    /// person's statement-signing key) and the name in the info (so one identity running
    /// two witnesses has two keys, as the format requires).
    pub fn from_identity(name: &str, identity: &age::x25519::Identity) -> Result<Self, CosignError> {
        if !valid_name(name) {
            return Err(CosignError::BadName(name.chars().take(100).collect()));
        }
        let text = identity.to_string();
        let (_, secret) =
            bech32::decode(text.expose_secret()).expect("an age identity is valid Bech32 by construction");
        let secret = Zeroizing::new(secret);
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, DERIVE_SALT).extract(&secret);
        let info = [DERIVE_INFO_PREFIX, name.as_bytes()];
        let okm = prk.expand(&info, Seed).expect("32 bytes is a valid HKDF-SHA256 length");
        let mut seed = Zeroizing::new([0u8; 32]);
        okm.fill(&mut seed[..]).expect("32 bytes is a valid HKDF-SHA256 length");
        Self::from_seed(name, &seed)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key to give to clients and to the vault server's operator.
    pub fn verifier(&self) -> WitnessKey {
        let public = self.pair.public_key().as_ref().try_into().expect("Ed25519 public keys are 32 bytes");
        WitnessKey { name: self.name.clone(), public }
    }

    /// The cosignature line of `text` (a checkpoint, the note's text without signatures)
    /// at `timestamp` (seconds since the epoch).
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<String, CosignError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignError::BadTimestamp(timestamp));
        }
        if !text.ends_with('\n') {
            return Err(CosignError::Malformed("the text to cosign must end with a newline"));
        }
        let mut sig = [0u8; 64];
        sig.copy_from_slice(self.pair.sign(&signed_message(timestamp, text)).as_ref());
        Ok(signature_line(&self.name, self.verifier().key_hash(), timestamp, &sig))
    }
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cosigner({})", self.verifier())
    }
}

/// One signature line of a note, read but not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature<'a> {
    pub name: &'a str,
    pub key_hash: [u8; 4],
    /// What follows the key hash.
    pub signature: Vec<u8>,
}

/// A signed note checked against the signed-note rules (<https://c2sp.org/signed-note>):
/// its text, and its signature lines in the order they came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote<'a> {
    /// Everything before the blank line that precedes the signatures, ending in `\n`.
    pub text: &'a str,
    pub signatures: Vec<NoteSignature<'a>>,
}

impl<'a> SignedNote<'a> {
    /// Reads a signed note. Refused, whoever signed it: more than [`MAX_NOTE_BYTES`],
    /// ASCII control characters other than `\n`, no blank line before the signatures, a
    /// signature line that is not `— NAME BASE64` with at least a key hash and one byte,
    /// more than [`MAX_SIGNATURES`] lines, or two lines with the same name and key hash.
    pub fn parse(note: &'a str) -> Result<Self, CosignError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(CosignError::Malformed("too long"));
        }
        if note.contains(|c: char| c < ' ' && c != '\n') {
            return Err(CosignError::Malformed("control characters other than newline"));
        }
        let split = note.rfind("\n\n").ok_or(CosignError::Malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(CosignError::Malformed("no signature lines, or the last one lacks its newline"));
        }
        let mut signatures: Vec<NoteSignature<'a>> = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(CosignError::Malformed("too many signature lines"));
            }
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or(CosignError::Malformed("a signature line must start with an em dash and a space"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(CosignError::Malformed("a signature line must be a name and a signature"))?;
            if !valid_name(name) {
                return Err(CosignError::Malformed("bad key name in a signature line"));
            }
            let raw = B64.decode(b64).map_err(|_| CosignError::Malformed("a signature is not base64"))?;
            if raw.len() < 5 {
                return Err(CosignError::Malformed("a signature is shorter than its key hash"));
            }
            let key_hash = [raw[0], raw[1], raw[2], raw[3]];
            if signatures.iter().any(|s| s.name == name && s.key_hash == key_hash) {
                return Err(CosignError::Malformed("two signatures by the same key"));
            }
            signatures.push(NoteSignature { name, key_hash, signature: raw[4..].to_vec() });
        }
        Ok(SignedNote { text, signatures })
    }
}

/// A verified cosignature: who, and the time they gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's verifier key, as text.
    pub witness: String,
    /// Seconds since the epoch, as the witness's clock had it.
    pub timestamp: u64,
}

/// Checks that `note` (a signed checkpoint, with the log's signature and any number of
/// other signature lines, in any order) carries a valid cosignature by every witness in
/// `required`; returns their timestamps, in the order of `required`.
///
/// Lines by keys not in `required` (the log's own, other witnesses', other types) are
/// ignored. Fails closed: a malformed note, a missing cosignature, or a line under a
/// required witness's name and key hash that does not verify is an error naming that
/// witness. The log's own signature is not checked here (`note::Checkpoint::open` does);
/// neither is the timestamp against a clock, which is the caller's policy.
pub fn verify(note: &str, required: &[WitnessKey]) -> Result<Vec<Cosignature>, CosignError> {
    let parsed = SignedNote::parse(note)?;
    let mut out = Vec::with_capacity(required.len());
    for w in required {
        let want = w.key_hash();
        let sig = parsed
            .signatures
            .iter()
            .find(|s| s.name == w.name && s.key_hash == want)
            .ok_or_else(|| CosignError::Missing(w.to_text()))?;
        if sig.signature.len() != TIMESTAMPED_SIGNATURE_LEN {
            return Err(CosignError::Invalid(w.to_text()));
        }
        let timestamp = u64::from_be_bytes(sig.signature[..8].try_into().expect("8 bytes"));
        if !w.verifies(parsed.text, timestamp, &sig.signature[8..]) {
            return Err(CosignError::Invalid(w.to_text()));
        }
        out.push(Cosignature { witness: w.to_text(), timestamp });
    }
    Ok(out)
}

/// `note` with the signature lines `lines` (a witness's answer) appended, after checking
/// that the result is still a well-formed signed note. Verify it with [`verify`].
pub fn add_signatures(note: &str, lines: &str) -> Result<String, CosignError> {
    if lines.is_empty() || !lines.ends_with('\n') || !note.ends_with('\n') {
        return Err(CosignError::Malformed("signature lines must end with a newline"));
    }
    let joined = format!("{note}{lines}");
    let before = SignedNote::parse(note)?;
    let after = SignedNote::parse(&joined)?;
    if after.text != before.text {
        return Err(CosignError::Malformed("the lines added change the note's text"));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> &'static str {
        "recording-vault/0123456789abcdef\n5\nq83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=\n"
    }

    fn cosigner(name: &str, b: u8) -> Cosigner {
        Cosigner::from_seed(name, &[b; 32]).unwrap()
    }

    fn log_note() -> String {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[0x4c; 32]).unwrap();
        crate::note::sign(text(), "recording-vault/0123456789abcdef", &pair)
    }

    #[test]
    fn key_text_round_trips_and_hash_follows_the_spec() {
        let c = cosigner("witness.example.org/dpo", 1);
        let key = c.verifier();
        assert_eq!(WitnessKey::parse(&key.to_text()).unwrap(), key);
        let mut data = b"witness.example.org/dpo\n\x04".to_vec();
        data.extend_from_slice(&key.public);
        assert_eq!(key.key_hash()[..], crate::sha256(&data)[..4]);
        // The log's note key hash (type 0x01) differs for the same name and key.
        assert_ne!(key.key_hash(), crate::note::key_hash(&key.name, &key.public));
    }

    #[test]
    fn cosign_and_verify_among_other_lines_in_any_order() {
        let (a, b) = (cosigner("a.example/w", 1), cosigner("b.example/w", 2));
        let note = log_note();
        let la = a.cosign(text(), 1_800_000_000).unwrap();
        let lb = b.cosign(text(), 1_800_000_001).unwrap();
        // Witness lines before and after the log's, and an unknown one in between.
        let unknown = "\u{2014} other.example/w AAAAAAAAAAA=\n";
        let note = format!("{text}\n{lb}{}{unknown}{la}", &note[text().len() + 1..], text = text());
        let got = verify(&note, &[a.verifier(), b.verifier()]).unwrap();
        assert_eq!(
            got,
            vec![
                Cosignature { witness: a.verifier().to_text(), timestamp: 1_800_000_000 },
                Cosignature { witness: b.verifier().to_text(), timestamp: 1_800_000_001 },
            ]
        );
        // The log's own signature still verifies with the standard note code.
        let log = crate::note::VerifierKey::from_pair(
            "recording-vault/0123456789abcdef",
            &Ed25519KeyPair::from_seed_unchecked(&[0x4c; 32]).unwrap(),
        );
        assert_eq!(crate::note::open(&note, &log).unwrap(), text());
        assert_eq!(verify(&note, &[]).unwrap(), vec![]);
    }

    #[test]
    fn add_signatures_appends_a_witness_answer() {
        let a = cosigner("a.example/w", 1);
        let line = a.cosign(text(), 7).unwrap();
        let note = add_signatures(&log_note(), &line).unwrap();
        assert_eq!(verify(&note, &[a.verifier()]).unwrap()[0].timestamp, 7);
        assert!(add_signatures(&log_note(), "not a signature\n").is_err());
        assert!(add_signatures(&log_note(), &line[..line.len() - 1]).is_err());
        assert!(add_signatures(&log_note(), &format!("\n{line}")).is_err());
    }

    #[test]
    fn fail_missing_cosignature_names_the_witness() {
        let a = cosigner("a.example/w", 1);
        let err = verify(&log_note(), &[a.verifier()]).unwrap_err();
        assert_eq!(err, CosignError::Missing(a.verifier().to_text()));
        assert!(err.to_string().contains("a.example/w+"), "{err}");
    }

    #[test]
    fn fail_cosignature_by_the_wrong_key() {
        // Same name, another key: its key hash differs, so it is not a's cosignature.
        let (a, impostor) = (cosigner("a.example/w", 1), cosigner("a.example/w", 9));
        let note = format!("{}{}", log_note(), impostor.cosign(text(), 5).unwrap());
        assert_eq!(verify(&note, &[a.verifier()]), Err(CosignError::Missing(a.verifier().to_text())));
        // a's key hash on the impostor's signature: a forgery under a's name.
        let line = impostor.cosign(text(), 5).unwrap();
        let mut raw = B64.decode(line.trim_end().rsplit(' ').next().unwrap()).unwrap();
        raw[..4].copy_from_slice(&a.verifier().key_hash());
        let forged = format!("{}\u{2014} a.example/w {}\n", log_note(), B64.encode(raw));
        assert_eq!(verify(&forged, &[a.verifier()]), Err(CosignError::Invalid(a.verifier().to_text())));
        // Another witness's line carrying a's name only: a different key hash, so missing.
        let b = cosigner("b.example/w", 2);
        let renamed = b.cosign(text(), 5).unwrap().replace("b.example/w", "a.example/w");
        let note = format!("{}{renamed}", log_note());
        assert!(verify(&note, &[a.verifier()]).is_err());
    }

    #[test]
    fn fail_forged_cosignature() {
        let a = cosigner("a.example/w", 1);
        let line = a.cosign(text(), 1_800_000_000).unwrap();
        let note = format!("{}{line}", log_note());
        let invalid = Err(CosignError::Invalid(a.verifier().to_text()));
        // The checkpoint altered after cosigning.
        assert_eq!(verify(&note.replacen("\n5\n", "\n6\n", 1), &[a.verifier()]), invalid);
        // The timestamp altered: it is signed.
        let mut raw = B64.decode(line.trim_end().rsplit(' ').next().unwrap()).unwrap();
        raw[11] ^= 1;
        let note2 = format!("{}\u{2014} a.example/w {}\n", log_note(), B64.encode(&raw));
        assert_eq!(verify(&note2, &[a.verifier()]), invalid);
        // A flipped signature bit.
        raw[11] ^= 1;
        raw[40] ^= 0x80;
        let note3 = format!("{}\u{2014} a.example/w {}\n", log_note(), B64.encode(&raw));
        assert_eq!(verify(&note3, &[a.verifier()]), invalid);
        // Truncated, and zero-length signatures.
        let short = format!("{}\u{2014} a.example/w {}\n", log_note(), B64.encode(&raw[..40]));
        assert_eq!(verify(&short, &[a.verifier()]), invalid);
        // A timestamp beyond 2^63 - 1, however well signed, is not a cosignature/v1.
        let mut big = raw.clone();
        big[4] = 0x80;
        let note4 = format!("{}\u{2014} a.example/w {}\n", log_note(), B64.encode(&big));
        assert_eq!(verify(&note4, &[a.verifier()]), invalid);
        // A cosignature line given twice is a malformed note.
        let twice = format!("{}{line}{line}", log_note());
        assert!(matches!(verify(&twice, &[a.verifier()]), Err(CosignError::Malformed(_))));
    }

    #[test]
    fn fail_malformed_notes() {
        let a = cosigner("a.example/w", 1);
        let good = format!("{}{}", log_note(), a.cosign(text(), 1).unwrap());
        for bad in [
            good.replace("\n\n", "\n"),
            good[..good.len() - 1].to_owned(),
            good.replace("\u{2014} a.example/w", "- a.example/w"),
            good.replace("\u{2014} a.example/w ", "\u{2014} a.example/w  "),
            good.replace('5', "5\r"),
            format!("{good}\u{2014} x !!!\n"),
            format!("{good}\u{2014} x AAAA\n"),
            format!("{}{}", good, (0..MAX_SIGNATURES).map(|i| format!("\u{2014} x{i} AAAAAAAA\n")).collect::<String>()),
            format!("{}{good}", "x".repeat(MAX_NOTE_BYTES)),
            text().to_owned(),
        ] {
            assert!(matches!(verify(&bad, &[a.verifier()]), Err(CosignError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn fail_bad_keys_and_names() {
        let key = cosigner("a.example/w", 1).verifier().to_text();
        let b64 = key.rsplit('+').next().unwrap().to_owned();
        for bad in [
            "a.example/w+00000000+".to_owned() + &b64,
            format!("a.example/w+{}", b64),
            format!("a b+{}+{}", &key[12..20], b64),
            format!("a.example/w+zzzzzzzz+{b64}"),
            key.replace(&b64, "AQ=="),
            // The log's note key (type 01) is not a witness key.
            crate::note::VerifierKey::new("a.example/w", [1; 32]).to_text(),
        ] {
            assert!(WitnessKey::parse(&bad).is_err(), "{bad}");
        }
        for name in ["", "a b", "a+b", "a\u{7}", "a\u{2003}b"] {
            assert!(Cosigner::from_seed(name, &[1; 32]).is_err(), "{name:?}");
        }
        assert_eq!(
            cosigner("a", 1).cosign(text(), MAX_TIMESTAMP + 1),
            Err(CosignError::BadTimestamp(MAX_TIMESTAMP + 1))
        );
        assert!(cosigner("a", 1).cosign("no newline", 1).is_err());
    }

    #[test]
    fn derivation_is_per_identity_and_per_name() {
        let id = age::x25519::Identity::generate();
        let k = |name: &str| Cosigner::from_identity(name, &id).unwrap().verifier().public;
        assert_eq!(k("w.example/a"), k("w.example/a"));
        assert_ne!(k("w.example/a"), k("w.example/b"));
        let other = Cosigner::from_identity("w.example/a", &age::x25519::Identity::generate()).unwrap();
        assert_ne!(k("w.example/a"), other.verifier().public);
        // Never the person's own statement-signing key.
        let personal = crate::trust::SigningKey::from_identity(&id).public_id();
        assert_ne!(&k("w.example/a"), personal.verify_key());
        assert!(
            format!("{:?}", Cosigner::from_identity("w.example/a", &id).unwrap()).starts_with("Cosigner(w.example/a+")
        );
    }

    /// A real cosignature from the public witness network: the witness `remora.n621.de`
    /// (a Go implementation) cosigned a checkpoint of Google's staging CT log
    /// `arche2025h1`, which also carries the log's RFC 6962 signature (another signature
    /// type) and three other witnesses' cosignatures. The witness key is the one
    /// transparency-dev/formats uses in its tests of native cosignature/v1 verifiers; the
    /// note is as published in a public tlog test suite.
    #[test]
    fn verifies_a_cosignature_from_the_public_witness_network() {
        let note = "arche2025h1.staging.ct.transparency.dev\n\
            1432088532\n\
            U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n\
            \n\
            \u{2014} arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n\
            \u{2014} arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n\
            \u{2014} transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n\
            \u{2014} witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==\n\
            \u{2014} remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n\
            \u{2014} witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==\n";
        let remora = WitnessKey::parse("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2").unwrap();
        assert_eq!(remora.to_text(), "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2");
        let got = verify(note, std::slice::from_ref(&remora)).unwrap();
        assert_eq!(got, vec![Cosignature { witness: remora.to_text(), timestamp: 1_779_573_024 }]);
        // Any change to the body breaks it.
        let altered = note.replacen("1432088532", "1432088533", 1);
        assert_eq!(verify(&altered, std::slice::from_ref(&remora)), Err(CosignError::Invalid(remora.to_text())));
        // The same key under another name is another key hash: not found.
        let renamed = WitnessKey::new("remora.example", remora.public).unwrap();
        assert!(matches!(verify(note, &[renamed]), Err(CosignError::Missing(_))));
    }

    /// The first cosignature of `schema/WITNESS.md`'s worked example, byte for byte:
    /// `schema/witness_example.py` computes the same line with independent code (Python's
    /// HKDF from `hmac`, the `cryptography` package's Ed25519, which is deterministic).
    #[test]
    fn worked_example_cosignature_byte_for_byte() {
        use std::str::FromStr;
        let id = age::x25519::Identity::from_str(
            "AGE-SECRET-KEY-12AT4W46H2AT4W46H2AT4W46H2AT4W46H2AT4W46H2AT4W46H2ATSJKDFZ8",
        )
        .unwrap();
        let c = Cosigner::from_identity("witness.example.org/dpo", &id).unwrap();
        assert_eq!(
            c.verifier().to_text(),
            "witness.example.org/dpo+c8791ed3+BKeIDp5AOE2f9VmB5zpJtWyuXlB9/GQuIC90BwPzrMsj"
        );
        let text = "recording-vault/0123456789abcdef\n3\nlPvQ3YNvUDAWkubQ6t5yjuGexSv/8WBu2AfIV11aqhk=\n";
        assert_eq!(
            signed_message(1_795_000_000, text),
            format!("cosignature/v1\ntime 1795000000\n{text}").into_bytes()
        );
        assert_eq!(
            c.cosign(text, 1_795_000_000).unwrap(),
            "\u{2014} witness.example.org/dpo yHke0wAAAABq/YbAAQL84luganJXgwADPsqhtuahvx5fqGpB+wr9qlzcTRaR4V4u6OUteE8SrZkY4Ny01w2NzD2VqYucTehDZhQ1DA==\n"
        );
    }
}
