//! Trust that rests on people's signatures, not on the server's word.
//!
//! * Every person signs with a key derived from their age identity ([`keys`]).
//! * The organisation's initial admins are the trust **root**; each client pins the
//!   root's fingerprint per server and refuses a different one.
//! * An admin's signed **enrolment** certifies everyone else (an admin's needs a second
//!   admin's signature); a **directory** is what the certificates the server hands out
//!   prove, checked from the pinned root down.
//! * Case recipients, custodians, grants and recordings are signed **statements**
//!   ([`statement`]); clients act only on those that verify against the directory.
//!
//! `schema/TRUST.md` specifies every byte.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};

use crate::api::{CaseKind, Role};
use crate::ids::{CaseId, RecordingId, UserName};

pub mod keys;
pub mod statement;

pub use keys::{PublicId, SigningKey};
pub use statement::{
    CaseKeyStatement, CustodianStatement, Disable, Enrol, GrantStatement, RecordingStatement, Signed, Statement,
};

/// Why something did not verify; the message says what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TrustError(String);

impl TrustError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// First line of a trust root.
pub const ROOT_MAGIC: &str = "vault-trust-root/v1";

/// The organisation's initial admins, named when the vault was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The vault's log origin: statements for any other vault are refused.
    pub vault: String,
    pub admins: Vec<(UserName, PublicId)>,
}

impl Root {
    pub fn new(vault: String, admins: Vec<(UserName, PublicId)>) -> Result<Self, TrustError> {
        let root = Root { vault, admins };
        Root::parse(&root.text())?;
        Ok(root)
    }

    /// The root's text, which its fingerprint is the hash of.
    pub fn text(&self) -> String {
        let mut t = format!("{ROOT_MAGIC}\nvault: {}\n", self.vault);
        for (name, id) in &self.admins {
            t.push_str(&format!("admin: {name} {id}\n"));
        }
        t
    }

    pub fn parse(text: &str) -> Result<Self, TrustError> {
        let bad = |why: String| TrustError::new(format!("not a trust root: {why}"));
        if !text.ends_with('\n') || text.contains('\r') {
            return Err(bad("it must be lines ending in \\n".into()));
        }
        let mut lines = text.lines();
        if lines.next() != Some(ROOT_MAGIC) {
            return Err(bad(format!("it must start with {ROOT_MAGIC}")));
        }
        let vault = lines
            .next()
            .and_then(|l| l.strip_prefix("vault: "))
            .filter(|v| !v.is_empty() && v.trim() == *v)
            .ok_or_else(|| bad("the second line must be `vault: ORIGIN`".into()))?
            .to_owned();
        let mut admins: Vec<(UserName, PublicId)> = Vec::new();
        for line in lines {
            let (name, id) = line
                .strip_prefix("admin: ")
                .and_then(|l| l.split_once(' '))
                .ok_or_else(|| bad(format!("expected `admin: NAME ID`, found {line:?}")))?;
            let name: UserName = name.parse().map_err(|e| bad(format!("{e}")))?;
            let id: PublicId = id.parse().map_err(|e| bad(format!("{e}")))?;
            if admins.iter().any(|(n, i)| *n == name || *i == id) {
                return Err(bad(format!("admin {name} or their public id appears twice")));
            }
            admins.push((name, id));
        }
        if admins.is_empty() {
            return Err(bad("it names no admin".into()));
        }
        Ok(Root { vault, admins })
    }

    /// `SHA256:` and the unpadded base64 of the SHA-256 of [`Root::text`], as SSH shows
    /// host keys.
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(crate::sha256(self.text().as_bytes()))
        )
    }
}

/// A person whose enrolment chains to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: UserName,
    pub role: Role,
    pub id: PublicId,
    /// When an admin disabled them: what they signed from then on is not trusted, and
    /// nothing is wrapped to them any more.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// How much of the directory a question needs: whether enrolments chain to the root,
/// disablings aside (what a disabling's own signer is checked against), or everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Chain,
    Full,
}

/// The people the enrolments prove, checked from a root down.
///
/// Checked lazily: a question about one person verifies only the signatures on the way
/// from them to the root (and the disablings that name someone on it), each once, so a
/// command that checks a recorder and a custodian costs a handful of signature checks
/// whatever the number of people enrolled.
#[derive(Debug)]
pub struct Directory {
    vault: String,
    root: BTreeMap<UserName, PublicId>,
    /// Enrolments, by the name they enrol; read in full only when that name is asked
    /// about.
    enrolments: BTreeMap<String, Vec<Signed>>,
    /// Readable disablings, by the public id they name, with their time.
    disables: BTreeMap<String, Vec<(Disable, Signed, DateTime<Utc>)>>,
    /// Answers so far, and the questions being answered (a loop is no answer).
    known: RefCell<BTreeMap<(Level, UserName), Result<Person, String>>>,
    asking: RefCell<BTreeSet<(Level, UserName)>>,
}

