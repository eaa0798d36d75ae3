//! Serving: the router on a listener, over plain HTTP (loopback) or TLS, with the
//! retention purge and the access-log gate's windows running beside it until shutdown.
//!
//! Connections are accepted here rather than by `axum::serve`, so that what a client
//! that never finishes can hold is bounded: at most [`ConnLimits::max_connections`]
//! connections at once and [`ConnLimits::per_source`] from one address (more are closed
//! as soon as they are accepted); a TLS handshake and a request's headers must arrive
//! within [`ConnLimits::header_timeout`]; and a connection on which nothing moves in
//! either direction for [`ConnLimits::idle_timeout`] is closed, whether it idles between
//! requests, trickles nothing of a body, or does not read its answer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower::Service;

use crate::abuse::Source;
use crate::retention;
use crate::state::AppState;

/// The HTTP API; tests can call it without a socket.
pub fn app(state: AppState) -> axum::Router {
    crate::http::router(state)
}

/// Bounds on connections, as configured.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub per_source: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            per_source: 64,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Largest request head (HTTP/1.1 read buffer; HTTP/2 header list). The vault's own
/// headers are a few KiB at most (a token, encrypted call metadata).
const MAX_HEADERS: usize = 64 * 1024;

/// How long connections get to finish their requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `state` on `listener` until `shutdown` completes: over TLS with `tls`, else
/// plain HTTP.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    start_purge(&state);
    let windows = tokio::spawn(window_loop(state.clone()));
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = app(state.clone());
    let open = Arc::new(Open::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = auto::Builder::new(TokioExecutor::new());
    // Headers (and the read buffer) at most MAX_HEADERS bytes: a 300 KB token is refused
    // with 431 before anything parses it.
    http.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(MAX_HEADERS);
    // No keep-alive pings: a connection kept open only by answering them would never idle.
    http.http2().timer(TokioTimer::new()).max_concurrent_streams(64).max_header_list_size(MAX_HEADERS as u32);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(detail = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let source = Source::of(peer.ip());
        let Some(slot) = Open::take(&open, source, &limits) else {
            // Closed at once: no request was read, so there is nothing to log but a count.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, http, tls, watcher) = (app.clone(), http.clone(), tls.clone(), graceful.watcher());
        let (header_timeout, idle) = (limits.header_timeout, limits.idle_timeout);
        tokio::spawn(async move {
            let _slot = slot;
            let io = Idle::new(stream, idle);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().call(req)
            });
            match tls {
                None => {
                    let _ = watcher.watch(http.serve_connection_with_upgrades(TokioIo::new(io), service)).await;
                }
                Some(tls) => {
                    let Ok(Ok(io)) = tokio::time::timeout(header_timeout, tls.accept(io)).await else { return };
                    let _ = watcher.watch(http.serve_connection_with_upgrades(TokioIo::new(io), service)).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    windows.abort();
    // What the gate counted in the last window is written before the process ends.
    if let Err(e) = state.gate.flush(&state.db).await {
        tracing::error!(detail = %e, "cannot write the last aggregated log entries");
    }
    Ok(())
}

/// Loads the TLS certificate chain and key (PEM) into an acceptor that offers HTTP/2 and
/// HTTP/1.1.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let what = || format!("--tls-cert {} / --tls-key {}", cert.display(), key.display());
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e}", what()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow::anyhow!("cannot load {}: {e}", what()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| anyhow::anyhow!("cannot use {}: {e}", what()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Open connections, in all and per source.
#[derive(Default)]
struct Open {
    per_source: Mutex<HashMap<Source, usize>>,
}

/// One open connection's place; given back when dropped.
struct Slot {
    open: Arc<Open>,
    source: Source,
}

impl Open {
    fn take(open: &Arc<Open>, source: Source, limits: &ConnLimits) -> Option<Slot> {
        let mut map = open.per_source.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = map.values().sum();
        let mine = map.get(&source).copied().unwrap_or(0);
        if total >= limits.max_connections || mine >= limits.per_source {
            return None;
        }
        *map.entry(source).or_default() += 1;
        Some(Slot { open: open.clone(), source })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.open.per_source.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

/// A connection that fails with `TimedOut` once nothing moved on it, in either
/// direction, for its idle timeout while someone was waiting on it.
struct Idle<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self { inner, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(tokio::time::Instant::now() + self.timeout);
    }

    /// After the inner stream said Pending: an error if the deadline passed.
    fn check<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.check(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Closes the access-log gate's window every window (a minute by default), writing its
/// aggregated entries, and lets the rate limiters forget idle sources.
async fn window_loop(state: AppState) {
    let mut tick = tokio::time::interval(state.limits.window());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match state.gate.flush(&state.db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "aggregated unauthenticated requests into the access log"),
            Err(e) => tracing::error!(detail = %e, "cannot write aggregated log entries"),
        }
        state.limits.forget_idle();
    }
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
        let (db, blobs) = (state.db.clone(), state.blobs.clone());
        let result = tokio::task::spawn_blocking(move || retention::purge_due(&db, &blobs, "system")).await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(purged = n, "retention purge"),
            Ok(Err(e)) => tracing::error!(detail = %e, "retention purge failed"),
            Err(e) => tracing::error!(detail = %e, "retention purge task failed"),
        }
    }
}
