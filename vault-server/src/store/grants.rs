//! `grants`: who may read a case, since when, until when, approved by whom.

use chrono::NaiveDate;
use rusqlite::{OptionalExtension, params};
use vault_core::api::{GrantInfo, GrantStatus};
use vault_core::ids::{CaseId, UserName};

use super::{Scope, Store, parsed, parsed_opt, signed_column};
use vault_core::trust::Signed;

/// One person's grant on a case as stored. The stored status is `Pending`, `Active` or
/// `Revoked`; whether an active grant has expired depends on the day it is asked.
#[derive(Debug, Clone)]
pub struct StoredGrant {
    pub status: GrantStatus,
    /// The last day the grant is valid.
    pub until: Option<NaiveDate>,
    pub granted_by: UserName,
    /// The second admin who approved a covert grant.
    pub approved_by: Option<UserName>,
    /// The signed grant (with its approval, once approved).
    pub statement: Option<Signed>,
}

impl StoredGrant {
    /// The status the grant has on `today`: an active grant past its last day is expired.
    pub fn status_on(&self, today: NaiveDate) -> GrantStatus {
        match self.status {
            GrantStatus::Active if self.until.is_some_and(|u| u < today) => GrantStatus::Expired,
            s => s,
        }
    }

    /// Pending or active (or expired): anything but revoked.
    pub fn is_live(&self) -> bool {
        self.status != GrantStatus::Revoked
    }
}

impl Store<'_> {
    pub fn grant(&self, case: &CaseId, grantee: &UserName) -> rusqlite::Result<Option<StoredGrant>> {
        self.c
            .prepare_cached(
                "SELECT status, until, granted_by, approved_by, statement FROM grants WHERE case_id = ?1 AND grantee = ?2",
            )?
            .query_row([case.as_str(), grantee.as_str()], |r| {
                Ok(StoredGrant {
                    status: parsed(r, 0)?,
                    until: parsed_opt(r, 1)?,
                    granted_by: parsed(r, 2)?,
                    approved_by: parsed_opt(r, 3)?,
                    statement: signed_column(r, 4)?,
                })
            })
            .optional()
    }

    /// Every grant on a case, with its status on `today`, by grantee.
    pub fn grants_of_case(&self, case: &CaseId, today: NaiveDate) -> rusqlite::Result<Vec<GrantInfo>> {
        self.c
            .prepare_cached(
                "SELECT grantee, status, reason, until, granted_by, created_at, approved_by, statement \
                 FROM grants WHERE case_id = ?1 ORDER BY grantee",
            )?
            .query_map([case.as_str()], |r| {
                let stored = StoredGrant {
                    status: parsed(r, 1)?,
                    until: parsed_opt(r, 3)?,
                    granted_by: parsed(r, 4)?,
                    approved_by: parsed_opt(r, 6)?,
                    statement: signed_column(r, 7)?,
                };
                Ok(GrantInfo {
                    user: parsed(r, 0)?,
                    status: stored.status_on(today),
                    reason: r.get(2)?,
                    until: stored.until,
                    granted_by: stored.granted_by,
                    created_at: r.get(5)?,
                    approved_by: stored.approved_by,
                    statement: stored.statement,
                })
            })?
            .collect()
    }

    /// Records a new grant with its signed statement, replacing a revoked one of the same
    /// person.
    pub fn put_grant(&self, case: &CaseId, g: &GrantInfo) -> rusqlite::Result<()> {
        self.c.execute(
            "INSERT OR REPLACE INTO grants (case_id, grantee, status, reason, until, granted_by, created_at, statement)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                case.as_str(),
                g.user.as_str(),
                g.status.as_str(),
                g.reason,
                g.until.map(|d| d.to_string()),
                g.granted_by.as_str(),
                g.created_at,
                g.statement.as_ref().map(Signed::to_json)
            ],
        )?;
        Ok(())
    }

    /// Records the second admin's approval of a covert grant (four eyes), with their
    /// signature in `statement`; the grant is active if the key came with it.
    pub fn approve_grant(
        &self,
        case: &CaseId,
        grantee: &UserName,
        by: &UserName,
        statement: &Signed,
        active: bool,
    ) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE grants SET status = ?5, approved_by = ?3, statement = ?4 WHERE case_id = ?1 AND grantee = ?2",
            params![
                case.as_str(),
                grantee.as_str(),
                by.as_str(),
                statement.to_json(),
                if active { "active" } else { "pending" }
            ],
        )?;
        Ok(())
    }

    /// Makes an approved grant active once a custodian delivered its key.
    pub fn activate_grant(&self, case: &CaseId, grantee: &UserName) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE grants SET status = 'active' WHERE case_id = ?1 AND grantee = ?2",
            params![case.as_str(), grantee.as_str()],
        )?;
        Ok(())
    }

    /// Revokes every grant in `scope` that is not revoked yet; returns how many.
    pub fn revoke_grants(&self, scope: Scope<'_>, at: &str) -> rusqlite::Result<usize> {
        self.c.execute(
            "UPDATE grants SET status = 'revoked', revoked_at = ?3
             WHERE status <> 'revoked' AND (?1 IS NULL OR case_id = ?1) AND (?2 IS NULL OR grantee = ?2)",
            params![scope.case(), scope.user(), at],
        )
    }
}