impl Directory {
    /// The directory `certs` (signed [`Enrol`] statements) prove from `root`, with
    /// everyone a valid [`Disable`] statement names disabled from its time on: what they
    /// signed before stays valid (an admin who leaves does not take the people they
    /// enrolled or the recordings they vouched for with them); what they signed after
    /// does not. A disabling counts if an admin whose enrolment chains to the root signed
    /// it. Statements that cannot be read, or are for another vault, are left out.
    pub fn build(root: &Root, certs: &[Signed], disables: &[Signed]) -> Directory {
        let mut enrolments: BTreeMap<String, Vec<Signed>> = BTreeMap::new();
        for c in certs {
            if let Some(name) = c.statement.lines().find_map(|l| l.strip_prefix("name: ")) {
                enrolments.entry(name.to_owned()).or_default().push(c.clone());
            }
        }
        let mut by_id: BTreeMap<String, Vec<(Disable, Signed, DateTime<Utc>)>> = BTreeMap::new();
        for d in disables {
            if let (Ok(stmt), Ok(at)) = (d.parse::<Disable>(), statement_time(&d.statement))
                && stmt.vault == root.vault
            {
                by_id.entry(stmt.id.to_string()).or_default().push((stmt, d.clone(), at));
            }
        }
        Directory {
            vault: root.vault.clone(),
            root: root.admins.iter().cloned().collect(),
            enrolments,
            disables: by_id,
            known: RefCell::default(),
            asking: RefCell::default(),
        }
    }

    pub fn vault(&self) -> &str {
        &self.vault
    }

    /// The person called `name`, if their enrolment verifies and they are not disabled.
    pub fn person(&self, name: &UserName) -> Result<Person, TrustError> {
        let p = self.known(name)?;
        match p.disabled_at {
            Some(t) => Err(TrustError::new(format!("{name} was disabled by an admin at {t}"))),
            None => Ok(p),
        }
    }

    /// The person called `name`, if their enrolment verifies, disabled or not.
    fn known(&self, name: &UserName) -> Result<Person, TrustError> {
        self.resolve(name, Level::Full).map_err(TrustError::new)
    }

    fn resolve(&self, name: &UserName, level: Level) -> Result<Person, String> {
        let key = (level, name.clone());
        if let Some(answer) = self.known.borrow().get(&key) {
            return answer.clone();
        }
        if !self.asking.borrow_mut().insert(key.clone()) {
            return Err(format!("{name}'s enrolment is not valid: it depends on itself"));
        }
        let answer = self.resolve_now(name, level);
        self.asking.borrow_mut().remove(&key);
        self.known.borrow_mut().insert(key, answer.clone());
        answer
    }

    fn resolve_now(&self, name: &UserName, level: Level) -> Result<Person, String> {
        let (role, id) = match self.root.get(name) {
            // The root's admins are the root's: an enrolment naming them changes nothing.
            Some(id) => (Role::Admin, id.clone()),
            None => {
                let no_enrolment = || format!("{name} has no enrolment signed by an admin of this vault");
                let candidates = self.enrolments.get(name.as_str()).ok_or_else(no_enrolment)?;
                let mut valid: Vec<Enrol> = Vec::new();
                let mut why = String::new();
                for signed in candidates {
                    let checked = signed.parse::<Enrol>().and_then(|e| {
                        if e.name != *name || e.vault != self.vault {
                            return Err(TrustError::new("it is for another name or vault"));
                        }
                        self.enrolment_holds(&e, signed, level, true).map(|()| e)
                    });
                    match checked {
                        Ok(e) => valid.push(e),
                        Err(e) => why = e.to_string(),
                    }
                }
                match valid.split_first() {
                    None => return Err(format!("{name}'s enrolment is not valid: {why}")),
                    Some((first, rest)) if rest.iter().all(|e| e.id == first.id && e.role == first.role) => {
                        (first.role, first.id.clone())
                    }
                    Some(_) => {
                        return Err(format!("{name}'s enrolment is not valid: two enrolments with different keys"));
                    }
                }
            }
        };
        let disabled_at = match level {
            Level::Chain => None,
            Level::Full => self.disabled_at(&id),
        };
        Ok(Person { name: name.clone(), role, id, disabled_at })
    }

