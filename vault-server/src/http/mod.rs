//! The HTTP API: its routes, each tagged with the access-log action it performs, and the
//! layer around all of them that checks the session token, applies the rate limits and
//! writes every refusal to the access log.
//!
//! One file of handlers per resource. A handler takes a role extractor (so the role
//! check cannot be forgotten), typed path ids, and its body; it asks `policy` whether the
//! act is allowed and `store` for the data, inside [`RequestLog::logged`], which writes the
//! `allowed` entry in the same transaction. Handlers contain no SQL and never log a
//! refusal themselves: whatever refuses (an extractor, policy, a check of the body, the
//! router itself for an unknown route or method, a rate limit) answers with a client
//! error, and [`guard`], wrapped around the whole router, writes the `refused` entry
//! before that answer leaves. Entries of callers without a valid session pass through
//! the [`LogGate`](crate::abuse::LogGate), which bounds how many are written one by one.
//!
//! Around the guard, every request gets a fresh id (`x-request-id`, echoed in the answer;
//! one a client sends is replaced, so that no client can make its requests look like
//! another's in the server log) and a tracing span carrying it, and leaves one log line
//! when its answer starts: method, route template, status, latency, bytes, user and
//! client address, never a token, query or body. A refusal leaves a line of its own with
//! its reason. The guard also counts requests and refusals for `/metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use vault_core::ids::UserName;
use vault_core::log::{Action, Outcome};

use crate::abuse::{Admit, Source};
use crate::accesslog::{RequestLog, cap};
use crate::error::{ApiError, Refusal, code_for_status};
use crate::monitoring;
use crate::state::AppState;

pub(crate) use health::free_bytes;

mod audit;
mod cases;
mod custody;
mod extract;
mod grants;
mod health;
mod lifecycle;
mod login;
mod openapi;
mod recordings;
mod users;
mod validate;

#[cfg(test)]
mod tests;

/// Largest JSON request body.
const JSON_LIMIT: usize = 64 * 1024;
/// How long a request other than an upload may take until its answer's headers.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The header carrying a request's id, in the answer (and the log lines it leaves).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The route of an upload's signature, which a draining server still answers.
const SIGNATURE_ROUTE: &str = "/v1/recordings/{id}/signature";

/// The API. Each line is one route: method, path, handler, and the action its access-log
/// entries record.
pub fn router(state: AppState) -> Router {
    // Every route but an upload (which may stream for hours, bounded by the connection's
    // idle timeout instead) must produce its answer's headers within REQUEST_TIMEOUT.
    let on = |action: Action, route: MethodRouter<AppState>| {
        let route = if action == Action::Upload {
            route
        } else {
            route.route_layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        };
        route.route_layer(middleware::from_fn_with_state(action, name_action))
    };
    Router::new()
        // Probes: no token, no log entry (see `health`).
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/login/challenge", on(Action::LoginChallenge, post(login::challenge)))
        .route("/v1/login", on(Action::Login, post(login::login)))
        .route("/v1/users", on(Action::UserList, get(users::list)))
        .route("/v1/users", on(Action::UserAdd, post(users::add)))
        .route("/v1/users/{name}", on(Action::UserShow, get(users::show)))
        .route("/v1/users/{name}/approve", on(Action::UserApprove, post(users::approve)))
        .route("/v1/users/{name}/disable", on(Action::UserDisable, post(users::disable)))
        .route("/v1/trust", on(Action::Trust, get(users::trust_info)))
        .route("/v1/cases", on(Action::CaseList, get(cases::list)))
        .route("/v1/cases", on(Action::CaseCreate, post(cases::create)))
        .route("/v1/cases/{id}", on(Action::CaseShow, get(cases::show)))
        .route("/v1/cases/{id}/approve", on(Action::CaseApprove, post(cases::approve)))
        .route("/v1/cases/{id}/recipient", on(Action::CaseRecipient, get(cases::recipient)))
        .route("/v1/cases/{id}/close", on(Action::CaseClose, post(lifecycle::close)))
        .route("/v1/cases/{id}/notify", on(Action::Notify, post(lifecycle::notify)))
        .route("/v1/cases/{id}/release-hold", on(Action::ReleaseHold, post(lifecycle::release_hold)))
        .route("/v1/cases/{id}/reopen", on(Action::CaseReopen, post(lifecycle::reopen)))
        .route("/v1/cases/{id}/reopen/approve", on(Action::CaseReopenApprove, post(lifecycle::reopen_approve)))
        .route("/v1/report", on(Action::Report, get(lifecycle::report)))
        .route("/v1/cases/{id}/key", on(Action::CaseKey, get(custody::case_key)))
        .route("/v1/cases/{id}/custodians", on(Action::AddCustodian, post(custody::add_custodian)))
        .route("/v1/cases/{id}/envelopes", on(Action::CaseEnvelopes, get(custody::own_envelopes)))
        .route("/v1/cases/{id}/rotate", on(Action::RotateKey, post(custody::rotate)))
        .route("/v1/cases/{id}/grants", on(Action::Grant, post(grants::grant)))
        .route("/v1/cases/{id}/grants/{user}/approve", on(Action::GrantApprove, post(grants::approve)))
        .route("/v1/cases/{id}/grants/{user}/deliver", on(Action::GrantDeliver, post(grants::deliver)))
        .route("/v1/cases/{id}/grants/{user}/revoke", on(Action::Revoke, post(grants::revoke)))
        .route("/v1/cases/{id}/recordings", on(Action::RecordingList, get(recordings::list)))
        .route("/v1/cases/{id}/recordings", on(Action::Upload, post(recordings::upload)))
        .route("/v1/recordings/{id}/signature", on(Action::RecordingSign, post(recordings::sign)))
        .route("/v1/recordings/{id}/fetch", on(Action::Fetch, post(recordings::fetch)))
        .route("/v1/recordings/{id}/evidence", on(Action::EvidenceExport, post(recordings::evidence)))
        .route("/v1/audit/checkpoint", on(Action::AuditCheckpoint, get(audit::checkpoint)))
        .route("/v1/audit/export", on(Action::AuditExport, get(audit::export)))
        .route("/v1/audit/entries", on(Action::AuditLog, get(audit::entries)))
        .route("/v1/audit/consistency", on(Action::AuditProof, get(audit::consistency)))
        .route("/v1/audit/inclusion", on(Action::AuditProof, get(audit::inclusion)))
        .route("/v1/log/checkpoint", on(Action::LogCheckpoint, get(audit::witnessed_checkpoint)))
        .route("/v1/log/key-transitions", on(Action::LogCheckpoint, get(audit::key_transitions)))
        .route_layer(middleware::from_fn_with_state(state.clone(), routed))
        .fallback(|| async { ApiError::not_found("no such API route; is vault-cli the same version as the server?") })
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        // Outermost last: the id is replaced, then set, then the span made with it.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(request_line)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .layer(middleware::map_request(drop_client_request_id))
        .with_state(state)
}

