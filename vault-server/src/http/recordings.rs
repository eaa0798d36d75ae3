//! Recordings: uploading (recorders), listing a case's recordings, fetching one.
//!
//! An upload is checked against the case before its body is read, streamed into the
//! blob store, and committed with its log entry; it becomes visible (listed and
//! released) only when the recorder has signed it, with the SHA-256 it computed. A fetch
//! is logged before a byte of ciphertext is sent, and sends the caller's own envelope
//! beside it; the caller's CLI decrypts.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt;
use serde_json::json;
use vault_core::api::{
    Done, HEADER_CASE_RECIPIENT, HEADER_CRC32, HEADER_ENVELOPE, HEADER_KEY_STATEMENT, HEADER_META, HEADER_REPEATED,
    HEADER_SHA256, HEADER_STATEMENT, HEADER_UPLOAD_LENGTH, PAGE_MAX, PageParams, Reason, RecordingInfo, RecordingPage,
    RecordingSignature, UploadParams,
};
use vault_core::evidence::{Custody, ExportDetails, ExportRequest, custody_digest};
use vault_core::ids::{CaseId, RecordingId, UserName};
use vault_core::log::Action;
use vault_core::note::Checkpoint;
use vault_core::proof::SliceEntry;
use vault_core::trust::{RecordingStatement, Signed};

use super::extract::{ApiJson, ApiPath, ApiQuery, Fetcher, Reader, Recorder};
use super::validate::{self, decode_small, require_text};
use crate::accesslog::{LogRecord, RequestLog};
use crate::blobs::UploadError;
use crate::clock::now_rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::monitoring;
use crate::policy;
use crate::state::AppState;
use crate::store::{About, Store, StoredRecording};
use crate::trust;

/// A page of a case's recordings, in upload order.
pub async fn list(
    State(st): State<AppState>,
    Reader(caller): Reader,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<RecordingPage>> {
    let list = log
        .logged(&st.db, move |s, rec| {
            let listing = policy::may_list_recordings(s, &caller, &id)?;
            if listing.legal_hold {
                rec.details = json!({ "legal_hold": true }).to_string();
            }
            let limit = page.limit.unwrap_or(PAGE_MAX).clamp(1, PAGE_MAX);
            let recordings =
                s.recordings_page(&id, page.after.as_ref(), limit + 1, listing.with_meta)?.ok_or_else(|| {
                    let after = page.after.as_ref().map(RecordingId::as_str).unwrap_or_default();
                    ApiError::bad_request(format!("--after {after} is not a recording of this case"))
                })?;
            Ok(page_of(recordings, limit))
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

/// When a call was recorded: as the recorder says (RFC 3339, not more than a day ahead),
/// else now.
fn recorded_at(given: Option<&str>) -> ApiResult<String> {
    let Some(t) = given else { return Ok(now_rfc3339()) };
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) if t > chrono::Utc::now() + chrono::Duration::days(1) => {
            Err(ApiError::bad_request("--recorded-at lies in the future"))
        }
        Ok(t) => Ok(t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        Err(_) => Err(ApiError::bad_request("--recorded-at must be RFC 3339, e.g. 2026-05-01T09:30:00Z")),
    }
}

/// The encrypted call metadata of an upload, if it carries any.
fn call_meta(headers: &HeaderMap) -> ApiResult<Option<Vec<u8>>> {
    match headers.get(HEADER_META).map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(s)) => Ok(Some(decode_small(s, "the call metadata")?)),
        Some(Err(_)) => Err(ApiError::bad_request("the call metadata header is not ASCII")),
    }
}

/// The length of the upload's ciphertext as its sender announced it; `None` if it did
/// not (refused once the body is seen to be age: see [`crate::blobs::BlobStore::receive`]).
/// A `Content-Length` must say the same.
fn announced_length(headers: &HeaderMap) -> Result<Option<u64>, UploadError> {
    let mut values = headers.get_all(HEADER_UPLOAD_LENGTH).iter();
    let announced = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(v), None) => decimal(v).ok_or(UploadError::LengthNotAnnounced)?,
        (Some(_), Some(_)) => return Err(UploadError::LengthNotAnnounced),
    };
    // hyper has already refused a malformed or repeated Content-Length.
    if let Some(content_length) = headers.get(header::CONTENT_LENGTH).and_then(decimal)
        && content_length != announced
    {
        return Err(UploadError::LengthConflict { announced, content_length });
    }
    Ok(Some(announced))
}

