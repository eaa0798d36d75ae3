//! Serving: the router on a listener, over plain HTTP (loopback) or TLS, with the
//! retention purge and the access-log gate's windows running beside it until shutdown.
//!
//! Connections are accepted here rather than by `axum::serve`, so that what a client
//! that never finishes can hold is bounded: at most [`ConnLimits::per_source`]
//! connections from one address (more are closed as soon as they are accepted) and
//! [`ConnLimits::max_connections`] in all; a TLS handshake and a request's headers must
//! arrive within [`ConnLimits::header_timeout`]; and a connection on which nothing moves
//! in either direction for [`ConnLimits::idle_timeout`] is closed, whether it idles
//! between requests, trickles nothing of a body, or does not read its answer.
//!
//! When all places are taken, a new connection is not refused: the connection that has
//! waited longest without a request in progress (half-sent headers, or idle between
//! requests) is closed to make room. Slow connections from many addresses therefore
//! cannot keep users out, and a request in progress (an upload, a fetch streaming its
//! answer) is never cut for a newcomer.
//!
//! At shutdown the server drains (see `crate::drain`): for at most
//! [`ConnLimits::shutdown_grace`] it finishes the requests in progress and takes the
//! signatures of the uploads it committed, refusing new work with 503; then it closes
//! whatever is left, and logs what it cut off.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
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
    /// How long requests in progress get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            per_source: 64,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Largest request head (HTTP/1.1 read buffer; HTTP/2 header list). The vault's own
/// headers are a few KiB at most (a token, encrypted call metadata).
const MAX_HEADERS: usize = 64 * 1024;

