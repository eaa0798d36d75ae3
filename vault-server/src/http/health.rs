//! Health for load balancers and orchestrators: `GET /healthz` (the process serves) and
//! `GET /readyz` (it can do its work: the database takes a write, the access log was
//! verified at start, the data directory's disk has room, the blob store answers). Neither needs a token, and
//! neither writes an access-log entry: a probe every few seconds would otherwise fill the
//! log with nothing an auditor needs. They say nothing about users, cases or recordings.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

pub async fn readyz(State(st): State<AppState>) -> Response {
    // A real write, committed like every request's: an UPDATE that rewrites one row.
    let database = st
        .db
        .call(|c| {
            c.execute("UPDATE meta SET value = value WHERE key = 'log_origin'", []).map_err(ApiError::from)?;
            Ok(())
        })
        .await
        .is_ok();
    let free = free_bytes(&st.data_dir);
    let disk = free.is_some_and(|f| f >= st.ready_min_free);
    // Serving at all means the log and its tree were verified at start. A draining server
    // is not ready, so that load balancers send nothing new to it.
    let draining = st.drain.is_draining();
    let blobs = st.blobs.reachable().await;
    let ready = database && disk && !draining && blobs;
    let body = json!({
        "ready": ready,
        "checks": {
            "database_writable": database,
            "log_verified_at_start": true,
            "disk_free_bytes": free,
            "disk_free_enough": disk,
            "draining": draining,
            "blob_store_reachable": blobs,
        }
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Bytes available to the server on the file system of `dir`.
pub(crate) fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}