/// A header value that is a plain decimal number (no sign, no spaces).
fn decimal(v: &HeaderValue) -> Option<u64> {
    let s = v.to_str().ok()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The answer to an upload that was not stored.
fn refused_upload(e: UploadError) -> ApiError {
    match e {
        UploadError::Io(e) => ApiError::from(e),
        e @ UploadError::TooLarge(_) => ApiError::too_large(e.to_string()),
        e => ApiError::bad_request(e.to_string()),
    }
}

/// Stores an upload. The case and the announced length are checked before the body is
/// read; the blob store refuses a body of another length, or one no one could decrypt.
///
/// A recorder may choose the recording's id (`recording_id` in the query) to make the upload
/// idempotent: an id it has signed on this case already stores nothing (the body is read
/// and dropped) and answers that recording with its statement, logged as a repeated
/// upload; an id it uploaded and never signed (its answer was lost) is removed and
/// uploaded again. An id that is another case's, another recorder's, or destroyed is
/// refused.
pub async fn upload(
    State(st): State<AppState>,
    Recorder(caller): Recorder,
    ApiPath(id): ApiPath<CaseId>,
    log: RequestLog,
    ApiQuery(params): ApiQuery<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // Counted from here, so that a draining server waits for it (see `crate::drain`).
    let _uploading = st.drain.upload();
    let started = std::time::Instant::now();
    let recorded_at = recorded_at(params.recorded_at.as_deref())?;
    let meta = call_meta(&headers)?;
    let announced = params.announced;
    // An upload that arrives signed (its recorder encrypted it before sending) carries
    // its statement and the CRC-32 of its body, checked before and after the body.
    let signed = signed_upload(&headers)?;
    if signed.is_some() && params.recording_id.is_none() {
        return Err(ApiError::bad_request("a signed upload names its recording_id (the id its statement signs)"));
    }
    // An id the recorder chose is this request's alone while it works on it.
    let chosen = params.recording_id.is_some();
    let rid = params.recording_id.unwrap_or_else(RecordingId::random);
    let _claim = match chosen {
        false => None,
        true => Some(st.claims.claim(&rid).ok_or_else(|| {
            ApiError::busy(format!("{rid} is being uploaded by another request right now; try again shortly"))
        })?),
    };
    // Checked before the body is read, so a refused upload costs no disk; checked again
    // when its row is written, since the case may close meanwhile.
    let (precheck, who, want_key, wanted) = (id.clone(), caller.name.clone(), signed.is_some(), rid.clone());
    let (earlier, case, key) = st
        .db
        .read(move |s| {
            let earlier = if chosen { earlier_upload(s, &who, &precheck, &wanted)? } else { Earlier::None };
            let key = if want_key { s.enrolment(&who)?.map(|e| e.id) } else { None };
            Ok((earlier, s.case(&precheck)?, key))
        })
        .await?;
    match earlier {
        Earlier::Signed(info) => return repeated(&st, log, body, *info).await,
        Earlier::Unsigned => crate::orphans::remove_unsigned_for_retry(&st.db, &st.blobs, &rid).await?,
        Earlier::None => {}
    }
    let case = policy::check_upload(case.as_ref(), &id, announced)?;
    let length = announced_length(&headers).map_err(refused_upload)?;
    let signed = match signed {
        None => None,
        Some((statement, crc32)) => {
            let key = key.ok_or_else(|| ApiError::internal(format!("{} has no enrolled key", caller.name)))?;
            let expected = StoredRecording {
                case_id: id.clone(),
                key_version: case.key_version,
                size: length.ok_or_else(|| refused_upload(UploadError::LengthNotAnnounced))?,
                sha256: String::new(),
                meta: None,
                announced,
                recorded_at: recorded_at.clone(),
                uploaded_by: caller.name.clone(),
                statement: None,
            };
            key_unchanged(&statement, case.key_version)?;
            let sha256 =
                trust::check_recording_statement(&statement, &st.log_origin, &rid, &expected, &caller.name, &key)?;
            Some(SignedUpload { statement, sha256, crc32 })
        }
    };
    let staged = st.blobs.receive(body, st.max_upload, length, &rid).await.map_err(refused_upload)?;
    let (crc32, staged_size) = (staged.crc32, staged.size);
    if let Some(sent) = signed.as_ref().map(|s| s.crc32)
        && sent != crc32
    {
        return Err(ApiError::bad_request(format!(
            "the body that arrived has CRC-32 {crc32:08x}, not {sent:08x} as its sender announced: it was damaged \
             on the way; nothing was stored, send it again"
        )));
    }
    let info = RecordingInfo {
        id: rid.clone(),
        case_id: id.clone(),
        key_version: 1,
        size: staged.size,
        // The recorder's, once it signs (here if it arrived signed, else see `sign`).
        sha256: String::new(),
        announced,
        recorded_at,
        uploaded_by: caller.name.clone(),
        uploaded_at: String::new(),
        meta: None,
        statement: None,
    };
    st.blobs.commit(staged).await?;
    let row_id = rid.clone();
    let result = log
        .logged_with(&st.db, move |s, rec| {
            rec.recording_id = row_id.to_string();
            rec.details =
                json!({ "size": info.size, "crc32": format!("{crc32:08x}"), "announced": announced.as_str() })
                    .to_string();
            let case = policy::check_upload(s.case(&id)?.as_ref(), &id, announced)?;
            let info = RecordingInfo { key_version: case.key_version, uploaded_at: now_rfc3339(), ..info };
            let Some(SignedUpload { statement, sha256, .. }) = signed else {
                s.insert_recording(&info, meta.as_deref())?;
                return Ok((info, None));
            };
            // Arrived signed: the upload and the recorder's signature of it, in this order.
            key_unchanged(&statement, case.key_version)?;
            s.insert_recording(&info, meta.as_deref())?;
            s.sign_recording(&row_id, &sha256, &statement)?;
            let signing = LogRecord::new(rec.actor.clone(), Action::RecordingSign)
                .case(&id)
                .recording(&row_id)
                .details(json!({ "statement": statement }));
            Ok((RecordingInfo { sha256, statement: Some(statement), ..info }, Some(signing)))
        })
        .await;
    match &result {
        Err(_) => {
            let _ = st.blobs.remove(&rid).await;
        }
        Ok(info) => {
            if info.statement.is_none() {
                st.drain.committed(&rid);
            }
            metrics::counter!(monitoring::UPLOAD_BYTES).increment(staged_size);
            metrics::histogram!(monitoring::UPLOAD_SECONDS).record(started.elapsed());
        }
    }
    Ok(([(HEADER_CRC32, format!("{crc32:08x}"))], Json(result?)).into_response())
}

/// An upload that arrived signed, its statement checked: the SHA-256 it signs, and the
/// CRC-32 its body must arrive with.
struct SignedUpload {
    statement: Signed,
    sha256: String,
    crc32: u32,
}

/// The statement and CRC-32 of an upload that arrives signed (`X-Vault-Statement`, base64
/// of the signed statement's JSON; `X-Vault-CRC32`, 8 hex digits); `None` for one to be
/// signed after it is stored.
fn signed_upload(headers: &HeaderMap) -> ApiResult<Option<(Signed, u32)>> {
    let Some(statement) = headers.get(HEADER_STATEMENT) else { return Ok(None) };
    let bad = |what: &str| ApiError::bad_request(format!("the upload's {what}"));
    let json = statement
        .to_str()
        .ok()
        .and_then(|s| B64.decode(s.trim()).ok())
        .ok_or_else(|| bad("statement header is not base64"))?;
    if json.len() > 16 * 1024 {
        return Err(bad("statement is too long"));
    }
    let signed = Signed::from_json(&String::from_utf8_lossy(&json)).map_err(|e| bad(&format!("statement: {e}")))?;
    let crc = headers
        .get(HEADER_CRC32)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() == 8)
        .and_then(|v| u32::from_str_radix(v, 16).ok())
        .ok_or_else(|| bad("CRC-32 (X-Vault-CRC32, 8 hex digits) is missing: a signed upload announces it"))?;
    Ok(Some((signed, crc)))
}

