//! The key lifecycle of a case: custodians fetch their envelopes, add custodians, and
//! rotate the case key.
//!
//! The server never sees a case secret. A custodian's CLI unwraps the secret locally and
//! sends envelopes for other people; the server checks that the set of envelopes is
//! complete (every key version for a new holder, every holder for a new version) before
//! it accepts them, so no one is left unable to read what they are entitled to.

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::{Connection, params};
use serde_json::json;
use vault_core::api::{
    CaseKeyInfo, CaseStatus, Created, Holder, KeyEnvelope, NewCustodian, Role, Rotation, WrappedKey,
};
use vault_core::ids::{CaseId, UserName};
use vault_core::log::outcome;

use crate::AppState;
use crate::auth::{Admin, Caller, Fetcher};
use crate::datadir::now_rfc3339;
use crate::db::LogRecord;
use crate::error::{ApiError, ApiResult};
use crate::policy;
use crate::routes::{ApiJson, decode_small, logged, parse_id};

/// Refuses unless `caller` is a custodian of `case`.
fn require_custodian(tx: &Connection, case: &CaseId, caller: &Caller) -> ApiResult<()> {
    if policy::is_custodian(tx, case, &caller.name)? {
        Ok(())
    } else {
        Err(ApiError::denied(
            "you are not a custodian of this case, so you hold no key for it; ask a custodian (see `case show`)",
        ))
    }
}

/// Everyone who must hold the current key: enabled custodians and enabled users with a
/// pending or active grant (an expired grant keeps its envelope until it is revoked, so
/// that extending it needs no new envelope).
pub fn holders(tx: &Connection, case: &CaseId) -> ApiResult<Vec<Holder>> {
    let mut stmt = tx.prepare_cached(
        "SELECT u.name, u.recipient FROM users u WHERE u.enabled = 1 AND (
             EXISTS (SELECT 1 FROM custodians k WHERE k.case_id = ?1 AND k.admin = u.name)
          OR EXISTS (SELECT 1 FROM grants g WHERE g.case_id = ?1 AND g.grantee = u.name AND g.status <> 'revoked'))
         ORDER BY u.name",
    )?;
    let rows = stmt.query_map([case.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.map(|r| {
        let (user, recipient) = r?;
        Ok(Holder { user: user.parse().map_err(ApiError::internal)?, recipient })
    })
    .collect()
}

/// Checks that `envelopes` hold exactly one envelope for every key version of the case.
pub fn every_version(envelopes: &[WrappedKey], key_version: u32) -> ApiResult<Vec<(u32, Vec<u8>)>> {
    let mut versions: Vec<u32> = envelopes.iter().map(|e| e.version).collect();
    versions.sort_unstable();
    if versions != (1..=key_version).collect::<Vec<_>>() {
        return Err(ApiError::conflict(format!(
            "the case has key versions 1 to {key_version}; send exactly one envelope for each (run the command again)"
        )));
    }
    envelopes.iter().map(|e| Ok((e.version, decode_small(&e.envelope, "an envelope")?))).collect()
}

/// The envelopes `holder` has of each key version of `case`, oldest first.
fn envelopes_of(tx: &Connection, case: &CaseId, holder: &UserName) -> ApiResult<Vec<KeyEnvelope>> {
    let mut stmt = tx.prepare_cached(
        "SELECT k.version, k.recipient, e.envelope FROM case_keys k
         JOIN envelopes e ON e.case_id = k.case_id AND e.version = k.version AND e.holder = ?2
         WHERE k.case_id = ?1 ORDER BY k.version",
    )?;
    let keys = stmt
        .query_map(params![case.as_str(), holder.as_str()], |r| {
            Ok(KeyEnvelope { version: r.get(0)?, recipient: r.get(1)?, envelope: B64.encode(r.get::<_, Vec<u8>>(2)?) })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(keys)
}

pub async fn case_key(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<CaseKeyInfo>> {
    let id: CaseId = parse_id(&st, &caller, "case-key", &id).await?;
    let info = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "case-key", outcome::ALLOWED).case(&id), |tx, _| {
                let case = policy::admin_case(tx, &id)?;
                require_custodian(tx, &id, &caller)?;
                let keys = envelopes_of(tx, &id, &caller.name)?;
                if keys.len() as u32 != case.key_version {
                    return Err(ApiError::denied(
                        "you do not hold every key version of this case; ask another custodian",
                    ));
                }
                Ok(CaseKeyInfo { key_version: case.key_version, keys, holders: holders(tx, &id)? })
            })
        })
        .await?;
    Ok(Json(info))
}

