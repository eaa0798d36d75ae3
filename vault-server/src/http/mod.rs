//! The HTTP API: its routes, each tagged with the access-log action it performs, and the
//! layer that writes every refusal to the access log.
//!
//! One file of handlers per resource. A handler takes a role extractor (so the role
//! check cannot be forgotten), typed path ids, and its body; it asks `policy` whether the
//! act is allowed and `store` for the data, inside [`RequestLog::logged`], which writes the
//! `allowed` entry in the same transaction. Handlers contain no SQL and never log a
//! refusal themselves: whatever refuses (an extractor, policy, a check of the body)
//! answers with a client error, and [`log_refusals`], wrapped around every route, writes
//! the `refused` entry before that answer leaves.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use vault_core::log::Action;

use crate::accesslog::RequestLog;
use crate::error::{ApiError, Refusal};
use crate::state::AppState;

mod audit;
mod cases;
mod custody;
mod extract;
mod grants;
mod lifecycle;
mod login;
mod recordings;
mod users;
mod validate;

#[cfg(test)]
mod tests;

/// Largest JSON request body.
const JSON_LIMIT: usize = 64 * 1024;

/// The API. Each line is one route: method, path, handler, and the action its access-log
/// entries record.
pub fn router(state: AppState) -> Router {
    let on = |action: Action, route: MethodRouter<AppState>| {
        route.route_layer(middleware::from_fn_with_state((state.clone(), action), log_refusals))
    };
    Router::new()
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
        .route("/v1/audit/checkpoint", on(Action::AuditCheckpoint, get(audit::checkpoint)))
        .route("/v1/audit/export", on(Action::AuditExport, get(audit::export)))
        .route("/v1/audit/entries", on(Action::AuditLog, get(audit::entries)))
        .fallback(|| async { ApiError::not_found("no such API route; is vault-cli the same version as the server?") })
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .with_state(state)
}

/// Gives the request its access-log entry for `action`, runs the route, and writes the
/// entry as refused if the answer carries a [`Refusal`]. If that entry cannot be written,
/// the request fails with a server error instead (fail closed).
async fn log_refusals(State((st, action)): State<(AppState, Action)>, mut req: Request, next: Next) -> Response {
    let log = RequestLog::new(action);
    req.extensions_mut().insert(log.clone());
    let mut response = next.run(req).await;
    if let Some(refusal) = response.extensions_mut().remove::<Refusal>()
        && let Err(e) = log.write_refusal(&st.db, &refusal).await
    {
        return e.into_response();
    }
    response
}
