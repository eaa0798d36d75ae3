//! The legal lifecycle of a case (SPEC §2): closing with an outcome, destruction when
//! nothing criminal was found (R5), the duty to tell the employee (R6), retention purges
//! and legal hold (R7), and the compliance report.
//!
//! Destruction and purges remove a recording's row, write its certificate row and the
//! access-log entry in one transaction; the ciphertext file is deleted after the commit.
//! A file whose deletion was interrupted is deleted at the next start, so a crash half
//! way completes later and a destroyed recording is never served again (its row is gone).

use axum::Json;
use axum::extract::{Path, State};
use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use vault_core::api::{
    CaseKind, CaseRef, CaseStatus, Closing, Created, KindTotals, NOTIFY_WITHIN_DAYS, Notice, NotificationDue,
    NotificationInfo, NotificationStatus, Outcome, PurgeDue, Reason, Report,
};
use vault_core::ids::{CaseId, RecordingId};
use vault_core::log::outcome;

use crate::AppState;
use crate::auth::Admin;
use crate::blobs::BlobStore;
use crate::datadir::now_rfc3339;
use crate::db::{LogRecord, append_log};
use crate::error::{ApiError, ApiResult};
use crate::policy;
use crate::routes::{ApiJson, logged, parse_id, require_text};

/// Recordings removed per purge transaction.
const PURGE_BATCH: usize = 500;

/// Why recordings are destroyed.
#[derive(Clone, Copy)]
pub enum Cause {
    /// R5: a covert case closed with outcome `no-offence`.
    NoOffence,
    /// R7: the case's retention period has passed.
    Retention,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::NoOffence => "no-offence",
            Cause::Retention => "retention",
        }
    }
    fn action(self) -> &'static str {
        match self {
            Cause::NoOffence => "destroy",
            Cause::Retention => "purge",
        }
    }
}

/// Destroys the recordings chosen by `filter` (a WHERE clause over `recordings r`),
/// inside the caller's transaction: certificate rows, row deletion, one log entry each.
fn destroy(
    tx: &Connection,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
    cause: Cause,
    actor: &str,
) -> ApiResult<usize> {
    let rows: Vec<(String, String, String, i64, u32, String)> = tx
        .prepare(&format!(
            "SELECT r.id, r.case_id, r.sha256, r.size, r.key_version, r.recorded_at FROM recordings r WHERE {filter}"
        ))?
        .query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
        .collect::<Result<_, _>>()?;
    let now = now_rfc3339();
    for (id, case_id, sha256, size, key_version, recorded_at) in &rows {
        tx.execute(
            "INSERT INTO destroyed_recordings
             (recording_id, case_id, sha256, size, key_version, recorded_at, destroyed_at, destroyed_by, cause)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![id, case_id, sha256, size, key_version, recorded_at, now, actor, cause.as_str()],
        )?;
        tx.execute("DELETE FROM recordings WHERE id = ?1", [id])?;
        append_log(
            tx,
            &LogRecord::new(actor, cause.action(), outcome::ALLOWED)
                .case(case_id)
                .recording(id)
                .details(json!({ "cause": cause.as_str(), "sha256": sha256, "size": size })),
        )?;
    }
    Ok(rows.len())
}

/// Deletes the ciphertext of every destroyed recording whose file may still exist.
pub fn delete_destroyed_blobs(conn: &Connection, blobs: &BlobStore) -> anyhow::Result<usize> {
    let ids: Vec<String> = conn
        .prepare("SELECT recording_id FROM destroyed_recordings WHERE blob_deleted = 0")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in &ids {
        let rid: RecordingId = id.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        match std::fs::remove_file(blobs.path(&rid)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        conn.execute("UPDATE destroyed_recordings SET blob_deleted = 1 WHERE recording_id = ?1", [id])?;
    }
    if !ids.is_empty() {
        blobs.sync_dir_blocking()?;
    }
    Ok(ids.len())
}

/// Purges every recording past its case's retention period, except on legal hold.
/// Returns how many were purged.
pub fn purge_due(conn: &mut Connection, blobs: &BlobStore, actor: &str) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        // Runs alone on the writer (or in `vault-server purge`): its own transactions.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = destroy(
            &tx,
            &format!(
                "r.rowid IN (SELECT r.rowid FROM cases c CROSS JOIN recordings r ON r.case_id = c.id
                 WHERE c.legal_hold = 0 AND r.recorded_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || c.retention_days || ' days')
                 LIMIT {PURGE_BATCH})"
            ),
            &[],
            Cause::Retention,
            actor,
        )
        .map_err(|e| anyhow::anyhow!("{}", e.detail.unwrap_or(e.message)))?;
        tx.commit()?;
        total += n;
        delete_destroyed_blobs(conn, blobs)?;
        if n < PURGE_BATCH {
            return Ok(total);
        }
    }
}