    /// Whether `e` holds: signed by an admin other than the person it enrols, and, for an
    /// admin `with_approval`, by a second admin too.
    fn enrolment_holds(&self, e: &Enrol, signed: &Signed, level: Level, with_approval: bool) -> Result<(), TrustError> {
        if e.by == e.name {
            return Err(TrustError::new("nobody can enrol themselves"));
        }
        self.signer_at(signed, &e.by, &[Role::Admin], level)?;
        if with_approval && e.role == Role::Admin && self.approver_at(signed, &[&e.by, &e.name], level).is_none() {
            return Err(TrustError::new(format!(
                "admin {}'s enrolment by {} has no second admin's approval (`vault-cli user approve {}`)",
                e.name, e.by, e.name
            )));
        }
        Ok(())
    }

    /// The earliest valid disabling of `id`: signed by an admin whose enrolment chains to
    /// the root.
    fn disabled_at(&self, id: &PublicId) -> Option<DateTime<Utc>> {
        self.disables
            .get(&id.to_string())?
            .iter()
            .filter(|(d, signed, _)| self.signer_at(signed, &d.by, &[Role::Admin], Level::Chain).is_ok())
            .map(|(_, _, at)| *at)
            .min()
    }

    /// Checks that the first signature of `signed` is by `by`, who holds one of `roles`
    /// and was not disabled when they signed it.
    pub fn signer(&self, signed: &Signed, by: &UserName, roles: &[Role]) -> Result<Person, TrustError> {
        self.signer_at(signed, by, roles, Level::Full)
    }

    fn signer_at(&self, signed: &Signed, by: &UserName, roles: &[Role], level: Level) -> Result<Person, TrustError> {
        let first = signed.signatures.first().ok_or_else(|| TrustError::new("the statement is not signed"))?;
        if first.by != *by {
            return Err(TrustError::new(format!("the statement names {by} as signer but is signed by {}", first.by)));
        }
        let person = self.resolve(by, level).map_err(TrustError::new)?;
        if let Some(t) = person.disabled_at
            && statement_time(&signed.statement)? >= t
        {
            return Err(TrustError::new(format!(
                "{by} was disabled by an admin at {t}; nothing they signed from then on is trusted"
            )));
        }
        if !roles.contains(&person.role) {
            return Err(TrustError::new(format!(
                "{by} signed it, but {by} is {}, not {}",
                person.role,
                roles_text(roles)
            )));
        }
        if !signed.signature_verifies(0, &person.id) {
            return Err(TrustError::new(format!(
                "{by}'s signature does not verify: the statement was altered or forged"
            )));
        }
        Ok(person)
    }

    /// A second admin's signature on `signed` (an approval), by someone not in `not` who
    /// was not disabled when the statement was made.
    pub fn approver(&self, signed: &Signed, not: &[&UserName]) -> Option<Person> {
        self.approver_at(signed, not, Level::Full)
    }

    fn approver_at(&self, signed: &Signed, not: &[&UserName], level: Level) -> Option<Person> {
        let at = statement_time(&signed.statement).ok()?;
        signed.signatures.iter().enumerate().skip(1).find_map(|(i, s)| {
            if not.contains(&&s.by) {
                return None;
            }
            let p = self.resolve(&s.by, level).ok()?;
            let active = p.disabled_at.is_none_or(|t| at < t);
            (p.role == Role::Admin && active && signed.signature_verifies(i, &p.id)).then_some(p)
        })
    }

    fn same_vault(&self, vault: &str) -> Result<(), TrustError> {
        if vault != self.vault {
            return Err(TrustError::new(format!(
                "the statement is for vault {vault:?}, not this one ({})",
                self.vault
            )));
        }
        Ok(())
    }

    /// Checks an enrolment: signed by an admin (and, for an admin, by a second one unless
    /// `pending` allows a first signature alone).
    pub fn check_enrolment(&self, signed: &Signed, pending: bool) -> Result<Enrol, TrustError> {
        let e: Enrol = signed.parse()?;
        self.same_vault(&e.vault)?;
        self.enrolment_holds(&e, signed, Level::Full, !pending)?;
        Ok(e)
    }

