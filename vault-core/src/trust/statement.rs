//! Signed statements: short texts, one `key: value` line each, that people sign.
//!
//! A statement's text is what is signed, byte for byte, so nothing is canonicalised
//! after the fact: the signer writes the text, the verifier parses the very bytes it
//! checked. `schema/TRUST.md` gives the layout of every type.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::TrustError;
use super::keys::{PublicId, SigningKey};
use crate::api::{Announcement, CaseKind, Role};
use crate::ids::{CaseId, RecordingId, UserName};

/// First line of every statement.
pub const STATEMENT_MAGIC: &str = "vault-statement/v1";

/// A statement's text with the signatures on it: the first by the person named in its
/// `by` line, any further ones by people who approve it (four eyes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub statement: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub by: UserName,
    /// base64 of the 64-byte Ed25519 signature of the statement's text.
    pub sig: String,
}

impl Signed {
    /// Signs a statement as the person it names in `by`.
    pub fn sign<S: Statement>(statement: &S, key: &SigningKey) -> Self {
        let text = statement.text();
        let sig = B64.encode(key.sign(text.as_bytes()));
        Signed { statement: text, signatures: vec![Signature { by: statement.by().clone(), sig }] }
    }

    /// Adds `who`'s signature (an approval) to the statement.
    pub fn cosign(&mut self, who: &UserName, key: &SigningKey) {
        let sig = B64.encode(key.sign(self.statement.as_bytes()));
        self.signatures.push(Signature { by: who.clone(), sig });
    }

    /// Parses the text as a statement of type `S`.
    pub fn parse<S: Statement>(&self) -> Result<S, TrustError> {
        S::parse(&self.statement)
    }

    /// Whether signature `i` is `id`'s signature of the text.
    pub fn signature_verifies(&self, i: usize, id: &PublicId) -> bool {
        let Some(s) = self.signatures.get(i) else { return false };
        match B64.decode(s.sig.as_bytes()) {
            Ok(sig) => id.verifies(self.statement.as_bytes(), &sig),
            Err(_) => false,
        }
    }

    /// As JSON, for the database and the access log.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a signed statement serialises")
    }

    pub fn from_json(text: &str) -> Result<Self, TrustError> {
        serde_json::from_str(text).map_err(|e| TrustError::new(format!("not a signed statement: {e}")))
    }
}

/// One type of statement.
pub trait Statement: Sized {
    /// The `type:` line.
    const TYPE: &'static str;
    /// The lines after `type:`, in order, `vault` first and `by`, `at` last.
    fn lines(&self) -> Vec<(&'static str, String)>;
    fn from_lines(r: &mut Lines<'_>) -> Result<Self, TrustError>;
    /// The vault (log origin) the statement is for.
    fn vault(&self) -> &str;
    /// Who signs it first.
    fn by(&self) -> &UserName;

    /// The exact text that is signed.
    fn text(&self) -> String {
        let mut t = format!("{STATEMENT_MAGIC}\ntype: {}\n", Self::TYPE);
        for (k, v) in self.lines() {
            assert!(value_ok(&v), "statement value {v:?} of {k} has a line break or is empty");
            t.push_str(k);
            t.push_str(": ");
            t.push_str(&v);
            t.push('\n');
        }
        t
    }

    fn parse(text: &str) -> Result<Self, TrustError> {
        let mut r = Lines::new(text)?;
        if r.header != Self::TYPE {
            return Err(TrustError::new(format!("a {} statement was expected, got {:?}", Self::TYPE, r.header)));
        }
        let s = Self::from_lines(&mut r)?;
        r.end()?;
        Ok(s)
    }
}

/// A value may hold any printable text but no line break, and may not be empty or
/// padded with spaces.
fn value_ok(v: &str) -> bool {
    !v.is_empty() && v.trim() == v && !v.chars().any(char::is_control)
}

/// Reads the `key: value` lines of a statement in their fixed order.
pub struct Lines<'a> {
    header: &'a str,
    rest: std::str::Lines<'a>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Result<Self, TrustError> {
        if !text.ends_with('\n') || text.contains('\r') {
            return Err(TrustError::new("a statement must be lines ending in \\n"));
        }
        let mut rest = text.lines();
        if rest.next() != Some(STATEMENT_MAGIC) {
            return Err(TrustError::new(format!("a statement must start with {STATEMENT_MAGIC}")));
        }
        let header = rest
            .next()
            .and_then(|l| l.strip_prefix("type: "))
            .ok_or_else(|| TrustError::new("a statement's second line must be `type: ...`"))?;
        Ok(Self { header, rest })
    }

