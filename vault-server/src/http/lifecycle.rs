//! The legal lifecycle of a case (SPEC §2): closing with an outcome, destroying the
//! recordings at once when nothing criminal was found (R5), the duty to tell the employee
//! (R6), releasing a legal hold (R7), reopening a case on legal hold (two admins), and the
//! compliance report.

use axum::Json;
use axum::extract::State;
use serde_json::json;
use vault_core::api::{
    CaseKind, CaseStatus, Closing, Done, NOTIFY_WITHIN_DAYS, Notice, NotificationInfo, Outcome, Reason, Report,
};
use vault_core::ids::CaseId;
use vault_core::log::Action;

use super::extract::{Admin, ApiJson, ApiPath};
use super::validate::require_text;
use crate::accesslog::RequestLog;
use crate::clock::{now_rfc3339, today};
use crate::error::{ApiError, ApiResult};
use crate::policy;
use crate::retention;
use crate::state::AppState;
use crate::store::{Cause, Doomed, Scope};

/// Closes a case. With outcome `no-offence` its recordings are destroyed and every
/// envelope of its key deleted in the same transaction (crypto-shredding, so that no
/// stray copy of the ciphertext can be decrypted again); their files go right after.
pub async fn close(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
    ApiJson(req): ApiJson<Closing>,
) -> ApiResult<Json<Done<CaseId>>> {
    let out = id.clone();
    let destroyed = log
        .logged(&st.db, move |s, rec| {
            rec.details = json!({ "outcome": req.outcome.as_str() }).to_string();
            let case = policy::close_rule(s, &id, req.outcome)?;
            let now = now_rfc3339();
            let (status, destroyed, envelopes) = if req.outcome == Outcome::NoOffence {
                let n = retention::destroy(s, Doomed::Case(&id), Cause::NoOffence, caller.name.as_str())?;
                let e = s.delete_envelopes(Scope::Case(&id))?;
                s.revoke_grants(Scope::Case(&id), &now)?;
                (CaseStatus::Destroyed, n, e)
            } else {
                (CaseStatus::Closed, 0, 0)
            };
            let legal_hold = req.outcome == Outcome::Offence;
            s.close_case(&id, status, req.outcome, &now, &caller.name, legal_hold)?;
            if case.kind == CaseKind::Covert {
                s.insert_notification(&id, &now, today() + chrono::Duration::days(NOTIFY_WITHIN_DAYS))?;
            }
            rec.details = json!({
                "outcome": req.outcome.as_str(),
                "status": status.as_str(),
                "recordings_destroyed": destroyed,
                "envelopes_deleted": envelopes,
                "legal_hold": legal_hold,
            })
            .to_string();
            Ok(destroyed)
        })
        .await?;
    if destroyed > 0 {
        // Only now is the destruction durable; delete the ciphertext files.
        let (db, blobs) = (st.db.clone(), st.blobs.clone());
        tokio::task::spawn_blocking(move || retention::finish_destructions(&db, &blobs))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    }
    Ok(Json(Done { id: out }))
}

/// Records that the employee was told about covert recording, or defers telling to a
/// review date with a reason (R6).
pub async fn notify(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
    ApiJson(req): ApiJson<Notice>,
) -> ApiResult<Json<NotificationInfo>> {
    let info = log
        .logged(&st.db, move |s, rec| {
            policy::may_notify(s, &id, &req)?;
            let today = today();
            match &req {
                Notice::Told { date, how } => {
                    require_text(how, "--how")?;
                    let closed =
                        s.closed_at(&id)?.ok_or_else(|| ApiError::internal("a notification before closing"))?;
                    if *date > today || date.to_string().as_str() < &closed[..10] {
                        return Err(ApiError::bad_request(format!(
                            "--date must lie between the closing of the case ({}) and today",
                            &closed[..10]
                        )));
                    }
                    s.record_told(&id, *date, how.trim(), &caller.name)?;
                    rec.details = json!({ "told_on": date.to_string() }).to_string();
                }
                Notice::Deferred { until, reason } => {
                    require_text(reason, "--reason")?;
                    if *until <= today {
                        return Err(ApiError::bad_request("--defer-until must be a date after today"));
                    }
                    s.record_deferral(&id, *until, reason.trim(), &caller.name)?;
                    rec.action = Action::NotifyDefer;
                    rec.reason = reason.trim().to_owned();
                    rec.details = json!({ "deferred_until": until.to_string() }).to_string();
                }
            }
            s.notification(&id, today)?.ok_or_else(|| ApiError::internal("notification vanished"))
        })
        .await?;
    Ok(Json(info))
}

