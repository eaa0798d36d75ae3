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

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tower_http::timeout::TimeoutLayer;
use vault_core::ids::UserName;
use vault_core::log::{Action, Outcome};

use crate::abuse::{Admit, Source};
use crate::accesslog::{RequestLog, cap};
use crate::error::{ApiError, Refusal};
use crate::state::AppState;

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
        .fallback(|| async { ApiError::not_found("no such API route; is vault-cli the same version as the server?") })
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
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
    let source = req.extensions().get::<ConnectInfo<SocketAddr>>().map_or(Source::Local, |c| Source::of(c.0.ip()));
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
    let refusal = response.extensions_mut().remove::<Refusal>().or_else(|| {
        let status = response.status();
        status.is_client_error().then(|| Refusal {
            message: status.canonical_reason().unwrap_or("client error").to_lowercase(),
            why: Some(route),
        })
    });
    let allowed = response.extensions_mut().remove::<LogAllowed>().is_some();
    let written = match (&refusal, allowed) {
        (Some(r), _) => record(&st, &log, Outcome::Refused, Some(r)).await,
        (None, true) => record(&st, &log, Outcome::Allowed, None).await,
        (None, false) => Ok(()),
    };
    match written {
        Ok(()) => response,
        Err(e) => e.into_response(),
    }
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
