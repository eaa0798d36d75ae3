//! The auditors' routes: the signed checkpoint, the export stream, and entries to read.
//!
//! Each is logged first, so what an auditor reads includes its own access. Exports read
//! a snapshot through a separate read-only connection, so a long export never holds up
//! the requests that write to the log; the checkpoint at the head of an export is signed
//! for exactly the entries that follow it.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use vault_core::export::ExportWriter;
use vault_core::proof::{ConsistencyProof, InclusionProof, ProvenEntry};

use super::extract::{ApiQuery, Auditor};
use crate::accesslog::{self, RequestLog};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{About, Store};

/// Bytes per chunk of an export stream.
const CHUNK: usize = 256 * 1024;
/// Most entries one `entries` call returns.
const PAGE_MAX: u32 = 1000;

pub async fn checkpoint(State(st): State<AppState>, Auditor(_): Auditor, log: RequestLog) -> ApiResult<Response> {
    log.logged(&st.db, |_, _| Ok(())).await?;
    // Signed over committed entries only, read after the request's own entry is durable.
    let st2 = st.clone();
    let note = st.db.read(move |s| Ok(accesslog::checkpoint(s, &st2.log_origin, &st2.log_key)?.1)).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], note).into_response())
}

pub async fn export(State(st): State<AppState>, Auditor(_): Auditor, log: RequestLog) -> ApiResult<Response> {
    log.logged(&st.db, |_, _| Ok(())).await?;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<ApiResult<()>>();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || {
        let stream = |s: &Store<'_>| -> ApiResult<()> {
            let (cp, note) = accesslog::checkpoint(s, &st2.log_origin, &st2.log_key)?;
            let _ = first_tx.send(Ok(()));
            let mut w = ExportWriter::new(Vec::with_capacity(CHUNK + 1024), &note)?;
            s.for_each_encoded(0, cp.size, |enc, prev, hash| {
                w.entry(enc, prev, hash)?;
                let buf = w.buffer();
                if buf.len() >= CHUNK {
                    let chunk = Bytes::from(std::mem::replace(buf, Vec::with_capacity(CHUNK + 1024)));
                    tx.blocking_send(Ok(chunk)).map_err(|_| anyhow::anyhow!("client went away"))?;
                }
                Ok(())
            })
            .map_err(ApiError::internal)?;
            let rest = w.finish();
            let _ = tx.blocking_send(Ok(Bytes::from(rest)));
            Ok(())
        };
        if let Err(e) = st2.db.snapshot(stream).map_err(ApiError::from).and_then(|r| r) {
            tracing::warn!(detail = e.detail.as_deref().unwrap_or(""), "export stream ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
        }
    });
    first_rx.await.map_err(|_| ApiError::internal("export task ended before its checkpoint"))??;
    let body =
        Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }));
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))], body).into_response())
}

/// The log's witnessed checkpoint, for any enrolled user: with witnesses configured, the
/// newest checkpoint every witness cosigned (after asking them, if the log grew); without,
/// the current checkpoint. Logged first, like every read.
pub async fn witnessed_checkpoint(State(st): State<AppState>, _: Caller, log: RequestLog) -> ApiResult<Response> {
    log.logged(&st.db, |_, _| Ok(())).await?;
    let note = crate::witnessing::served_checkpoint(&st, false).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], note).into_response())
}

#[derive(Deserialize)]
pub struct EntriesParams {
    #[serde(default)]
    from: u64,
    limit: Option<u32>,
    case: Option<String>,
    recording: Option<String>,
    /// Only entries of this action (`log-restore`, say).
    action: Option<String>,
    /// With it, only entries below `size`, each with its inclusion proof in the tree of
    /// that size (which the auditor has from a checkpoint).
    size: Option<u64>,
}

