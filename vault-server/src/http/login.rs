//! `POST /v1/login/challenge` and `POST /v1/login`: the age challenge and the session
//! token it earns (SPEC §4).
//!
//! An unknown or disabled user gets a challenge like anyone else, encrypted to a key
//! nobody holds, so the answer does not reveal who is enrolled; the attempt is logged as
//! a refused login.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vault_core::api::{ChallengeRequest, ChallengeResponse, LoginRequest, LoginResponse};
use vault_core::challenge::Challenge;
use vault_core::log::Action;
use zeroize::Zeroizing;

use super::extract::ApiJson;
use crate::accesslog::RequestLog;
use crate::auth::{CHALLENGE_LIFETIME_SECS, PendingChallenge};
use crate::error::{ApiError, ApiResult, Refusal};
use crate::policy;
use crate::state::AppState;

pub async fn challenge(
    State(st): State<AppState>,
    log: RequestLog,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> ApiResult<impl IntoResponse> {
    let lookup = req.user.clone();
    let user = st.db.read(move |s| Ok(s.user(&lookup)?)).await?;
    let challenge = Challenge {
        origin: st.origin.clone(),
        user: req.user.clone(),
        nonce: hex::encode(vault_core::ids::random_bytes::<32>()),
        expires: chrono::Utc::now().timestamp() + CHALLENGE_LIFETIME_SECS,
    };
    let text = Zeroizing::new(challenge.to_text());
    let challenge_id = vault_core::ids::random_hex16();
    let (ciphertext, refusal) = match user {
        Some(u) if u.enabled => {
            let recipient = vault_core::crypto::parse_recipient(&u.recipient).map_err(ApiError::internal)?;
            st.challenges.insert(
                challenge_id.clone(),
                PendingChallenge {
                    user: req.user.clone(),
                    expected_response: vault_core::challenge::response(text.as_bytes()),
                    expires: challenge.expires,
                },
            )?;
            (vault_core::crypto::encrypt_small(&recipient, text.as_bytes()), None)
        }
        _ => {
            // Answer exactly as for a real user; the decoy can never be answered.
            log.set_actor(&req.user);
            log.set_action(Action::Login);
            let decoy = age::x25519::Identity::generate().to_public();
            let refusal = Refusal { message: "unknown or disabled user".into(), why: None };
            (vault_core::crypto::encrypt_small(&decoy, text.as_bytes()), Some(refusal))
        }
    };
    let body = Json(ChallengeResponse { challenge_id, ciphertext: B64.encode(ciphertext) });
    // A refusal that answers 200: the route's layer logs it all the same.
    Ok((refusal.map(axum::Extension), body))
}

pub async fn login(
    State(st): State<AppState>,
    log: RequestLog,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let failed = ApiError::unauthenticated(
        "login failed: the challenge is unknown, expired or was answered wrongly; run `vault-cli login` again",
    );
    let Some(pending) = st.challenges.take(&req.challenge_id) else {
        return Err(failed.with_detail("unknown, used or expired challenge"));
    };
    let user = pending.user.clone();
    log.set_actor(&user);
    let ok = pending.expires > chrono::Utc::now().timestamp()
        && vault_core::ct_eq(pending.expected_response.as_bytes(), req.response.trim().as_bytes());
    let tokens_user = user.clone();
    let role = log
        .logged(&st.db, move |s, _| {
            if !ok {
                return Err(failed);
            }
            policy::may_log_in(s, &user)
        })
        .await?;
    let (token, expires_at) = st.tokens.issue(&tokens_user)?;
    Ok(Json(LoginResponse { token, expires_at, role }))
}