    /// The value of the next line, which must be `key: ...`.
    pub fn text(&mut self, key: &str) -> Result<&'a str, TrustError> {
        let line = self.rest.next().ok_or_else(|| TrustError::new(format!("the statement ends before `{key}:`")))?;
        let v = line
            .strip_prefix(key)
            .and_then(|l| l.strip_prefix(": "))
            .ok_or_else(|| TrustError::new(format!("expected `{key}: ...` in the statement, found {line:?}")))?;
        if !value_ok(v) {
            return Err(TrustError::new(format!("the statement's `{key}` is empty or padded")));
        }
        Ok(v)
    }

    /// The next line's value, parsed.
    pub fn value<T: std::str::FromStr>(&mut self, key: &str) -> Result<T, TrustError>
    where
        T::Err: std::fmt::Display,
    {
        let v = self.text(key)?;
        v.parse().map_err(|e| TrustError::new(format!("the statement's `{key}` {v:?} is not valid: {e}")))
    }

    /// `at:`, an RFC 3339 time.
    pub fn time(&mut self) -> Result<String, TrustError> {
        let v = self.text("at")?;
        chrono::DateTime::parse_from_rfc3339(v)
            .map_err(|_| TrustError::new(format!("the statement's time {v:?} is not RFC 3339")))?;
        Ok(v.to_owned())
    }

    fn end(&mut self) -> Result<(), TrustError> {
        match self.rest.next() {
            None => Ok(()),
            Some(l) => Err(TrustError::new(format!("unexpected line {l:?} at the end of the statement"))),
        }
    }
}

/// The time now, as statements write it (RFC 3339, milliseconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An admin enrols a person: name, role and public id. An admin's enrolment also needs
/// the signature of a second admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrol {
    pub vault: String,
    pub name: UserName,
    pub role: Role,
    pub id: PublicId,
    pub by: UserName,
    pub at: String,
}

/// An admin disables a person: from then on nothing they signed is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disable {
    pub vault: String,
    pub name: UserName,
    pub id: PublicId,
    pub by: UserName,
    pub at: String,
}

/// A custodian vouches for a case's recipient of one key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseKeyStatement {
    pub vault: String,
    pub case: CaseId,
    pub kind: CaseKind,
    pub version: u32,
    pub recipient: String,
    pub by: UserName,
    pub at: String,
}

/// An admin grants a person access to a case; on a covert case a second admin approves
/// by signing it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantStatement {
    pub vault: String,
    pub case: CaseId,
    pub name: UserName,
    pub id: PublicId,
    /// Last day of the grant; `None` is written `none`.
    pub until: Option<NaiveDate>,
    pub by: UserName,
    pub at: String,
}

/// A custodian makes another admin a custodian of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodianStatement {
    pub vault: String,
    pub case: CaseId,
    pub name: UserName,
    pub id: PublicId,
    pub by: UserName,
    pub at: String,
}

/// A recorder vouches for a recording it uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingStatement {
    pub vault: String,
    pub case: CaseId,
    /// The id the server gave the upload, so a signed recording cannot be passed off
    /// under another id.
    pub recording: RecordingId,
    pub version: u32,
    /// Hex SHA-256 of the ciphertext.
    pub sha256: String,
    /// Bytes of ciphertext.
    pub size: u64,
    pub recorded_at: String,
    pub announced: Announcement,
    pub by: UserName,
    pub at: String,
}

impl Statement for Enrol {
    const TYPE: &'static str = "enrol";
    fn lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("vault", self.vault.clone()),
            ("name", self.name.to_string()),
            ("role", self.role.to_string()),
            ("id", self.id.to_string()),
            ("by", self.by.to_string()),
            ("at", self.at.clone()),
        ]
    }
    fn from_lines(r: &mut Lines<'_>) -> Result<Self, TrustError> {
        Ok(Self {
            vault: r.text("vault")?.to_owned(),
            name: r.value("name")?,
            role: r.value("role")?,
            id: r.value("id")?,
            by: r.value("by")?,
            at: r.time()?,
        })
    }
    fn vault(&self) -> &str {
        &self.vault
    }
    fn by(&self) -> &UserName {
        &self.by
    }
}