pub async fn close(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    body: ApiJson<Closing>,
) -> ApiResult<Json<Created<CaseId>>> {
    let id: CaseId = parse_id(&st, &caller, "case-close", &id).await?;
    let req = body.get(&st, &caller, "case-close").await?;
    let out = id.clone();
    let st2 = st.clone();
    st.db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "case-close", outcome::ALLOWED).case(&id), |tx, rec| {
                rec.details = json!({ "outcome": req.outcome.as_str() }).to_string();
                let case = policy::admin_case(tx, &id)?;
                if matches!(case.status, CaseStatus::Closed | CaseStatus::Destroyed) {
                    return Err(ApiError::conflict(format!("the case is already {}", case.status)));
                }
                match (case.kind, req.outcome) {
                    (CaseKind::Covert, Outcome::Offence | Outcome::NoOffence) => {}
                    (CaseKind::Covert, Outcome::Completed) => {
                        return Err(ApiError::bad_request(
                            "a covert case closes with --outcome offence or no-offence: the law requires destroying the recordings at once if nothing criminal was found",
                        ));
                    }
                    (_, Outcome::Completed) => {}
                    (kind, _) => {
                        return Err(ApiError::bad_request(format!(
                            "a {kind} case closes with --outcome completed; offence and no-offence are for covert cases"
                        )));
                    }
                }
                let now = now_rfc3339();
                let (status, destroyed, envelopes) = if req.outcome == Outcome::NoOffence {
                    let n = destroy(tx, "r.case_id = ?1", &[&id.as_str()], Cause::NoOffence, caller.name.as_str())?;
                    // Crypto-shredding: without any envelope no copy of the ciphertext,
                    // however stray, can be decrypted again.
                    let e = tx.execute("DELETE FROM envelopes WHERE case_id = ?1", [id.as_str()])?;
                    tx.execute(
                        "UPDATE grants SET status = 'revoked', revoked_at = ?2 WHERE case_id = ?1 AND status <> 'revoked'",
                        params![id.as_str(), now],
                    )?;
                    (CaseStatus::Destroyed, n, e)
                } else {
                    (CaseStatus::Closed, 0, 0)
                };
                tx.execute(
                    "UPDATE cases SET status = ?2, outcome = ?3, closed_at = ?4, closed_by = ?5, legal_hold = ?6 WHERE id = ?1",
                    params![
                        id.as_str(),
                        status.as_str(),
                        req.outcome.as_str(),
                        now,
                        caller.name.as_str(),
                        req.outcome == Outcome::Offence
                    ],
                )?;
                if case.kind == CaseKind::Covert {
                    let due = policy::today() + chrono::Duration::days(NOTIFY_WITHIN_DAYS);
                    tx.execute(
                        "INSERT INTO notifications (case_id, created_at, due) VALUES (?1, ?2, ?3)",
                        params![id.as_str(), now, due.to_string()],
                    )?;
                }
                rec.details = json!({
                    "outcome": req.outcome.as_str(),
                    "status": status.as_str(),
                    "recordings_destroyed": destroyed,
                    "envelopes_deleted": envelopes,
                    "legal_hold": req.outcome == Outcome::Offence,
                })
                .to_string();
                Ok(())
            })
        })
        .await?;
    // Only now is the destruction durable; delete the ciphertext files.
    st.db.alone(move |c| delete_destroyed_blobs(c, &st2.blobs).map_err(ApiError::internal)).await?;
    Ok(Json(Created { id: out }))
}

