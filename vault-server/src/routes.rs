//! The HTTP routes and their handlers.
//!
//! Each handler names its access-log action, takes a role extractor from [`crate::auth`]
//! so the role check cannot be forgotten, and does its database work inside [`logged`],
//! which writes the allowed or refused entry in the same transaction as the change.

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::{Connection, OptionalExtension, params};
use serde::de::DeserializeOwned;
use serde_json::json;
use vault_core::api::*;
use vault_core::challenge::Challenge;
use vault_core::ids::{CaseId, InvalidId, RecordingId, UserName};
use vault_core::log::outcome;
use zeroize::Zeroizing;

use crate::AppState;
use crate::auth::{Admin, Caller, Fetcher, PendingChallenge, Reader, Recorder};
use crate::blobs::UploadError;
use crate::datadir::now_rfc3339;
use crate::db::{LogRecord, append_log};
use crate::error::{ApiError, ApiResult};
use crate::policy;

/// Largest JSON request body.
const JSON_LIMIT: usize = 64 * 1024;
/// Largest envelope or encrypted call-metadata blob.
const SMALL_BLOB_LIMIT: usize = 4 * 1024;

/// The access-log action of each route: one table, used by handlers and extractors.
pub fn action_name(method: &str, path: &str) -> &'static str {
    match (method, path) {
        ("POST", "/v1/login/challenge") => "login-challenge",
        ("POST", "/v1/login") => "login",
        ("GET", "/v1/users") => "user-list",
        ("POST", "/v1/users") => "user-add",
        ("GET", "/v1/users/{name}") => "user-show",
        ("POST", "/v1/users/{name}/disable") => "user-disable",
        ("GET", "/v1/cases") => "case-list",
        ("POST", "/v1/cases") => "case-create",
        ("GET", "/v1/cases/{id}") => "case-show",
        ("POST", "/v1/cases/{id}/approve") => "case-approve",
        ("POST", "/v1/cases/{id}/close") => "case-close",
        ("POST", "/v1/cases/{id}/notify") => "notify",
        ("POST", "/v1/cases/{id}/release-hold") => "release-hold",
        ("GET", "/v1/report") => "report",
        ("GET", "/v1/cases/{id}/key") => "case-key",
        ("POST", "/v1/cases/{id}/custodians") => "add-custodian",
        ("GET", "/v1/cases/{id}/envelopes") => "case-envelopes",
        ("POST", "/v1/cases/{id}/rotate") => "rotate-key",
        ("GET", "/v1/cases/{id}/recipient") => "case-recipient",
        ("POST", "/v1/cases/{id}/grants") => "grant",
        ("POST", "/v1/cases/{id}/grants/{user}/approve") => "grant-approve",
        ("POST", "/v1/cases/{id}/grants/{user}/revoke") => "revoke",
        ("GET", "/v1/cases/{id}/recordings") => "recording-list",
        ("POST", "/v1/cases/{id}/recordings") => "upload",
        ("POST", "/v1/recordings/{id}/fetch") => "fetch",
        ("GET", "/v1/audit/checkpoint") => "audit-checkpoint",
        ("GET", "/v1/audit/export") => "audit-export",
        ("GET", "/v1/audit/entries") => "audit-log",
        _ => "request",
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/login/challenge", post(login_challenge))
        .route("/v1/login", post(login))
        .route("/v1/users", get(user_list).post(user_add))
        .route("/v1/users/{name}", get(user_show))
        .route("/v1/users/{name}/disable", post(user_disable))
        .route("/v1/cases", get(case_list).post(case_create))
        .route("/v1/cases/{id}", get(case_show))
        .route("/v1/cases/{id}/approve", post(case_approve))
        .route("/v1/cases/{id}/close", post(crate::lifecycle::close))
        .route("/v1/cases/{id}/notify", post(crate::lifecycle::notify))
        .route("/v1/cases/{id}/release-hold", post(crate::lifecycle::release_hold))
        .route("/v1/report", get(crate::lifecycle::report))
        .route("/v1/cases/{id}/key", get(crate::keys::case_key))
        .route("/v1/cases/{id}/custodians", post(crate::keys::add_custodian))
        .route("/v1/cases/{id}/envelopes", get(crate::keys::own_envelopes))
        .route("/v1/cases/{id}/rotate", post(crate::keys::rotate))
        .route("/v1/cases/{id}/recipient", get(case_recipient))
        .route("/v1/cases/{id}/grants", post(grant))
        .route("/v1/cases/{id}/grants/{user}/approve", post(grant_approve))
        .route("/v1/cases/{id}/grants/{user}/revoke", post(revoke))
        .route("/v1/cases/{id}/recordings", get(recording_list).post(upload))
        .route("/v1/recordings/{id}/fetch", post(fetch))
        .route("/v1/audit/checkpoint", get(crate::audit::get_checkpoint))
        .route("/v1/audit/export", get(crate::audit::export))
        .route("/v1/audit/entries", get(crate::audit::entries))
        .fallback(|| async { ApiError::not_found("no such API route; is vault-cli the same version as the server?") })
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .with_state(state)
}

