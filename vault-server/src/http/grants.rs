//! `/v1/cases/{id}/grants`: granting a person a case, approving a covert grant (four
//! eyes), delivering its key, revoking.
//!
//! A grant arrives signed by the granting custodian and, on a case that is not covert,
//! with the case secret of every key version already wrapped to the grantee; the server
//! stores the envelopes it cannot open only together with a grant policy allows. On a
//! covert case no envelope exists before a second admin has signed the grant too: the
//! key comes with the approval (if the approver is a custodian) or after it
//! (`deliver`).

use axum::Json;
use axum::extract::State;
use serde_json::json;
use vault_core::api::{Done, GrantApproval, GrantInfo, GrantStatus, KeyDelivery, NewGrant, Reason};
use vault_core::ids::{CaseId, UserName};
use vault_core::trust::statement::Signature;

use super::extract::{Admin, ApiJson, ApiPath};
use super::validate::{self, require_text};
use crate::accesslog::RequestLog;
use crate::clock::{now_rfc3339, today};
use crate::error::ApiResult;
use crate::policy;
use crate::state::AppState;
use crate::store::Scope;
use crate::trust;

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
            trust::check_grant_statement(s, &req.statement, &caller.name, &id, &req.user, req.until)?;
            let status = policy::new_grant_status(&case);
            let envelopes = if status == GrantStatus::Pending {
                policy::no_envelope_before_approval(&req.envelopes)?;
                Vec::new()
            } else {
                validate::every_version(&req.envelopes, case.key_version)?
            };
            let info = GrantInfo {
                user: req.user.clone(),
                status,
                reason: req.reason.trim().to_owned(),
                until: req.until,
                granted_by: caller.name.clone(),
                created_at: now_rfc3339(),
                approved_by: None,
                statement: Some(req.statement.clone()),
            };
            s.put_grant(&id, &info)?;
            for (version, envelope) in envelopes {
                s.put_envelope(&id, version, &req.user, &envelope)?;
            }
            rec.details = json!({
                "grantee": req.user.as_str(),
                "until": req.until,
                "status": info.status.as_str(),
                "statement": req.statement,
            })
            .to_string();
            Ok(info)
        })
        .await?;
    Ok(Json(info))
}

/// A second admin approves a covert grant by signing its statement too (four eyes). A
/// custodian approver delivers the key with the approval, which makes the grant active;
/// otherwise it waits for a custodian's [`deliver`].
pub async fn approve(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath((id, user)): ApiPath<(CaseId, UserName)>,
    log: RequestLog,
    ApiJson(req): ApiJson<GrantApproval>,
) -> ApiResult<Json<GrantInfo>> {
    let info = log
        .logged(&st.db, move |s, rec| {
            rec.details = json!({ "grantee": user.as_str() }).to_string();
            let (case, mut statement) = policy::may_approve_grant(s, &caller, &id, &user)?;
            statement.signatures.push(Signature { by: caller.name.clone(), sig: req.signature });
            trust::check_grant_approval(s, &statement, &caller.name, &id)?;
            let delivered = !req.envelopes.is_empty();
            if delivered {
                policy::require_custodian(s, &id, &caller)?;
                for (version, envelope) in validate::every_version(&req.envelopes, case.key_version)? {
                    s.put_envelope(&id, version, &user, &envelope)?;
                }
            }
            s.approve_grant(&id, &user, &caller.name, &statement, delivered)?;
            rec.details =
                json!({ "grantee": user.as_str(), "key_delivered": delivered, "statement": statement }).to_string();
            grant_info(s, &id, &user)
        })
        .await?;
    Ok(Json(info))
}

/// A custodian delivers the key of an approved covert grant, which makes it active.
pub async fn deliver(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath((id, user)): ApiPath<(CaseId, UserName)>,
    log: RequestLog,
    ApiJson(req): ApiJson<KeyDelivery>,
) -> ApiResult<Json<GrantInfo>> {
    let info = log
        .logged(&st.db, move |s, rec| {
            rec.details = json!({ "grantee": user.as_str() }).to_string();
            let case = policy::may_deliver_key(s, &caller, &id, &user)?;
            for (version, envelope) in validate::every_version(&req.envelopes, case.key_version)? {
                s.put_envelope(&id, version, &user, &envelope)?;
            }
            s.activate_grant(&id, &user)?;
            grant_info(s, &id, &user)
        })
        .await?;
    Ok(Json(info))
}

fn grant_info(s: &crate::store::Store<'_>, case: &CaseId, user: &UserName) -> ApiResult<GrantInfo> {
    s.grants_of_case(case, today())?
        .into_iter()
        .find(|g| g.user == *user)
        .ok_or_else(|| crate::error::ApiError::internal(format!("the grant of {user} vanished")))
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