/// Refuses a statement of another key version than the case's current one, in words a
/// recorder recognises (`key_changed`): it encrypts to the new key and uploads again.
fn key_unchanged(statement: &Signed, current: u32) -> ApiResult<()> {
    match statement.parse::<RecordingStatement>() {
        Ok(r) if r.version != current => Err(ApiError::key_changed(format!(
            "the case key changed: it is at version {current}, the recording was encrypted to version {}; \
             encrypt it to the new key and upload again",
            r.version
        ))),
        _ => Ok(()),
    }
}

/// What the server holds of a recording id a recorder chose for its upload.
enum Earlier {
    None,
    /// This recorder uploaded and signed it on this case.
    Signed(Box<RecordingInfo>),
    /// This recorder uploaded it on this case and never signed it.
    Unsigned,
}

/// Looks up an id a recorder chose; refuses one that is not this recorder's to use on
/// this case.
fn earlier_upload(s: &Store<'_>, caller: &UserName, case: &CaseId, id: &RecordingId) -> ApiResult<Earlier> {
    if s.destroyed_case(id)?.is_some() {
        return Err(ApiError::conflict(format!(
            "recording {id} was destroyed (its case was closed without offence, or its retention ended); \
             it is not stored again: delete your copy"
        )));
    }
    let Some(info) = s.recording_info(id)? else { return Ok(Earlier::None) };
    if info.case_id != *case || info.uploaded_by != *caller {
        return Err(ApiError::conflict(format!(
            "the recording id {id} is in use by another case or recorder; upload with another key"
        )));
    }
    Ok(if info.statement.is_some() { Earlier::Signed(Box::new(info)) } else { Earlier::Unsigned })
}

