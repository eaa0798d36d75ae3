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

use std::collections::BTreeMap;

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
    /// The enrolment statement; `None` for the root's admins.
    pub enrolment: Option<Signed>,
    /// When an admin disabled them: what they signed from then on is not trusted, and
    /// nothing is wrapped to them any more.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// The people the certificates prove, checked from a root down.
#[derive(Debug, Clone)]
pub struct Directory {
    vault: String,
    people: BTreeMap<UserName, Person>,
    /// Names whose certificates did not verify, with why.
    rejected: BTreeMap<String, String>,
}

impl Directory {
    /// Checks `certs` (signed [`Enrol`] statements) from `root` down, and marks everyone
    /// a valid [`Disable`] statement names as disabled from its time on: what they signed
    /// before stays valid (an admin who leaves does not take the people they enrolled or
    /// the recordings they vouched for with them); what they signed after does not.
    pub fn build(root: &Root, certs: &[Signed], disables: &[Signed]) -> Directory {
        let first = admit(root, certs, &BTreeMap::new());
        let mut disabled: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for d in disables {
            let Ok(stmt) = d.parse::<Disable>() else { continue };
            let Ok(at) = statement_time(&d.statement) else { continue };
            if stmt.vault == root.vault && first.signer(d, &stmt.by, &[Role::Admin]).is_ok() {
                let t = disabled.entry(stmt.id.to_string()).or_insert(at);
                *t = (*t).min(at);
            }
        }
        admit(root, certs, &disabled)
    }

    pub fn vault(&self) -> &str {
        &self.vault
    }

    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.people.values()
    }

    /// The person called `name`, if their enrolment verifies and they are not disabled.
    pub fn person(&self, name: &UserName) -> Result<&Person, TrustError> {
        let p = self.known(name)?;
        match p.disabled_at {
            Some(t) => Err(TrustError::new(format!("{name} was disabled by an admin at {t}"))),
            None => Ok(p),
        }
    }

    /// The person called `name`, if their enrolment verifies, disabled or not.
    fn known(&self, name: &UserName) -> Result<&Person, TrustError> {
        self.people.get(name).ok_or_else(|| match self.rejected.get(name.as_str()) {
            Some(why) => TrustError::new(format!("{name}'s enrolment is not valid: {why}")),
            None => TrustError::new(format!("{name} has no enrolment signed by an admin of this vault")),
        })
    }

    /// Checks that the first signature of `signed` is by `by`, who holds one of `roles`
    /// and was not disabled when they signed it.
    pub fn signer(&self, signed: &Signed, by: &UserName, roles: &[Role]) -> Result<&Person, TrustError> {
        let first = signed.signatures.first().ok_or_else(|| TrustError::new("the statement is not signed"))?;
        if first.by != *by {
            return Err(TrustError::new(format!("the statement names {by} as signer but is signed by {}", first.by)));
        }
        let person = self.known(by)?;
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
    pub fn approver(&self, signed: &Signed, not: &[&UserName]) -> Option<&Person> {
        let at = statement_time(&signed.statement).ok()?;
        signed.signatures.iter().enumerate().skip(1).find_map(|(i, s)| {
            let p = self.people.get(&s.by)?;
            let active = p.disabled_at.is_none_or(|t| at < t);
            (p.role == Role::Admin && active && !not.contains(&&s.by) && signed.signature_verifies(i, &p.id))
                .then_some(p)
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
        if e.by == e.name {
            return Err(TrustError::new("nobody can enrol themselves"));
        }
        self.signer(signed, &e.by, &[Role::Admin])?;
        if e.role == Role::Admin && !pending && self.approver(signed, &[&e.by, &e.name]).is_none() {
            return Err(TrustError::new(format!(
                "admin {}'s enrolment by {} has no second admin's approval (`vault-cli user approve {}`)",
                e.name, e.by, e.name
            )));
        }
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

/// The directory `certs` prove from `root`, with everyone in `disabled` (public ids)
/// marked disabled from its time on.
fn admit(root: &Root, certs: &[Signed], disabled: &BTreeMap<String, DateTime<Utc>>) -> Directory {
    let mut dir = Directory { vault: root.vault.clone(), people: BTreeMap::new(), rejected: BTreeMap::new() };
    for (name, id) in &root.admins {
        let disabled_at = disabled.get(&id.to_string()).copied();
        dir.people.insert(
            name.clone(),
            Person { name: name.clone(), role: Role::Admin, id: id.clone(), enrolment: None, disabled_at },
        );
    }
    let mut pending: Vec<&Signed> = certs.iter().collect();
    loop {
        let mut progress = false;
        let mut still = Vec::new();
        for cert in pending {
            let e = match cert.parse::<Enrol>() {
                Ok(e) => e,
                Err(why) => {
                    dir.rejected.insert(format!("(unreadable #{})", dir.rejected.len()), why.to_string());
                    continue;
                }
            };
            if let Some(p) = dir.people.get(&e.name) {
                // A second key for a root admin is refused; two for anyone else make
                // both doubtful.
                if p.id != e.id && p.enrolment.is_some() {
                    dir.rejected.insert(e.name.to_string(), "two enrolments with different keys".into());
                    dir.people.remove(&e.name);
                }
                continue;
            }
            match dir.check_enrolment(cert, false) {
                Ok(e) => {
                    dir.rejected.remove(e.name.as_str());
                    let disabled_at = disabled.get(&e.id.to_string()).copied();
                    dir.people.insert(
                        e.name.clone(),
                        Person { name: e.name, role: e.role, id: e.id, enrolment: Some(cert.clone()), disabled_at },
                    );
                    progress = true;
                }
                Err(why) => {
                    dir.rejected.insert(e.name.to_string(), why.to_string());
                    still.push(cert);
                }
            }
        }
        pending = still;
        if !progress || pending.is_empty() {
            return dir;
        }
    }
}

#[cfg(test)]
mod tests;
