//! Every SQL statement of the server, behind one type.
//!
//! [`Store`] wraps a connection (a savepoint of the writer's group transaction, or a
//! pooled read-only connection) and offers one method per question or change, grouped
//! by table family in the files of this module. Nothing outside `store` and `db` writes
//! SQL, so a statement that several requests need is written once, and handlers and
//! policy read as what they decide rather than how rows are fetched. Rows come back typed
//! (ids, roles, statuses as enums), never as strings to compare.

use std::str::FromStr;

use rusqlite::Connection;
use vault_core::ids::{CaseId, UserName};

mod access_log;
mod cases;
mod custody;
mod grants;
mod lifecycle;
mod recordings;
mod reopenings;
mod users;

pub use access_log::About;
pub use cases::{CaseRow, NewCaseRow};
pub use grants::StoredGrant;
pub use lifecycle::{Cause, Doomed};
pub use recordings::StoredRecording;
pub use users::{NewUserRow, UserState};

/// The SQL of one request, on the connection it was given.
#[derive(Clone, Copy)]
pub struct Store<'c> {
    c: &'c Connection,
}

impl<'c> Store<'c> {
    pub fn new(c: &'c Connection) -> Self {
        Self { c }
    }
}

/// Whose grants or envelopes a change applies to.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    /// Everyone's on one case (R5 destruction).
    Case(&'a CaseId),
    /// One person's on every case (disabling a user).
    User(&'a UserName),
    /// One person's on one case (revocation).
    One(&'a CaseId, &'a UserName),
}

impl<'a> Scope<'a> {
    /// The case and the user a scoped statement filters on (`?1`, `?2`); `None` matches
    /// every value.
    fn case(self) -> Option<&'a str> {
        match self {
            Scope::Case(c) | Scope::One(c, _) => Some(c.as_str()),
            Scope::User(_) => None,
        }
    }

    fn user(self) -> Option<&'a str> {
        match self {
            Scope::User(u) | Scope::One(_, u) => Some(u.as_str()),
            Scope::Case(_) => None,
        }
    }
}

/// Reads column `i` as text and parses it into a typed value; a stored value that does
/// not parse is a damaged database, reported as a conversion error.
fn parsed<T: FromStr>(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    parse_column(i, &r.get::<_, String>(i)?)
}

/// As [`parsed`], for a column that may be NULL.
fn parsed_opt<T: FromStr>(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    r.get::<_, Option<String>>(i)?.map(|t| parse_column(i, &t)).transpose()
}

/// A column holding a signed statement's JSON, which may be NULL.
pub(crate) fn signed_column(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<vault_core::trust::Signed>> {
    r.get::<_, Option<String>>(i)?
        .map(|t| {
            vault_core::trust::Signed::from_json(&t)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
        })
        .transpose()
}

/// A column that must hold a signed statement.
pub(crate) fn required_statement(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<vault_core::trust::Signed> {
    signed_column(r, i)?.ok_or(rusqlite::Error::InvalidColumnType(i, "statement".into(), rusqlite::types::Type::Null))
}

fn parse_column<T: FromStr>(i: usize, text: &str) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.to_string().into())
    })
}

#[cfg(test)]
impl Store<'_> {
    /// A digest of every row outside the access log, to check that a refused request
    /// changed nothing.
    pub fn fingerprint(&self) -> rusqlite::Result<[u8; 32]> {
        let mut all = Vec::new();
        for table in [
            "meta",
            "users",
            "cases",
            "case_keys",
            "custodians",
            "envelopes",
            "grants",
            "recordings",
            "destroyed_recordings",
            "notifications",
            "reopenings",
        ] {
            let mut stmt = self.c.prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))?;
            let n = stmt.column_count();
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                for i in 0..n {
                    all.extend_from_slice(format!("{:?}|", r.get_ref(i)?).as_bytes());
                }
                all.push(b'\n');
            }
        }
        Ok(vault_core::sha256(&all))
    }
}