pub async fn entries(
    State(st): State<AppState>,
    Auditor(_): Auditor,
    log: RequestLog,
    ApiQuery(q): ApiQuery<EntriesParams>,
) -> ApiResult<Json<Vec<ProvenEntry>>> {
    let list = log
        .logged(&st.db, move |s, rec| {
            let about = match (&q.case, &q.recording, &q.action) {
                (None, None, None) => None,
                (Some(c), None, None) => Some(About::Case(c.parse().map_err(bad_id)?)),
                (None, Some(r), None) => Some(About::Recording(r.parse().map_err(bad_id)?)),
                (None, None, Some(a)) => Some(About::Action(
                    a.parse()
                        .map_err(|_| ApiError::bad_request("unknown action; see LOG-FORMAT.md for the actions"))?,
                )),
                _ => return Err(ApiError::bad_request("give a case, a recording or an action, not several")),
            };
            rec.details = json!({ "from": q.from, "case": q.case, "recording": q.recording, "action": q.action,
                "size": q.size })
            .to_string();
            let to = match q.size {
                Some(size) => within_log(s, size)?,
                None => u64::MAX,
            };
            let limit = q.limit.unwrap_or(PAGE_MAX).min(PAGE_MAX);
            Ok((s.log_entries(q.from, to, about.as_ref(), limit)?, q.size))
        })
        .await?;
    // Proofs are read from a snapshot taken after the request's own entry is durable, so
    // the tree of `size` is complete in it.
    st.db
        .read(move |s| {
            let (list, size) = list;
            list.into_iter()
                .map(|chained| {
                    let proof = match size {
                        Some(size) => s.inclusion_proof(chained.entry.seq, size).map_err(ApiError::internal)?,
                        None => Vec::new(),
                    };
                    Ok(ProvenEntry { chained, proof })
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .await
        .map(Json)
}

#[derive(Deserialize)]
pub struct ConsistencyParams {
    from: u64,
    to: u64,
}

/// The consistency proof between two sizes of the log: how an auditor checks that the
/// log still extends the checkpoint it verified last, with a logarithmic number of
/// hashes instead of every new entry.
pub async fn consistency(
    State(st): State<AppState>,
    Auditor(_): Auditor,
    log: RequestLog,
    ApiQuery(q): ApiQuery<ConsistencyParams>,
) -> ApiResult<Json<ConsistencyProof>> {
    log.logged(&st.db, move |s, rec| {
        rec.details = json!({ "from": q.from, "to": q.to }).to_string();
        within_log(s, q.to)?;
        if q.from == 0 || q.from > q.to {
            return Err(ApiError::bad_request("a consistency proof needs 0 < from <= to"));
        }
        Ok(())
    })
    .await?;
    let hashes = st.db.read(move |s| s.consistency_proof(q.from, q.to).map_err(ApiError::internal)).await?;
    Ok(Json(ConsistencyProof { from: q.from, to: q.to, hashes }))
}

#[derive(Deserialize)]
pub struct InclusionParams {
    index: u64,
    size: u64,
}

/// The inclusion proof of one entry in the tree of a given size.
pub async fn inclusion(
    State(st): State<AppState>,
    Auditor(_): Auditor,
    log: RequestLog,
    ApiQuery(q): ApiQuery<InclusionParams>,
) -> ApiResult<Json<InclusionProof>> {
    log.logged(&st.db, move |s, rec| {
        rec.details = json!({ "index": q.index, "size": q.size }).to_string();
        within_log(s, q.size)?;
        if q.index >= q.size {
            return Err(ApiError::bad_request("the entry must be below the tree's size"));
        }
        Ok(())
    })
    .await?;
    let hashes = st.db.read(move |s| s.inclusion_proof(q.index, q.size).map_err(ApiError::internal)).await?;
    Ok(Json(InclusionProof { index: q.index, size: q.size, hashes }))
}

/// `size` if the log has at least that many entries.
fn within_log(s: &Store<'_>, size: u64) -> ApiResult<u64> {
    let (now, _) = s.log_head()?;
    if size > now {
        return Err(ApiError::bad_request(format!(
            "the log has {now} entries; ask for a tree size from a checkpoint (`GET /v1/audit/checkpoint`)"
        )));
    }
    Ok(size)
}

fn bad_id(e: vault_core::ids::InvalidId) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// The log key's transitions, oldest first, for any enrolled user: how clients that pinned
/// an earlier log key follow it to the one that signs now (`vault_core::rotation`).
/// Logged first, like every read.
pub async fn key_transitions(
    State(st): State<AppState>,
    _: Caller,
    log: RequestLog,
) -> ApiResult<Json<Vec<vault_core::rotation::KeyTransition>>> {
    log.logged(&st.db, |_, _| Ok(())).await?;
    Ok(Json(st.db.read(|s| crate::rotate::transitions(s).map_err(ApiError::internal)).await?))
}
