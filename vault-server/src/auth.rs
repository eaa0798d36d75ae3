//! Authentication: session tokens and the age login challenges that earn them.
//!
//! Who may do what is not decided here: the role extractors (`http::extract`) turn a
//! token into a [`Caller`] by reading the user's row on every request, so disabling a
//! user takes effect at once whatever tokens are still in circulation, and `policy`
//! decides on the resource.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};
use vault_core::api::Role;
use vault_core::challenge::Challenge;
use vault_core::ids::UserName;
use zeroize::Zeroizing;

use crate::error::ApiError;

/// Audience of every session token.
pub const AUDIENCE: &str = "recording-vault-api";
/// How long a session token is valid.
pub const TOKEN_LIFETIME_SECS: i64 = 15 * 60;
/// How long a login challenge may be answered.
pub const CHALLENGE_LIFETIME_SECS: i64 = 120;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
    jti: String,
}

/// Signs and checks session tokens (EdDSA). Tokens name their key in the `kid` header;
/// besides the key that signs, the keys that signed before a rotation check the tokens
/// they signed until those expire (`rotate`).
pub struct Tokens {
    encoding: EncodingKey,
    /// The signing key's id and the issuer its tokens name.
    kid: String,
    issuer: String,
    /// What checks a token, by key id: the key and the validation (issuer) for its tokens.
    checking: HashMap<String, (DecodingKey, Validation)>,
    /// Tokens whose signature and claims were checked, by SHA-256 of the token: the user
    /// and the expiry. Checking an Ed25519 signature was a fifth of the server's CPU per
    /// logged request; a token's claims cannot change, so it is checked once. The user's
    /// row is still read on every request (a disabled user is refused at once), and the
    /// expiry is checked on every use.
    verified: Mutex<HashMap<[u8; 32], (UserName, i64)>>,
    /// How many it remembers ([`VERIFIED_CAP`]; less in tests).
    cap: usize,
}

/// Leeway, in seconds, for the clocks of token checks.
const LEEWAY: u64 = 5;

/// Most verified tokens remembered; when full, expired ones are dropped, else all.
const VERIFIED_CAP: usize = 8192;

impl Tokens {
    /// The tokens of `pair` (signing) and of the `retired` public keys (checking only).
    pub fn new(pair: &Ed25519KeyPair, pkcs8: &[u8], retired: &[[u8; 32]]) -> Self {
        let public = crate::server_keys::public_key(pair);
        let kid = crate::rotate::kid(&public);
        let checking = std::iter::once(public)
            .chain(retired.iter().copied())
            .map(|p| {
                let kid = crate::rotate::kid(&p);
                let mut validation = Validation::new(Algorithm::EdDSA);
                validation.set_issuer(&[format!("recording-vault:{kid}")]);
                validation.set_audience(&[AUDIENCE]);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                validation.leeway = LEEWAY;
                (kid, (DecodingKey::from_ed_der(&p), validation))
            })
            .collect();
        Self {
            encoding: EncodingKey::from_ed_der(pkcs8),
            issuer: format!("recording-vault:{kid}"),
            kid,
            checking,
            verified: Mutex::new(HashMap::new()),
            cap: VERIFIED_CAP,
        }
    }

    pub fn issue(&self, user: &UserName) -> Result<(String, i64), ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.into(),
            sub: user.to_string(),
            exp: now + TOKEN_LIFETIME_SECS,
            iat: now,
            jti: vault_core::ids::random_hex16(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(ApiError::internal)?;
        Ok((token, claims.exp))
    }

    /// Checks signature, algorithm, issuer, audience, expiry and the token id; returns
    /// the user name.
    pub fn verify(&self, token: &str) -> Result<UserName, String> {
        let key = vault_core::sha256(token.as_bytes());
        let now = chrono::Utc::now().timestamp();
        if let Some((user, exp)) = self.verified.lock().map_err(|_| "token cache poisoned")?.get(&key)
            && now <= exp.saturating_add(LEEWAY as i64)
        {
            return Ok(user.clone());
        }
        // A token from before key ids is the signing key's (there was only one).
        let kid = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?.kid;
        let (checker, validation) = self
            .checking
            .get(kid.as_deref().unwrap_or(&self.kid))
            .ok_or("signed by a key this server does not know (or no longer: its tokens have expired)")?;
        let data = jsonwebtoken::decode::<Claims>(token, checker, validation).map_err(|e| e.to_string())?;
        let c = data.claims;
        if c.jti.len() != 32 || !c.jti.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("missing or malformed jti".into());
        }
        if c.iat > c.exp || c.exp - c.iat > TOKEN_LIFETIME_SECS {
            return Err("implausible token lifetime".into());
        }
        let user: UserName = c.sub.parse().map_err(|_| "malformed sub")?;
        let mut verified = self.verified.lock().map_err(|_| "token cache poisoned")?;
        if verified.len() >= self.cap {
            verified.retain(|_, (_, exp)| now <= *exp);
            if verified.len() >= self.cap {
                verified.clear();
            }
        }
        verified.insert(key, (user.clone(), c.exp));
        Ok(user)
    }
}

