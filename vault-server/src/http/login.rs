//! `POST /v1/login/challenge` and `POST /v1/login`: the age challenge and the session
//! token it earns (SPEC §4).
//!
//! An unknown or disabled user gets a challenge like anyone else, encrypted to a key
//! nobody holds, so the answer does not reveal who is enrolled; the attempt is logged as
//! a refused `login-challenge`, a challenge to an enrolled user as an allowed one.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vault_core::api::{ChallengeRequest, ChallengeResponse, LoginRequest, LoginResponse};
use zeroize::Zeroizing;

use super::LogAllowed;
use super::extract::ApiJson;
use crate::accesslog::RequestLog;
use crate::error::{ApiError, ApiResult, Refusal};
use crate::policy;
use crate::state::AppState;

pub async fn challenge(
    State(st): State<AppState>,
    log: RequestLog,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> ApiResult<impl IntoResponse> {
    log.set_actor(&req.user);
    // Per source and name, so that one source cannot cycle through a name; a source
    // that is not the attacker's still gets its challenges (no lock-out).
    st.limits.challenge(log.source(), &req.user).map_err(|w| ApiError::too_fast(w.retry_after_secs()))?;
    let lookup = req.user.clone();
    let user = st.db.read(move |s| Ok(s.user(&lookup)?)).await?;
    let issued = st.challenges.issue(&st.origin, &req.user);
    let text = Zeroizing::new(issued.challenge.to_text());
    // Known and unknown names take the same steps (parse a recipient, encrypt to it, log
    // through the same gate) and get the same answer; only the log tells them apart.
    let (recipient, refusal) = match &user {
        Some(u) if u.enabled => (u.recipient.as_str(), None),
        _ => (
            st.challenges.decoy(),
            Some(Refusal { code: "access_denied", message: "unknown or disabled user".into(), why: None }),
        ),
    };
    let recipient = vault_core::crypto::parse_recipient(recipient).map_err(ApiError::internal)?;
    let ciphertext = vault_core::crypto::encrypt_small(&recipient, text.as_bytes());
    let body = Json(ChallengeResponse { challenge_id: issued.id, ciphertext: B64.encode(ciphertext) });
    // Either way the router's layer logs it: a refusal that answers 200, or an allowed
    // challenge.
    Ok(match refusal {
        Some(r) => (axum::Extension(r), body).into_response(),
        None => (axum::Extension(LogAllowed), body).into_response(),
    })
}

pub async fn login(
    State(st): State<AppState>,
    log: RequestLog,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let failed = ApiError::unauthenticated(
        "login failed: the challenge is unknown, expired or was answered wrongly; run `vault-cli login` again",
    );
    let user = match st.challenges.answer(&st.origin, &req.challenge_id, &req.response) {
        Ok(user) => user,
        Err(e) => {
            if let Some(u) = &e.user {
                log.set_actor(u);
            }
            return Err(failed.with_detail(e.why));
        }
    };
    log.set_actor(&user);
    let tokens_user = user.clone();
    let role = log.logged(&st.db, move |s, _| policy::may_log_in(s, &user)).await?;
    let (token, expires_at) = st.tokens.issue(&tokens_user)?;
    Ok(Json(LoginResponse { token, expires_at, role }))
}
