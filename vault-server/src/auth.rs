//! Authentication: the age login challenge, session tokens, and the role extractors.
//!
//! Handlers never read tokens themselves. They take a [`Caller`] (any enrolled, enabled
//! user) or a role extractor ([`Admin`], [`Recorder`], [`Auditor`]) as an argument, so a
//! route cannot forget to check, and every refusal here is written to the access log.
//! The user's row is read again on every request, so disabling a user or changing a role
//! takes effect at once, whatever tokens are still in circulation.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};
use vault_core::api::Role;
use vault_core::ids::UserName;
use vault_core::log::outcome;

use crate::AppState;
use crate::db::LogRecord;
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
        let public = crate::datadir::public_key(pair);
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
    fn verify(&self, token: &str) -> Result<UserName, String> {
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
            return Err(ApiError {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                code: "busy",
                message: "too many logins in progress; try again in a minute".into(),
                detail: None,
            });
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

/// The access-log action name of the route a request was matched to.
fn action_of(parts: &Parts) -> &'static str {
    let path = parts.extensions.get::<MatchedPath>().map(|p| p.as_str()).unwrap_or("");
    crate::routes::action_name(parts.method.as_str(), path)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let action = action_of(parts);
        let refuse = |why: String, message: &str| {
            let rec = LogRecord::new("-", action, outcome::REFUSED)
                .details(serde_json::json!({ "refusal": "authentication failed", "why": why }));
            (rec, ApiError::unauthenticated(message))
        };
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else {
            let (rec, err) = refuse("no bearer token".into(), "not logged in: run `vault-cli login`");
            return Err(state.db.refuse(rec, err).await);
        };
        let name = match state.tokens.verify(token) {
            Ok(n) => n,
            Err(why) => {
                let (rec, err) = refuse(why, "session token is invalid or expired: run `vault-cli login`");
                return Err(state.db.refuse(rec, err).await);
            }
        };
        let lookup = name.clone();
        let row = state.db.read(move |c| crate::policy::user_state(c, &lookup)).await?;
        match row {
            Some((role, true)) => Ok(Caller { name, role }),
            _ => {
                let rec = LogRecord::new(name.as_str(), action, outcome::REFUSED)
                    .details(serde_json::json!({ "refusal": "user disabled or removed" }));
                Err(state.db.refuse(rec, ApiError::denied("your account is disabled; ask an admin")).await)
            }
        }
    }
}

impl Caller {
    /// Refuses (and logs) unless the caller has one of `roles`.
    pub async fn require(&self, state: &AppState, action: &'static str, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let rec = LogRecord::new(self.name.as_str(), action, outcome::REFUSED)
            .details(serde_json::json!({ "refusal": format!("role {} may not do this", self.role) }));
        let err = ApiError::denied(format!("{action} needs the role {}; you are {}", wanted.join(" or "), self.role));
        Err(state.db.refuse(rec, err).await)
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $($role:expr),+) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.require(state, action_of(parts), &[$($role),+]).await?;
                Ok($name(caller))
            }
        }
    };
}

role_extractor!(
    /// A caller with the admin role.
    Admin,
    Role::Admin
);
role_extractor!(
    /// A caller with the auditor role: reads the access log.
    Auditor,
    Role::Auditor
);
role_extractor!(
    /// A caller with the recorder role (service accounts of the phone system).
    Recorder,
    Role::Recorder
);
role_extractor!(
    /// A caller who may read case and recording metadata: admins and investigators
    /// (subject to grants) and auditors (metadata only).
    Reader,
    Role::Admin,
    Role::Investigator,
    Role::Auditor
);
role_extractor!(
    /// A caller who may fetch recordings, subject to an active grant.
    Fetcher,
    Role::Admin,
    Role::Investigator
);
