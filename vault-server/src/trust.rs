//! The server's side of signed trust (`schema/TRUST.md`).
//!
//! The server is not what clients trust: they check every statement again from the root
//! they pinned. It checks statements when they arrive anyway, with the same code, so that
//! what it stores is what clients will accept, and a bad signature is refused at once
//! with a message the signer can act on rather than discovered later by someone else.

use chrono::NaiveDate;
use vault_core::api::CaseKind;
use vault_core::ids::{CaseId, RecordingId, UserName};
use vault_core::trust::{Directory, PublicId, RecordingStatement, Root, Signed, TrustError};

use crate::error::{ApiError, ApiResult};
use crate::store::{Store, StoredRecording};

/// The trust root and the directory the stored enrolments prove from it.
pub fn directory(s: &Store<'_>) -> ApiResult<(Root, Directory)> {
    let text = s.trust_root()?.ok_or_else(|| ApiError::internal("the database has no trust root"))?;
    let root = Root::parse(&text).map_err(|e| ApiError::damaged("the stored trust root is damaged", e))?;
    let (enrolments, disables) = s.trust_statements()?;
    let dir = Directory::build(&root, &enrolments, &disables);
    Ok((root, dir))
}

/// A statement that does not verify: the caller's fault, said plainly.
pub fn refused(what: &str, e: TrustError) -> ApiError {
    ApiError::bad_request(format!("{what} does not verify: {e}"))
}

/// Checks the caller's signed statement of a case key version before it is stored: it
/// names this case, kind, version and recipient, and the caller signed it.
pub fn check_key_statement(
    s: &Store<'_>,
    statement: &Signed,
    caller: &UserName,
    case: &CaseId,
    kind: CaseKind,
    version: u32,
    recipient: &str,
) -> ApiResult<()> {
    let (_, dir) = directory(s)?;
    let k = dir.check_case_key(statement, case, version, recipient).map_err(|e| refused("the key statement", e))?;
    if k.by != *caller || k.kind != kind {
        return Err(ApiError::bad_request(format!(
            "the key statement must be signed by you for a {kind} case (it names {} and a {} case)",
            k.by, k.kind
        )));
    }
    Ok(())
}

/// Checks the granting custodian's signed grant: this case, this grantee with their
/// enrolled key, this last day, signed by the caller.
pub fn check_grant_statement(
    s: &Store<'_>,
    statement: &Signed,
    caller: &UserName,
    case: &CaseId,
    grantee: &UserName,
    until: Option<NaiveDate>,
) -> ApiResult<()> {
    let (_, dir) = directory(s)?;
    let g = dir.check_grant_request(statement, case).map_err(|e| refused("the grant", e))?;
    if g.by != *caller || g.name != *grantee || g.until != until {
        return Err(ApiError::bad_request(format!(
            "the grant statement must be signed by you for {grantee} until {} (it names {} until {}, signed by {})",
            until.map_or_else(|| "no end".to_owned(), |d| d.to_string()),
            g.name,
            g.until.map_or_else(|| "no end".to_owned(), |d| d.to_string()),
            g.by
        )));
    }
    Ok(())
}

/// Checks that `statement` carries the caller's approving signature: a second admin,
/// neither the granting admin nor the grantee.
pub fn check_grant_approval(s: &Store<'_>, statement: &Signed, caller: &UserName, case: &CaseId) -> ApiResult<()> {
    let (_, dir) = directory(s)?;
    let g = dir.check_grant_request(statement, case).map_err(|e| refused("the grant", e))?;
    match dir.approver(statement, &[&g.by, &g.name]) {
        Some(p) if p.name == *caller => Ok(()),
        _ => Err(ApiError::bad_request("your approval does not verify: sign the grant statement with your own key")),
    }
}

/// Checks the caller's signed statement that `admin` becomes a custodian of `case`.
pub fn check_custodian_statement(
    s: &Store<'_>,
    statement: &Signed,
    caller: &UserName,
    case: &CaseId,
    admin: &UserName,
) -> ApiResult<()> {
    let (_, dir) = directory(s)?;
    let c = dir.check_custodian(statement, case).map_err(|e| refused("the custodian statement", e))?;
    if c.by != *caller || c.name != *admin {
        return Err(ApiError::bad_request(format!(
            "the custodian statement must be signed by you for {admin} (it names {}, signed by {})",
            c.name, c.by
        )));
    }
    Ok(())
}

/// Checks a recorder's signed statement of a recording it uploaded: for this vault, this
/// recording as the server recorded it, signed by the caller's enrolled key. Its SHA-256
/// is the recorder's own (the server kept only a CRC-32 of what it received, which the
/// recorder compared with what it sent); the server stores it as the recording's hash.
pub fn check_recording_statement(
    statement: &Signed,
    vault: &str,
    id: &RecordingId,
    stored: &StoredRecording,
    caller: &UserName,
    key: &PublicId,
) -> ApiResult<String> {
    let r: RecordingStatement = statement.parse().map_err(|e| refused("the recording's signature", e))?;
    if !r.sha256_well_formed() {
        return Err(ApiError::bad_request("the statement's sha256 is not 64 lowercase hex digits"));
    }
    let matches = r.vault == vault
        && r.recording == *id
        && r.case == stored.case_id
        && r.version == stored.key_version
        && r.size == stored.size
        && r.recorded_at == stored.recorded_at
        && r.announced == stored.announced
        && r.by == *caller;
    if !matches {
        return Err(ApiError::bad_request(format!(
            "the statement must be signed by you for {id} as it was stored: case {}, key version {}, {} bytes, \
             recorded at {}, announced {}",
            stored.case_id, stored.key_version, stored.size, stored.recorded_at, stored.announced
        )));
    }
    if statement.signatures.first().is_none_or(|s| s.by != *caller) || !statement.signature_verifies(0, key) {
        return Err(ApiError::bad_request("the recording's signature does not verify with your enrolled key"));
    }
    Ok(r.sha256)
}
