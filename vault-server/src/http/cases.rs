//! `/v1/cases`: creating, listing, showing and approving cases, and the recipient a
//! recorder encrypts to.

use axum::Json;
use axum::extract::State;
use serde_json::json;
use vault_core::api::{
    Approval, CaseInfo, CaseKind, CaseRecipient, CaseStatus, Created, Done, NewCase, default_retention_days,
};
use vault_core::ids::CaseId;

use super::extract::{Admin, ApiJson, ApiPath, Reader, Recorder};
use super::validate::{self, require_text};
use crate::accesslog::RequestLog;
use crate::clock::{now_rfc3339, today};
use crate::error::{ApiError, ApiResult};
use crate::policy;
use crate::state::AppState;
use crate::store::NewCaseRow;
use crate::trust;

/// The cases the caller may see (`policy::may_see_case`), oldest first.
pub async fn list(
    State(st): State<AppState>,
    Reader(caller): Reader,
    log: RequestLog,
) -> ApiResult<Json<Vec<CaseInfo>>> {
    let cases = log
        .logged(&st.db, move |s, _| {
            let mut out = Vec::new();
            for id in s.case_ids()? {
                if policy::may_see_case(s, &caller, &id)? {
                    out.extend(s.case_info(&id, today())?);
                }
            }
            Ok(out)
        })
        .await?;
    Ok(Json(cases))
}

pub async fn show(
    State(st): State<AppState>,
    Reader(caller): Reader,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
) -> ApiResult<Json<CaseInfo>> {
    let info = log
        .logged(&st.db, move |s, _| {
            policy::may_show_case(s, &caller, &id)?;
            s.case_info(&id, today())?.ok_or_else(|| ApiError::internal(format!("case {id} vanished")))
        })
        .await?;
    Ok(Json(info))
}

/// Creates a case with the key pair the admin's CLI generated: the server stores the
/// recipient and the creator's envelope, and the creator becomes the first custodian.
pub async fn create(
    State(st): State<AppState>,
    Admin(caller): Admin,
    log: RequestLog,
    ApiJson(req): ApiJson<NewCase>,
) -> ApiResult<Json<Created<CaseId>>> {
    let id = req.id.clone();
    log.set_case(&id);
    let out = id.clone();
    log.logged(&st.db, move |s, rec| {
        let kind = req.basis.kind();
        rec.details = json!({ "kind": kind.as_str() }).to_string();
        req.basis.validate().map_err(ApiError::bad_request)?;
        require_text(&req.title, "--title")?;
        let retention_days = req.retention_days.unwrap_or_else(|| default_retention_days(kind));
        if !(1..=36_500).contains(&retention_days) {
            return Err(ApiError::bad_request("--retention-days must be between 1 and 36500"));
        }
        let recipient = validate::recipient(&req.recipient)?;
        let envelope = validate::decode_small(&req.envelope, "the case key envelope")?;
        if s.case(&id)?.is_some() {
            return Err(ApiError::conflict(format!("case {id} exists already; create the case again (a new id)")));
        }
        let status = if kind == CaseKind::Covert { CaseStatus::PendingApproval } else { CaseStatus::Open };
        let now = now_rfc3339();
        let basis = serde_json::to_string(&req.basis).map_err(ApiError::internal)?;
        s.insert_case(&NewCaseRow {
            id: &id,
            kind,
            title: req.title.trim(),
            status,
            retention_days,
            basis: &basis,
            created_by: &caller.name,
            created_at: &now,
        })?;
        trust::check_key_statement(s, &req.key_statement, &caller.name, &id, kind, 1, &recipient)?;
        s.insert_case_key(&id, 1, &recipient, &req.key_statement, &now)?;
        s.add_custodian(&id, &caller.name, None)?;
        s.put_envelope(&id, 1, &caller.name, &envelope)?;
        rec.details = json!({
            "kind": kind.as_str(),
            "status": status.as_str(),
            "retention_days": retention_days,
            "key_statement": req.key_statement,
        })
        .to_string();
        Ok(())
    })
    .await?;
    Ok(Json(Created { id: out }))
}

/// Records the AP's prior-check approval of a covert case, which opens it (R3).
pub async fn approve(
    State(st): State<AppState>,
    Admin(_): Admin,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
    ApiJson(req): ApiJson<Approval>,
) -> ApiResult<Json<Done<CaseId>>> {
    let out = id.clone();
    log.logged(&st.db, move |s, rec| {
        policy::case_for_admin(s, &id)?;
        require_text(&req.ap_ref, "--ap-ref")?;
        let date = req.date.unwrap_or_else(today);
        rec.details = json!({ "ap_ref": req.ap_ref, "date": date.to_string() }).to_string();
        policy::may_approve_case(s, &id, date)?;
        s.approve_case(&id, req.ap_ref.trim(), date)?;
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}

/// The recipient of the case's current key version, for a recorder about to upload.
pub async fn recipient(
    State(st): State<AppState>,
    Recorder(_): Recorder,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
) -> ApiResult<Json<CaseRecipient>> {
    let info = log
        .logged(&st.db, move |s, _| {
            let case = s.case(&id)?.ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
            policy::may_take_recordings(&case)?;
            let (recipient, statement) = s.case_recipient(&id, case.key_version)?;
            Ok(CaseRecipient { recipient, key_version: case.key_version, statement })
        })
        .await?;
    Ok(Json(info))
}