/// Runs `f` in a savepoint of the writer's group transaction and appends `rec` to the
/// access log in it: as allowed if `f` succeeds, as refused (in a fresh savepoint, with
/// `f`'s changes rolled back) if `f` returns a client error. Server errors roll back and
/// write nothing. The caller is answered only after the group commit (see `db`).
pub fn logged<R>(
    c: &mut Connection,
    mut rec: LogRecord,
    f: impl FnOnce(&Connection, &mut LogRecord) -> ApiResult<R>,
) -> ApiResult<R> {
    let tx = c.savepoint()?;
    match f(&tx, &mut rec) {
        Ok(r) => {
            rec.outcome = outcome::ALLOWED;
            append_log(&tx, &rec)?;
            tx.commit()?;
            Ok(r)
        }
        Err(e) if e.status.is_client_error() => {
            drop(tx);
            let tx = c.savepoint()?;
            rec.outcome = outcome::REFUSED;
            rec.details = json!({ "refusal": e.message, "why": e.detail }).to_string();
            append_log(&tx, &rec)?;
            tx.commit()?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// A JSON body whose rejection is logged as a refusal rather than answered silently.
pub struct ApiJson<T>(Result<T, JsonRejection>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = std::convert::Infallible;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiJson(Json::<T>::from_request(req, state).await.map(|Json(v)| v)))
    }
}

impl<T> ApiJson<T> {
    pub async fn get(self, st: &AppState, actor: &Caller, action: &'static str) -> ApiResult<T> {
        match self.0 {
            Ok(v) => Ok(v),
            Err(rej) => {
                let msg = format!("malformed request: {}", rej.body_text());
                let rec = LogRecord::new(actor.name.as_str(), action, outcome::REFUSED);
                let err = if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large("request body too large")
                } else {
                    ApiError::bad_request(msg)
                };
                Err(st.db.refuse(rec.details(json!({ "refusal": err.message })), err).await)
            }
        }
    }
}

/// Parses an id from a path, logging a refusal if it is malformed.
pub async fn parse_id<T: std::str::FromStr<Err = InvalidId>>(
    st: &AppState,
    actor: &Caller,
    action: &'static str,
    raw: &str,
) -> ApiResult<T> {
    match raw.parse::<T>() {
        Ok(id) => Ok(id),
        Err(e) => {
            let msg = e.to_string();
            let rec = LogRecord::new(actor.name.as_str(), action, outcome::REFUSED).details(json!({ "refusal": msg }));
            Err(st.db.refuse(rec, ApiError::bad_request(msg)).await)
        }
    }
}

pub fn decode_small(b64: &str, what: &str) -> ApiResult<Vec<u8>> {
    let bytes = B64.decode(b64.trim()).map_err(|_| ApiError::bad_request(format!("{what} is not valid base64")))?;
    if bytes.len() > SMALL_BLOB_LIMIT
        || !vault_core::crypto::looks_like_age(&bytes)
        || !vault_core::crypto::has_complete_header(&bytes)
    {
        return Err(ApiError::bad_request(format!("{what} is not a small age ciphertext")));
    }
    Ok(bytes)
}

pub fn require_text(v: &str, what: &str) -> ApiResult<()> {
    if v.trim().is_empty() {
        return Err(ApiError::bad_request(format!("{what} must not be empty")));
    }
    if v.len() > 1000 {
        return Err(ApiError::bad_request(format!("{what} is longer than 1000 bytes")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------- login

async fn login_challenge(
    State(st): State<AppState>,
    body: Result<Json<ChallengeRequest>, JsonRejection>,
) -> ApiResult<Json<ChallengeResponse>> {
    let Json(req) = body.map_err(|r| ApiError::bad_request(format!("malformed request: {}", r.body_text())))?;
    let lookup = req.user.clone();
    let row: Option<(String, bool)> = st
        .db
        .read(move |c| {
            Ok(c.query_row("SELECT recipient, enabled FROM users WHERE name = ?1", [lookup.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
        })
        .await?;
    let challenge = Challenge {
        origin: st.origin.clone(),
        user: req.user.clone(),
        nonce: hex::encode(vault_core::ids::random_bytes::<32>()),
        expires: chrono::Utc::now().timestamp() + crate::auth::CHALLENGE_LIFETIME_SECS,
    };
    let text = Zeroizing::new(challenge.to_text());
    let challenge_id = vault_core::ids::random_hex16();
    let ciphertext = match row {
        Some((recipient, true)) => {
            let recipient = vault_core::crypto::parse_recipient(&recipient).map_err(ApiError::internal)?;
            st.challenges.insert(
                challenge_id.clone(),
                PendingChallenge {
                    user: req.user.clone(),
                    expected_response: vault_core::challenge::response(text.as_bytes()),
                    expires: challenge.expires,
                },
            )?;
            vault_core::crypto::encrypt_small(&recipient, text.as_bytes())
        }
        _ => {
            // Answer exactly as for a real user, so the reply does not reveal who is
            // enrolled; the decoy can never be answered.
            let rec = LogRecord::new(req.user.as_str(), "login", outcome::REFUSED)
                .details(json!({ "refusal": "unknown or disabled user" }));
            st.db.log(rec).await?;
            let decoy = age::x25519::Identity::generate().to_public();
            vault_core::crypto::encrypt_small(&decoy, text.as_bytes())
        }
    };
    Ok(Json(ChallengeResponse { challenge_id, ciphertext: B64.encode(ciphertext) }))
}

async fn login(
    State(st): State<AppState>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult<Json<LoginResponse>> {
    let Json(req) = body.map_err(|r| ApiError::bad_request(format!("malformed request: {}", r.body_text())))?;
    let failed = ApiError::unauthenticated(
        "login failed: the challenge is unknown, expired or was answered wrongly; run `vault-cli login` again",
    );
    let Some(pending) = st.challenges.take(&req.challenge_id) else {
        let rec = LogRecord::new("-", "login", outcome::REFUSED)
            .details(json!({ "refusal": "unknown, used or expired challenge" }));
        return Err(st.db.refuse(rec, failed).await);
    };
    let user = pending.user.clone();
    let ok = pending.expires > chrono::Utc::now().timestamp()
        && vault_core::ct_eq(pending.expected_response.as_bytes(), req.response.trim().as_bytes());
    let tokens_user = user.clone();
    let role = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(user.as_str(), "login", outcome::ALLOWED), |tx, _| {
                if !ok {
                    return Err(failed);
                }
                match policy::user_state(tx, &user)? {
                    Some((role, true)) => Ok(role),
                    _ => Err(ApiError::unauthenticated("login failed: your account is disabled")),
                }
            })
        })
        .await?;
    let (token, expires_at) = st.tokens.issue(&tokens_user)?;
    Ok(Json(LoginResponse { token, expires_at, role }))
}

// ---------------------------------------------------------------------------- users

/// Maps a parse failure of a stored value to a database error.
fn bad_column<E>(i: usize) -> impl FnOnce(E) -> rusqlite::Error {
    move |_| rusqlite::Error::InvalidColumnType(i, "text".into(), rusqlite::types::Type::Text)
}

fn user_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserInfo> {
    Ok(UserInfo {
        name: r.get::<_, String>(0)?.parse().map_err(bad_column(0))?,
        role: r.get::<_, String>(1)?.parse().map_err(bad_column(1))?,
        recipient: r.get(2)?,
        enabled: r.get(3)?,
        created_at: r.get(4)?,
        created_by: r.get(5)?,
    })
}

const USER_COLUMNS: &str = "name, role, recipient, enabled, created_at, created_by";

async fn user_list(State(st): State<AppState>, Admin(caller): Admin) -> ApiResult<Json<Vec<UserInfo>>> {
    let users = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "user-list", outcome::ALLOWED), |tx, _| {
                let mut stmt = tx.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
                let users = stmt.query_map([], user_info)?.collect::<Result<Vec<_>, _>>()?;
                Ok(users)
            })
        })
        .await?;
    Ok(Json(users))
}

async fn user_show(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<UserInfo>> {
    let name: UserName = parse_id(&st, &caller, "user-show", &name).await?;
    let user = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "user-show", outcome::ALLOWED), |tx, rec| {
                rec.details = json!({ "user": name.as_str() }).to_string();
                tx.query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"), [name.as_str()], user_info)
                    .optional()?
                    .ok_or_else(|| {
                        ApiError::not_found(format!("no user {name}; `vault-cli user list` shows who is enrolled"))
                    })
            })
        })
        .await?;
    Ok(Json(user))
}