/// Releases a case from legal hold: retention applies again, and a closed case becomes an
/// ordinary closed one: its grantees read nothing more, and it can no longer be reopened
/// (a request waiting for approval is dropped).
pub async fn release_hold(
    State(st): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
    ApiJson(req): ApiJson<Reason>,
) -> ApiResult<Json<Done<CaseId>>> {
    log.set_reason(&req.reason);
    let out = id.clone();
    log.logged(&st.db, move |s, rec| {
        require_text(&req.reason, "--reason")?;
        policy::may_release_hold(s, &id)?;
        s.release_hold(&id, &now_rfc3339(), &caller.name)?;
        if let Some(dropped) = s.pending_reopening(&id)? {
            s.drop_pending_reopening(&id)?;
            rec.details = json!({ "reopen_request_dropped": dropped.requested_by.as_str() }).to_string();
        }
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}

/// An admin requests reopening a case on legal hold (`policy::reopen_rule`). The case
/// stays closed until a second admin approves ([`reopen_approve`]). A waiting request
/// whose admin has been disabled since no longer counts, and this one replaces it.
pub async fn reopen(
    State(st): State<AppState>,
    // Before the role check, so that a refusal for the role names the case too.
    ApiPath(id): ApiPath<CaseId>,
    Admin(caller): Admin,
    log: RequestLog,
    ApiJson(req): ApiJson<Reason>,
) -> ApiResult<Json<Done<CaseId>>> {
    log.set_reason(&req.reason);
    let out = id.clone();
    log.logged(&st.db, move |s, rec| {
        require_text(&req.reason, "--reason")?;
        let replaced = policy::may_request_reopen(s, &caller, &id)?;
        if let Some(stale) = &replaced {
            s.drop_pending_reopening(&id)?;
            rec.details = json!({ "replaces_request_of": stale.requested_by.as_str() }).to_string();
        }
        s.insert_reopening(&id, &caller.name, &now_rfc3339(), req.reason.trim())?;
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}

/// A second admin approves the waiting request to reopen (four eyes): the case is open
/// again, without outcome, and takes recordings and grants. Its legal hold stays, so that
/// retention does not purge the evidence of its first closing, and so does its duty to
/// tell the employee (R6).
pub async fn reopen_approve(
    State(st): State<AppState>,
    // Before the role check, so that a refusal for the role names the case too.
    ApiPath(id): ApiPath<CaseId>,
    Admin(caller): Admin,
    log: RequestLog,
) -> ApiResult<Json<Done<CaseId>>> {
    let out = id.clone();
    log.logged(&st.db, move |s, rec| {
        let request = policy::may_approve_reopen(s, &caller, &id)?;
        s.approve_reopening(&id, &caller.name, &now_rfc3339())?;
        s.reopen_case(&id)?;
        rec.details = json!({
            "requested_by": request.requested_by.as_str(),
            "requested_at": request.requested_at,
            "request_reason": request.reason,
            "status": CaseStatus::Open.as_str(),
            "legal_hold": true,
        })
        .to_string();
        Ok(())
    })
    .await?;
    Ok(Json(Done { id: out }))
}

/// The compliance report: pending approvals, notifications owed, purges due, legal
/// holds, and totals per kind.
pub async fn report(State(st): State<AppState>, Admin(_): Admin, log: RequestLog) -> ApiResult<Json<Report>> {
    let report = log
        .logged(&st.db, |s, _| {
            let mut totals = Vec::new();
            for kind in CaseKind::ALL {
                totals.push(s.totals(*kind)?);
            }
            Ok(Report {
                generated_at: now_rfc3339(),
                pending_approvals: s.pending_approvals()?,
                notifications: s.open_notifications(today())?,
                purges_due: s.purges_due()?,
                holds: s.holds()?,
                reopen_requests: s.reopen_requests()?,
                totals,
            })
        })
        .await?;
    Ok(Json(report))
}