pub async fn notify(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    body: ApiJson<Notice>,
) -> ApiResult<Json<NotificationInfo>> {
    let id: CaseId = parse_id(&st, &caller, "notify", &id).await?;
    let req = body.get(&st, &caller, "notify").await?;
    let info = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "notify", outcome::ALLOWED).case(&id), |tx, rec| {
                policy::admin_case(tx, &id)?;
                let Some(current) = notification(tx, &id)? else {
                    return Err(ApiError::conflict(
                        "this case has no notification duty: it arises when a covert case is closed",
                    ));
                };
                if current.status == NotificationStatus::Told {
                    return Err(ApiError::conflict("the employee's notification is already recorded"));
                }
                let today = policy::today();
                match &req {
                    Notice::Told { date, how } => {
                        require_text(how, "--how")?;
                        let closed: String =
                            tx.query_row("SELECT closed_at FROM cases WHERE id = ?1", [id.as_str()], |r| r.get(0))?;
                        if *date > today || date.to_string().as_str() < &closed[..10] {
                            return Err(ApiError::bad_request(format!(
                                "--date must lie between the closing of the case ({}) and today",
                                &closed[..10]
                            )));
                        }
                        tx.execute(
                            "UPDATE notifications SET told_on = ?2, how = ?3, recorded_by = ?4 WHERE case_id = ?1",
                            params![id.as_str(), date.to_string(), how.trim(), caller.name.as_str()],
                        )?;
                        rec.details = json!({ "told_on": date.to_string() }).to_string();
                    }
                    Notice::Deferred { until, reason } => {
                        require_text(reason, "--reason")?;
                        if *until <= today {
                            return Err(ApiError::bad_request("--defer-until must be a date after today"));
                        }
                        tx.execute(
                            "UPDATE notifications SET deferred_until = ?2, defer_reason = ?3, recorded_by = ?4 WHERE case_id = ?1",
                            params![id.as_str(), until.to_string(), reason.trim(), caller.name.as_str()],
                        )?;
                        rec.action = "notify-defer";
                        rec.reason = reason.trim().to_owned();
                        rec.details = json!({ "deferred_until": until.to_string() }).to_string();
                    }
                }
                notification(tx, &id)?.ok_or_else(|| ApiError::internal("notification vanished"))
            })
        })
        .await?;
    Ok(Json(info))
}

pub async fn release_hold(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    body: ApiJson<Reason>,
) -> ApiResult<Json<Created<CaseId>>> {
    let id: CaseId = parse_id(&st, &caller, "release-hold", &id).await?;
    let req = body.get(&st, &caller, "release-hold").await?;
    let out = id.clone();
    st.db
        .call(move |c| {
            let rec = LogRecord::new(caller.name.as_str(), "release-hold", outcome::ALLOWED)
                .case(&id)
                .reason(req.reason.clone());
            logged(c, rec, |tx, _| {
                require_text(&req.reason, "--reason")?;
                policy::admin_case(tx, &id)?;
                let held: bool =
                    tx.query_row("SELECT legal_hold FROM cases WHERE id = ?1", [id.as_str()], |r| r.get(0))?;
                if !held {
                    return Err(ApiError::conflict("the case is not on legal hold"));
                }
                tx.execute(
                    "UPDATE cases SET legal_hold = 0, hold_released_at = ?2, hold_released_by = ?3 WHERE id = ?1",
                    params![id.as_str(), now_rfc3339(), caller.name.as_str()],
                )?;
                Ok(())
            })
        })
        .await?;
    Ok(Json(Created { id: out }))
}

