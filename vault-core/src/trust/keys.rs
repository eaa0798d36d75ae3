//! A person's signing key, derived from their age identity, and their public id.
//!
//! The age identity file stays each person's only secret: the Ed25519 signing key is
//! derived from the identity's 32-byte X25519 secret with HKDF-SHA256 under labels used
//! for nothing else (see `schema/TRUST.md`), so the same file still works with the `age`
//! tool and nothing new has to be kept safe. The public id carries both public halves,
//! because an Ed25519 public key cannot be computed from an X25519 one.

use std::fmt;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::TrustError;

/// HKDF salt of the signing-key derivation.
pub const DERIVE_SALT: &[u8] = b"recording-vault signing key v1";
/// HKDF info of the signing-key derivation.
pub const DERIVE_INFO: &[u8] = b"ed25519 seed from an age x25519 identity";
/// Human-readable part of a public id (`vault1...`).
pub const PUBLIC_ID_HRP: &str = "vault";

/// The key a person signs statements with. Never stored: derived from the identity
/// whenever it is needed.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    recipient: age::x25519::Recipient,
}

struct Seed;

impl ring::hkdf::KeyType for Seed {
    fn len(&self) -> usize {
        32
    }
}

/// 32 bytes derived from an age identity's secret with HKDF-SHA256 under `salt` and
/// `info` (labels used for nothing else; see `schema/TRUST.md`).
pub(crate) fn derive(identity: &age::x25519::Identity, salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let text = identity.to_string();
    let (_, secret) = bech32::decode(text.expose_secret()).expect("an age identity is valid Bech32 by construction");
    let secret = Zeroizing::new(secret);
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(&secret);
    let info = [info];
    let okm = prk.expand(&info, Seed).expect("32 bytes is a valid HKDF-SHA256 length");
    let mut out = Zeroizing::new([0u8; 32]);
    okm.fill(&mut out[..]).expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

impl SigningKey {
    /// Derives the signing key of an age X25519 identity.
    pub fn from_identity(identity: &age::x25519::Identity) -> Self {
        let seed = derive(identity, DERIVE_SALT, DERIVE_INFO);
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed[..]).expect("any 32 bytes are an Ed25519 seed");
        Self { pair, recipient: identity.to_public() }
    }

    pub fn public_id(&self) -> PublicId {
        let mut verify = [0u8; 32];
        verify.copy_from_slice(self.pair.public_key().as_ref());
        PublicId { recipient: self.recipient.clone(), verify }
    }

    /// Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

/// What others know of a person: the age recipient envelopes are wrapped to, and the
/// Ed25519 key their statements are checked with. Written `vault1...`: Bech32 of the 32
/// bytes of the X25519 public key followed by the 32 bytes of the Ed25519 public key.
#[derive(Clone)]
pub struct PublicId {
    recipient: age::x25519::Recipient,
    verify: [u8; 32],
}

impl PublicId {
    pub fn recipient(&self) -> &age::x25519::Recipient {
        &self.recipient
    }

    /// The raw Ed25519 public key.
    pub fn verify_key(&self) -> &[u8; 32] {
        &self.verify
    }

    /// Whether `signature` is this person's Ed25519 signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.verify).verify(message, signature).is_ok()
    }

    fn x25519_bytes(&self) -> Vec<u8> {
        let (_, bytes) =
            bech32::decode(&self.recipient.to_string()).expect("an age recipient is valid Bech32 by construction");
        bytes
    }
}

impl PartialEq for PublicId {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for PublicId {}

impl fmt::Display for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = self.x25519_bytes();
        data.extend_from_slice(&self.verify);
        let hrp = bech32::Hrp::parse(PUBLIC_ID_HRP).expect("a valid human-readable part");
        f.write_str(&bech32::encode::<bech32::Bech32>(hrp, &data).expect("64 bytes fit in Bech32"))
    }
}

impl fmt::Debug for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicId({self})")
    }
}

impl FromStr for PublicId {
    type Err = TrustError;

    fn from_str(s: &str) -> Result<Self, TrustError> {
        let s = s.trim();
        let shown: String = s.chars().take(40).collect();
        let bad = |why: &str| {
            TrustError::new(format!(
                "{shown:?} is not a public id: {why}; use the `vault1...` line `vault-cli keygen` printed"
            ))
        };
        if s.starts_with("age1") {
            return Err(bad("it is a bare age recipient, which carries no signing key"));
        }
        let (hrp, data) = bech32::decode(s).map_err(|_| bad("not valid Bech32 (mistyped or cut off?)"))?;
        if hrp.as_str() != PUBLIC_ID_HRP || data.len() != 64 {
            return Err(bad("wrong prefix or length"));
        }
        let age_hrp = bech32::Hrp::parse("age").expect("a valid human-readable part");
        let age = bech32::encode::<bech32::Bech32>(age_hrp, &data[..32]).expect("32 bytes fit in Bech32");
        let recipient = age::x25519::Recipient::from_str(&age).map_err(|_| bad("not an X25519 key"))?;
        let mut verify = [0u8; 32];
        verify.copy_from_slice(&data[32..]);
        let id = PublicId { recipient, verify };
        // One spelling per key: lowercase and the classic Bech32 checksum.
        if id.to_string() != s {
            return Err(bad("not in canonical form (lowercase, Bech32 checksum)"));
        }
        Ok(id)
    }
}

impl serde::Serialize for PublicId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_per_identity() {
        let id = age::x25519::Identity::generate();
        let a = SigningKey::from_identity(&id);
        let b = SigningKey::from_identity(&id);
        assert_eq!(a.public_id(), b.public_id());
        let other = SigningKey::from_identity(&age::x25519::Identity::generate());
        assert_ne!(a.public_id(), other.public_id());
        let sig = a.sign(b"hello");
        assert!(a.public_id().verifies(b"hello", &sig));
        assert!(!a.public_id().verifies(b"hellO", &sig));
        assert!(!other.public_id().verifies(b"hello", &sig));
    }

    #[test]
    fn known_vector() {
        // A fixed identity gives a fixed signing key: independent code must agree with
        // this derivation (schema/TRUST.md, "Signing keys").
        let id = age::x25519::Identity::from_str(
            "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",
        )
        .unwrap();
        let key = SigningKey::from_identity(&id);
        assert_eq!(hex::encode(key.public_id().verify_key()), KNOWN_VERIFY_KEY);
    }

    const KNOWN_VERIFY_KEY: &str = "442fbe5734f7b3e08e5409faaf0f357032561d5a331877f8fe225c3e12534a7f";

    #[test]
    fn public_id_round_trips_and_refuses_near_misses() {
        let key = SigningKey::from_identity(&age::x25519::Identity::generate());
        let text = key.public_id().to_string();
        assert!(text.starts_with("vault1"));
        let back: PublicId = text.parse().unwrap();
        assert_eq!(back, key.public_id());
        assert_eq!(back.recipient().to_string(), key.recipient.to_string());
        let err = key.recipient.to_string().parse::<PublicId>().unwrap_err().to_string();
        assert!(err.contains("bare age recipient"), "{err}");
        let mut typo = text.clone().into_bytes();
        let last = typo.len() - 1;
        typo[last] = if typo[last] == b'q' { b'p' } else { b'q' };
        assert!(String::from_utf8(typo).unwrap().parse::<PublicId>().is_err());
        assert!(text.to_uppercase().parse::<PublicId>().is_err());
        assert!(text[..text.len() - 10].parse::<PublicId>().is_err());
    }
}
