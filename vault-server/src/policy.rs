//! Authorisation decisions that depend on data: grants, custodianship, case state.
//!
//! Every route that touches recordings goes through [`require_active_grant`], so there is
//! one place that decides whether a person may read a case. Refusals tell the caller why
//! (no grant, pending approval, expired on a date, revoked), but to someone without any
//! grant an unknown case and a case that is not theirs look the same.

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension};
use vault_core::api::{CaseKind, CaseStatus, GrantStatus};
use vault_core::ids::{CaseId, UserName};

use crate::error::ApiError;

/// The fields of a case that policy looks at.
pub struct CaseRow {
    pub kind: CaseKind,
    pub status: CaseStatus,
    pub key_version: u32,
}

pub fn load_case(c: &Connection, id: &CaseId) -> rusqlite::Result<Option<CaseRow>> {
    c.prepare_cached("SELECT kind, status, key_version FROM cases WHERE id = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, u32>(2)?)))
        .optional()?
        .map(|(kind, status, key_version)| {
            Ok(CaseRow {
                kind: kind.parse().map_err(|_| rusqlite::Error::InvalidQuery)?,
                status: status.parse().map_err(|_| rusqlite::Error::InvalidQuery)?,
                key_version,
            })
        })
        .transpose()
}

/// A case an admin is acting on: admins may know every case exists.
pub fn admin_case(c: &Connection, id: &CaseId) -> Result<CaseRow, ApiError> {
    load_case(c, id)?.ok_or_else(|| ApiError::not_found(format!("no case {id}; `vault-cli case list` shows the cases")))
}

/// One person's grant on a case as stored.
pub struct GrantRow {
    pub stored_status: String,
    pub until: Option<NaiveDate>,
    pub granted_by: String,
}

pub fn load_grant(c: &Connection, case: &CaseId, user: &UserName) -> rusqlite::Result<Option<GrantRow>> {
    c.prepare_cached("SELECT status, until, granted_by FROM grants WHERE case_id = ?1 AND grantee = ?2")?
        .query_row([case.as_str(), user.as_str()], |r| {
            Ok(GrantRow {
                stored_status: r.get(0)?,
                until: r.get::<_, Option<String>>(1)?.and_then(|s| s.parse().ok()),
                granted_by: r.get(2)?,
            })
        })
        .optional()
}

/// The status a grant has today: a stored `active` grant past its last day is expired.
pub fn effective_status(stored: &str, until: Option<NaiveDate>, today: NaiveDate) -> GrantStatus {
    match stored {
        "pending" => GrantStatus::Pending,
        "revoked" => GrantStatus::Revoked,
        _ if until.is_some_and(|u| u < today) => GrantStatus::Expired,
        _ => GrantStatus::Active,
    }
}

pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Refuses unless `user` has an active grant on an open case. The only gate in front of
/// recording metadata, ciphertext and envelopes for admins and investigators.
pub fn require_active_grant(c: &Connection, case: &CaseId, user: &UserName) -> Result<CaseRow, ApiError> {
    let vague = || {
        ApiError::denied("access denied: you have no grant on this case (or it does not exist)")
            .with_detail("no grant or no such case")
    };
    let Some(grant) = load_grant(c, case, user)? else {
        return Err(vague());
    };
    let Some(row) = load_case(c, case)? else {
        return Err(vague());
    };
    match effective_status(&grant.stored_status, grant.until, today()) {
        GrantStatus::Active => {}
        GrantStatus::Pending => {
            return Err(ApiError::denied(
                "access denied: your grant on this covert case is waiting for a second admin's approval",
            ));
        }
        GrantStatus::Revoked => return Err(ApiError::denied("access denied: your grant on this case was revoked")),
        GrantStatus::Expired => {
            let until = grant.until.map(|d| d.to_string()).unwrap_or_default();
            return Err(ApiError::denied(format!("access denied: your grant on this case expired after {until}")));
        }
    }
    match row.status {
        CaseStatus::Destroyed => Err(ApiError::denied("access denied: the recordings of this case were destroyed")),
        CaseStatus::Closed => Err(ApiError::denied("access denied: the case is closed")),
        CaseStatus::Open | CaseStatus::PendingApproval => Ok(row),
    }
}

/// A user's role and whether they are enabled, or `None` if no such user.
pub fn user_state(c: &Connection, name: &UserName) -> Result<Option<(vault_core::api::Role, bool)>, ApiError> {
    let row: Option<(String, bool)> = c
        .prepare_cached("SELECT role, enabled FROM users WHERE name = ?1")?
        .query_row([name.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(role, enabled)| Ok((role.parse().map_err(ApiError::internal)?, enabled))).transpose()
}

/// Whether `admin` is a custodian of `case` (holds its secret and may wrap it).
pub fn is_custodian(c: &Connection, case: &CaseId, admin: &UserName) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM custodians WHERE case_id = ?1 AND admin = ?2")?
        .exists([case.as_str(), admin.as_str()])
}

/// The caller's envelope for one key version of a case.
pub fn envelope(c: &Connection, case: &CaseId, version: u32, holder: &UserName) -> rusqlite::Result<Option<Vec<u8>>> {
    c.prepare_cached("SELECT envelope FROM envelopes WHERE case_id = ?1 AND version = ?2 AND holder = ?3")?
        .query_row(rusqlite::params![case.as_str(), version, holder.as_str()], |r| r.get(0))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_status_today() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let today = d("2026-06-10");
        assert_eq!(effective_status("active", None, today), GrantStatus::Active);
        assert_eq!(effective_status("active", Some(d("2026-06-10")), today), GrantStatus::Active);
        assert_eq!(effective_status("active", Some(d("2026-06-09")), today), GrantStatus::Expired);
        assert_eq!(effective_status("pending", None, today), GrantStatus::Pending);
        assert_eq!(effective_status("revoked", None, today), GrantStatus::Revoked);
    }
}
