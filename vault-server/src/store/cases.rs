//! `cases`: creation, the fields policy reads, the full view of a case, and its legal
//! state (approval, closing, hold).

use chrono::NaiveDate;
use rusqlite::{OptionalExtension, params};
use vault_core::api::{CaseInfo, CaseKind, CaseStatus, Outcome};
use vault_core::ids::{CaseId, UserName};

use super::{Store, parsed, parsed_opt};

/// The fields of a case that policy looks at.
#[derive(Debug, Clone, Copy)]
pub struct CaseRow {
    pub kind: CaseKind,
    pub status: CaseStatus,
    pub key_version: u32,
    /// How the case closed, once it has.
    pub outcome: Option<Outcome>,
    pub legal_hold: bool,
}

/// A case as created: its first key version is 1.
pub struct NewCaseRow<'a> {
    pub id: &'a CaseId,
    pub kind: CaseKind,
    pub title: &'a str,
    pub status: CaseStatus,
    pub retention_days: u32,
    /// JSON of the kind's legal fields.
    pub basis: &'a str,
    pub created_by: &'a UserName,
    pub created_at: &'a str,
}

impl Store<'_> {
    pub fn case(&self, id: &CaseId) -> rusqlite::Result<Option<CaseRow>> {
        self.c
            .prepare_cached("SELECT kind, status, key_version, outcome, legal_hold FROM cases WHERE id = ?1")?
            .query_row([id.as_str()], |r| {
                Ok(CaseRow {
                    kind: parsed(r, 0)?,
                    status: parsed(r, 1)?,
                    key_version: r.get(2)?,
                    outcome: parsed_opt(r, 3)?,
                    legal_hold: r.get(4)?,
                })
            })
            .optional()
    }

    /// Every case id, oldest first.
    pub fn case_ids(&self) -> rusqlite::Result<Vec<CaseId>> {
        self.c.prepare("SELECT id FROM cases ORDER BY created_at, id")?.query_map([], |r| parsed(r, 0))?.collect()
    }

    /// Everything `case show` prints: the case, its current key, custodians, grants (with
    /// their status on `today`), notification duty and destruction certificate.
    pub fn case_info(&self, id: &CaseId, today: NaiveDate) -> rusqlite::Result<Option<CaseInfo>> {
        let row = self
            .c
            .prepare_cached(
                "SELECT c.kind, c.title, c.status, c.retention_days, c.basis, c.key_version, c.created_by, c.created_at,
                        k.recipient, c.recording_count, c.ap_ref, c.ap_date, c.outcome, c.closed_at, c.closed_by, c.legal_hold
                 FROM cases c JOIN case_keys k ON k.case_id = c.id AND k.version = c.key_version WHERE c.id = ?1",
            )?
            .query_row([id.as_str()], |r| {
                let basis: String = r.get(4)?;
                Ok(CaseInfo {
                    id: id.clone(),
                    kind: parsed(r, 0)?,
                    title: r.get(1)?,
                    status: parsed(r, 2)?,
                    retention_days: r.get(3)?,
                    basis: serde_json::from_str(&basis).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
                    })?,
                    key_version: r.get(5)?,
                    created_by: parsed(r, 6)?,
                    created_at: r.get(7)?,
                    recipient: r.get(8)?,
                    recordings: r.get::<_, i64>(9)? as u64,
                    ap_ref: r.get(10)?,
                    ap_date: r.get(11)?,
                    outcome: parsed_opt::<Outcome>(r, 12)?,
                    closed_at: r.get(13)?,
                    closed_by: r.get(14)?,
                    legal_hold: r.get(15)?,
                    custodians: Vec::new(),
                    grants: Vec::new(),
                    notification: None,
                    destroyed: Vec::new(),
                    reopenings: Vec::new(),
                })
            })
            .optional()?;
        let Some(mut info) = row else { return Ok(None) };
        info.custodians = self.custodians(id)?;
        info.grants = self.grants_of_case(id, today)?;
        info.notification = self.notification(id, today)?;
        info.destroyed = self.destroyed_of_case(id)?;
        info.reopenings = self.reopenings_of_case(id)?;
        Ok(Some(info))
    }

    pub fn insert_case(&self, case: &NewCaseRow<'_>) -> rusqlite::Result<()> {
        self.c.execute(
            "INSERT INTO cases (id, kind, title, status, retention_days, basis, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                case.id.as_str(),
                case.kind.as_str(),
                case.title,
                case.status.as_str(),
                case.retention_days,
                case.basis,
                case.created_by.as_str(),
                case.created_at
            ],
        )?;
        Ok(())
    }

    /// Records the AP's prior-check approval and opens the case for recordings (R3).
    pub fn approve_case(&self, id: &CaseId, ap_ref: &str, date: NaiveDate) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE cases SET status = 'open', ap_ref = ?2, ap_date = ?3 WHERE id = ?1",
            params![id.as_str(), ap_ref, date.to_string()],
        )?;
        Ok(())
    }

    pub fn set_key_version(&self, id: &CaseId, version: u32) -> rusqlite::Result<()> {
        self.c.execute("UPDATE cases SET key_version = ?2 WHERE id = ?1", params![id.as_str(), version])?;
        Ok(())
    }

    pub fn close_case(
        &self,
        id: &CaseId,
        status: CaseStatus,
        outcome: Outcome,
        closed_at: &str,
        closed_by: &UserName,
        legal_hold: bool,
    ) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE cases SET status = ?2, outcome = ?3, closed_at = ?4, closed_by = ?5, legal_hold = ?6 WHERE id = ?1",
            params![id.as_str(), status.as_str(), outcome.as_str(), closed_at, closed_by.as_str(), legal_hold],
        )?;
        Ok(())
    }

    /// When the case was closed (RFC 3339), if it was.
    pub fn closed_at(&self, id: &CaseId) -> rusqlite::Result<Option<String>> {
        Ok(self
            .c
            .prepare_cached("SELECT closed_at FROM cases WHERE id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// Opens a closed case again: it forgets its outcome and closing (the approved request
    /// in `reopenings` keeps the closing it undid). Its legal hold stays.
    pub fn reopen_case(&self, id: &CaseId) -> rusqlite::Result<()> {
        let changed = self.c.execute(
            "UPDATE cases SET status = 'open', outcome = NULL, closed_at = NULL, closed_by = NULL
             WHERE id = ?1 AND status = 'closed'",
            [id.as_str()],
        )?;
        if changed == 1 { Ok(()) } else { Err(rusqlite::Error::StatementChangedRows(changed)) }
    }

    pub fn release_hold(&self, id: &CaseId, at: &str, by: &UserName) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE cases SET legal_hold = 0, hold_released_at = ?2, hold_released_by = ?3 WHERE id = ?1",
            params![id.as_str(), at, by.as_str()],
        )?;
        Ok(())
    }
}