    /// Checks that a custodian (an admin) vouched for `recipient` as key `version` of
    /// `case`.
    pub fn check_case_key(
        &self,
        signed: &Signed,
        case: &CaseId,
        version: u32,
        recipient: &str,
    ) -> Result<CaseKeyStatement, TrustError> {
        let s: CaseKeyStatement = signed.parse()?;
        self.same_vault(&s.vault)?;
        if s.case != *case || s.version != version {
            return Err(TrustError::new(format!(
                "the key statement is for {} version {}, not {case} version {version}",
                s.case, s.version
            )));
        }
        if s.recipient != recipient.trim() {
            return Err(TrustError::new(format!(
                "the case recipient {} is not the one {} signed for {case} version {version}",
                recipient.trim(),
                s.by
            )));
        }
        self.signer(signed, &s.by, &[Role::Admin])?;
        Ok(s)
    }

    /// Checks that an admin made `name` a custodian of `case`.
    pub fn check_custodian(&self, signed: &Signed, case: &CaseId) -> Result<CustodianStatement, TrustError> {
        let s: CustodianStatement = signed.parse()?;
        self.same_vault(&s.vault)?;
        if s.case != *case {
            return Err(TrustError::new(format!("the custodian statement is for {}, not {case}", s.case)));
        }
        let p = self.person(&s.name)?;
        if p.id != s.id || p.role != Role::Admin {
            return Err(TrustError::new(format!("{} is not the admin the custodian statement names", s.name)));
        }
        self.signer(signed, &s.by, &[Role::Admin])?;
        Ok(s)
    }

    /// Checks a grant on `case` (of `kind`) that is usable on `today`: signed by an admin
    /// other than the grantee, for the grantee's enrolled key, not expired, and on a
    /// covert case approved by a second admin.
    pub fn check_grant(
        &self,
        signed: &Signed,
        case: &CaseId,
        kind: CaseKind,
        today: NaiveDate,
    ) -> Result<GrantStatement, TrustError> {
        let g = self.check_grant_request(signed, case)?;
        if g.until.is_some_and(|u| u < today) {
            return Err(TrustError::new(format!("{}'s grant on {case} expired on {}", g.name, g.until.unwrap())));
        }
        if kind == CaseKind::Covert && self.approver(signed, &[&g.by, &g.name]).is_none() {
            return Err(TrustError::new(format!(
                "{}'s grant on covert case {case} has no second admin's approval",
                g.name
            )));
        }
        Ok(g)
    }

    /// Checks a grant's first signature and who it names, without its approval or expiry.
    pub fn check_grant_request(&self, signed: &Signed, case: &CaseId) -> Result<GrantStatement, TrustError> {
        let g: GrantStatement = signed.parse()?;
        self.same_vault(&g.vault)?;
        if g.case != *case {
            return Err(TrustError::new(format!("the grant is for {}, not {case}", g.case)));
        }
        if g.by == g.name {
            return Err(TrustError::new("nobody can grant themselves access"));
        }
        let p = self.person(&g.name)?;
        if p.id != g.id {
            return Err(TrustError::new(format!("the grant names another key than {}'s enrolled one", g.name)));
        }
        self.signer(signed, &g.by, &[Role::Admin])?;
        Ok(g)
    }

    /// Checks that a recorder signed `recording` of `case` under key `version`, whose
    /// ciphertext has `sha256` (hex) and `size`.
    pub fn check_recording(
        &self,
        signed: &Signed,
        recording: &RecordingId,
        case: &CaseId,
        version: u32,
        sha256: &str,
        size: u64,
    ) -> Result<RecordingStatement, TrustError> {
        let r: RecordingStatement = signed.parse()?;
        self.same_vault(&r.vault)?;
        if r.recording != *recording {
            return Err(TrustError::new(format!("the signed recording is {}, not {recording}", r.recording)));
        }
        if r.case != *case || r.version != version {
            return Err(TrustError::new(format!(
                "the recording was signed for {} key version {}, not {case} version {version}",
                r.case, r.version
            )));
        }
        if !crate::ct_eq(r.sha256.as_bytes(), sha256.as_bytes()) || r.size != size {
            return Err(TrustError::new(format!(
                "the ciphertext ({size} bytes, SHA-256 {sha256}) is not what {} signed ({} bytes, SHA-256 {})",
                r.by, r.size, r.sha256
            )));
        }
        self.signer(signed, &r.by, &[Role::Recorder])?;
        Ok(r)
    }
}

fn roles_text(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ")
}

/// The time (`at:`, the last line) a statement says it was made.
fn statement_time(text: &str) -> Result<DateTime<Utc>, TrustError> {
    text.lines()
        .last()
        .and_then(|l| l.strip_prefix("at: "))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| TrustError::new("the statement does not end with its time (`at: ...`)"))
}

#[cfg(test)]
mod tests;
