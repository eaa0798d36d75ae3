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

    /// The next line's value, read as a [`Field`].
    pub fn field<T: Field>(&mut self, key: &str) -> Result<T, TrustError> {
        let v = self.text(key)?;
        T::read(v).map_err(|e| TrustError::new(format!("the statement's `{key}` {v:?} is not valid: {e}")))
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

/// How one value of a statement is written and read.
pub trait Field: Sized {
    fn write(&self) -> String;
    fn read(text: &str) -> Result<Self, String>;
}

/// Fields written as their `Display` and read with their `FromStr`.
macro_rules! display_fields {
    ($($t:ty),+) => {$(
        impl Field for $t {
            fn write(&self) -> String {
                self.to_string()
            }
            fn read(text: &str) -> Result<Self, String> {
                text.parse().map_err(|e| format!("{e}"))
            }
        }
    )+};
}

display_fields!(String, u32, u64, UserName, CaseId, RecordingId, PublicId, Role, CaseKind, Announcement);

/// An optional date: `none`, or `YYYY-MM-DD`.
impl Field for Option<NaiveDate> {
    fn write(&self) -> String {
        self.map_or_else(|| "none".to_owned(), |d| d.to_string())
    }
    fn read(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(None),
            d => d.parse().map(Some).map_err(|_| "not a date (YYYY-MM-DD) or none".to_owned()),
        }
    }
}

/// A statement type: its struct, with `vault` first and `by`, `at` last, and its
/// [`Statement`] implementation, from one list of `field: Type = "line key"`.
macro_rules! statement {
    ($(#[$doc:meta])* $name:ident = $type:literal { $($(#[$fdoc:meta])* $field:ident: $ty:ty = $key:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// The vault (log origin) the statement is for.
            pub vault: String,
            $($(#[$fdoc])* pub $field: $ty,)+
            /// Who signs it first.
            pub by: UserName,
            /// When they signed it (RFC 3339).
            pub at: String,
        }

        impl Statement for $name {
            const TYPE: &'static str = $type;
            fn lines(&self) -> Vec<(&'static str, String)> {
                vec![
                    ("vault", self.vault.clone()),
                    $(($key, Field::write(&self.$field)),)+
                    ("by", self.by.to_string()),
                    ("at", self.at.clone()),
                ]
            }
            fn from_lines(r: &mut Lines<'_>) -> Result<Self, TrustError> {
                Ok(Self {
                    vault: r.text("vault")?.to_owned(),
                    $($field: r.field($key)?,)+
                    by: r.field("by")?,
                    at: r.time()?,
                })
            }
            fn by(&self) -> &UserName {
                &self.by
            }
        }
    };
}

statement!(
    /// An admin enrols a person: name, role and public id. An admin's enrolment also needs
    /// the signature of a second admin.
    Enrol = "enrol" { name: UserName = "name", role: Role = "role", id: PublicId = "id" }
);

statement!(
    /// An admin disables a person: from then on nothing they sign is trusted.
    Disable = "disable" { name: UserName = "name", id: PublicId = "id" }
);

statement!(
    /// A custodian vouches for a case's recipient of one key version.
    CaseKeyStatement = "case-key" {
        case: CaseId = "case",
        kind: CaseKind = "kind",
        version: u32 = "version",
        recipient: String = "recipient",
    }
);

statement!(
    /// An admin grants a person access to a case; on a covert case a second admin approves
    /// by signing it too.
    GrantStatement = "grant" {
        case: CaseId = "case",
        name: UserName = "name",
        id: PublicId = "id",
        /// Last day of the grant; `None` is written `none`.
        until: Option<NaiveDate> = "until",
    }
);

statement!(
    /// A custodian makes another admin a custodian of a case.
    CustodianStatement = "custodian" { case: CaseId = "case", name: UserName = "name", id: PublicId = "id" }
);

statement!(
    /// A recorder vouches for a recording it uploaded.
    RecordingStatement = "recording" {
        case: CaseId = "case",
        /// The id the server gave the upload, so a signed recording cannot be passed off
        /// under another id.
        recording: RecordingId = "recording",
        version: u32 = "version",
        /// Hex SHA-256 of the ciphertext, as the recorder computed it while sending.
        sha256: String = "sha256",
        /// Bytes of ciphertext.
        size: u64 = "size",
        recorded_at: String = "recorded-at",
        announced: Announcement = "announced",
    }
);

impl RecordingStatement {
    /// Whether `sha256` is written as a SHA-256 must be: 64 lowercase hex digits.
    pub fn sha256_well_formed(&self) -> bool {
        self.sha256.len() == 64 && self.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}