/// Login challenges, without a table of pending ones: a challenge's id carries its
/// expiry, 16 random bytes and the user name, and its nonce is an HMAC of the id under a
/// key that exists only in this process. The server can therefore recompute what any id
/// it issued expects, and nothing an unauthenticated caller does fills memory or locks
/// anyone out. Only answered challenges are remembered, until they expire, so that each
/// is answered once; a caller must decrypt a challenge to add one. A restart makes
/// pending challenges unanswerable, which asks users to log in again.
pub struct Challenges {
    key: ring::hmac::Key,
    /// Encrypted to for unknown and disabled users: its identity was dropped at start-up.
    decoy: String,
    answered: Mutex<HashMap<[u8; 16], i64>>,
}

/// A challenge, ready to encrypt to its user.
pub struct Issued {
    pub id: String,
    pub challenge: Challenge,
}

/// Why an answer was refused; `user` is the challenge's user if the id named one.
pub struct Unanswered {
    pub user: Option<UserName>,
    pub why: &'static str,
}

impl Default for Challenges {
    fn default() -> Self {
        Self::new()
    }
}

impl Challenges {
    pub fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        Self {
            key: ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).expect("the system's random generator"),
            decoy: age::x25519::Identity::generate().to_public().to_string(),
            answered: Mutex::new(HashMap::new()),
        }
    }

    /// The recipient challenges to unknown and disabled users are encrypted to.
    pub fn decoy(&self) -> &str {
        &self.decoy
    }

    /// A new challenge for `user` at `origin`. Nothing is stored.
    pub fn issue(&self, origin: &str, user: &UserName) -> Issued {
        let expires = chrono::Utc::now().timestamp() + CHALLENGE_LIFETIME_SECS;
        let random = vault_core::ids::random_bytes::<16>();
        let mut id = Vec::with_capacity(24 + user.as_str().len());
        id.extend_from_slice(&expires.to_be_bytes());
        id.extend_from_slice(&random);
        id.extend_from_slice(user.as_str().as_bytes());
        let nonce = self.nonce(expires, &random, user);
        Issued {
            id: URL_SAFE_NO_PAD.encode(id),
            challenge: Challenge { origin: origin.to_owned(), user: user.clone(), nonce, expires },
        }
    }

    fn nonce(&self, expires: i64, random: &[u8; 16], user: &UserName) -> String {
        let mut mac = ring::hmac::Context::with_key(&self.key);
        mac.update(b"recording-vault login nonce v1\0");
        mac.update(&expires.to_be_bytes());
        mac.update(random);
        mac.update(user.as_str().as_bytes());
        hex::encode(mac.sign().as_ref())
    }

    /// Checks `response` to the challenge `id` issued for `origin`; returns its user if it
    /// is right, unexpired and not answered before.
    pub fn answer(&self, origin: &str, id: &str, response: &str) -> Result<UserName, Unanswered> {
        let unknown = Unanswered { user: None, why: "unknown or malformed challenge" };
        let raw = (id.len() <= 256).then(|| URL_SAFE_NO_PAD.decode(id).ok()).flatten().ok_or(unknown)?;
        let parsed = (raw.len() > 24)
            .then(|| {
                let expires = i64::from_be_bytes(raw[..8].try_into().ok()?);
                let random: [u8; 16] = raw[8..24].try_into().ok()?;
                let user: UserName = std::str::from_utf8(&raw[24..]).ok()?.parse().ok()?;
                Some((expires, random, user))
            })
            .flatten();
        let Some((expires, random, user)) = parsed else {
            return Err(Unanswered { user: None, why: "unknown or malformed challenge" });
        };
        let now = chrono::Utc::now().timestamp();
        if expires <= now || expires > now + CHALLENGE_LIFETIME_SECS {
            return Err(Unanswered { user: Some(user), why: "expired challenge" });
        }
        let text = Zeroizing::new(
            Challenge {
                origin: origin.to_owned(),
                user: user.clone(),
                nonce: self.nonce(expires, &random, &user),
                expires,
            }
            .to_text(),
        );
        let expected = vault_core::challenge::response(text.as_bytes());
        if !vault_core::ct_eq(expected.as_bytes(), response.trim().as_bytes()) {
            return Err(Unanswered { user: Some(user), why: "wrong answer" });
        }
        let mut answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        answered.retain(|_, exp| *exp > now);
        if answered.insert(random, expires).is_some() {
            return Err(Unanswered { user: Some(user), why: "challenge answered before" });
        }
        Ok(user)
    }
}