async fn user_add(
    State(st): State<AppState>,
    Admin(caller): Admin,
    body: ApiJson<NewUser>,
) -> ApiResult<Json<Created<UserName>>> {
    let req = body.get(&st, &caller, "user-add").await?;
    let name = req.name.clone();
    st.db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "user-add", outcome::ALLOWED), |tx, rec| {
                rec.details = json!({ "user": req.name.as_str(), "role": req.role.as_str() }).to_string();
                let recipient = vault_core::crypto::parse_recipient(&req.recipient)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
                    .to_string();
                let exists: bool = tx.prepare("SELECT 1 FROM users WHERE name = ?1")?.exists([req.name.as_str()])?;
                if exists {
                    return Err(ApiError::conflict(format!("user {} already exists; pick another name", req.name)));
                }
                let taken: bool = tx.prepare("SELECT 1 FROM users WHERE recipient = ?1")?.exists([&recipient])?;
                if taken {
                    return Err(ApiError::conflict(
                        "that recipient is already enrolled for another user; every person needs their own identity (vault-cli keygen)",
                    ));
                }
                tx.execute(
                    "INSERT INTO users (name, role, recipient, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![req.name.as_str(), req.role.as_str(), recipient, now_rfc3339(), caller.name.as_str()],
                )?;
                Ok(())
            })
        })
        .await?;
    Ok(Json(Created { id: name }))
}

async fn user_disable(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<Created<UserName>>> {
    let name: UserName = parse_id(&st, &caller, "user-disable", &name).await?;
    let out = name.clone();
    st.db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "user-disable", outcome::ALLOWED), |tx, rec| {
                if name == caller.name {
                    return Err(ApiError::bad_request("you cannot disable yourself; ask another admin"));
                }
                let enabled: Option<bool> = tx
                    .query_row("SELECT enabled FROM users WHERE name = ?1", [name.as_str()], |r| r.get(0))
                    .optional()?;
                match enabled {
                    None => return Err(ApiError::not_found(format!("no user {name}"))),
                    Some(false) => return Err(ApiError::conflict(format!("user {name} is already disabled"))),
                    Some(true) => {}
                }
                // A case must never lose its last custodian: nobody could grant on it again.
                let orphaned: Vec<String> = tx
                    .prepare(
                        "SELECT k.case_id FROM custodians k JOIN cases c ON c.id = k.case_id
                         WHERE k.admin = ?1 AND c.status <> 'destroyed' AND NOT EXISTS (
                             SELECT 1 FROM custodians o JOIN users u ON u.name = o.admin
                             WHERE o.case_id = k.case_id AND o.admin <> ?1 AND u.enabled = 1)
                         ORDER BY k.case_id",
                    )?
                    .query_map([name.as_str()], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                if !orphaned.is_empty() {
                    return Err(ApiError::conflict(format!(
                        "{name} is the only custodian of {}; make another admin a custodian first (vault-cli case add-custodian CASE ADMIN)",
                        orphaned.join(", ")
                    )));
                }
                tx.execute("UPDATE users SET enabled = 0 WHERE name = ?1", [name.as_str()])?;
                let grants = tx.execute(
                    "UPDATE grants SET status = 'revoked', revoked_at = ?2 WHERE grantee = ?1 AND status <> 'revoked'",
                    params![name.as_str(), now_rfc3339()],
                )?;
                let custodianships = tx.execute("DELETE FROM custodians WHERE admin = ?1", [name.as_str()])?;
                let envelopes = tx.execute("DELETE FROM envelopes WHERE holder = ?1", [name.as_str()])?;
                rec.details = json!({
                    "user": name.as_str(),
                    "grants_revoked": grants,
                    "custodianships_ended": custodianships,
                    "envelopes_deleted": envelopes,
                })
                .to_string();
                Ok(())
            })
        })
        .await?;
    Ok(Json(Created { id: out }))
}