/// The notification duty of a case, with its status today.
pub fn notification(tx: &Connection, id: &CaseId) -> ApiResult<Option<NotificationInfo>> {
    let row = tx
        .prepare_cached(
            "SELECT due, told_on, how, deferred_until, defer_reason, recorded_by FROM notifications WHERE case_id = ?1",
        )?
        .query_row([id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .optional()?;
    let Some((due, told_on, how, deferred_until, defer_reason, recorded_by)) = row else { return Ok(None) };
    let date = |s: &str| s.parse::<NaiveDate>().map_err(ApiError::internal);
    let due = date(&due)?;
    let told_on = told_on.as_deref().map(date).transpose()?;
    let deferred_until = deferred_until.as_deref().map(date).transpose()?;
    let today = policy::today();
    let status = match (told_on, deferred_until) {
        (Some(_), _) => NotificationStatus::Told,
        (None, Some(d)) if d > today => NotificationStatus::Deferred,
        (None, Some(_)) => NotificationStatus::DeferralDue,
        (None, None) if due < today => NotificationStatus::Overdue,
        (None, None) => NotificationStatus::Outstanding,
    };
    Ok(Some(NotificationInfo { status, due, told_on, how, deferred_until, defer_reason, recorded_by }))
}

fn case_ref(id: String, kind: String, title: String, since: String) -> ApiResult<CaseRef> {
    Ok(CaseRef {
        id: id.parse().map_err(ApiError::internal)?,
        kind: kind.parse().map_err(ApiError::internal)?,
        title,
        since,
    })
}

fn case_refs(tx: &Connection, sql: &str) -> ApiResult<Vec<CaseRef>> {
    let rows: Vec<(String, String, String, String)> = tx
        .prepare(sql)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(|(a, b, c, d)| case_ref(a, b, c, d)).collect()
}

pub async fn report(State(st): State<AppState>, Admin(caller): Admin) -> ApiResult<Json<Report>> {
    let report = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "report", outcome::ALLOWED), |tx, _| {
                let pending_approvals = case_refs(
                    tx,
                    "SELECT id, kind, title, created_at FROM cases WHERE status = 'pending-approval' ORDER BY created_at",
                )?;
                let mut notifications = Vec::new();
                for case in case_refs(
                    tx,
                    "SELECT c.id, c.kind, c.title, c.closed_at FROM notifications n JOIN cases c ON c.id = n.case_id
                     WHERE n.told_on IS NULL ORDER BY n.due",
                )? {
                    let notification = notification(tx, &case.id)?.ok_or_else(|| ApiError::internal("notification vanished"))?;
                    notifications.push(NotificationDue { case, notification });
                }
                let due: Vec<(String, String, String, String, i64)> = tx
                    .prepare(
                        "SELECT c.id, c.kind, c.title, min(r.recorded_at), count(*) FROM cases c CROSS JOIN recordings r ON r.case_id = c.id
                         WHERE c.legal_hold = 0 AND r.recorded_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || c.retention_days || ' days')
                         GROUP BY c.id ORDER BY c.id",
                    )?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                    .collect::<Result<_, _>>()?;
                let purges_due = due
                    .into_iter()
                    .map(|(a, b, c, d, n)| Ok(PurgeDue { case: case_ref(a, b, c, d)?, recordings: n as u64 }))
                    .collect::<ApiResult<Vec<_>>>()?;
                let holds =
                    case_refs(tx, "SELECT id, kind, title, closed_at FROM cases WHERE legal_hold = 1 ORDER BY closed_at")?;
                let mut totals = Vec::new();
                for kind in CaseKind::ALL {
                    let (cases, open, recordings): (i64, i64, i64) = tx.query_row(
                        "SELECT count(*), coalesce(sum(status IN ('open', 'pending-approval')), 0), coalesce(sum(recording_count), 0)
                         FROM cases WHERE kind = ?1",
                        [kind.as_str()],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )?;
                    totals.push(KindTotals {
                        kind: *kind,
                        cases: cases as u64,
                        open_cases: open as u64,
                        recordings: recordings as u64,
                    });
                }
                Ok(Report { generated_at: now_rfc3339(), pending_approvals, notifications, purges_due, holds, totals })
            })
        })
        .await?;
    Ok(Json(report))
}
