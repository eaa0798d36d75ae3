//! `vault-cli witness serve --identity FILE --name NAME --log-key VKEY... --state FILE
//! --listen ADDR`: a witness over HTTP, `POST /add-checkpoint` (C2SP tlog-witness).
//!
//! Requests are handled one at a time: checking a request against the state, storing the
//! new state and releasing the cosignature happen under one lock, so two requests for the
//! same log can never both pass the check against the same old state (the protocol's
//! rollback race). One lock for all logs is stricter than one per log, and costs nothing
//! at the rate logs push checkpoints. The state is on disk before the answer leaves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Args;
use tokio::sync::Mutex;
use vault_core::cosign::Cosigner;
use vault_core::note::VerifierKey;
use vault_core::witness::{self, ADD_CHECKPOINT_PATH, AddCheckpoint, MAX_REQUEST_BYTES, Refusal};

use super::state::State;
use crate::Global;
use crate::output::printable;

#[derive(Args)]
pub struct Serve {
    /// The witness's name (a schema-less URL, e.g. witness.example.org/dpo); the key
    /// depends on it.
    #[arg(long)]
    name: String,
    /// A log's verifier key, as `vault-server log-key` prints it; repeat for more logs
    /// (or for a log's next key).
    #[arg(long = "log-key", value_name = "VKEY", required = true)]
    log_keys: Vec<String>,
    /// The state file: the last checkpoint cosigned per log (created if missing; keep it,
    /// and back it up: a witness that forgets can be fooled once).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// The address to listen on (plain HTTP: put a TLS proxy in front to serve others).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7380")]
    listen: SocketAddr,
}

struct Witness {
    key: Cosigner,
    logs: Vec<VerifierKey>,
    state: Mutex<State>,
}

impl Serve {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let key = super::cosigner(g, &self.name)?;
        let mut logs = Vec::new();
        for text in &self.log_keys {
            let k = VerifierKey::parse(text).with_context(|| format!("--log-key {:?}", printable(text)))?;
            logs.push(k);
        }
        let vkey = key.verifier().to_text();
        let (state, _lock) = State::open(&self.state, &vkey)?;
        let witness = Arc::new(Witness { key, logs, state: Mutex::new(state) });
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(self.listen)
                .await
                .with_context(|| format!("cannot listen on {}", self.listen))?;
            eprintln!("witness {vkey}");
            for k in &witness.logs {
                eprintln!("follows the log {}", printable(&k.to_text()));
            }
            eprintln!("listening on http://{}", listener.local_addr()?);
            axum::serve(listener, app(witness)).with_graceful_shutdown(shutdown()).await?;
            anyhow::Ok(())
        })
    }
}

fn app(witness: Arc<Witness>) -> Router {
    Router::new()
        .route(ADD_CHECKPOINT_PATH, post(add_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(witness)
}

/// Until SIGINT or SIGTERM. Nothing needs flushing: every answer's state is on disk.
async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

async fn add_checkpoint(AxState(w): AxState<Arc<Witness>>, body: Bytes) -> Response {
    let request = match AddCheckpoint::parse(&body) {
        Ok(r) => r,
        Err(refusal) => return refuse(None, refusal),
    };
    let origin = request.origin().to_owned();
    let mut state = w.state.lock().await;
    let accepted = match witness::check(&request, &w.logs, state.get(&origin)) {
        Ok(a) => a,
        Err(refusal) => {
            if matches!(refusal, Refusal::BadProof(_) | Refusal::Conflict { .. })
                && request.old_size == state.get(&origin).map_or(0, |l| l.size)
            {
                // Signed by the log, and not consistent with what it signed before: keep
                // it, it may prove the log forked.
                eprintln!("evidence from {}: {:?}", printable(&origin), request.to_body());
            }
            return refuse(Some(&origin), refusal);
        }
    };
    let next = state.with(&accepted.origin, accepted.head);
    let saved = tokio::task::spawn_blocking({
        let next = next.clone();
        move || next.save()
    })
    .await;
    match saved {
        Ok(Ok(())) => *state = next,
        Ok(Err(e)) => return internal(&format!("cannot store the state: {e:#}")),
        Err(e) => return internal(&format!("the state writer failed: {e}")),
    }
    let line = match accepted.cosign(&w.key, now()) {
        Ok(line) => line,
        Err(e) => return internal(&format!("cannot cosign: {e}")),
    };
    drop(state);
    eprintln!("cosigned {} at size {}", printable(&accepted.origin), accepted.head.size);
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], line).into_response()
}

fn refuse(origin: Option<&str>, refusal: Refusal) -> Response {
    eprintln!(
        "refused {} ({}): {}",
        printable(origin.unwrap_or("a request")),
        refusal.status(),
        printable(&refusal.to_string())
    );
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, [(header::CONTENT_TYPE, refusal.content_type())], refusal.body()).into_response()
}

/// A failure of the witness itself: no cosignature, a generic answer, the detail in the
/// witness's own log.
fn internal(detail: &str) -> Response {
    eprintln!("error: {detail}");
    (StatusCode::INTERNAL_SERVER_ERROR, "the witness failed; nothing was cosigned\n").into_response()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