// ---------------------------------------------------------------------------- cases

type LifecycleRow = (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, bool);

fn case_info(tx: &Connection, id: &CaseId) -> ApiResult<Option<CaseInfo>> {
    let row = tx
        .prepare_cached(
            "SELECT c.kind, c.title, c.status, c.retention_days, c.basis, c.key_version, c.created_by, c.created_at, k.recipient
             FROM cases c JOIN case_keys k ON k.case_id = c.id AND k.version = c.key_version WHERE c.id = ?1",
        )?
        .query_row([id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, u32>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
            ))
        })
        .optional()?;
    let Some((kind, title, status, retention_days, basis, key_version, created_by, created_at, recipient)) = row else {
        return Ok(None);
    };
    let custodians = tx
        .prepare_cached("SELECT admin FROM custodians WHERE case_id = ?1 ORDER BY admin")?
        .query_map([id.as_str()], |r| r.get::<_, String>(0))?
        .map(|n| n.map_err(ApiError::from).and_then(|n| n.parse().map_err(ApiError::internal)))
        .collect::<ApiResult<Vec<UserName>>>()?;
    let today = policy::today();
    let grants = tx
        .prepare_cached(
            "SELECT grantee, status, reason, until, granted_by, created_at FROM grants WHERE case_id = ?1 ORDER BY grantee",
        )?
        .query_map([id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?
        .map(|g| {
            let (user, status, reason, until, granted_by, created_at) = g?;
            let until = until.and_then(|u| u.parse().ok());
            Ok(GrantInfo {
                user: user.parse().map_err(ApiError::internal)?,
                status: policy::effective_status(&status, until, today),
                reason,
                until,
                granted_by: granted_by.parse().map_err(ApiError::internal)?,
                created_at,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let recordings: i64 =
        tx.prepare_cached("SELECT recording_count FROM cases WHERE id = ?1")?.query_row([id.as_str()], |r| r.get(0))?;
    let (ap_ref, ap_date, outcome, closed_at, closed_by, legal_hold): LifecycleRow = tx
        .prepare_cached("SELECT ap_ref, ap_date, outcome, closed_at, closed_by, legal_hold FROM cases WHERE id = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
    let destroyed = tx
        .prepare_cached(
            "SELECT recording_id, sha256, size, recorded_at, destroyed_at, destroyed_by, cause
             FROM destroyed_recordings WHERE case_id = ?1 ORDER BY destroyed_at, recording_id",
        )?
        .query_map([id.as_str()], |r| {
            Ok(DestroyedRecording {
                id: r.get::<_, String>(0)?.parse().map_err(bad_column(0))?,
                sha256: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                recorded_at: r.get(3)?,
                destroyed_at: r.get(4)?,
                destroyed_by: r.get(5)?,
                cause: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(CaseInfo {
        ap_ref,
        ap_date,
        outcome: outcome.map(|o| o.parse()).transpose().map_err(ApiError::internal)?,
        closed_at,
        closed_by,
        legal_hold,
        notification: crate::lifecycle::notification(tx, id)?,
        destroyed,
        id: id.clone(),
        kind: kind.parse().map_err(ApiError::internal)?,
        title,
        status: status.parse().map_err(ApiError::internal)?,
        retention_days,
        basis: serde_json::from_str(&basis).map_err(ApiError::internal)?,
        recipient,
        key_version,
        created_by: created_by.parse().map_err(ApiError::internal)?,
        created_at,
        custodians,
        grants,
        recordings: recordings as u64,
    }))
}

/// Whether `caller` may see a case's metadata: admins and auditors see every case,
/// investigators the cases they hold a pending or active grant on.
fn may_see_case(tx: &Connection, caller: &Caller, id: &CaseId) -> ApiResult<bool> {
    Ok(match caller.role {
        Role::Admin | Role::Auditor => true,
        Role::Investigator => policy::load_grant(tx, id, &caller.name)?.is_some_and(|g| g.stored_status != "revoked"),
        Role::Recorder => false,
    })
}

async fn case_list(State(st): State<AppState>, Reader(caller): Reader) -> ApiResult<Json<Vec<CaseInfo>>> {
    let cases = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "case-list", outcome::ALLOWED), |tx, _| {
                let ids = tx
                    .prepare("SELECT id FROM cases ORDER BY created_at, id")?
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut out = Vec::new();
                for id in ids {
                    let id: CaseId = id.parse().map_err(ApiError::internal)?;
                    if may_see_case(tx, &caller, &id)? {
                        out.extend(case_info(tx, &id)?);
                    }
                }
                Ok(out)
            })
        })
        .await?;
    Ok(Json(cases))
}

async fn case_show(
    State(st): State<AppState>,
    Reader(caller): Reader,
    Path(id): Path<String>,
) -> ApiResult<Json<CaseInfo>> {
    let id: CaseId = parse_id(&st, &caller, "case-show", &id).await?;
    let info = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "case-show", outcome::ALLOWED).case(&id), |tx, _| {
                let hidden =
                    || ApiError::denied("access denied: you have no grant on this case (or it does not exist)");
                if !may_see_case(tx, &caller, &id)? {
                    return Err(hidden());
                }
                case_info(tx, &id)?.ok_or_else(|| match caller.role {
                    Role::Admin | Role::Auditor => {
                        ApiError::not_found(format!("no case {id}; `vault-cli case list` shows the cases"))
                    }
                    _ => hidden(),
                })
            })
        })
        .await?;
    Ok(Json(info))
}

async fn case_create(
    State(st): State<AppState>,
    Admin(caller): Admin,
    body: ApiJson<NewCase>,
) -> ApiResult<Json<Created<CaseId>>> {
    let req = body.get(&st, &caller, "case-create").await?;
    let id = CaseId::random();
    let out = id.clone();
    st.db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "case-create", outcome::ALLOWED).case(&id), |tx, rec| {
                let kind = req.basis.kind();
                rec.details = json!({ "kind": kind.as_str() }).to_string();
                req.basis.validate().map_err(ApiError::bad_request)?;
                require_text(&req.title, "--title")?;
                let retention = req.retention_days.unwrap_or_else(|| default_retention_days(kind));
                if !(1..=36_500).contains(&retention) {
                    return Err(ApiError::bad_request("--retention-days must be between 1 and 36500"));
                }
                let recipient = vault_core::crypto::parse_recipient(&req.recipient)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
                    .to_string();
                let envelope = decode_small(&req.envelope, "the case key envelope")?;
                let status = if kind == CaseKind::Covert { CaseStatus::PendingApproval } else { CaseStatus::Open };
                let now = now_rfc3339();
                tx.execute(
                    "INSERT INTO cases (id, kind, title, status, retention_days, basis, created_by, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        id.as_str(),
                        kind.as_str(),
                        req.title.trim(),
                        status.as_str(),
                        retention,
                        serde_json::to_string(&req.basis).map_err(ApiError::internal)?,
                        caller.name.as_str(),
                        now
                    ],
                )?;
                tx.execute(
                    "INSERT INTO case_keys (case_id, version, recipient, created_at) VALUES (?1, 1, ?2, ?3)",
                    params![id.as_str(), recipient, now],
                )?;
                tx.execute(
                    "INSERT INTO custodians (case_id, admin) VALUES (?1, ?2)",
                    params![id.as_str(), caller.name.as_str()],
                )?;
                tx.execute(
                    "INSERT INTO envelopes (case_id, version, holder, envelope) VALUES (?1, 1, ?2, ?3)",
                    params![id.as_str(), caller.name.as_str(), envelope],
                )?;
                rec.details = json!({ "kind": kind.as_str(), "status": status.as_str(), "retention_days": retention })
                    .to_string();
                Ok(())
            })
        })
        .await?;
    Ok(Json(Created { id: out }))
}

