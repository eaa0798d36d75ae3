//! The recording vault's HTTP server, as a library.
//!
//! `main.rs` is a thin command line over this crate: [`open_state`] checks and opens a
//! data directory, [`app`] builds the router (tests can call it without a socket), and
//! [`serve`] runs it on a listener until a shutdown signal.

use std::future::Future;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

pub mod audit;
pub mod auth;
pub mod blobs;
pub mod datadir;
pub mod db;
pub mod error;
pub mod keys;
pub mod lifecycle;
pub mod policy;
pub mod routes;

/// Settings of a running server.
pub struct Config {
    pub data_dir: PathBuf,
    /// The URL clients use to reach this server; it is written into login challenges
    /// so that a challenge cannot be relayed through another server.
    pub origin: String,
    /// Largest accepted upload, in bytes of ciphertext.
    pub max_upload: u64,
    /// How often the retention purge runs (R7); `None` turns it off.
    pub purge_interval: Option<std::time::Duration>,
}

pub struct Inner {
    pub db: db::Db,
    pub blobs: blobs::BlobStore,
    pub tokens: auth::Tokens,
    pub challenges: auth::Challenges,
    pub origin: String,
    pub max_upload: u64,
    /// Signs access-log checkpoints.
    pub log_key: ring::signature::Ed25519KeyPair,
    /// The log's name in checkpoints and in its verifier key.
    pub log_origin: String,
    pub purge_interval: Option<std::time::Duration>,
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Checks the data directory, verifies the access-log chain, loads the keys, and clears
/// uploads left over from a previous run.
pub fn open_state(cfg: &Config) -> anyhow::Result<AppState> {
    let dir = datadir::DataDir::new(&cfg.data_dir);
    dir.check()?;
    let db = db::Db::open(&dir.db_path())?;
    let (entries, _) = db
        .with(|c| db::verify_log(c))
        .context("the access log is broken; refusing to serve (run `vault-server verify` for details)")?;
    let (pair, pkcs8) = datadir::load_key(&dir.jwt_key_path())?;
    let tokens = auth::Tokens::new(&pair, &pkcs8);
    let (log_key, _) = datadir::load_key(&dir.log_key_path())?;
    let log_origin = db.with(datadir::log_origin)?;
    let swept = dir.sweep_tmp()?;
    let blobs = blobs::BlobStore::new(dir.blobs(), dir.tmp());
    // Finish destructions a crash interrupted: their rows are gone, their files may not be.
    let finished = {
        let blobs = blobs.clone();
        db.with(move |c| lifecycle::delete_destroyed_blobs(c, &blobs))?
    };
    tracing::info!(entries, swept_partial_uploads = swept, finished_destructions = finished, "data dir checked");
    Ok(AppState(Arc::new(Inner {
        db,
        blobs,
        tokens,
        challenges: auth::Challenges::default(),
        origin: vault_core::challenge::normalize_origin(&cfg.origin),
        max_upload: cfg.max_upload,
        log_key,
        log_origin,
        purge_interval: cfg.purge_interval,
    })))
}

/// The HTTP API.
pub fn app(state: AppState) -> axum::Router {
    routes::router(state)
}

/// Serves `state` on `listener` until `shutdown` completes, purging expired recordings
/// in the background.
pub async fn serve(
    listener: std::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    start_purge(&state);
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

/// Serves `state` over TLS on `listener` until `shutdown` completes, like [`serve`].
pub async fn serve_tls(
    listener: std::net::TcpListener,
    tls: axum_server::tls_rustls::RustlsConfig,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    start_purge(&state);
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    listener.set_nonblocking(true)?;
    axum_server::from_tcp_rustls(listener, tls)?.handle(handle).serve(app(state).into_make_service()).await
}

/// Starts the background retention purge, if the configuration asks for one.
fn start_purge(state: &AppState) {
    if let Some(every) = state.purge_interval {
        tokio::spawn(purge_loop(state.clone(), every));
    }
}

/// Runs the retention purge now and then every `every` (R7).
async fn purge_loop(state: AppState, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let st = state.clone();
        let result = state
            .db
            .alone(move |c| lifecycle::purge_due(c, &st.blobs, "system").map_err(error::ApiError::internal))
            .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "retention purge"),
            Err(e) => tracing::error!(detail = e.detail.as_deref().unwrap_or(""), "retention purge failed"),
        }
    }
}
