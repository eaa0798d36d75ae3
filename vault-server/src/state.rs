//! The state every handler shares, and opening a data directory to serve it.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::abuse::{LimitSettings, Limits, LogGate};
use crate::accesslog;
use crate::auth::{Challenges, Tokens};
use crate::blobs::{self, BlobArgs, BlobStore};
use crate::datadir::{self, DataDir};
use crate::db::Db;
use crate::orphans;
use crate::retention;
use crate::rotate;
use crate::server_keys;
use crate::witnessing::{Witness, Witnessing};

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
    /// Rate limits on callers without a session.
    pub limits: LimitSettings,
    /// Witnesses to have checkpoints cosigned by, and how often to ask them unprompted
    /// (`None`: only when a client asks for the witnessed checkpoint).
    pub witnesses: Vec<Witness>,
    pub witness_every: Option<std::time::Duration>,
    /// Least time between pushes that clients' requests trigger.
    pub witness_on_demand: std::time::Duration,
    /// `/readyz` says not ready below this many free bytes on the data directory's disk.
    pub ready_min_free: u64,
    /// Where recordings' ciphertext is kept.
    pub blobs: BlobArgs,
}

pub struct Inner {
    pub db: Db,
    pub blobs: BlobStore,
    pub tokens: Tokens,
    pub challenges: Challenges,
    pub origin: String,
    pub max_upload: u64,
    /// Signs access-log checkpoints.
    pub log_key: ring::signature::Ed25519KeyPair,
    /// The log's name in checkpoints and in its verifier key.
    pub log_origin: String,
    pub purge_interval: Option<std::time::Duration>,
    /// Rate limits on callers without a session, and the gate on their log entries.
    pub limits: Limits,
    pub gate: LogGate,
    /// The witnesses that cosign the log's checkpoints.
    pub witnesses: Witnessing,
    pub witness_every: Option<std::time::Duration>,
    /// The data directory, and the free space `/readyz` wants on its disk.
    pub data_dir: std::path::PathBuf,
    pub ready_min_free: u64,
    /// Whether the server is shutting down, and what it waits for.
    pub drain: crate::drain::Drain,
    /// Recording ids an upload or the unsigned sweep is working on.
    pub claims: crate::claims::Claims,
    /// Held while the server runs: no second `serve` on this data directory.
    _lock: std::fs::File,
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

/// Checks the data directory, verifies the access-log chain, loads the keys, clears
/// uploads left over from a previous run, finishes interrupted destructions and removes
/// (logging each) uploads never signed and ciphertext no recording names.
pub fn open_state(cfg: &Config) -> anyhow::Result<AppState> {
    let dir = DataDir::new(&cfg.data_dir);
    dir.check_servable()?;
    let lock = dir.lock_for_serving()?;
    let db = Db::open(&dir.db_path())?;
    let (entries, _) = db
        .snapshot(accesslog::verify)?
        .context("the access log is broken; refusing to serve (run `vault-server verify` for details)")?;
    // A key rotation a crash interrupted is completed (or abandoned) first.
    rotate::finish(&dir, &db)?;
    let (pair, pkcs8) = server_keys::load(&dir.jwt_key_path())?;
    let retired = rotate::retired_public_keys(&dir)?;
    let tokens = Tokens::new(&pair, &pkcs8, &retired);
    let (log_key, _) = server_keys::load(&dir.log_key_path())?;
    let log_origin = datadir::log_origin(&db)?;
    let transitions = rotate::check_transitions(&db, &log_origin, &log_key)?;
    let blobs = blobs::settings::open(&dir, &db, &cfg.blobs, blobs::settings::Use::Serve)?;
    // Uploads a crash cut off: unfinished multipart uploads (named in tmp/), then tmp/.
    let aborted = blobs.recover_blocking()?;
    let swept = dir.sweep_tmp()?;
    // Finish destructions a crash interrupted: their rows are gone, their files may not be.
    let finished = retention::finish_destructions(&db, &blobs)?;
    // Then ciphertext no recording names (an upload cut off between its rename and its
    // row): nothing is served yet, so no upload is in flight.
    let unsigned = orphans::sweep_unsigned(&db, &blobs, &crate::claims::Claims::default())?;
    let orphans = orphans::sweep(&db, &blobs)?;
    tracing::info!(
        entries,
        log_key_transitions = transitions,
        retired_token_keys = retired.len(),
        blob_store = %blobs.describe(),
        swept_partial_uploads = swept + aborted,
        finished_destructions = finished,
        removed_orphan_blobs = orphans,
        removed_unsigned_uploads = unsigned,
        "data dir checked"
    );
    Ok(AppState(Arc::new(Inner {
        db,
        blobs,
        tokens,
        challenges: Challenges::new(),
        origin: vault_core::challenge::normalize_origin(&cfg.origin),
        max_upload: cfg.max_upload,
        log_key,
        log_origin,
        purge_interval: cfg.purge_interval,
        limits: Limits::new(&cfg.limits),
        gate: LogGate::new(&cfg.limits),
        witnesses: Witnessing::new(cfg.witnesses.clone(), cfg.witness_on_demand)?,
        witness_every: cfg.witness_every,
        data_dir: cfg.data_dir.clone(),
        ready_min_free: cfg.ready_min_free,
        drain: crate::drain::Drain::default(),
        claims: crate::claims::Claims::default(),
        _lock: lock,
    })))
}