async fn case_approve(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    body: ApiJson<Approval>,
) -> ApiResult<Json<Created<CaseId>>> {
    let id: CaseId = parse_id(&st, &caller, "case-approve", &id).await?;
    let req = body.get(&st, &caller, "case-approve").await?;
    let out = id.clone();
    st.db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "case-approve", outcome::ALLOWED).case(&id), |tx, rec| {
                let case = policy::admin_case(tx, &id)?;
                require_text(&req.ap_ref, "--ap-ref")?;
                let date = req.date.unwrap_or_else(policy::today);
                rec.details = json!({ "ap_ref": req.ap_ref, "date": date.to_string() }).to_string();
                if case.kind != CaseKind::Covert {
                    return Err(ApiError::bad_request("only covert cases need the AP's prior-check approval"));
                }
                if case.status != CaseStatus::PendingApproval {
                    return Err(ApiError::conflict(format!("the case is {}, not pending approval", case.status)));
                }
                if date > policy::today() {
                    return Err(ApiError::bad_request(
                        "the approval date is in the future; record it once the AP has approved",
                    ));
                }
                tx.execute(
                    "UPDATE cases SET status = 'open', ap_ref = ?2, ap_date = ?3 WHERE id = ?1",
                    params![id.as_str(), req.ap_ref.trim(), date.to_string()],
                )?;
                Ok(())
            })
        })
        .await?;
    Ok(Json(Created { id: out }))
}

/// Why a case takes no recordings now, or `None` if it does.
fn upload_refusal(case: &policy::CaseRow) -> Option<ApiError> {
    match case.status {
        CaseStatus::Open => None,
        CaseStatus::PendingApproval => Some(ApiError::denied(
            "this covert case takes no recordings until an admin records the AP's prior-check approval (case approve)",
        )),
        CaseStatus::Closed | CaseStatus::Destroyed => {
            Some(ApiError::denied("this case is closed and takes no new recordings"))
        }
    }
}

async fn case_recipient(
    State(st): State<AppState>,
    Recorder(caller): Recorder,
    Path(id): Path<String>,
) -> ApiResult<Json<CaseRecipient>> {
    let id: CaseId = parse_id(&st, &caller, "case-recipient", &id).await?;
    let info = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "case-recipient", outcome::ALLOWED).case(&id), |tx, _| {
                let case = policy::load_case(tx, &id)?.ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
                if let Some(e) = upload_refusal(&case) {
                    return Err(e);
                }
                let recipient: String = tx.query_row(
                    "SELECT recipient FROM case_keys WHERE case_id = ?1 AND version = ?2",
                    params![id.as_str(), case.key_version],
                    |r| r.get(0),
                )?;
                Ok(CaseRecipient { recipient, key_version: case.key_version })
            })
        })
        .await?;
    Ok(Json(info))
}

// ---------------------------------------------------------------------------- grants

