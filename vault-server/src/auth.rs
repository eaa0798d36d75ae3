//! Authentication: session tokens and the age login challenges that earn them.
//!
//! Who may do what is not decided here: the role extractors (`http::extract`) turn a
//! token into a [`Caller`] by reading the user's row on every request, so disabling a
//! user takes effect at once whatever tokens are still in circulation, and `policy`
//! decides on the resource.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};
use vault_core::api::Role;
use vault_core::ids::UserName;

use crate::error::ApiError;

/// Audience of every session token.
pub const AUDIENCE: &str = "recording-vault-api";
/// How long a session token is valid.
pub const TOKEN_LIFETIME_SECS: i64 = 15 * 60;
/// How long a login challenge may be answered.
pub const CHALLENGE_LIFETIME_SECS: i64 = 120;
/// Bound on unanswered challenges, so unauthenticated callers cannot fill memory.
const MAX_PENDING_CHALLENGES: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
    jti: String,
}

/// Signs and checks session tokens (EdDSA).
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    validation: Validation,
}

impl Tokens {
    pub fn new(pair: &Ed25519KeyPair, pkcs8: &[u8]) -> Self {
        let public = crate::server_keys::public_key(pair);
        let issuer = format!("recording-vault:{}", hex::encode(&vault_core::sha256(&public)[..8]));
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_ed_der(pkcs8),
            decoding: DecodingKey::from_ed_der(&public),
            issuer,
            validation,
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
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, claims.exp))
    }

    /// Checks signature, algorithm, issuer, audience, expiry and the token id; returns
    /// the user name.
    pub fn verify(&self, token: &str) -> Result<UserName, String> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| e.to_string())?;
        let c = data.claims;
        if c.jti.len() != 32 || !c.jti.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("missing or malformed jti".into());
        }
        if c.iat > c.exp || c.exp - c.iat > TOKEN_LIFETIME_SECS {
            return Err("implausible token lifetime".into());
        }
        c.sub.parse().map_err(|_| "malformed sub".into())
    }
}

/// A challenge waiting for its answer.
pub struct PendingChallenge {
    pub user: UserName,
    pub expected_response: String,
    pub expires: i64,
}

/// Unanswered login challenges, in memory: a restart simply asks users to log in again.
#[derive(Default)]
pub struct Challenges {
    pending: Mutex<HashMap<String, PendingChallenge>>,
}

impl Challenges {
    pub fn insert(&self, id: String, c: PendingChallenge) -> Result<(), ApiError> {
        let mut map = self.pending.lock().map_err(|_| ApiError::internal("challenge mutex poisoned"))?;
        let now = chrono::Utc::now().timestamp();
        map.retain(|_, p| p.expires > now);
        if map.len() >= MAX_PENDING_CHALLENGES {
            return Err(ApiError::busy("too many logins in progress; try again in a minute"));
        }
        map.insert(id, c);
        Ok(())
    }

    /// Removes and returns a challenge: each can be answered once.
    pub fn take(&self, id: &str) -> Option<PendingChallenge> {
        self.pending.lock().ok()?.remove(id)
    }
}

/// An authenticated, enabled user, as the database says now.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: UserName,
    pub role: Role,
}
