//! The login challenge (SPEC §4).
//!
//! The server encrypts a challenge to the user's recipient. The client decrypts it, checks
//! that it *is* a login challenge for the server it is talking to, for its own user name,
//! and not expired, and answers with a domain-separated hash of it, never the plaintext.
//! A malicious server therefore cannot use login to decrypt an envelope or a recording
//! (it would not parse as a challenge, and even then only a hash comes back), nor relay a
//! challenge from another server (the origin would not match).

use crate::ids::UserName;

/// First line of every challenge: what it is and its version.
pub const CHALLENGE_DOMAIN: &str = "recording-vault login challenge v1";
/// Prefix hashed with the challenge to form the response.
pub const RESPONSE_DOMAIN: &[u8] = b"recording-vault login response v1\n";
/// The longest lifetime a client accepts, whatever the server says.
pub const MAX_LIFETIME_SECS: i64 = 600;

/// A login challenge before encryption.
pub struct Challenge {
    pub origin: String,
    pub user: UserName,
    pub nonce: String,
    pub expires: i64,
}

/// Why a client refused a challenge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChallengeError {
    #[error("the server sent something that is not a login challenge; refusing to answer (is this the right server?)")]
    NotAChallenge,
    #[error("the challenge is for server {found:?} but you are connecting to {expected:?}; refusing (possible relay)")]
    WrongOrigin { expected: String, found: String },
    #[error("the challenge is for user {found:?}, not {expected:?}")]
    WrongUser { expected: String, found: String },
    #[error("the challenge has expired or its lifetime is implausible; check this machine's clock and retry")]
    Expired,
}

impl Challenge {
    /// The exact text that is encrypted to the user.
    pub fn to_text(&self) -> String {
        format!(
            "{CHALLENGE_DOMAIN}\norigin: {}\nuser: {}\nnonce: {}\nexpires: {}\n",
            self.origin, self.user, self.nonce, self.expires
        )
    }

    /// Parses and checks a decrypted challenge. `now` is in Unix seconds.
    pub fn check(text: &[u8], origin: &str, user: &UserName, now: i64) -> Result<Self, ChallengeError> {
        let text = std::str::from_utf8(text).map_err(|_| ChallengeError::NotAChallenge)?;
        let mut lines = text.strip_suffix('\n').ok_or(ChallengeError::NotAChallenge)?.split('\n');
        if lines.next() != Some(CHALLENGE_DOMAIN) {
            return Err(ChallengeError::NotAChallenge);
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(": "))
                .map(str::to_owned)
                .ok_or(ChallengeError::NotAChallenge)
        };
        let found_origin = field("origin")?;
        let found_user = field("user")?;
        let nonce = field("nonce")?;
        let expires: i64 = field("expires")?.parse().map_err(|_| ChallengeError::NotAChallenge)?;
        if lines.next().is_some() || nonce.len() != 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ChallengeError::NotAChallenge);
        }
        if found_origin != normalize_origin(origin) {
            return Err(ChallengeError::WrongOrigin { expected: normalize_origin(origin), found: found_origin });
        }
        if found_user != user.as_str() {
            return Err(ChallengeError::WrongUser { expected: user.to_string(), found: found_user });
        }
        if expires <= now || expires > now + MAX_LIFETIME_SECS {
            return Err(ChallengeError::Expired);
        }
        Ok(Self { origin: found_origin, user: user.clone(), nonce, expires })
    }
}

/// The answer to a challenge: hex SHA-256 of a domain prefix and the challenge text.
pub fn response(challenge_text: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(RESPONSE_DOMAIN);
    ctx.update(challenge_text);
    hex::encode(ctx.finish())
}

/// An origin as compared in challenges: the URL without a trailing slash.
pub fn normalize_origin(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(now: i64) -> Challenge {
        Challenge {
            origin: "http://127.0.0.1:8700".into(),
            user: "alice".parse().unwrap(),
            nonce: "ab".repeat(32),
            expires: now + 60,
        }
    }

    #[test]
    fn accepts_its_own_challenge() {
        let c = sample(1000);
        let ok = Challenge::check(c.to_text().as_bytes(), "http://127.0.0.1:8700/", &c.user, 1000).unwrap();
        assert_eq!(ok.nonce, c.nonce);
    }

    #[test]
    fn fail_refuses_other_plaintexts() {
        let c = sample(1000);
        let user = c.user.clone();
        let t = c.to_text();
        assert_eq!(
            Challenge::check(b"AGE-SECRET-KEY-1...", "http://127.0.0.1:8700", &user, 1000).err(),
            Some(ChallengeError::NotAChallenge)
        );
        assert!(matches!(
            Challenge::check(t.as_bytes(), "http://127.0.0.1:9999", &user, 1000),
            Err(ChallengeError::WrongOrigin { .. })
        ));
        assert!(matches!(
            Challenge::check(t.as_bytes(), "http://127.0.0.1:8700", &"bob".parse().unwrap(), 1000),
            Err(ChallengeError::WrongUser { .. })
        ));
        assert_eq!(
            Challenge::check(t.as_bytes(), "http://127.0.0.1:8700", &user, 1060).err(),
            Some(ChallengeError::Expired)
        );
        let long = Challenge { expires: 1000 + MAX_LIFETIME_SECS + 1, ..sample(1000) };
        assert_eq!(
            Challenge::check(long.to_text().as_bytes(), "http://127.0.0.1:8700", &user, 1000).err(),
            Some(ChallengeError::Expired)
        );
        let extra = format!("{t}extra: 1\n");
        assert!(Challenge::check(extra.as_bytes(), "http://127.0.0.1:8700", &user, 1000).is_err());
    }

    #[test]
    fn response_is_not_the_plaintext() {
        let t = sample(0).to_text();
        let r = response(t.as_bytes());
        assert_eq!(r.len(), 64);
        assert!(!r.contains(&"ab".repeat(32)));
    }
}
