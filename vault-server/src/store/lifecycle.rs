//! `destroyed_recordings` and `notifications`, the retention rule, and the compliance
//! report: the legal lifecycle of a case (R5-R7).

use chrono::NaiveDate;
use rusqlite::{OptionalExtension, params};
use vault_core::api::{
    CaseKind, CaseRef, DestroyedRecording, KindTotals, NotificationDue, NotificationInfo, NotificationStatus, PurgeDue,
};
use vault_core::ids::{CaseId, RecordingId, UserName};

use super::{Store, parsed, parsed_opt};

/// Recordings past their case's retention period and not on legal hold (R7), over
/// `cases c` joined with `recordings r`. The purge and the report's "purges due" both use
/// this one predicate, so that what the report announces is what the purge removes.
const PAST_RETENTION: &str =
    "c.legal_hold = 0 AND r.recorded_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || c.retention_days || ' days')";

/// Why recordings are destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// R5: a covert case closed with outcome `no-offence`.
    NoOffence,
    /// R7: the case's retention period has passed.
    Retention,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NoOffence => "no-offence",
            Cause::Retention => "retention",
        }
    }
}

/// Which recordings to destroy.
#[derive(Clone, Copy)]
pub enum Doomed<'a> {
    /// Every recording of a case.
    Case(&'a CaseId),
    /// Up to this many recordings past their retention period.
    PastRetention(usize),
}

/// What the destruction certificate keeps of a recording.
#[derive(Debug, Clone)]
pub struct DoomedRecording {
    pub id: RecordingId,
    pub case_id: CaseId,
    pub sha256: String,
    pub size: i64,
    pub key_version: u32,
    pub recorded_at: String,
}