impl Statement for Disable {
    const TYPE: &'static str = "disable";
    fn lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("vault", self.vault.clone()),
            ("name", self.name.to_string()),
            ("id", self.id.to_string()),
            ("by", self.by.to_string()),
            ("at", self.at.clone()),
        ]
    }
    fn from_lines(r: &mut Lines<'_>) -> Result<Self, TrustError> {
        Ok(Self {
            vault: r.text("vault")?.to_owned(),
            name: r.value("name")?,
            id: r.value("id")?,
            by: r.value("by")?,
            at: r.time()?,
        })
    }
    fn vault(&self) -> &str {
        &self.vault
    }
    fn by(&self) -> &UserName {
        &self.by
    }
}

impl Statement for CaseKeyStatement {
    const TYPE: &'static str = "case-key";
    fn lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("vault", self.vault.clone()),
            ("case", self.case.to_string()),
            ("kind", self.kind.to_string()),
            ("version", self.version.to_string()),
            ("recipient", self.recipient.clone()),
            ("by", self.by.to_string()),
            ("at", self.at.clone()),
        ]
    }
    fn from_lines(r: &mut Lines<'_>) -> Result<Self, TrustError> {
        Ok(Self {
            vault: r.text("vault")?.to_owned(),
            case: r.value("case")?,
            kind: r.value("kind")?,
            version: r.value("version")?,
            recipient: r.text("recipient")?.to_owned(),
            by: r.value("by")?,
            at: r.time()?,
        })
    }
    fn vault(&self) -> &str {
        &self.vault
    }
    fn by(&self) -> &UserName {
        &self.by
    }
}

impl Statement for GrantStatement {
    const TYPE: &'static str = "grant";
    fn lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("vault", self.vault.clone()),
            ("case", self.case.to_string()),
            ("name", self.name.to_string()),
            ("id", self.id.to_string()),
            ("until", self.until.map_or_else(|| "none".to_owned(), |d| d.to_string())),
            ("by", self.by.to_string()),
            ("at", self.at.clone()),
        ]
    }
    fn from_lines(r: &mut Lines<'_>) -> Result<Self, TrustError> {
        Ok(Self {
            vault: r.text("vault")?.to_owned(),
            case: r.value("case")?,
            name: r.value("name")?,
            id: r.value("id")?,
            until: match r.text("until")? {
                "none" => None,
                d => Some(d.parse().map_err(|_| TrustError::new(format!("the grant's `until` {d:?} is not a date")))?),
            },
            by: r.value("by")?,
            at: r.time()?,
        })
    }
    fn vault(&self) -> &str {
        &self.vault
    }
    fn by(&self) -> &UserName {
        &self.by
    }
}

impl Statement for CustodianStatement {
    const TYPE: &'static str = "custodian";
    fn lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("vault", self.vault.clone()),
            ("case", self.case.to_string()),
            ("name", self.name.to_string()),
            ("id", self.id.to_string()),
            ("by", self.by.to_string()),
            ("at", self.at.clone()),
        ]
    }
    fn from_lines(r: &mut Lines<'_>) -> Result<Self, TrustError> {
        Ok(Self {
            vault: r.text("vault")?.to_owned(),
            case: r.value("case")?,
            name: r.value("name")?,
            id: r.value("id")?,
            by: r.value("by")?,
            at: r.time()?,
        })
    }
    fn vault(&self) -> &str {
        &self.vault
    }
    fn by(&self) -> &UserName {
        &self.by
    }
}

impl Statement for RecordingStatement {
    const TYPE: &'static str = "recording";
    fn lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("vault", self.vault.clone()),
            ("case", self.case.to_string()),
            ("recording", self.recording.to_string()),
            ("version", self.version.to_string()),
            ("sha256", self.sha256.clone()),
            ("size", self.size.to_string()),
            ("recorded-at", self.recorded_at.clone()),
            ("announced", self.announced.to_string()),
            ("by", self.by.to_string()),
            ("at", self.at.clone()),
        ]
    }
    fn from_lines(r: &mut Lines<'_>) -> Result<Self, TrustError> {
        let s = Self {
            vault: r.text("vault")?.to_owned(),
            case: r.value("case")?,
            recording: r.value("recording")?,
            version: r.value("version")?,
            sha256: r.text("sha256")?.to_owned(),
            size: r.value("size")?,
            recorded_at: r.text("recorded-at")?.to_owned(),
            announced: r.value("announced")?,
            by: r.value("by")?,
            at: r.time()?,
        };
        if s.sha256.len() != 64 || !s.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(TrustError::new("the recording's `sha256` is not 64 lowercase hex digits"));
        }
        Ok(s)
    }
    fn vault(&self) -> &str {
        &self.vault
    }
    fn by(&self) -> &UserName {
        &self.by
    }
}
