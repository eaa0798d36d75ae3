//! Metrics for Prometheus, served on a listener of their own (`--metrics-listen`), never
//! on the API's.
//!
//! The API's listener faces users and, beyond loopback, the network; metrics tell how
//! busy the vault is (uploads, fetches, refusals by reason), which is worth hiding from
//! outsiders, and Prometheus cannot log in with a person's identity. So `/metrics` has no
//! token and lives on a separate address that only the operator's scraper reaches
//! (loopback unless the operator opts in), and is off unless asked for: without it no
//! recorder is installed and every metric call below costs nothing.
//!
//! Labels are bounded by construction: the route *template* (`/v1/recordings/{id}`,
//! never a raw path or id), the method, the status, and a refusal's error code from the
//! fixed set in `crate::error`. No user name, case, recording or address is ever a label.

use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Requests answered, by `route` (template), `method` and `status`.
pub const REQUESTS: &str = "vault_http_requests_total";
/// Time until a request's answer headers, by `route` and `method`.
pub const REQUEST_SECONDS: &str = "vault_http_request_duration_seconds";
/// Refused requests (access-log `refused` entries and rate limits), by `reason`.
pub const REFUSALS: &str = "vault_refusals_total";
/// Bytes of ciphertext stored by uploads that committed.
pub const UPLOAD_BYTES: &str = "vault_upload_bytes_total";
/// Bytes of ciphertext sent to fetching clients.
pub const FETCH_BYTES: &str = "vault_fetch_bytes_total";
/// From an upload's start to its commit (body received, synced, row written).
pub const UPLOAD_SECONDS: &str = "vault_upload_duration_seconds";
/// From a fetch's start to the last byte of its answer (or the client going away).
pub const FETCH_SECONDS: &str = "vault_fetch_duration_seconds";
/// Uploads receiving or committing now.
pub const UPLOADS_IN_PROGRESS: &str = "vault_uploads_in_progress";
/// Syncing an upload's ciphertext and its rename to disk.
pub const BLOB_FSYNC_SECONDS: &str = "vault_blob_fsync_duration_seconds";
/// One group commit of the database writer (the COMMIT, whose fsync makes it durable).
pub const COMMIT_SECONDS: &str = "vault_db_commit_duration_seconds";
/// Requests committed together in one group.
pub const COMMIT_GROUP_SIZE: &str = "vault_db_commit_group_size";
/// Entries in the access log (at scrape time).
pub const LOG_ENTRIES: &str = "vault_access_log_entries";
/// Size of the database file, log included (at scrape time).
pub const DATABASE_BYTES: &str = "vault_database_bytes";
/// Bytes free for the server on the data directory's disk (at scrape time).
pub const DISK_FREE_BYTES: &str = "vault_disk_free_bytes";

/// Seconds: from a millisecond fsync to an hour-long upload.
const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0];
/// Requests per group commit: up to `db::MAX_GROUP`.
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Installs the process's metrics recorder and returns the handle `/metrics` renders.
/// Once per process; before it, metric calls are no-ops.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(COMMIT_GROUP_SIZE.into()), GROUP_BUCKETS)?
        .install_recorder()?;
    for (name, help) in [
        (REQUESTS, "Requests answered, by route template, method and status."),
        (REFUSALS, "Refused requests, by reason (the error code the caller got)."),
        (UPLOAD_BYTES, "Bytes of ciphertext stored by committed uploads."),
        (FETCH_BYTES, "Bytes of ciphertext sent to fetching clients."),
    ] {
        metrics::describe_counter!(name, help);
    }
    for (name, help) in [
        (REQUEST_SECONDS, "Seconds until a request's answer headers, by route template and method."),
        (UPLOAD_SECONDS, "Seconds from an upload's start to its commit."),
        (FETCH_SECONDS, "Seconds from a fetch's start to the last byte sent."),
        (BLOB_FSYNC_SECONDS, "Seconds syncing an upload's ciphertext and its rename to disk."),
        (COMMIT_SECONDS, "Seconds per group commit of the database writer."),
        (COMMIT_GROUP_SIZE, "Requests committed together in one group commit."),
    ] {
        metrics::describe_histogram!(name, help);
    }
    for (name, help) in [
        (UPLOADS_IN_PROGRESS, "Uploads receiving or committing now."),
        (LOG_ENTRIES, "Entries in the access log."),
        (DATABASE_BYTES, "Bytes of the database file (the access log included)."),
        (DISK_FREE_BYTES, "Bytes free for the server on the data directory's disk."),
    ] {
        metrics::describe_gauge!(name, help);
    }
    Ok(handle)
}

/// Serves `GET /metrics` on `listener` until the process ends; also runs the exporter's
/// upkeep, so that samples do not pile up between scrapes.
pub async fn serve(listener: tokio::net::TcpListener, handle: PrometheusHandle, state: AppState) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = axum::Router::new().route("/metrics", axum::routing::get(render)).with_state((handle, state)).layer(
        tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(detail = %e, "the metrics listener failed");
    }
}

/// The exposition, with the gauges read now: the log's size and the disk's free space.
async fn render(
    axum::extract::State((handle, st)): axum::extract::State<(PrometheusHandle, AppState)>,
) -> impl axum::response::IntoResponse {
    if let Ok((entries, _)) = st.db.read(|s| Ok(s.log_head()?)).await {
        metrics::gauge!(LOG_ENTRIES).set(entries as f64);
    }
    let db = crate::datadir::DataDir::new(&st.data_dir).db_path();
    if let Ok(m) = tokio::fs::metadata(&db).await {
        metrics::gauge!(DATABASE_BYTES).set(m.len() as f64);
    }
    if let Some(free) = crate::http::free_bytes(&st.data_dir) {
        metrics::gauge!(DISK_FREE_BYTES).set(free as f64);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
}

/// Counts a refusal under its reason (an error code from a fixed set).
pub fn refused(reason: &'static str) {
    metrics::counter!(REFUSALS, "reason" => reason).increment(1);
}

/// Times an operation into a histogram when dropped (so also when it is cut off).
pub struct Timer {
    name: &'static str,
    started: Instant,
}

impl Timer {
    pub fn start(name: &'static str) -> Self {
        Self { name, started: Instant::now() }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        metrics::histogram!(self.name).record(self.started.elapsed());
    }
}