/// Answers an upload of a recording the server has (signed) already: reads and drops the
/// body, logs the repeat, and answers the recording with its statement, which the
/// recorder checks is its own.
async fn repeated(st: &AppState, log: RequestLog, body: Body, info: RecordingInfo) -> ApiResult<Response> {
    let read = crate::blobs::discard(body, st.max_upload).await;
    let (rid, size) = (info.id.clone(), info.size);
    log.logged(&st.db, move |_, rec| {
        rec.recording_id = rid.to_string();
        rec.details = json!({ "repeated": true, "size": size, "received": read }).to_string();
        Ok(())
    })
    .await?;
    Ok(([(HEADER_REPEATED, "true")], Json(info)).into_response())
}

/// The recorder signs what it uploaded (case, recording id, key version, SHA-256 and
/// size of the ciphertext, when and how it was recorded); only then is the recording
/// listed and released. The signature goes into the log entry.
///
/// The server checks the statement against its own record and the caller's enrolled
/// key, off the writer thread; whether that key chains to the trust root is the fetching
/// client's to check (it does, from the root it pinned).
pub async fn sign(
    State(st): State<AppState>,
    Recorder(caller): Recorder,
    ApiPath(id): ApiPath<RecordingId>,
    log: RequestLog,
    ApiJson(req): ApiJson<RecordingSignature>,
) -> ApiResult<Json<Done<RecordingId>>> {
    let (rid, who) = (id.clone(), caller.clone());
    let (stored, key) = st
        .db
        .read(move |s| {
            let stored = policy::may_sign_recording(s, &who, &rid)?;
            let key = s.enrolment(&who.name)?.map(|e| e.id);
            Ok((stored, key))
        })
        .await?;
    log.set_case(&stored.case_id);
    let key = key.ok_or_else(|| ApiError::internal(format!("{} has no enrolled key", caller.name)))?;
    let sha256 = trust::check_recording_statement(&req.statement, &st.log_origin, &id, &stored, &caller.name, &key)?;
    let out = id.clone();
    log.logged(&st.db, move |s, rec| {
        rec.details = json!({ "statement": req.statement }).to_string();
        policy::may_sign_recording(s, &caller, &id)?;
        s.sign_recording(&id, &sha256, &req.statement)?;
        Ok(())
    })
    .await?;
    st.drain.signed(&out);
    Ok(Json(Done { id: out }))
}

/// Releases a recording's ciphertext with the caller's envelope, once its log entry (with
/// the stated reason) is written; on a case on legal hold the entry says so.
pub async fn fetch(
    State(st): State<AppState>,
    Fetcher(caller): Fetcher,
    ApiPath(id): ApiPath<RecordingId>,
    log: RequestLog,
    ApiJson(req): ApiJson<Reason>,
) -> ApiResult<Response> {
    log.set_reason(&req.reason);
    let rid = id.clone();
    let (stored, envelope, (recipient, key_statement)) = log
        .logged(&st.db, move |s, rec| {
            require_text(&req.reason, "--reason")?;
            let stored = policy::recording_to_fetch(s, &rid)?;
            rec.case_id = stored.case_id.to_string();
            let release = policy::may_fetch(s, &caller, &stored)?;
            let (recipient, key_statement) = s.case_recipient(&stored.case_id, stored.key_version)?;
            let mut details =
                json!({ "sha256": stored.sha256, "size": stored.size, "key_version": stored.key_version });
            // Evidence read after its case closed (SPEC §6), for auditors to see apart.
            if release.legal_hold {
                details["legal_hold"] = json!(true);
            }
            rec.details = details.to_string();
            Ok((stored, release.envelope, (recipient, key_statement)))
        })
        .await?;
    let blob =
        st.blobs.open(&id).await.map_err(|e| ApiError::internal(format!("cannot read the blob of {id}: {e}")))?;
    // Serving the first `size` bytes of a longer blob would hide damage; say so instead.
    if blob.size != stored.size {
        return Err(ApiError::damaged(
            format!(
                "recording {id} is damaged on the server; nothing was sent. Ask an admin to restore it from a backup"
            ),
            format!("blob of {id}: {} bytes stored, {} recorded", blob.size, stored.size),
        ));
    }
    let mut headers = HeaderMap::new();
    let hv = |s: String| HeaderValue::from_str(&s).map_err(ApiError::internal);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, hv(stored.size.to_string())?);
    headers.insert(HEADER_ENVELOPE, hv(B64.encode(envelope))?);
    headers.insert(HEADER_CASE_RECIPIENT, hv(recipient)?);
    headers.insert(HEADER_SHA256, hv(stored.sha256)?);
    headers.insert(HEADER_KEY_STATEMENT, hv(B64.encode(key_statement.to_json()))?);
    if let Some(statement) = stored.statement {
        headers.insert(HEADER_STATEMENT, hv(B64.encode(statement.to_json()))?);
    }
    if let Some(meta) = stored.meta {
        headers.insert(HEADER_META, hv(B64.encode(meta))?);
    }
    // Counted as sent, and timed until the last byte (or the client going away).
    let fetch = monitoring::Timer::start(monitoring::FETCH_SECONDS);
    let body = Body::from_stream(blob.stream.map(move |chunk| {
        let _timed = &fetch;
        if let Ok(c) = &chunk {
            metrics::counter!(monitoring::FETCH_BYTES).increment(c.len() as u64);
        }
        chunk
    }));
    Ok((headers, body).into_response())
}