/// Request ids: 64 random bits in hex, unique enough to find one request in a log.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = hex::encode(vault_core::ids::random_bytes::<8>());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// Removes a request id the client sent: ids are the server's (see the module docs).
async fn drop_client_request_id(mut req: Request) -> Request {
    req.headers_mut().remove(REQUEST_ID);
    req
}

/// The span of one request: its id, which every line logged while it runs carries.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> Span {
    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", request_id = %id)
}

/// What the guard learnt of a request, for its log line: put on its answer.
#[derive(Debug, Clone)]
struct Seen {
    method: &'static str,
    /// The authenticated caller, if the request carried a valid session token.
    user: Option<String>,
    client: Option<std::net::IpAddr>,
    /// The request body's announced length (Content-Length or the upload's own header).
    bytes_in: Option<u64>,
}

/// The one line a request leaves, when its answer's headers are ready. Probes (every few
/// seconds from a load balancer) log at debug level.
fn request_line(res: &Response, latency: Duration, _: &Span) {
    let route = res.extensions().get::<MatchedPath>().map_or("-", |m| m.as_str());
    let seen = res.extensions().get::<Seen>();
    let bytes_out = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| http_body::Body::size_hint(res.body()).exact());
    let (method, user) = (seen.map_or("-", |s| s.method), seen.and_then(|s| s.user.as_deref()).unwrap_or("-"));
    let client = seen.and_then(|s| s.client).map(|c| c.to_string());
    let client = client.as_deref().unwrap_or("-");
    let bytes_in = seen.and_then(|s| s.bytes_in);
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let status = res.status().as_u16();
    if route == "/healthz" || route == "/readyz" {
        tracing::debug!(method, route, status, latency_ms, bytes_in, bytes_out, user, client, "request");
    } else {
        tracing::info!(method, route, status, latency_ms, bytes_in, bytes_out, user, client, "request");
    }
}

/// A method as a label: one of the standard ones, else `OTHER` (a client may send any).
fn method_label(m: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
        Method::CONNECT,
    ];
    KNOWN.iter().find(|k| *k == m).map_or("OTHER", |k| k.as_str())
}

/// Around every routed request: puts its route template on the answer (for the log line
/// and the metrics; never the raw path), and while the server drains answers 503 to all
/// but upload signatures and the probes (see `crate::drain`).
async fn routed(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("", |m| m.as_str());
    let mut response = if st.drain.is_draining() && ![SIGNATURE_ROUTE, "/healthz", "/readyz"].contains(&route) {
        let mut r = ApiError::unavailable("the server is shutting down; try again in a moment").into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    } else {
        next.run(req).await
    };
    if let Some(m) = matched {
        response.extensions_mut().insert(m);
    }
    response
}

