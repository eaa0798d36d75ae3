//! `/v1/cases/{id}/grants`: granting a person a case, approving a covert grant (four
//! eyes), revoking.
//!
//! A grant arrives with the case secret of every key version already wrapped to the
//! grantee by the granting custodian's CLI; the server stores the envelopes it cannot
//! open only together with a grant policy allows.

use axum::Json;
use axum::extract::State;
use serde_json::json;
use vault_core::api::{Done, GrantInfo, NewGrant, Reason};
use vault_core::ids::{CaseId, UserName};

use super::extract::{Admin, ApiJson, ApiPath};
use super::validate::{self, require_text};
use crate::accesslog::RequestLog;
use crate::clock::now_rfc3339;
use crate::error::ApiResult;
use crate::policy;
use crate::state::AppState;
use crate::store::Scope;

pub async fn grant(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
    ApiJson(req): ApiJson<NewGrant>,
) -> ApiResult<Json<GrantInfo>> {
    log.set_reason(&req.reason);
    let info = log
        .logged(&st.db, move |s, rec| {
            rec.details = json!({ "grantee": req.user.as_str(), "until": req.until }).to_string();
            require_text(&req.reason, "--reason")?;
            let case = policy::may_grant(s, &caller, &id, &req.user, req.until)?;
            let envelopes = validate::every_version(&req.envelopes, case.key_version)?;
            let info = GrantInfo {
                user: req.user.clone(),
                status: policy::new_grant_status(&case),
                reason: req.reason.trim().to_owned(),
                until: req.until,
                granted_by: caller.name.clone(),
                created_at: now_rfc3339(),
            };
            s.put_grant(&id, &info)?;
            for (version, envelope) in envelopes {
                s.put_envelope(&id, version, &req.user, &envelope)?;
            }
            rec.details =
                json!({ "grantee": req.user.as_str(), "until": req.until, "status": info.status.as_str() }).to_string();
            Ok(info)
        })
        .await?;
    Ok(Json(info))
}

pub async fn approve(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath((id, user)): ApiPath<(CaseId, UserName)>,
    log: RequestLog,
) -> ApiResult<Json<Done<UserName>>> {
    let out = user.clone();
    log.logged(&st.db, move |s, rec| {
        rec.details = json!({ "grantee": user.as_str() }).to_string();
        policy::may_approve_grant(s, &caller, &id, &user)?;
        s.approve_grant(&id, &user, &caller.name)?;
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}

/// Revoking deletes the grant's envelopes at once (a custodian keeps theirs: they hold
/// the case key as custodian, not by the grant).
pub async fn revoke(
    State(st): State<AppState>,
    Admin(_): Admin,
    ApiPath((id, user)): ApiPath<(CaseId, UserName)>,
    log: RequestLog,
    ApiJson(req): ApiJson<Reason>,
) -> ApiResult<Json<Done<UserName>>> {
    log.set_reason(&req.reason);
    let out = user.clone();
    log.logged(&st.db, move |s, rec| {
        rec.details = json!({ "grantee": user.as_str() }).to_string();
        require_text(&req.reason, "--reason")?;
        policy::may_revoke(s, &id, &user)?;
        s.revoke_grants(Scope::One(&id, &user), &now_rfc3339())?;
        let deleted = if s.is_custodian(&id, &user)? { 0 } else { s.delete_envelopes(Scope::One(&id, &user))? };
        rec.details = json!({ "grantee": user.as_str(), "envelopes_deleted": deleted }).to_string();
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}
