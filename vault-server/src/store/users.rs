//! `users`: enrolment, lookup, disabling.

use rusqlite::{OptionalExtension, params};
use vault_core::api::{Role, UserInfo};
use vault_core::ids::UserName;

use super::{Store, parsed};

const USER_COLUMNS: &str = "name, role, recipient, enabled, created_at, created_by";

fn user_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserInfo> {
    Ok(UserInfo {
        name: parsed(r, 0)?,
        role: parsed(r, 1)?,
        recipient: r.get(2)?,
        enabled: r.get(3)?,
        created_at: r.get(4)?,
        created_by: r.get(5)?,
    })
}

/// What authorisation needs to know of a user, as the database says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserState {
    pub role: Role,
    pub enabled: bool,
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

    /// A user's role and whether they are enabled, or `None` if there is no such user.
    pub fn user_state(&self, name: &UserName) -> rusqlite::Result<Option<UserState>> {
        self.c
            .prepare_cached("SELECT role, enabled FROM users WHERE name = ?1")?
            .query_row([name.as_str()], |r| Ok(UserState { role: parsed(r, 0)?, enabled: r.get(1)? }))
            .optional()
    }

    /// Whether someone is enrolled with this recipient already.
    pub fn recipient_taken(&self, recipient: &str) -> rusqlite::Result<bool> {
        self.c.prepare_cached("SELECT 1 FROM users WHERE recipient = ?1")?.exists([recipient])
    }

    /// Enrols a user; `created_by` is `None` only for the first admin, made at `init`.
    pub fn insert_user(
        &self,
        name: &UserName,
        role: Role,
        recipient: &str,
        created_at: &str,
        created_by: Option<&UserName>,
    ) -> rusqlite::Result<()> {
        self.c.execute(
            "INSERT INTO users (name, role, recipient, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name.as_str(), role.as_str(), recipient, created_at, created_by.map(UserName::as_str)],
        )?;
        Ok(())
    }

    pub fn disable_user(&self, name: &UserName) -> rusqlite::Result<()> {
        self.c.execute("UPDATE users SET enabled = 0 WHERE name = ?1", [name.as_str()])?;
        Ok(())
    }
}