/// How often a draining server checks whether it has finished.
const DRAIN_POLL: Duration = Duration::from_millis(50);

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
    if let Some(every) = state.witness_every
        && !state.witnesses.is_empty()
    {
        tokio::spawn(crate::witnessing::witness_loop(state.clone(), every));
    }
    let windows = tokio::spawn(window_loop(state.clone()));
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = app(state.clone());
    let open = Arc::new(Open::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = auto::Builder::new(TokioExecutor::new());
    // Headers (and the read buffer) at most MAX_HEADERS bytes: a 300 KB token is refused
    // with 431 before anything parses it.
    http.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(MAX_HEADERS);
    // No keep-alive pings: a connection kept open only by answering them would never idle.
    http.http2().timer(TokioTimer::new()).max_concurrent_streams(64).max_header_list_size(MAX_HEADERS as u32);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    let accept = |stream: tokio::net::TcpStream, peer: std::net::SocketAddr| {
        let source = Source::of(peer.ip());
        let Some(slot) = Open::take(&open, source, &limits) else {
            // Closed at once: no request was read, so there is nothing to log but a count.
            drop(stream);
            return;
        };
        let _ = stream.set_nodelay(true);
        let (app, http, tls, watcher) = (app.clone(), http.clone(), tls.clone(), graceful.watcher());
        let (header_timeout, idle, open) = (limits.header_timeout, limits.idle_timeout, open.clone());
        tokio::spawn(async move {
            let close = slot.conn.close.clone();
            let conn = slot.conn.clone();
            let io = Idle::new(stream, idle);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let busy = Busy::new(&open, &conn);
                let answer = app.clone().call(req);
                async move {
                    let response = answer.await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|inner| axum::body::Body::new(BusyBody { inner, _busy: busy })),
                    )
                }
            });
            let served = async {
                match tls {
                    None => {
                        let _ = watcher.watch(http.serve_connection_with_upgrades(TokioIo::new(io), service)).await;
                    }
                    Some(tls) => {
                        let Ok(Ok(io)) = tokio::time::timeout(header_timeout, tls.accept(io)).await else { return };
                        let _ = watcher.watch(http.serve_connection_with_upgrades(TokioIo::new(io), service)).await;
                    }
                }
            };
            // Closed for a newcomer when the server is full, or at the end of the
            // shutdown grace: the connection is dropped.
            tokio::select! {
                () = served => {}
                () = close.cancelled() => {}
            }
            drop(slot);
        });
    };
    let accepted = |accepted: std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>| match accepted {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(detail = %e, "accept failed");
            None
        }
    };
    loop {
        tokio::select! {
            a = listener.accept() => match accepted(a) {
                Some((stream, peer)) => accept(stream, peer),
                // Out of file descriptors, say: wait a moment rather than spin.
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            () = &mut shutdown => break,
        }
    }
    // Draining: new connections are still taken, for the signatures of uploads that
    // commit meanwhile; everything else is answered 503 (see `crate::drain`).
    let deadline = tokio::time::Instant::now() + limits.shutdown_grace;
    state.drain.start();
    tracing::info!(
        connections = open.connections(),
        requests_in_progress = open.busy(),
        uploads_in_progress = state.drain.uploads_in_progress(),
        grace_secs = limits.shutdown_grace.as_secs_f64(),
        "stopping: finishing requests in progress, refusing new ones"
    );
    let mut poll = tokio::time::interval(DRAIN_POLL);
    loop {
        tokio::select! {
            a = listener.accept() => if let Some((stream, peer)) = accepted(a) { accept(stream, peer) },
            _ = poll.tick() => {
                if open.busy() == 0 && state.drain.awaiting_signatures() == 0 {
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    drop(listener);
    // Idle connections close now; those with a request in progress once it is answered.
    let finished = tokio::time::timeout_at(deadline, graceful.shutdown()).await.is_ok();
    let (cut_requests, cut_uploads) = (open.busy(), state.drain.uploads_in_progress());
    let unsigned = state.drain.awaiting_signatures();
    if !finished {
        // An upload cut off here drops its temporary file as its request is dropped.
        open.close_all();
    }
    windows.abort();
    // What the gate counted in the last window is written before the process ends.
    if let Err(e) = state.gate.flush(&state.db).await {
        tracing::error!(detail = %e, "cannot write the last aggregated log entries");
    }
    if finished && unsigned == 0 {
        tracing::info!("stopped: every request finished");
    } else {
        tracing::warn!(
            requests_cut_off = cut_requests,
            uploads_cut_off = cut_uploads,
            uploads_left_unsigned = unsigned,
            "stopped at the end of the shutdown grace period; cut-off uploads left nothing, and uploads left \
             unsigned are never listed and are removed after an hour"
        );
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
    if chain.first().is_some_and(|leaf| crate::tls_check::is_ca(leaf, &provider)) {
        tracing::warn!("{}", crate::tls_check::CA_AS_SERVER_CERT);
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| anyhow::anyhow!("cannot use {}: {e}", what()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Open connections, by id and per source.
struct Open {
    started: std::time::Instant,
    next_id: std::sync::atomic::AtomicU64,
    places: Mutex<Places>,
}

#[derive(Default)]
struct Places {
    conns: HashMap<u64, Arc<Conn>>,
    per_source: HashMap<Source, usize>,
}

/// One open connection, as eviction sees it.
struct Conn {
    source: Source,
    /// Requests in progress on it (their answers included, until sent).
    busy: AtomicUsize,
    /// Milliseconds since the server started when it last had no request in progress.
    idle_since: AtomicU64,
    /// Closes it.
    close: CancellationToken,
}

/// One open connection's place; given back when dropped.
struct Slot {
    open: Arc<Open>,
    id: u64,
    conn: Arc<Conn>,
}

impl Open {
    fn new() -> Self {
        Self { started: std::time::Instant::now(), next_id: AtomicU64::new(0), places: Mutex::default() }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A place for a new connection from `source`, closing the connection that has been
    /// without a request longest if all are taken; `None` if `source` has its share, or
    /// every connection has a request in progress.
    fn take(open: &Arc<Open>, source: Source, limits: &ConnLimits) -> Option<Slot> {
        let mut p = open.places.lock().unwrap_or_else(|e| e.into_inner());
        if p.per_source.get(&source).copied().unwrap_or(0) >= limits.per_source {
            return None;
        }
        if p.conns.len() >= limits.max_connections {
            let victim = p
                .conns
                .iter()
                .filter(|(_, c)| c.busy.load(Ordering::Relaxed) == 0)
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::Relaxed))
                .map(|(id, _)| *id)?;
            if let Some(c) = p.release(victim) {
                c.close.cancel();
            }
        }
        let id = open.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            source,
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(open.now_ms()),
            close: CancellationToken::new(),
        });
        p.conns.insert(id, conn.clone());
        *p.per_source.entry(source).or_default() += 1;
        Some(Slot { open: open.clone(), id, conn })
    }

    /// Connections open now.
    fn connections(&self) -> usize {
        self.places.lock().unwrap_or_else(|e| e.into_inner()).conns.len()
    }

    /// Requests in progress now, their answers included until sent.
    fn busy(&self) -> usize {
        let p = self.places.lock().unwrap_or_else(|e| e.into_inner());
        p.conns.values().map(|c| c.busy.load(Ordering::Relaxed)).sum()
    }

    /// Closes every connection (the end of the shutdown grace).
    fn close_all(&self) {
        let p = self.places.lock().unwrap_or_else(|e| e.into_inner());
        for c in p.conns.values() {
            c.close.cancel();
        }
    }
}

impl Places {
    /// Forgets connection `id` (closed, or chosen to close); returns it if it was here.
    fn release(&mut self, id: u64) -> Option<Arc<Conn>> {
        let c = self.conns.remove(&id)?;
        if let Some(n) = self.per_source.get_mut(&c.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&c.source);
            }
        }
        Some(c)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.places.lock().unwrap_or_else(|e| e.into_inner()).release(self.id);
    }
}

/// Marks a connection busy from a request's start until its answer was sent (or
/// dropped): the answer's body carries it.
struct Busy {
    open: Arc<Open>,
    conn: Arc<Conn>,
}

impl Busy {
    fn new(open: &Arc<Open>, conn: &Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::Relaxed);
        Self { open: open.clone(), conn: conn.clone() }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn.idle_since.store(self.open.now_ms(), Ordering::Relaxed);
        self.conn.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An answer's body that keeps its connection marked busy until it is done.
struct BusyBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl http_body::Body for BusyBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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

/// Runs the retention purge now and then every `every` (R7), and removes uploads never
/// signed.
async fn purge_loop(state: AppState, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (db, blobs, claims) = (state.db.clone(), state.blobs.clone(), state.claims.clone());
        let result = tokio::task::spawn_blocking(move || {
            Ok::<_, anyhow::Error>((
                retention::purge_due(&db, &blobs, "system")?,
                crate::orphans::sweep_unsigned(&db, &blobs, &claims)?,
            ))
        })
        .await;
        match result {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((purged, unsigned))) => {
                tracing::info!(purged, removed_unsigned_uploads = unsigned, "retention purge")
            }
            Ok(Err(e)) => tracing::error!(detail = %e, "retention purge failed"),
            Err(e) => tracing::error!(detail = %e, "retention purge task failed"),
        }
    }
}
