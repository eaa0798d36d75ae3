//! `reopenings`: requests to reopen a case on legal hold, and their approval by a second
//! admin (four eyes).

use rusqlite::{OptionalExtension, params};
use vault_core::api::{CaseRef, ReopenDue, Reopening};
use vault_core::ids::{CaseId, UserName};

use super::{Store, parsed, parsed_opt};

const COLUMNS: &str =
    "requested_by, requested_at, reason, approved_by, approved_at, closed_outcome, closed_at, closed_by";

/// A request from [`COLUMNS`], starting at column `i`.
fn reopening_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Reopening> {
    Ok(Reopening {
        requested_by: parsed(r, i)?,
        requested_at: r.get(i + 1)?,
        reason: r.get(i + 2)?,
        approved_by: parsed_opt(r, i + 3)?,
        approved_at: r.get(i + 4)?,
        closed_outcome: parsed_opt(r, i + 5)?,
        closed_at: r.get(i + 6)?,
        closed_by: r.get(i + 7)?,
    })
}

fn reopening(r: &rusqlite::Row<'_>) -> rusqlite::Result<Reopening> {
    reopening_at(r, 0)
}

impl Store<'_> {
    /// The request to reopen `case` that waits for approval, if there is one.
    pub fn pending_reopening(&self, case: &CaseId) -> rusqlite::Result<Option<Reopening>> {
        self.c
            .prepare_cached(&format!("SELECT {COLUMNS} FROM reopenings WHERE case_id = ?1 AND approved_at IS NULL"))?
            .query_row([case.as_str()], reopening)
            .optional()
    }

    /// Every request to reopen `case`, waiting or approved, oldest first.
    pub fn reopenings_of_case(&self, case: &CaseId) -> rusqlite::Result<Vec<Reopening>> {
        self.c
            .prepare_cached(&format!("SELECT {COLUMNS} FROM reopenings WHERE case_id = ?1 ORDER BY requested_at"))?
            .query_map([case.as_str()], reopening)?
            .collect()
    }

    pub fn insert_reopening(&self, case: &CaseId, by: &UserName, at: &str, reason: &str) -> rusqlite::Result<()> {
        self.c.execute(
            "INSERT INTO reopenings (case_id, requested_by, requested_at, reason) VALUES (?1, ?2, ?3, ?4)",
            params![case.as_str(), by.as_str(), at, reason],
        )?;
        Ok(())
    }

    /// Drops the waiting request of `case` (one that no longer counts, replaced by a new
    /// one); the access log keeps both.
    pub fn drop_pending_reopening(&self, case: &CaseId) -> rusqlite::Result<()> {
        self.c.execute("DELETE FROM reopenings WHERE case_id = ?1 AND approved_at IS NULL", [case.as_str()])?;
        Ok(())
    }

    /// Marks the waiting request of `case` approved by `by`, keeping the closing it undoes
    /// (read from the case before [`Store::reopen_case`] clears it).
    pub fn approve_reopening(&self, case: &CaseId, by: &UserName, at: &str) -> rusqlite::Result<()> {
        let changed = self.c.execute(
            "UPDATE reopenings SET approved_by = ?2, approved_at = ?3,
                 closed_outcome = (SELECT outcome FROM cases WHERE id = ?1),
                 closed_at = (SELECT closed_at FROM cases WHERE id = ?1),
                 closed_by = (SELECT closed_by FROM cases WHERE id = ?1)
             WHERE case_id = ?1 AND approved_at IS NULL",
            params![case.as_str(), by.as_str(), at],
        )?;
        if changed == 1 { Ok(()) } else { Err(rusqlite::Error::StatementChangedRows(changed)) }
    }

    /// Requests waiting for a second admin on cases still on legal hold, oldest first.
    pub fn reopen_requests(&self) -> rusqlite::Result<Vec<ReopenDue>> {
        self.c
            .prepare(
                "SELECT c.id, c.kind, c.title, o.requested_by, o.requested_at, o.reason, o.approved_by, o.approved_at,
                        o.closed_outcome, o.closed_at, o.closed_by
                 FROM reopenings o JOIN cases c ON c.id = o.case_id
                 WHERE o.approved_at IS NULL AND c.legal_hold = 1 ORDER BY o.requested_at",
            )?
            .query_map([], |r| {
                let case = CaseRef { id: parsed(r, 0)?, kind: parsed(r, 1)?, title: r.get(2)?, since: r.get(4)? };
                Ok(ReopenDue { case, reopening: reopening_at(r, 3)? })
            })?
            .collect()
    }
}
