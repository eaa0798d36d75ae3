//! The keys of a case: custodians read their envelopes and make other admins custodians,
//! grantees read their own envelopes, and custodians rotate the case key.
//!
//! The server never sees a case secret. A custodian's CLI unwraps it locally and sends
//! envelopes for other people; the server checks that the set of envelopes is complete
//! (every key version for a new holder, every holder for a new version) before it accepts
//! them, so no one is left unable to read what they are entitled to.

use axum::Json;
use axum::extract::State;
use serde_json::json;
use vault_core::api::{CaseKeyInfo, Created, Done, KeyEnvelope, NewCustodian, Rotation};
use vault_core::ids::{CaseId, UserName};

use super::extract::{Admin, ApiJson, ApiPath, Fetcher};
use super::validate;
use crate::accesslog::RequestLog;
use crate::clock::{now_rfc3339, today};
use crate::error::{ApiError, ApiResult};
use crate::policy;
use crate::state::AppState;
use crate::trust;

/// A custodian's envelopes of every key version, and who holds the current key.
pub async fn case_key(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
) -> ApiResult<Json<CaseKeyInfo>> {
    let info = log
        .logged(&st.db, move |s, _| {
            let (case, keys) = policy::may_read_case_key(s, &caller, &id)?;
            Ok(CaseKeyInfo { key_version: case.key_version, keys, holders: s.holders(&id, today())? })
        })
        .await?;
    Ok(Json(info))
}

/// A grantee's own envelopes of every key version it holds, so that its CLI can read
/// the encrypted call metadata of a listing without fetching recordings.
pub async fn own_envelopes(
    State(st): State<AppState>,
    Fetcher(caller): Fetcher,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
) -> ApiResult<Json<Vec<KeyEnvelope>>> {
    let list = log
        .logged(&st.db, move |s, rec| {
            let case = policy::require_active_grant(s, &id, &caller.name)?;
            if policy::under_legal_hold(&case) {
                rec.details = json!({ "legal_hold": true }).to_string();
            }
            Ok(s.envelopes_of(&id, &caller.name)?)
        })
        .await?;
    Ok(Json(list))
}

pub async fn add_custodian(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
    ApiJson(req): ApiJson<NewCustodian>,
) -> ApiResult<Json<Done<UserName>>> {
    let out = req.admin.clone();
    log.logged(&st.db, move |s, rec| {
        rec.details = json!({ "custodian": req.admin.as_str(), "statement": req.statement }).to_string();
        let case = policy::may_add_custodian(s, &caller, &id, &req.admin)?;
        trust::check_custodian_statement(s, &req.statement, &caller.name, &id, &req.admin)?;
        for (version, envelope) in validate::every_version(&req.envelopes, case.key_version)? {
            s.put_envelope(&id, version, &req.admin, &envelope)?;
        }
        s.add_custodian(&id, &req.admin, Some(&req.statement))?;
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}

/// A new key version for future recordings, wrapped to everyone who holds the current
/// one; answers the new version.
pub async fn rotate(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
    ApiJson(req): ApiJson<Rotation>,
) -> ApiResult<Json<Created<u32>>> {
    let version = log
        .logged(&st.db, move |s, rec| {
            let case = policy::may_rotate(s, &caller, &id, req.from_version)?;
            let recipient = validate::recipient(&req.recipient)?;
            let expected: Vec<UserName> = s.holders(&id, today())?.into_iter().map(|h| h.user).collect();
            let mut sent: Vec<UserName> = req.envelopes.iter().map(|e| e.user.clone()).collect();
            sent.sort();
            if sent != expected {
                return Err(ApiError::conflict(
                    "the people holding this case's key changed meanwhile; run rotate-key again",
                ));
            }
            let next = case.key_version + 1;
            trust::check_key_statement(s, &req.key_statement, &caller.name, &id, case.kind, next, &recipient)?;
            s.insert_case_key(&id, next, &recipient, &req.key_statement, &now_rfc3339())?;
            for e in &req.envelopes {
                s.put_envelope(&id, next, &e.user, &validate::decode_small(&e.envelope, "an envelope")?)?;
            }
            s.set_key_version(&id, next)?;
            rec.details = json!({ "key_version": next, "holders": expected.len(), "key_statement": req.key_statement })
                .to_string();
            Ok(next)
        })
        .await?;
    Ok(Json(Created { id: version }))
}
