//! `case_keys`, `custodians` and `envelopes`: who holds which version of a case's key.
//!
//! The server keeps a case's recipient of each key version in clear and its secret only
//! as envelopes, one per holder and version, that it cannot open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::params;
use vault_core::api::{Holder, KeyEnvelope};
use vault_core::ids::{CaseId, UserName};

use super::{Scope, Store, parsed, required_statement, signed_column};
use chrono::NaiveDate;
use vault_core::trust::Signed;

impl Store<'_> {
    /// Stores a key version's recipient with the custodian's signed statement of it.
    pub fn insert_case_key(
        &self,
        case: &CaseId,
        version: u32,
        recipient: &str,
        statement: &Signed,
        at: &str,
    ) -> rusqlite::Result<()> {
        self.c.execute(
            "INSERT INTO case_keys (case_id, version, recipient, statement, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![case.as_str(), version, recipient, statement.to_json(), at],
        )?;
        Ok(())
    }

    /// The recipient recordings of key version `version` are encrypted to, and the
    /// custodian's signed statement of it.
    pub fn case_recipient(&self, case: &CaseId, version: u32) -> rusqlite::Result<(String, Signed)> {
        self.c
            .prepare_cached("SELECT recipient, statement FROM case_keys WHERE case_id = ?1 AND version = ?2")?
            .query_row(params![case.as_str(), version], |r| Ok((r.get(0)?, required_statement(r, 1)?)))
    }

    /// Makes `admin` a custodian; `statement` is the signed custodianship (`None` for
    /// the case's creator, who signed key version 1).
    pub fn add_custodian(&self, case: &CaseId, admin: &UserName, statement: Option<&Signed>) -> rusqlite::Result<()> {
        self.c.execute(
            "INSERT INTO custodians (case_id, admin, statement) VALUES (?1, ?2, ?3)",
            params![case.as_str(), admin.as_str(), statement.map(Signed::to_json)],
        )?;
        Ok(())
    }

    /// Whether `admin` is a custodian of `case` (holds its secret and may wrap it).
    pub fn is_custodian(&self, case: &CaseId, admin: &UserName) -> rusqlite::Result<bool> {
        self.c
            .prepare_cached("SELECT 1 FROM custodians WHERE case_id = ?1 AND admin = ?2")?
            .exists([case.as_str(), admin.as_str()])
    }

    pub fn custodians(&self, case: &CaseId) -> rusqlite::Result<Vec<UserName>> {
        self.c
            .prepare_cached("SELECT admin FROM custodians WHERE case_id = ?1 ORDER BY admin")?
            .query_map([case.as_str()], |r| parsed(r, 0))?
            .collect()
    }

    /// The cases not closed of which `admin` is the only enabled custodian. Closed cases
    /// do not count: nobody grants on them, rotates their key or becomes their custodian
    /// (a case on legal hold whose last custodian left cannot be reopened, see
    /// `policy::reopen_rule`).
    pub fn cases_in_sole_custody(&self, admin: &UserName) -> rusqlite::Result<Vec<CaseId>> {
        self.c
            .prepare(
                "SELECT k.case_id FROM custodians k JOIN cases c ON c.id = k.case_id
                 WHERE k.admin = ?1 AND c.status IN ('open', 'pending-approval') AND NOT EXISTS (
                     SELECT 1 FROM custodians o JOIN users u ON u.name = o.admin
                     WHERE o.case_id = k.case_id AND o.admin <> ?1 AND u.enabled = 1)
                 ORDER BY k.case_id",
            )?
            .query_map([admin.as_str()], |r| parsed(r, 0))?
            .collect()
    }

    /// Ends every custodianship of `admin`; returns how many.
    pub fn end_custodianships(&self, admin: &UserName) -> rusqlite::Result<usize> {
        self.c.execute("DELETE FROM custodians WHERE admin = ?1", [admin.as_str()])
    }

    /// Stores `holder`'s envelope of one key version, replacing one left from an
    /// earlier grant.
    pub fn put_envelope(
        &self,
        case: &CaseId,
        version: u32,
        holder: &UserName,
        envelope: &[u8],
    ) -> rusqlite::Result<()> {
        self.c
            .prepare_cached(
                "INSERT OR REPLACE INTO envelopes (case_id, version, holder, envelope) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![case.as_str(), version, holder.as_str(), envelope])?;
        Ok(())
    }

    /// `holder`'s envelope of one key version of `case`.
    pub fn envelope(&self, case: &CaseId, version: u32, holder: &UserName) -> rusqlite::Result<Option<Vec<u8>>> {
        use rusqlite::OptionalExtension;
        self.c
            .prepare_cached("SELECT envelope FROM envelopes WHERE case_id = ?1 AND version = ?2 AND holder = ?3")?
            .query_row(params![case.as_str(), version, holder.as_str()], |r| r.get(0))
            .optional()
    }

    /// The envelopes `holder` has of each key version of `case`, oldest first.
    pub fn envelopes_of(&self, case: &CaseId, holder: &UserName) -> rusqlite::Result<Vec<KeyEnvelope>> {
        self.c
            .prepare_cached(
                "SELECT k.version, k.recipient, e.envelope, k.statement FROM case_keys k
                 JOIN envelopes e ON e.case_id = k.case_id AND e.version = k.version AND e.holder = ?2
                 WHERE k.case_id = ?1 ORDER BY k.version",
            )?
            .query_map(params![case.as_str(), holder.as_str()], |r| {
                Ok(KeyEnvelope {
                    version: r.get(0)?,
                    recipient: r.get(1)?,
                    envelope: B64.encode(r.get::<_, Vec<u8>>(2)?),
                    statement: required_statement(r, 3)?,
                })
            })?
            .collect()
    }

    /// Deletes the envelopes in `scope`; returns how many.
    pub fn delete_envelopes(&self, scope: Scope<'_>) -> rusqlite::Result<usize> {
        self.c.execute(
            "DELETE FROM envelopes WHERE (?1 IS NULL OR case_id = ?1) AND (?2 IS NULL OR holder = ?2)",
            params![scope.case(), scope.user()],
        )
    }

    /// Everyone a new key version is wrapped to, with the signed statement that says
    /// so: enabled custodians, and enabled users whose grant is active and not expired on
    /// `today`. A pending grant gets the new version when its key is delivered; an expired
    /// one gets none.
    pub fn holders(&self, case: &CaseId, today: NaiveDate) -> rusqlite::Result<Vec<Holder>> {
        self.c
            .prepare_cached(
                "SELECT u.name, u.recipient, k.statement, g.statement FROM users u
                 LEFT JOIN custodians k ON k.case_id = ?1 AND k.admin = u.name
                 LEFT JOIN grants g ON g.case_id = ?1 AND g.grantee = u.name
                     AND g.status = 'active' AND (g.until IS NULL OR g.until >= ?2)
                 WHERE u.enabled = 1 AND (k.admin IS NOT NULL OR g.grantee IS NOT NULL)
                 ORDER BY u.name",
            )?
            .query_map(params![case.as_str(), today.to_string()], |r| {
                Ok(Holder {
                    user: parsed(r, 0)?,
                    recipient: r.get(1)?,
                    custodian: signed_column(r, 2)?,
                    grant: signed_column(r, 3)?,
                })
            })?
            .collect()
    }
}
