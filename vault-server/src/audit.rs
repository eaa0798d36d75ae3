//! The auditors' routes: the signed checkpoint, the export stream, and entries to read.
//!
//! Exports read a snapshot through a separate read-only connection, so a long export
//! never holds up the requests that write to the log. The checkpoint at the head of an
//! export is signed for exactly the entries that follow it.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::json;
use vault_core::export::ExportWriter;
use vault_core::ids::CaseId;
use vault_core::log::{ChainedEntry, Entry, outcome};
use vault_core::note::Checkpoint;

use crate::AppState;
use crate::auth::Auditor;
use crate::db::{LOG_COLUMNS, LogRecord, for_each_encoded, log_head};
use crate::error::{ApiError, ApiResult};
use crate::routes::logged;

/// Bytes per chunk of an export stream.
const CHUNK: usize = 256 * 1024;
/// Most entries one `entries` call returns.
const PAGE_MAX: u32 = 1000;

/// The signed checkpoint of the log's current head.
pub fn checkpoint(st: &AppState, conn: &Connection) -> ApiResult<(Checkpoint, String)> {
    let (size, head) = log_head(conn)?;
    let cp = Checkpoint { origin: st.log_origin.clone(), size, head };
    let note = cp.sign(&st.log_key);
    Ok((cp, note))
}

pub async fn get_checkpoint(State(st): State<AppState>, Auditor(caller): Auditor) -> ApiResult<Response> {
    st.db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "audit-checkpoint", outcome::ALLOWED), |_, _| Ok(()))
        })
        .await?;
    // Signed over committed entries only, read after the request's own entry is durable.
    let st2 = st.clone();
    let note = st.db.read(move |c| Ok(checkpoint(&st2, c)?.1)).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], note).into_response())
}

#[derive(Deserialize)]
pub struct ExportParams {
    #[serde(default)]
    from: u64,
}

pub async fn export(
    State(st): State<AppState>,
    Auditor(caller): Auditor,
    Query(q): Query<ExportParams>,
) -> ApiResult<Response> {
    // Logged first, so the export carries its own access record.
    st.db
        .call(move |c| {
            let rec = LogRecord::new(caller.name.as_str(), "audit-export", outcome::ALLOWED);
            logged(c, rec, |_, rec| {
                rec.details = json!({ "from": q.from }).to_string();
                Ok(())
            })
        })
        .await?;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<ApiResult<()>>();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || {
        let stream = || -> ApiResult<()> {
            let mut conn = st2.db.reader()?;
            let snapshot = conn.transaction()?;
            let (cp, note) = checkpoint(&st2, &snapshot)?;
            let _ = first_tx.send(Ok(()));
            let mut w = ExportWriter::new(Vec::with_capacity(CHUNK + 1024), &note)?;
            for_each_encoded(&snapshot, q.from, cp.size, |enc, prev, hash| {
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
        if let Err(e) = stream() {
            tracing::warn!(detail = e.detail.as_deref().unwrap_or(""), "export stream ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
        }
    });
    first_rx.await.map_err(|_| ApiError::internal("export task ended before its checkpoint"))??;
    let body =
        Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }));
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))], body).into_response())
}

#[derive(Deserialize)]
pub struct EntriesParams {
    #[serde(default)]
    from: u64,
    limit: Option<u32>,
    case: Option<String>,
}

pub async fn entries(
    State(st): State<AppState>,
    Auditor(caller): Auditor,
    Query(q): Query<EntriesParams>,
) -> ApiResult<Json<Vec<ChainedEntry>>> {
    let list = st
        .db
        .call(move |c| {
            logged(c, LogRecord::new(caller.name.as_str(), "audit-log", outcome::ALLOWED), |tx, rec| {
                let case: Option<CaseId> = match &q.case {
                    None => None,
                    Some(s) => Some(s.parse().map_err(|e: vault_core::ids::InvalidId| ApiError::bad_request(e.to_string()))?),
                };
                rec.details = json!({ "from": q.from, "case": case }).to_string();
                let limit = q.limit.unwrap_or(PAGE_MAX).min(PAGE_MAX);
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {LOG_COLUMNS} FROM access_log WHERE seq >= ?1 AND (?2 IS NULL OR case_id = ?2) ORDER BY seq LIMIT ?3"
                ))?;
                let rows = stmt.query_map(rusqlite::params![q.from as i64, case.as_ref().map(|c| c.as_str()), limit], |r| {
                    let link = |i| -> rusqlite::Result<[u8; 32]> {
                        r.get::<_, Vec<u8>>(i)?.try_into().map_err(|_| rusqlite::Error::InvalidQuery)
                    };
                    Ok(ChainedEntry {
                        entry: Entry {
                            seq: r.get::<_, i64>(0)? as u64,
                            time_ms: r.get(1)?,
                            actor: r.get(2)?,
                            action: r.get(3)?,
                            case_id: r.get(4)?,
                            recording_id: r.get(5)?,
                            reason: r.get(6)?,
                            outcome: r.get(7)?,
                            details: r.get(8)?,
                        },
                        prev: link(9)?,
                        hash: link(10)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
        })
        .await?;
    Ok(Json(list))
}