/// A grantee's own envelopes of every key version it holds, so that its CLI can read
/// the encrypted call metadata of a listing without fetching recordings.
pub async fn own_envelopes(
    State(st): State<AppState>,
    Fetcher(caller): Fetcher,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<KeyEnvelope>>> {
    let id: CaseId = parse_id(&st, &caller, "case-envelopes", &id).await?;
    let list = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "case-envelopes", outcome::ALLOWED).case(&id), |tx, _| {
                policy::require_active_grant(tx, &id, &caller.name)?;
                envelopes_of(tx, &id, &caller.name)
            })
        })
        .await?;
    Ok(Json(list))
}

pub async fn add_custodian(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    body: ApiJson<NewCustodian>,
) -> ApiResult<Json<Created<UserName>>> {
    let id: CaseId = parse_id(&st, &caller, "add-custodian", &id).await?;
    let req = body.get(&st, &caller, "add-custodian").await?;
    let out = req.admin.clone();
    st.db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "add-custodian", outcome::ALLOWED).case(&id), |tx, rec| {
                rec.details = json!({ "custodian": req.admin.as_str() }).to_string();
                let case = policy::admin_case(tx, &id)?;
                if case.status == CaseStatus::Destroyed {
                    return Err(ApiError::conflict("the case's keys were destroyed"));
                }
                require_custodian(tx, &id, &caller)?;
                match policy::user_state(tx, &req.admin)? {
                    Some((Role::Admin, true)) => {}
                    Some((_, false)) => return Err(ApiError::conflict(format!("{} is disabled", req.admin))),
                    Some((role, true)) => {
                        return Err(ApiError::denied(format!(
                            "{} is {role}; only admins can be custodians",
                            req.admin
                        )));
                    }
                    None => return Err(ApiError::not_found(format!("no user {}", req.admin))),
                }
                if policy::is_custodian(tx, &id, &req.admin)? {
                    return Err(ApiError::conflict(format!("{} is already a custodian of this case", req.admin)));
                }
                for (version, envelope) in every_version(&req.envelopes, case.key_version)? {
                    tx.execute(
                        "INSERT OR REPLACE INTO envelopes (case_id, version, holder, envelope) VALUES (?1, ?2, ?3, ?4)",
                        params![id.as_str(), version, req.admin.as_str(), envelope],
                    )?;
                }
                tx.execute(
                    "INSERT INTO custodians (case_id, admin) VALUES (?1, ?2)",
                    params![id.as_str(), req.admin.as_str()],
                )?;
                Ok(())
            })
        })
        .await?;
    Ok(Json(Created { id: out }))
}

pub async fn rotate(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    body: ApiJson<Rotation>,
) -> ApiResult<Json<Created<u32>>> {
    let id: CaseId = parse_id(&st, &caller, "rotate-key", &id).await?;
    let req = body.get(&st, &caller, "rotate-key").await?;
    let version = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "rotate-key", outcome::ALLOWED).case(&id), |tx, rec| {
                let case = policy::admin_case(tx, &id)?;
                if matches!(case.status, CaseStatus::Closed | CaseStatus::Destroyed) {
                    return Err(ApiError::conflict(format!(
                        "the case is {}; its key is no longer rotated",
                        case.status
                    )));
                }
                require_custodian(tx, &id, &caller)?;
                if req.from_version != case.key_version {
                    return Err(ApiError::conflict("the case key changed meanwhile; run rotate-key again"));
                }
                let recipient = vault_core::crypto::parse_recipient(&req.recipient)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
                    .to_string();
                let expected: Vec<UserName> = holders(tx, &id)?.into_iter().map(|h| h.user).collect();
                let mut sent: Vec<UserName> = req.envelopes.iter().map(|e| e.user.clone()).collect();
                sent.sort();
                if sent != expected {
                    return Err(ApiError::conflict(
                        "the people holding this case's key changed meanwhile; run rotate-key again",
                    ));
                }
                let next = case.key_version + 1;
                tx.execute(
                    "INSERT INTO case_keys (case_id, version, recipient, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![id.as_str(), next, recipient, now_rfc3339()],
                )?;
                for e in &req.envelopes {
                    tx.execute(
                        "INSERT INTO envelopes (case_id, version, holder, envelope) VALUES (?1, ?2, ?3, ?4)",
                        params![id.as_str(), next, e.user.as_str(), decode_small(&e.envelope, "an envelope")?],
                    )?;
                }
                tx.execute("UPDATE cases SET key_version = ?2 WHERE id = ?1", params![id.as_str(), next])?;
                rec.details = json!({ "key_version": next, "holders": expected.len() }).to_string();
                Ok(next)
            })
        })
        .await?;
    Ok(Json(Created { id: version }))
}