async fn grant(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    body: ApiJson<NewGrant>,
) -> ApiResult<Json<GrantInfo>> {
    let id: CaseId = parse_id(&st, &caller, "grant", &id).await?;
    let req = body.get(&st, &caller, "grant").await?;
    let info = st
        .db
        .call(move |c| {
            let rec =
                LogRecord::new(caller.name.as_str(), "grant", outcome::ALLOWED).case(&id).reason(req.reason.clone());
            logged(c, rec, |tx, rec| {
                rec.details = json!({ "grantee": req.user.as_str(), "until": req.until }).to_string();
                require_text(&req.reason, "--reason")?;
                if req.user == caller.name {
                    return Err(ApiError::denied("you cannot grant yourself access; another admin must grant it"));
                }
                let case = policy::admin_case(tx, &id)?;
                if matches!(case.status, CaseStatus::Closed | CaseStatus::Destroyed) {
                    return Err(ApiError::conflict(format!("the case is {}; no new grants", case.status)));
                }
                match policy::user_state(tx, &req.user)? {
                    None => return Err(ApiError::not_found(format!("no user {}", req.user))),
                    Some((_, false)) => return Err(ApiError::conflict(format!("user {} is disabled", req.user))),
                    Some((role, true)) if !matches!(role, Role::Admin | Role::Investigator) => {
                        return Err(ApiError::denied(format!(
                            "user {} is {role}; only investigators and admins can be granted access to recordings",
                            req.user
                        )));
                    }
                    Some(_) => {}
                }
                if !policy::is_custodian(tx, &id, &caller.name)? {
                    return Err(ApiError::denied("only a custodian of the case can grant: you hold no key for it"));
                }
                if req.until.is_some_and(|u| u < policy::today()) {
                    return Err(ApiError::bad_request("--until is in the past; a grant must end today or later"));
                }
                let envelopes = crate::keys::every_version(&req.envelopes, case.key_version)?;
                if let Some(g) = policy::load_grant(tx, &id, &req.user)?
                    && g.stored_status != "revoked"
                {
                    return Err(ApiError::conflict(format!(
                        "{} already has a {} grant on this case; revoke it first to change it",
                        req.user, g.stored_status
                    )));
                }
                let status = if case.kind == CaseKind::Covert { GrantStatus::Pending } else { GrantStatus::Active };
                let now = now_rfc3339();
                tx.execute(
                    "INSERT OR REPLACE INTO grants (case_id, grantee, status, reason, until, granted_by, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        id.as_str(),
                        req.user.as_str(),
                        status.as_str(),
                        req.reason.trim(),
                        req.until.map(|d| d.to_string()),
                        caller.name.as_str(),
                        now
                    ],
                )?;
                for (version, envelope) in envelopes {
                    tx.execute(
                        "INSERT OR REPLACE INTO envelopes (case_id, version, holder, envelope) VALUES (?1, ?2, ?3, ?4)",
                        params![id.as_str(), version, req.user.as_str(), envelope],
                    )?;
                }
                rec.details =
                    json!({ "grantee": req.user.as_str(), "until": req.until, "status": status.as_str() }).to_string();
                Ok(GrantInfo {
                    user: req.user.clone(),
                    status,
                    reason: req.reason.trim().to_owned(),
                    until: req.until,
                    granted_by: caller.name.clone(),
                    created_at: now,
                })
            })
        })
        .await?;
    Ok(Json(info))
}

async fn grant_approve(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult<Json<Created<UserName>>> {
    let id: CaseId = parse_id(&st, &caller, "grant-approve", &id).await?;
    let user: UserName = parse_id(&st, &caller, "grant-approve", &user).await?;
    let out = user.clone();
    st.db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "grant-approve", outcome::ALLOWED).case(&id), |tx, rec| {
                rec.details = json!({ "grantee": user.as_str() }).to_string();
                policy::admin_case(tx, &id)?;
                let g = policy::load_grant(tx, &id, &user)?
                    .ok_or_else(|| ApiError::not_found(format!("{user} has no grant on this case")))?;
                if g.stored_status != "pending" {
                    return Err(ApiError::conflict(format!("the grant is {}, not pending", g.stored_status)));
                }
                if g.granted_by == caller.name.as_str() {
                    return Err(ApiError::denied(
                        "four eyes: the admin who requested a grant cannot approve it; ask a second admin",
                    ));
                }
                if user == caller.name {
                    return Err(ApiError::denied("you cannot approve a grant to yourself"));
                }
                tx.execute(
                    "UPDATE grants SET status = 'active', approved_by = ?3 WHERE case_id = ?1 AND grantee = ?2",
                    params![id.as_str(), user.as_str(), caller.name.as_str()],
                )?;
                Ok(())
            })
        })
        .await?;
    Ok(Json(Created { id: out }))
}

async fn revoke(
    State(st): State<AppState>,
    Admin(caller): Admin,
    Path((id, user)): Path<(String, String)>,
    body: ApiJson<Reason>,
) -> ApiResult<Json<Created<UserName>>> {
    let id: CaseId = parse_id(&st, &caller, "revoke", &id).await?;
    let user: UserName = parse_id(&st, &caller, "revoke", &user).await?;
    let req = body.get(&st, &caller, "revoke").await?;
    let out = user.clone();
    st.db
        .call(move |c| {
            let rec =
                LogRecord::new(caller.name.as_str(), "revoke", outcome::ALLOWED).case(&id).reason(req.reason.clone());
            logged(c, rec, |tx, rec| {
                rec.details = json!({ "grantee": user.as_str() }).to_string();
                require_text(&req.reason, "--reason")?;
                policy::admin_case(tx, &id)?;
                let g = policy::load_grant(tx, &id, &user)?
                    .ok_or_else(|| ApiError::not_found(format!("{user} has no grant on this case")))?;
                if g.stored_status == "revoked" {
                    return Err(ApiError::conflict(format!("the grant of {user} is already revoked")));
                }
                tx.execute(
                    "UPDATE grants SET status = 'revoked', revoked_at = ?3 WHERE case_id = ?1 AND grantee = ?2",
                    params![id.as_str(), user.as_str(), now_rfc3339()],
                )?;
                let deleted = if policy::is_custodian(tx, &id, &user)? {
                    0
                } else {
                    tx.execute(
                        "DELETE FROM envelopes WHERE case_id = ?1 AND holder = ?2",
                        params![id.as_str(), user.as_str()],
                    )?
                };
                rec.details = json!({ "grantee": user.as_str(), "envelopes_deleted": deleted }).to_string();
                Ok(())
            })
        })
        .await?;
    Ok(Json(Created { id: out }))
}

// ---------------------------------------------------------------------------- recordings

