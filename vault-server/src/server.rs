//! Serving: the router on a listener, over plain HTTP (loopback) or TLS, with the
//! retention purge running beside it until shutdown.

use std::future::Future;

use crate::retention;
use crate::state::AppState;

/// The HTTP API; tests can call it without a socket.
pub fn app(state: AppState) -> axum::Router {
    crate::http::router(state)
}

/// Serves `state` on `listener` until `shutdown` completes.
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