/// An authenticated, enabled user, as the database says now.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: UserName,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        Tokens::new(&pair, doc.as_ref(), &[])
    }

    /// A token signed with `t`'s key but with claims of the test's choosing.
    fn forge(t: &Tokens, sub: &str, exp: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: t.issuer.clone(),
            aud: AUDIENCE.into(),
            sub: sub.into(),
            exp,
            iat: exp.min(now) - 60,
            jti: "0".repeat(32),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &t.encoding).unwrap()
    }

    #[test]
    fn a_retired_key_checks_its_tokens_and_no_others() {
        let generate = || {
            let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
            (pair, doc)
        };
        let ((old, old_doc), (new, new_doc)) = (generate(), generate());
        let bob: UserName = "bob".parse().unwrap();
        let before = Tokens::new(&old, old_doc.as_ref(), &[]);
        let (token, _) = before.issue(&bob).unwrap();
        let old_public = crate::server_keys::public_key(&old);
        // After the rotation: the old key's token still checks, by its kid...
        let after = Tokens::new(&new, new_doc.as_ref(), &[old_public]);
        assert_eq!(after.verify(&token).unwrap(), bob);
        let (fresh, _) = after.issue(&bob).unwrap();
        assert_eq!(after.verify(&fresh).unwrap(), bob);
        // ...and once the old key is dropped it does not.
        let later = Tokens::new(&new, new_doc.as_ref(), &[]);
        assert!(later.verify(&token).unwrap_err().contains("does not know"));
        // A token naming the retired key's id but signed by another key is refused.
        let (_, stranger_doc) = generate();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(crate::rotate::kid(&old_public));
        let claims = Claims {
            iss: before.issuer.clone(),
            aud: AUDIENCE.into(),
            sub: "bob".into(),
            exp: chrono::Utc::now().timestamp() + 60,
            iat: chrono::Utc::now().timestamp(),
            jti: "1".repeat(32),
        };
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(stranger_doc.as_ref())).unwrap();
        assert!(after.verify(&forged).is_err());
    }

    #[test]
    fn a_verified_token_is_remembered_and_nothing_else_is() {
        let t = tokens();
        let bob: UserName = "bob".parse().unwrap();
        let (token, _) = t.issue(&bob).unwrap();
        assert_eq!(t.verify(&token).unwrap(), bob);
        assert_eq!(t.verified.lock().unwrap().len(), 1);
        assert_eq!(t.verify(&token).unwrap(), bob, "from the cache");
        // Another key's token for the same user, and a damaged copy, are refused: the
        // cache is keyed by the whole token.
        let (other, _) = tokens().issue(&bob).unwrap();
        assert!(t.verify(&other).is_err());
        let mut damaged = token.clone();
        damaged.pop();
        assert!(t.verify(&damaged).is_err());
        assert_eq!(t.verified.lock().unwrap().len(), 1, "refused tokens are not remembered");
    }

    #[test]
    fn fail_a_remembered_token_is_refused_once_it_expires() {
        let t = tokens();
        let now = chrono::Utc::now().timestamp();
        let expired = forge(&t, "bob", now - 60);
        assert!(t.verify(&expired).is_err(), "expired beyond the leeway");
        // Even if it had been remembered while valid, it is not served from the cache.
        t.verified.lock().unwrap().insert(vault_core::sha256(expired.as_bytes()), ("bob".parse().unwrap(), now - 60));
        assert!(t.verify(&expired).is_err());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut t = tokens();
        t.cap = 16;
        let now = chrono::Utc::now().timestamp();
        for i in 0..40 {
            let token = forge(&t, &format!("user{i}"), now + 600);
            t.verify(&token).unwrap();
            assert!(t.verified.lock().unwrap().len() <= 16);
        }
    }
}
