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
use vault_core::ids::CaseId;
use vault_core::log::ChainedEntry;

use super::extract::{ApiQuery, Auditor};
use crate::accesslog::{self, RequestLog};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Store;

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

#[derive(Deserialize)]
pub struct ExportParams {
    #[serde(default)]
    from: u64,
}

pub async fn export(
    State(st): State<AppState>,
    Auditor(_): Auditor,
    log: RequestLog,
    ApiQuery(q): ApiQuery<ExportParams>,
) -> ApiResult<Response> {
    log.logged(&st.db, move |_, rec| {
        rec.details = json!({ "from": q.from }).to_string();
        Ok(())
    })
    .await?;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<ApiResult<()>>();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || {
        let stream = |s: &Store<'_>| -> ApiResult<()> {
            let (cp, note) = accesslog::checkpoint(s, &st2.log_origin, &st2.log_key)?;
            let _ = first_tx.send(Ok(()));
            let mut w = ExportWriter::new(Vec::with_capacity(CHUNK + 1024), &note)?;
            s.for_each_encoded(q.from, cp.size, |enc, prev, hash| {
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

#[derive(Deserialize)]
pub struct EntriesParams {
    #[serde(default)]
    from: u64,
    limit: Option<u32>,
    case: Option<String>,
}

pub async fn entries(
    State(st): State<AppState>,
    Auditor(_): Auditor,
    log: RequestLog,
    ApiQuery(q): ApiQuery<EntriesParams>,
) -> ApiResult<Json<Vec<ChainedEntry>>> {
    let list = log
        .logged(&st.db, move |s, rec| {
            let case: Option<CaseId> = match &q.case {
                None => None,
                Some(c) => {
                    Some(c.parse().map_err(|e: vault_core::ids::InvalidId| ApiError::bad_request(e.to_string()))?)
                }
            };
            rec.details = json!({ "from": q.from, "case": case }).to_string();
            let limit = q.limit.unwrap_or(PAGE_MAX).min(PAGE_MAX);
            Ok(s.log_entries(q.from, case.as_ref(), limit)?)
        })
        .await?;
    Ok(Json(list))
}