/// What a request's bearer token says, checked once by [`guard`] for the extractors.
#[derive(Debug, Clone)]
pub enum Token {
    Missing,
    /// Why it is not valid (capped: it can quote what the caller sent).
    Invalid(String),
    Valid(UserName),
}

/// Marks a response whose request changed and read nothing but is logged as `allowed`
/// by [`guard`] (a login challenge), so that it passes the same gate as a refusal.
#[derive(Debug, Clone, Copy)]
pub struct LogAllowed;

/// Names the route's action in the request's entry.
async fn name_action(State(action): State<Action>, req: Request, next: Next) -> Response {
    if let Some(log) = req.extensions().get::<RequestLog>() {
        log.set_action(action);
    }
    next.run(req).await
}

/// Around every request, routed or not: gives it its access-log entry (action `request`
/// until a route names its own), checks its bearer token, rate-limits it if it has no
/// valid one, runs it, and writes its entry if it was refused (or is a [`LogAllowed`]
/// answer). A refusal the router made itself (an unknown route or method) becomes one
/// here too. If the entry cannot be written, the request fails with a server error
/// instead (fail closed).
async fn guard(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let source = client.map_or(Source::Local, Source::of);
    let method = method_label(req.method());
    let bytes_in = [vault_core::api::HEADER_UPLOAD_LENGTH, header::CONTENT_LENGTH.as_str()]
        .iter()
        .find_map(|h| req.headers().get(*h)?.to_str().ok()?.parse::<u64>().ok());
    let log = RequestLog::new(Action::Request, source);
    let token = match req.headers().get(axum::http::header::AUTHORIZATION) {
        None => Token::Missing,
        Some(v) => match v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
            None => Token::Invalid("the Authorization header is not a bearer token".into()),
            Some(t) => match st.tokens.verify(t) {
                Ok(name) => Token::Valid(name),
                Err(why) => Token::Invalid(cap(&why, 200).into_owned()),
            },
        },
    };
    if let Token::Valid(name) = &token {
        log.set_authenticated(name);
    }
    let route = cap(&format!("{} {}", req.method(), req.uri().path()), 200).into_owned();
    let limited = if log.authenticated() { Ok(()) } else { st.limits.unauthenticated(source) };
    let mut response = match limited {
        Ok(()) => {
            req.extensions_mut().insert(log.clone());
            req.extensions_mut().insert(token);
            next.run(req).await
        }
        Err(wait) => {
            ApiError::too_fast(wait.retry_after_secs()).with_detail(format!("rate limit: {route}")).into_response()
        }
    };
    let status = response.status();
    let refusal = response.extensions_mut().remove::<Refusal>().or_else(|| {
        status.is_client_error().then(|| Refusal {
            code: code_for_status(status),
            message: status.canonical_reason().unwrap_or("client error").to_lowercase(),
            why: Some(route),
        })
    });
    let matched = response.extensions().get::<MatchedPath>().cloned();
    let template = matched.as_ref().map_or("-", |m| m.as_str()).to_owned();
    if let Some(r) = &refusal {
        monitoring::refused(r.code);
        // The user a token or a login named, even if it was refused.
        let named = log.record().actor;
        let client = client.map(|c| c.to_string());
        tracing::info!(
            route = %template,
            method,
            status = status.as_u16(),
            reason = r.code,
            user = %named,
            client = client.as_deref().unwrap_or("-"),
            "refused"
        );
    }
    let allowed = response.extensions_mut().remove::<LogAllowed>().is_some();
    let written = match (&refusal, allowed) {
        (Some(r), _) => record(&st, &log, Outcome::Refused, Some(r)).await,
        (None, true) => record(&st, &log, Outcome::Allowed, None).await,
        (None, false) => Ok(()),
    };
    let mut response = match written {
        Ok(()) => response,
        Err(e) => e.into_response(),
    };
    let status = response.status().as_str().to_owned();
    metrics::counter!(monitoring::REQUESTS, "route" => template.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(monitoring::REQUEST_SECONDS, "route" => template, "method" => method).record(started.elapsed());
    let user = log.authenticated().then(|| log.record().actor);
    response.extensions_mut().insert(Seen { method, user, client, bytes_in });
    if let Some(m) = matched {
        response.extensions_mut().insert(m);
    }
    response
}

/// Writes the entry of a request that was refused or is logged by the layer: at once,
/// unless its caller has no valid session and the gate counts it instead.
async fn record(st: &AppState, log: &RequestLog, outcome: Outcome, refusal: Option<&Refusal>) -> Result<(), ApiError> {
    if !log.authenticated() {
        let told = refusal.map(|r| r.message.as_str()).unwrap_or_default();
        if st.gate.admit(log.source(), &log.record(), outcome, told) == Admit::Counted {
            return Ok(());
        }
    }
    match refusal {
        Some(r) => log.write_refusal(&st.db, r).await,
        None => log.write_allowed(&st.db).await,
    }
}
