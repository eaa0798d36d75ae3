//! `users`: enrolment, lookup, disabling.

use rusqlite::{OptionalExtension, params};
use vault_core::api::{Role, UserInfo};
use vault_core::ids::UserName;
use vault_core::trust::{PublicId, Signed};

use super::{Store, parsed, signed_column};

const USER_COLUMNS: &str = "name, role, recipient, enabled, created_at, created_by, public_id, approved";

fn user_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserInfo> {
    Ok(UserInfo {
        name: parsed(r, 0)?,
        role: parsed(r, 1)?,
        recipient: r.get(2)?,
        enabled: r.get(3)?,
        created_at: r.get(4)?,
        created_by: r.get(5)?,
        id: r.get(6)?,
        pending_approval: !r.get::<_, bool>(7)?,
    })
}

/// What authorisation needs to know of a user, as the database says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserState {
    pub role: Role,
    /// Enabled, and (for an admin) approved by a second admin: may act.
    pub enabled: bool,
    /// An admin whose enrolment still waits for a second admin's approval.
    pub pending: bool,
}

/// A user to enrol.
pub struct NewUserRow<'a> {
    pub name: &'a UserName,
    pub role: Role,
    pub id: &'a PublicId,
    /// The signed enrolment; `None` only for the trust root's admins, made at `init`.
    pub statement: Option<&'a Signed>,
    /// An admin enrolled by another admin is not approved until a second admin signs.
    pub approved: bool,
    pub created_at: &'a str,
    /// `None` for the trust root's admins.
    pub created_by: Option<&'a UserName>,
}

/// A user's key and signed enrolment.
pub struct Enrolment {
    pub id: PublicId,
    /// `None` for the trust root's admins.
    pub statement: Option<Signed>,
    pub approved: bool,
}

impl Store<'_> {
    pub fn users(&self) -> rusqlite::Result<Vec<UserInfo>> {
        self.c.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?.query_map([], user_info)?.collect()
    }

    pub fn user(&self, name: &UserName) -> rusqlite::Result<Option<UserInfo>> {
        self.c
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"))?
            .query_row([name.as_str()], user_info)
            .optional()
    }

    /// A user's role and whether they may act, or `None` if there is no such user.
    pub fn user_state(&self, name: &UserName) -> rusqlite::Result<Option<UserState>> {
        self.c
            .prepare_cached("SELECT role, enabled AND approved, NOT approved FROM users WHERE name = ?1")?
            .query_row([name.as_str()], |r| {
                Ok(UserState { role: parsed(r, 0)?, enabled: r.get(1)?, pending: r.get(2)? })
            })
            .optional()
    }

    /// Whether someone is enrolled with this key already.
    pub fn public_id_taken(&self, id: &PublicId) -> rusqlite::Result<bool> {
        self.c
            .prepare_cached("SELECT 1 FROM users WHERE public_id = ?1 OR recipient = ?2")?
            .exists(params![id.to_string(), id.recipient().to_string()])
    }

    /// Enrols a user.
    pub fn insert_user(&self, u: &NewUserRow<'_>) -> rusqlite::Result<()> {
        self.c.execute(
            "INSERT INTO users (name, role, recipient, public_id, enrolment, approved, created_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                u.name.as_str(),
                u.role.as_str(),
                u.id.recipient().to_string(),
                u.id.to_string(),
                u.statement.map(Signed::to_json),
                u.approved,
                u.created_at,
                u.created_by.map(UserName::as_str)
            ],
        )?;
        Ok(())
    }

    /// A user's public id and enrolment.
    pub fn enrolment(&self, name: &UserName) -> rusqlite::Result<Option<Enrolment>> {
        self.c
            .prepare_cached("SELECT public_id, enrolment, approved FROM users WHERE name = ?1")?
            .query_row([name.as_str()], |r| {
                Ok(Enrolment { id: parsed(r, 0)?, statement: signed_column(r, 1)?, approved: r.get(2)? })
            })
            .optional()
    }

    /// Stores an admin's enrolment with the second admin's signature on it.
    pub fn approve_enrolment(&self, name: &UserName, statement: &Signed) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE users SET enrolment = ?2, approved = 1 WHERE name = ?1",
            params![name.as_str(), statement.to_json()],
        )?;
        Ok(())
    }

    pub fn disable_user(&self, name: &UserName, statement: &Signed) -> rusqlite::Result<()> {
        self.c.execute(
            "UPDATE users SET enabled = 0, disabled_by_statement = ?2 WHERE name = ?1",
            params![name.as_str(), statement.to_json()],
        )?;
        Ok(())
    }

    /// Every signed enrolment and every signed disabling, for clients to check.
    pub fn trust_statements(&self) -> rusqlite::Result<(Vec<Signed>, Vec<Signed>)> {
        let mut enrolments = Vec::new();
        let mut disables = Vec::new();
        let mut stmt =
            self.c.prepare("SELECT enrolment, disabled_by_statement FROM users ORDER BY created_at, name")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            enrolments.extend(signed_column(r, 0)?);
            disables.extend(signed_column(r, 1)?);
        }
        Ok((enrolments, disables))
    }

    /// The text of the trust root, set at `init`.
    pub fn trust_root(&self) -> rusqlite::Result<Option<String>> {
        self.c.query_row("SELECT value FROM meta WHERE key = 'trust_root'", [], |r| r.get(0)).optional()
    }

    pub fn set_trust_root(&self, text: &str) -> rusqlite::Result<()> {
        self.c.execute("INSERT INTO meta (key, value) VALUES ('trust_root', ?1)", [text])?;
        Ok(())
    }
}