fn recording_info(r: &rusqlite::Row<'_>, with_meta: bool) -> rusqlite::Result<RecordingInfo> {
    Ok(RecordingInfo {
        id: r.get::<_, String>(0)?.parse().map_err(bad_column(0))?,
        case_id: r.get::<_, String>(1)?.parse().map_err(bad_column(1))?,
        key_version: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        sha256: r.get(4)?,
        announced: r.get::<_, String>(5)?.parse().map_err(bad_column(5))?,
        recorded_at: r.get(6)?,
        uploaded_by: r.get::<_, String>(7)?.parse().map_err(bad_column(7))?,
        uploaded_at: r.get(8)?,
        meta: if with_meta { r.get::<_, Option<Vec<u8>>>(9)?.map(|m| B64.encode(m)) } else { None },
    })
}

const RECORDING_COLUMNS: &str =
    "id, case_id, key_version, size, sha256, announced, recorded_at, uploaded_by, uploaded_at, meta";

async fn recording_list(
    State(st): State<AppState>,
    Reader(caller): Reader,
    Path(id): Path<String>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> ApiResult<Json<RecordingPage>> {
    let id: CaseId = parse_id(&st, &caller, "recording-list", &id).await?;
    let page = match query {
        Ok(Query(p)) => p,
        Err(e) => {
            let rec = LogRecord::new(caller.name.as_str(), "recording-list", outcome::REFUSED).case(&id);
            let err = ApiError::bad_request(format!("bad paging parameters: {}", e.body_text()));
            return Err(st.db.refuse(rec.details(json!({ "refusal": err.message })), err).await);
        }
    };
    let list = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "recording-list", outcome::ALLOWED).case(&id), |tx, _| {
                // Auditors see metadata only (never the encrypted call metadata); everyone
                // else needs an active grant.
                let with_meta = caller.role != Role::Auditor;
                if with_meta {
                    policy::require_active_grant(tx, &id, &caller.name)?;
                } else if policy::load_case(tx, &id)?.is_none() {
                    return Err(ApiError::not_found(format!("no case {id}")));
                }
                let limit = page.limit.unwrap_or(PAGE_MAX).clamp(1, PAGE_MAX);
                // Keyset paging in upload order: a page costs the same at the millionth
                // recording as at the first.
                let after: i64 = match &page.after {
                    None => 0,
                    Some(a) => tx
                        .prepare_cached("SELECT rowid FROM recordings WHERE id = ?1 AND case_id = ?2")?
                        .query_row([a.as_str(), id.as_str()], |r| r.get(0))
                        .optional()?
                        .ok_or_else(|| ApiError::bad_request(format!("--after {a} is not a recording of this case")))?,
                };
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {RECORDING_COLUMNS} FROM recordings WHERE case_id = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3"
                ))?;
                let recordings = stmt
                    .query_map(params![id.as_str(), after, limit + 1], |r| recording_info(r, with_meta))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(page_of(recordings, limit))
            })
        })
        .await?;
    Ok(Json(list))
}

/// Cuts a list fetched with one extra row into a page and its `next` marker.
fn page_of(mut recordings: Vec<RecordingInfo>, limit: u32) -> RecordingPage {
    let more = recordings.len() > limit as usize;
    recordings.truncate(limit as usize);
    let next = if more { recordings.last().map(|r| r.id.clone()) } else { None };
    RecordingPage { recordings, next }
}

