//! A "lying server": an HTTP/1.1 reverse proxy on a free loopback port that forwards every
//! request to an upstream `vault-server` and lets a test rewrite requests and responses on
//! the way, to check what the CLI does when the server (or the network) lies to it.
//!
//! ```ignore
//! let proxy = Proxy::start(&vault.url, |_req: &Request, resp: &mut Response| {
//!     let mut v = resp.json();
//!     v["sha256"] = "00".repeat(32).into();
//!     resp.set_json(&v);
//! });
//! // ... point the CLI at `proxy.url` ...
//! ```
//!
//! Bodies are buffered fully in both directions. The proxy runs on its own tokio runtime in
//! a background thread; dropping the [`Proxy`] stops it.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;

/// Headers that describe one connection or the framing of one message, never forwarded
/// (`content-length` is recomputed from the final body; `host` is the upstream's).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
];

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn replace_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.to_ascii_lowercase(), value.to_owned()));
}

/// A request as the CLI sent it (body fully buffered).
///
/// `headers` are all the headers the CLI sent, framing ones (`transfer-encoding`,
/// `content-length`, `host`, ...) included, names in lower case; those are not forwarded
/// (the upstream gets a `content-length` computed from `body`, and its own `host`).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/recordings?limit=5`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Replaces every header called `name` (case-insensitive) with one `name: value`, or
    /// adds it.
    pub fn set_header(&mut self, name: &str, value: &str) {
        replace_header(&mut self.headers, name, value);
    }

    /// The body as JSON; panics with the body text if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// The server's answer (body fully buffered).
///
/// `headers` are the end-to-end headers of the upstream's answer, names in lower case:
/// framing ones (`content-length`, `transfer-encoding`, `connection`, ...) are removed,
/// and `content-length` is recomputed from the final `body`.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Replaces every header called `name` (case-insensitive) with one `name: value`, or
    /// adds it.
    pub fn set_header(&mut self, name: &str, value: &str) {
        replace_header(&mut self.headers, name, value);
    }

    /// The body as JSON; panics with the body text if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("response body (status {}) is not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    /// Replaces the body with `v` and sets `content-type: application/json`.
    pub fn set_json(&mut self, v: &serde_json::Value) {
        self.body = serde_json::to_vec(v).expect("serialise JSON");
        self.set_header("content-type", "application/json");
    }
}

/// What the lying server does. Both methods default to passing things through unchanged.
pub trait Lie: Send + Sync + 'static {
    /// Rewrites a request before it is forwarded (method, path, headers and body).
    fn request(&self, _req: &mut Request) {}
    /// Rewrites the upstream's answer to `req` (the request as forwarded) before the CLI
    /// gets it.
    fn response(&self, _req: &Request, _resp: &mut Response) {}
}

/// A lie a test can change as it goes: honest until [`Switch::lie`], honest again after
/// [`Switch::honest`].
#[derive(Clone, Default)]
pub struct Switch(Arc<Mutex<Option<Rewrite>>>);

type Rewrite = Box<dyn Fn(&Request, &mut Response) + Send + Sync>;

impl Switch {
    /// From now on, every answer goes through `f`.
    pub fn lie(&self, f: impl Fn(&Request, &mut Response) + Send + Sync + 'static) {
        *self.0.lock().unwrap() = Some(Box::new(f));
    }

    pub fn honest(&self) {
        *self.0.lock().unwrap() = None;
    }
}

impl Lie for Switch {
    fn response(&self, req: &Request, resp: &mut Response) {
        if let Some(f) = &*self.0.lock().unwrap() {
            f(req, resp)
        }
    }
}

/// Any closure over (request, response) is a Lie that rewrites responses.
impl<F: Fn(&Request, &mut Response) + Send + Sync + 'static> Lie for F {
    fn response(&self, req: &Request, resp: &mut Response) {
        self(req, resp)
    }
}

struct Shared {
    upstream: Mutex<String>,
    client: reqwest::Client,
    lie: Box<dyn Lie>,
    seen: Mutex<Vec<(String, String)>>,
    /// Forward the client's `Host` (for an upstream that checks signatures over it).
    keep_host: bool,
}