/// An evidence export (SPEC §6, legal hold): allowed to whoever may fetch the recording.
/// Logged first, with the reason and a commitment to the custody entries selected (their
/// number and the SHA-256 of their leaf hashes); then answers those entries and the
/// export's own, each with its inclusion proof under the witnessed checkpoint (after a
/// witness round, so it covers the export) or, without witnesses, the current one.
pub async fn evidence(
    State(st): State<AppState>,
    Fetcher(caller): Fetcher,
    ApiPath(id): ApiPath<RecordingId>,
    log: RequestLog,
    ApiJson(req): ApiJson<ExportRequest>,
) -> ApiResult<Json<Custody>> {
    log.set_reason(&req.reason);
    let rid = id.clone();
    let actor = caller.name.clone();
    let (custody, through) = log
        .logged(&st.db, move |s, rec| {
            require_text(&req.reason, "--reason")?;
            let stored = policy::recording_to_fetch(s, &rid)?;
            rec.case_id = stored.case_id.to_string();
            let release = policy::may_fetch(s, &caller, &stored)?;
            if let Some(to) = &req.to {
                validate::recipient(to)?;
            }
            if req.plaintext_sha256.as_ref().is_some_and(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(ApiError::bad_request("plaintext_sha256 must be 64 hex digits"));
            }
            let (through, _) = s.log_head()?;
            let custody = s.custody_entries(&stored.case_id, &rid, through).map_err(ApiError::internal)?;
            let details = ExportDetails {
                custody_entries: custody.len() as u64,
                custody_through: through,
                custody_digest: custody_digest(custody.iter().map(|(_, e)| e.as_slice())),
                plaintext_sha256: req.plaintext_sha256.clone(),
                to: req.to.clone(),
                legal_hold: release.legal_hold,
            };
            rec.details = serde_json::to_string(&details).map_err(ApiError::internal)?;
            Ok((custody, through))
        })
        .await?;
    let note = crate::witnessing::served_checkpoint(&st, true).await?;
    let size =
        vault_core::note::split(&note).and_then(|(text, _)| Checkpoint::parse(text)).map_err(ApiError::internal)?.size;
    let entries = st
        .db
        .read(move |s| {
            // The custody entries the export's entry commits to, as selected there.
            let mut entries = custody;
            // The export's own entry: the first evidence export of this recording by this
            // caller at or after `through`.
            let own = s
                .log_entries(through, size, Some(&About::Recording(id.clone())), 1000)?
                .into_iter()
                .find(|e| e.entry.action == Action::EvidenceExport.as_str() && e.entry.actor == actor.as_str())
                .ok_or_else(|| {
                    ApiError::unavailable("the witnessed checkpoint does not cover this export yet; try again")
                })?;
            let mut enc = Vec::new();
            own.entry.encode_into(&mut enc);
            entries.push((own.entry.seq, enc));
            entries
                .into_iter()
                .map(|(seq, encoding)| {
                    Ok(SliceEntry { proof: s.inclusion_proof(seq, size).map_err(ApiError::internal)?, encoding })
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .await?;
    Ok(Json(Custody { checkpoint: note, entries }))
}
