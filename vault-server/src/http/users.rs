//! `/v1/users`: enrolling, listing, showing and disabling users (admins).

use axum::Json;
use axum::extract::State;
use serde_json::json;
use vault_core::api::{Cosignature, Created, Disabling, Done, NewUser, Role, TrustInfo, UserInfo};
use vault_core::ids::UserName;
use vault_core::trust::statement::Signature;
use vault_core::trust::{Disable, Enrol};

use super::extract::{Admin, ApiJson, ApiPath};
use crate::accesslog::RequestLog;
use crate::auth::Caller;
use crate::clock::now_rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::policy;
use crate::state::AppState;
use crate::store::{NewUserRow, Scope};
use crate::trust;

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

/// Enrols a person from the caller's signed enrolment. An admin's enrolment waits for a
/// second admin's signature ([`approve`]) before they may log in.
pub async fn add(
    State(st): State<AppState>,
    Admin(caller): Admin,
    log: RequestLog,
    ApiJson(req): ApiJson<NewUser>,
) -> ApiResult<Json<Created<UserName>>> {
    let e: Enrol = req.enrolment.parse().map_err(|e| trust::refused("the enrolment", e))?;
    let name = e.name.clone();
    log.logged(&st.db, move |s, rec| {
        rec.details = json!({
            "user": e.name.as_str(),
            "role": e.role.as_str(),
            "id": e.id.to_string(),
            "enrolment": req.enrolment,
        })
        .to_string();
        if e.by != caller.name {
            return Err(ApiError::bad_request(format!(
                "the enrolment is signed as {}, but you are {}; sign it with your own identity",
                e.by, caller.name
            )));
        }
        let (_, dir) = trust::directory(s)?;
        dir.check_enrolment(&req.enrolment, true).map_err(|e| trust::refused("the enrolment", e))?;
        if s.user_state(&e.name)?.is_some() {
            return Err(ApiError::conflict(format!("user {} already exists; pick another name", e.name)));
        }
        if s.public_id_taken(&e.id)? {
            return Err(ApiError::conflict(
                "that public id is already enrolled for another user; every person needs their own identity (vault-cli keygen)",
            ));
        }
        s.insert_user(&NewUserRow {
            name: &e.name,
            role: e.role,
            id: &e.id,
            statement: Some(&req.enrolment),
            approved: e.role != Role::Admin,
            created_at: &now_rfc3339(),
            created_by: Some(&caller.name),
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(Created { id: name }))
}

/// A second admin approves an admin's enrolment by signing it too (four eyes): neither the
/// admin who enrolled them nor they themselves can.
pub async fn approve(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(name): ApiPath<UserName>,
    log: RequestLog,
    ApiJson(req): ApiJson<Cosignature>,
) -> ApiResult<Json<Done<UserName>>> {
    let out = name.clone();
    log.logged(&st.db, move |s, rec| {
        let mut statement = policy::may_approve_enrolment(s, &caller, &name)?;
        statement.signatures.push(Signature { by: caller.name.clone(), sig: req.signature });
        let (_, dir) = trust::directory(s)?;
        dir.check_enrolment(&statement, false).map_err(|e| trust::refused("your approval", e))?;
        rec.details = json!({ "user": name.as_str(), "enrolment": statement }).to_string();
        s.approve_enrolment(&name, &statement)?;
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}

/// Disabling ends everything the user held at once: sessions (the role extractors read
/// the user's row on every request), grants, custodianships and envelopes. The caller's
/// signed statement tells clients to trust nothing the user signed any more.
pub async fn disable(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(name): ApiPath<UserName>,
    log: RequestLog,
    ApiJson(req): ApiJson<Disabling>,
) -> ApiResult<Json<Done<UserName>>> {
    let out = name.clone();
    log.logged(&st.db, move |s, rec| {
        policy::may_disable_user(s, &caller, &name)?;
        let d: Disable = req.statement.parse().map_err(|e| trust::refused("the disabling", e))?;
        let target = s.enrolment(&name)?.ok_or_else(|| ApiError::not_found(format!("no user {name}")))?;
        if d.name != name || d.id != target.id || d.by != caller.name {
            return Err(ApiError::bad_request(format!(
                "the disabling statement must name {name} with their enrolled key and be signed by you"
            )));
        }
        let (root, dir) = trust::directory(s)?;
        if d.vault != root.vault {
            return Err(ApiError::bad_request("the disabling statement is for another vault"));
        }
        dir.signer(&req.statement, &caller.name, &[Role::Admin]).map_err(|e| trust::refused("the disabling", e))?;
        s.disable_user(&name, &req.statement)?;
        let grants = s.revoke_grants(Scope::User(&name), &now_rfc3339())?;
        let custodianships = s.end_custodianships(&name)?;
        let envelopes = s.delete_envelopes(Scope::User(&name))?;
        rec.details = json!({
            "user": name.as_str(),
            "grants_revoked": grants,
            "custodianships_ended": custodianships,
            "envelopes_deleted": envelopes,
            "statement": req.statement,
        })
        .to_string();
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}

/// The trust root and every enrolment and disabling, for any signed-in user's client to
/// check people against. Not logged when allowed: it is what every client reads first,
/// and it holds nothing a user of the vault may not know.
pub async fn trust_info(State(st): State<AppState>, _caller: Caller) -> ApiResult<Json<TrustInfo>> {
    let info = st
        .db
        .read(|s| {
            let root = s.trust_root()?.ok_or_else(|| ApiError::internal("the database has no trust root"))?;
            let (enrolments, disables) = s.trust_statements()?;
            Ok(TrustInfo { root, enrolments, disables })
        })
        .await?;
    Ok(Json(info))
}
