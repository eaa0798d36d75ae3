//! `/v1/users`: enrolling, listing, showing and disabling users (admins).

use axum::Json;
use axum::extract::State;
use serde_json::json;
use vault_core::api::{Created, Done, NewUser, UserInfo};
use vault_core::ids::UserName;

use super::extract::{Admin, ApiJson, ApiPath};
use super::validate;
use crate::accesslog::RequestLog;
use crate::clock::now_rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::policy;
use crate::state::AppState;
use crate::store::Scope;

pub async fn list(State(st): State<AppState>, Admin(_): Admin, log: RequestLog) -> ApiResult<Json<Vec<UserInfo>>> {
    Ok(Json(log.logged(&st.db, |s, _| Ok(s.users()?)).await?))
}

pub async fn show(
    State(st): State<AppState>,
    Admin(_): Admin,
    ApiPath(name): ApiPath<UserName>,
    log: RequestLog,
) -> ApiResult<Json<UserInfo>> {
    let user = log
        .logged(&st.db, move |s, rec| {
            rec.details = json!({ "user": name.as_str() }).to_string();
            s.user(&name)?.ok_or_else(|| {
                ApiError::not_found(format!("no user {name}; `vault-cli user list` shows who is enrolled"))
            })
        })
        .await?;
    Ok(Json(user))
}

pub async fn add(
    State(st): State<AppState>,
    Admin(caller): Admin,
    log: RequestLog,
    ApiJson(req): ApiJson<NewUser>,
) -> ApiResult<Json<Created<UserName>>> {
    let name = req.name.clone();
    log.logged(&st.db, move |s, rec| {
        rec.details = json!({ "user": req.name.as_str(), "role": req.role.as_str() }).to_string();
        let recipient = validate::recipient(&req.recipient)?;
        if s.user_state(&req.name)?.is_some() {
            return Err(ApiError::conflict(format!("user {} already exists; pick another name", req.name)));
        }
        if s.recipient_taken(&recipient)? {
            return Err(ApiError::conflict(
                "that recipient is already enrolled for another user; every person needs their own identity (vault-cli keygen)",
            ));
        }
        s.insert_user(&req.name, req.role, &recipient, &now_rfc3339(), Some(&caller.name))?;
        Ok(())
    })
    .await?;
    Ok(Json(Created { id: name }))
}

/// Disabling ends everything the user held at once: sessions (the role extractors read
/// the user's row on every request), grants, custodianships and envelopes.
pub async fn disable(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(name): ApiPath<UserName>,
    log: RequestLog,
) -> ApiResult<Json<Done<UserName>>> {
    let out = name.clone();
    log.logged(&st.db, move |s, rec| {
        policy::may_disable_user(s, &caller, &name)?;
        s.disable_user(&name)?;
        let grants = s.revoke_grants(Scope::User(&name), &now_rfc3339())?;
        let custodianships = s.end_custodianships(&name)?;
        let envelopes = s.delete_envelopes(Scope::User(&name))?;
        rec.details = json!({
            "user": name.as_str(),
            "grants_revoked": grants,
            "custodianships_ended": custodianships,
            "envelopes_deleted": envelopes,
        })
        .to_string();
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}