fn case_ref(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRef> {
    Ok(CaseRef { id: parsed(r, 0)?, kind: parsed(r, 1)?, title: r.get(2)?, since: r.get(3)? })
}

impl Store<'_> {
    pub fn doomed(&self, which: Doomed<'_>) -> rusqlite::Result<Vec<DoomedRecording>> {
        const COLUMNS: &str = "r.id, r.case_id, r.sha256, r.size, r.key_version, r.recorded_at";
        let row = |r: &rusqlite::Row<'_>| {
            Ok(DoomedRecording {
                id: parsed(r, 0)?,
                case_id: parsed(r, 1)?,
                sha256: r.get(2)?,
                size: r.get(3)?,
                key_version: r.get(4)?,
                recorded_at: r.get(5)?,
            })
        };
        match which {
            Doomed::Case(id) => self
                .c
                .prepare(&format!("SELECT {COLUMNS} FROM recordings r WHERE r.case_id = ?1"))?
                .query_map([id.as_str()], row)?
                .collect(),
            Doomed::PastRetention(limit) => self
                .c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM cases c CROSS JOIN recordings r ON r.case_id = c.id WHERE {PAST_RETENTION} LIMIT ?1"
                ))?
                .query_map([limit as i64], row)?
                .collect(),
        }
    }

    /// Writes a recording's destruction certificate and removes its row, so it is never
    /// served again; its ciphertext file is deleted after the commit.
    pub fn certify_destruction(
        &self,
        doomed: &DoomedRecording,
        at: &str,
        by: &str,
        cause: Cause,
    ) -> rusqlite::Result<()> {
        self.c
            .prepare_cached(
                "INSERT INTO destroyed_recordings
                 (recording_id, case_id, sha256, size, key_version, recorded_at, destroyed_at, destroyed_by, cause)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                doomed.id.as_str(),
                doomed.case_id.as_str(),
                doomed.sha256,
                doomed.size,
                doomed.key_version,
                doomed.recorded_at,
                at,
                by,
                cause.as_str()
            ])?;
        self.c.prepare_cached("DELETE FROM recordings WHERE id = ?1")?.execute([doomed.id.as_str()])?;
        Ok(())
    }

    /// Destroyed recordings whose ciphertext file may still exist.
    pub fn blobs_to_delete(&self) -> rusqlite::Result<Vec<RecordingId>> {
        self.c
            .prepare("SELECT recording_id FROM destroyed_recordings WHERE blob_deleted = 0")?
            .query_map([], |r| parsed(r, 0))?
            .collect()
    }

    pub fn mark_blob_deleted(&self, id: &RecordingId) -> rusqlite::Result<()> {
        self.c
            .prepare_cached("UPDATE destroyed_recordings SET blob_deleted = 1 WHERE recording_id = ?1")?
            .execute([id.as_str()])?;
        Ok(())
    }

    /// The destruction certificate of a case.
    pub fn destroyed_of_case(&self, case: &CaseId) -> rusqlite::Result<Vec<DestroyedRecording>> {
        self.c
            .prepare_cached(
                "SELECT recording_id, sha256, size, recorded_at, destroyed_at, destroyed_by, cause
                 FROM destroyed_recordings WHERE case_id = ?1 ORDER BY destroyed_at, recording_id",
            )?
            .query_map([case.as_str()], |r| {
                Ok(DestroyedRecording {
                    id: parsed(r, 0)?,
                    sha256: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    recorded_at: r.get(3)?,
                    destroyed_at: r.get(4)?,
                    destroyed_by: r.get(5)?,
                    cause: r.get(6)?,
                })
            })?
            .collect()
    }

    /// Creates the duty to tell the employee about covert recording (R6). A case closed
    /// again after reopening keeps the duty it has had since it first closed (due date and
    /// any deferral): reopening never ends it, and it cannot have been met, since a case
    /// whose employee was told is not reopened.
    pub fn insert_notification(&self, case: &CaseId, at: &str, due: NaiveDate) -> rusqlite::Result<()> {
        self.c.execute(
            "INSERT INTO notifications (case_id, created_at, due) VALUES (?1, ?2, ?3) ON CONFLICT (case_id) DO NOTHING",
            params![case.as_str(), at, due.to_string()],
        )?;
        Ok(())
    }

    /// The notification duty of a case, with its status on `today`.
    pub fn notification(&self, case: &CaseId, today: NaiveDate) -> rusqlite::Result<Option<NotificationInfo>> {
        self.c
            .prepare_cached(
                "SELECT due, told_on, how, deferred_until, defer_reason, recorded_by FROM notifications WHERE case_id = ?1",
            )?
            .query_row([case.as_str()], |r| {
                let due: NaiveDate = parsed(r, 0)?;
                let told_on: Option<NaiveDate> = parsed_opt(r, 1)?;
                let deferred_until: Option<NaiveDate> = parsed_opt(r, 3)?;
                let status = match (told_on, deferred_until) {
                    (Some(_), _) => NotificationStatus::Told,
                    (None, Some(d)) if d > today => NotificationStatus::Deferred,
                    (None, Some(_)) => NotificationStatus::DeferralDue,
                    (None, None) if due < today => NotificationStatus::Overdue,
                    (None, None) => NotificationStatus::Outstanding,
                };
                Ok(NotificationInfo {
                    status,
                    due,
                    told_on,
                    how: r.get(2)?,
                    deferred_until,
                    defer_reason: r.get(4)?,
                    recorded_by: r.get(5)?,
                })
            })
            .optional()
    }

    pub fn record_told(&self, case: &CaseId, on: NaiveDate, how: &str, by: &UserName) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE notifications SET told_on = ?2, how = ?3, recorded_by = ?4 WHERE case_id = ?1",
            params![case.as_str(), on.to_string(), how, by.as_str()],
        )?;
        Ok(())
    }

    pub fn record_deferral(
        &self,
        case: &CaseId,
        until: NaiveDate,
        reason: &str,
        by: &UserName,
    ) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE notifications SET deferred_until = ?2, defer_reason = ?3, recorded_by = ?4 WHERE case_id = ?1",
            params![case.as_str(), until.to_string(), reason, by.as_str()],
        )?;
        Ok(())
    }

    /// Covert cases waiting for the AP's approval, oldest first.
    pub fn pending_approvals(&self) -> rusqlite::Result<Vec<CaseRef>> {
        self.c
            .prepare(
                "SELECT id, kind, title, created_at FROM cases WHERE status = 'pending-approval' ORDER BY created_at",
            )?
            .query_map([], case_ref)?
            .collect()
    }

    /// Every duty to tell an employee that is not done, with its status on `today`.
    pub fn open_notifications(&self, today: NaiveDate) -> rusqlite::Result<Vec<NotificationDue>> {
        let cases: Vec<CaseRef> = self
            .c
            .prepare(
                // A reopened case has no closing time; its duty dates from its first closing.
                "SELECT c.id, c.kind, c.title, coalesce(c.closed_at, n.created_at) FROM notifications n
                 JOIN cases c ON c.id = n.case_id WHERE n.told_on IS NULL ORDER BY n.due",
            )?
            .query_map([], case_ref)?
            .collect::<rusqlite::Result<_>>()?;
        cases
            .into_iter()
            .map(|case| {
                let notification = self.notification(&case.id, today)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                Ok(NotificationDue { case, notification })
            })
            .collect()
    }

    /// Per case, how many recordings are past retention and the oldest one's time.
    pub fn purges_due(&self) -> rusqlite::Result<Vec<PurgeDue>> {
        self.c
            .prepare(&format!(
                "SELECT c.id, c.kind, c.title, min(r.recorded_at), count(*) FROM cases c CROSS JOIN recordings r ON r.case_id = c.id
                 WHERE {PAST_RETENTION} GROUP BY c.id ORDER BY c.id"
            ))?
            .query_map([], |r| Ok(PurgeDue { case: case_ref(r)?, recordings: r.get::<_, i64>(4)? as u64 }))?
            .collect()
    }

    /// Cases on legal hold, by the time of the closing that put them on hold (for a case
    /// reopened since, the closing its reopening undid).
    pub fn holds(&self) -> rusqlite::Result<Vec<CaseRef>> {
        self.c
            .prepare(
                "SELECT id, kind, title, since FROM (
                     SELECT id, kind, title, coalesce(closed_at,
                         (SELECT max(o.closed_at) FROM reopenings o WHERE o.case_id = cases.id), created_at) AS since
                     FROM cases WHERE legal_hold = 1)
                 ORDER BY since",
            )?
            .query_map([], case_ref)?
            .collect()
    }

    /// Cases, open cases and recordings of one kind.
    pub fn totals(&self, kind: CaseKind) -> rusqlite::Result<KindTotals> {
        self.c.query_row(
            "SELECT count(*), coalesce(sum(status IN ('open', 'pending-approval')), 0), coalesce(sum(recording_count), 0)
             FROM cases WHERE kind = ?1",
            [kind.as_str()],
            |r| {
                Ok(KindTotals {
                    kind,
                    cases: r.get::<_, i64>(0)? as u64,
                    open_cases: r.get::<_, i64>(1)? as u64,
                    recordings: r.get::<_, i64>(2)? as u64,
                })
            },
        )
    }
}