async fn upload(
    State(st): State<AppState>,
    Recorder(caller): Recorder,
    Path(id): Path<String>,
    query: Result<Query<UploadParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<([(&'static str, String); 1], Json<RecordingInfo>)> {
    let id: CaseId = parse_id(&st, &caller, "upload", &id).await?;
    let rec = LogRecord::new(caller.name.as_str(), "upload", outcome::ALLOWED).case(&id);
    let refuse = |err: ApiError| {
        let rec = rec.clone();
        let st = st.clone();
        async move {
            let r = LogRecord { outcome: outcome::REFUSED, ..rec }
                .details(json!({ "refusal": err.message, "why": err.detail }));
            st.db.refuse(r, err).await
        }
    };
    let params = match query {
        Ok(Query(p)) => p,
        Err(e) => return Err(refuse(ApiError::bad_request(format!("bad upload parameters: {}", e.body_text()))).await),
    };
    let recorded_at = match &params.recorded_at {
        None => now_rfc3339(),
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) if t > chrono::Utc::now() + chrono::Duration::days(1) => {
                return Err(refuse(ApiError::bad_request("--recorded-at lies in the future")).await);
            }
            Ok(t) => t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            Err(_) => {
                return Err(
                    refuse(ApiError::bad_request("--recorded-at must be RFC 3339, e.g. 2026-05-01T09:30:00Z")).await
                );
            }
        },
    };
    let meta = match headers.get(HEADER_META).map(|v| v.to_str().map(|s| decode_small(s, "the call metadata"))) {
        None => None,
        Some(Ok(Ok(m))) => Some(m),
        Some(Ok(Err(e))) => return Err(refuse(e).await),
        Some(Err(_)) => return Err(refuse(ApiError::bad_request("the call metadata header is not ASCII")).await),
    };
    // Check before reading the body, so a refused upload costs no disk.
    let precheck_id = id.clone();
    let announced = params.announced;
    let pre = st.db.read(move |c| Ok(policy::load_case(c, &precheck_id)?)).await?;
    if let Err(e) = check_upload(pre.as_ref(), &id, announced) {
        return Err(refuse(e).await);
    }
    let staged = match st.blobs.receive(body, st.max_upload).await {
        Ok(s) => s,
        Err(UploadError::Io(e)) => return Err(ApiError::internal(e)),
        Err(e @ UploadError::TooLarge(_)) => return Err(refuse(ApiError::too_large(e.to_string())).await),
        Err(e) => return Err(refuse(ApiError::bad_request(e.to_string())).await),
    };
    let rid = RecordingId::random();
    let (sha256, size, crc32) = (staged.sha256.clone(), staged.size, staged.crc32);
    st.blobs.commit(staged, &rid).await?;
    let now = now_rfc3339();
    let row_id = rid.clone();
    let uploader = caller.name.clone();
    let result = st
        .db
        .call(move |c| {
            logged(c, rec.recording(&row_id), |tx, rec| {
                rec.details = json!({ "sha256": sha256, "size": size, "announced": announced.as_str() }).to_string();
                // Again inside the transaction: the case may have closed while we received.
                let case = policy::load_case(tx, &id)?;
                check_upload(case.as_ref(), &id, announced)?;
                let key_version = case.map(|c| c.key_version).unwrap_or(1);
                tx.execute(
                    &format!(
                        "INSERT INTO recordings ({RECORDING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                    ),
                    params![
                        row_id.as_str(),
                        id.as_str(),
                        key_version,
                        size as i64,
                        sha256,
                        announced.as_str(),
                        recorded_at,
                        uploader.as_str(),
                        now,
                        meta
                    ],
                )?;
                Ok(RecordingInfo {
                    id: row_id.clone(),
                    case_id: id.clone(),
                    key_version,
                    size,
                    sha256: sha256.clone(),
                    announced,
                    recorded_at,
                    uploaded_by: uploader,
                    uploaded_at: now,
                    meta: None,
                })
            })
        })
        .await;
    if result.is_err() {
        let _ = st.blobs.remove(&rid).await;
    }
    Ok(([(HEADER_CRC32, format!("{crc32:08x}"))], Json(result?)))
}

fn check_upload(case: Option<&policy::CaseRow>, id: &CaseId, announced: Announcement) -> ApiResult<()> {
    let case = case.ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
    if let Some(e) = upload_refusal(case) {
        return Err(e);
    }
    if announced == Announcement::None && case.kind != CaseKind::Covert {
        return Err(ApiError::bad_request(format!(
            "a {} recording must have been announced (--announced spoken-notice or signal-tone); only covert cases take unannounced recordings",
            case.kind
        )));
    }
    Ok(())
}

/// What the server keeps of a recording besides its ciphertext.
struct Stored {
    case_id: String,
    version: u32,
    size: u64,
    sha256: String,
    meta: Option<Vec<u8>>,
}

async fn fetch(
    State(st): State<AppState>,
    Fetcher(caller): Fetcher,
    Path(id): Path<String>,
    body: ApiJson<Reason>,
) -> ApiResult<Response> {
    let id: RecordingId = parse_id(&st, &caller, "fetch", &id).await?;
    let req = body.get(&st, &caller, "fetch").await?;
    let rid = id.clone();
    let (size, sha256, envelope, recipient, meta) = st
        .db
        .call(move |c| {
            let rec = LogRecord::new(caller.name.as_str(), "fetch", outcome::ALLOWED)
                .recording(&rid)
                .reason(req.reason.clone());
            logged(c, rec, |tx, rec| {
                require_text(&req.reason, "--reason")?;
                let row = tx
                    .query_row(
                        "SELECT case_id, key_version, size, sha256, meta FROM recordings WHERE id = ?1",
                        [rid.as_str()],
                        |r| {
                            Ok(Stored {
                                case_id: r.get(0)?,
                                version: r.get(1)?,
                                size: r.get::<_, i64>(2)? as u64,
                                sha256: r.get(3)?,
                                meta: r.get(4)?,
                            })
                        },
                    )
                    .optional()?;
                let Some(Stored { case_id, version, size, sha256, meta }) = row else {
                    return Err(ApiError::denied(
                        "access denied: you have no grant for this recording (or it does not exist)",
                    )
                    .with_detail("no such recording"));
                };
                let case_id: CaseId = case_id.parse().map_err(ApiError::internal)?;
                rec.case_id = case_id.to_string();
                policy::require_active_grant(tx, &case_id, &caller.name)?;
                let envelope = policy::envelope(tx, &case_id, version, &caller.name)?.ok_or_else(|| {
                    ApiError::denied(format!(
                        "you hold no key for version {version} of this case's key; ask a custodian to grant you again"
                    ))
                })?;
                let recipient: String = tx.query_row(
                    "SELECT recipient FROM case_keys WHERE case_id = ?1 AND version = ?2",
                    params![case_id.as_str(), version],
                    |r| r.get(0),
                )?;
                rec.details = json!({ "sha256": sha256, "size": size, "key_version": version }).to_string();
                Ok((size, sha256, envelope, recipient, meta))
            })
        })
        .await?;
    let file = tokio::fs::File::open(st.blobs.path(&id))
        .await
        .map_err(|e| ApiError::internal(format!("blob of {id} missing: {e}")))?;
    // Serving the first `size` bytes of a longer file would hide damage; say so instead.
    let on_disk = file.metadata().await.map_err(ApiError::internal)?.len();
    if on_disk != size {
        return Err(ApiError::damaged(
            format!(
                "recording {id} is damaged on the server; nothing was sent. Ask an admin to restore it from a backup"
            ),
            format!("blob of {id}: {on_disk} bytes on disk, {size} recorded"),
        ));
    }
    let mut headers = HeaderMap::new();
    let hv = |s: String| HeaderValue::from_str(&s).map_err(ApiError::internal);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, hv(size.to_string())?);
    headers.insert(HEADER_ENVELOPE, hv(B64.encode(envelope))?);
    headers.insert(HEADER_CASE_RECIPIENT, hv(recipient)?);
    headers.insert(HEADER_SHA256, hv(sha256)?);
    if let Some(meta) = meta {
        headers.insert(HEADER_META, hv(B64.encode(meta))?);
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
    Ok((headers, body).into_response())
}