/// A running lying server; dropping it stops it.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`, where the proxy listens.
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`, http only) on a free
    /// loopback port; returns once it listens.
    pub fn start(upstream: &str, lie: impl Lie) -> Proxy {
        Self::start_with(upstream, lie, false)
    }

    /// As [`Proxy::start`], forwarding the `Host` the client sent: for an upstream that
    /// checks a signature over it (an S3 server checks SigV4's).
    pub fn start_keeping_host(upstream: &str, lie: impl Lie) -> Proxy {
        Self::start_with(upstream, lie, true)
    }

    fn start_with(upstream: &str, lie: impl Lie, keep_host: bool) -> Proxy {
        assert!(upstream.starts_with("http://"), "the lying server forwards to http only, not {upstream}");
        // reqwest is built with `rustls-no-provider`: it wants a process-wide provider even
        // for plain http. Someone else may have installed one already; that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .build()
            .expect("build the proxy's HTTP client");
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream.trim_end_matches('/').to_owned()),
            client,
            lie: Box::new(lie),
            seen: Mutex::new(Vec::new()),
            keep_host,
        });

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy to 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("lying-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let app = axum::Router::new().fallback(forward).with_state(state);
                    let _ = ready_tx.send(());
                    tokio::select! {
                        r = axum::serve(listener, app) => r.expect("proxy server"),
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here ends the connections still open.
            })
            .expect("start the proxy thread");
        ready_rx.recv().expect("the proxy thread failed to start");
        Proxy { url, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// Forwards from now on to `upstream` (`http://127.0.0.1:PORT`), e.g. after
    /// [`crate::Vault::restart`] moved the server to a new port, or when the server had
    /// to be started after the proxy (to know the proxy's URL for `--public-url`).
    pub fn set_upstream(&self, upstream: &str) {
        assert!(upstream.starts_with("http://"), "the lying server forwards to http only, not {upstream}");
        *self.shared.upstream.lock().unwrap() = upstream.trim_end_matches('/').to_owned();
    }

    /// Every (method, path) the proxy forwarded so far, in order (after the lie's
    /// `request` rewrite; path includes the query).
    pub fn seen(&self) -> Vec<(String, String)> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bad_gateway(msg: String) -> axum::response::Response {
    (StatusCode::BAD_GATEWAY, format!("lying proxy: {msg}")).into_response()
}

async fn forward(State(shared): State<Arc<Shared>>, req: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return bad_gateway(format!("reading the request body: {e}")),
    };
    let mut req = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: body.to_vec(),
    };
    shared.lie.request(&mut req);
    shared.seen.lock().unwrap().push((req.method.clone(), req.path.clone()));

    let method = match reqwest::Method::from_bytes(req.method.as_bytes()) {
        Ok(m) => m,
        Err(e) => return bad_gateway(format!("method {:?}: {e}", req.method)),
    };
    let mut headers = reqwest::header::HeaderMap::new();
    // Headers the `Connection` header names are hop-by-hop too.
    let connection_named: Vec<String> = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for (k, v) in &req.headers {
        let host = k.eq_ignore_ascii_case("host") && !shared.keep_host;
        if is_hop_by_hop(k) || host || connection_named.contains(&k.to_ascii_lowercase()) {
            continue;
        }
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_bytes(v.as_bytes()))
        else {
            return bad_gateway(format!("header {k:?}: {v:?} cannot be sent"));
        };
        headers.append(name, value);
    }
    let url = format!("{}{}", shared.upstream.lock().unwrap(), req.path);
    let sent = shared.client.request(method, &url).headers(headers).body(req.body.clone()).send().await;
    let answer = match sent {
        Ok(a) => a,
        Err(e) => return bad_gateway(format!("{} {url}: {e}", req.method)),
    };
    let status = answer.status().as_u16();
    let is_head = req.method.eq_ignore_ascii_case("HEAD");
    let head_length = answer.headers().get("content-length").cloned();
    let answer_headers: Vec<(String, String)> = answer
        .headers()
        .iter()
        .filter(|(k, _)| !is_hop_by_hop(k.as_str()))
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let answer_body = match answer.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) => return bad_gateway(format!("reading the answer to {} {url}: {e}", req.method)),
    };
    let mut resp = Response { status, headers: answer_headers, body: answer_body };
    shared.lie.response(&req, &mut resp);

    let mut out = axum::http::Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (k, v) in &resp.headers {
        if is_hop_by_hop(k) {
            continue;
        }
        match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_bytes(v.as_bytes())) {
            (Ok(name), Ok(value)) => out = out.header(name, value),
            _ => return bad_gateway(format!("response header {k:?}: {v:?} cannot be sent")),
        }
    }
    // A HEAD answer has no body but announces the length of the one a GET would get.
    if is_head
        && resp.body.is_empty()
        && let Some(len) = head_length
    {
        out = out.header("content-length", len);
    }
    out.body(Body::from(resp.body)).unwrap_or_else(|e| bad_gateway(format!("building the answer: {e}")))
}
