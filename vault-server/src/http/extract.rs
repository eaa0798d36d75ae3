//! Extractors: the request's access-log entry, who is calling and in which role, and
//! the path ids, query and JSON body, each parsed into its type.
//!
//! A failure is a client error that says what is wrong, and so a refusal that the
//! router's layer logs; the extractors fill in the entry as they learn (the actor once a
//! token names one, the case or recording a path names), so that a refusal further on
//! says who asked about what. Handlers therefore receive only authenticated callers of the
//! right role and well-formed ids, and never see a rejection.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use vault_core::api::Role;
use vault_core::ids::{CaseId, InvalidId, RecordingId, UserName};

use crate::accesslog::RequestLog;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::policy;
use crate::state::AppState;

fn request_log(parts: &Parts) -> Result<RequestLog, ApiError> {
    parts
        .extensions
        .get::<RequestLog>()
        .cloned()
        .ok_or_else(|| ApiError::internal("a route without its access-log layer"))
}

impl<S: Send + Sync> FromRequestParts<S> for RequestLog {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        request_log(parts)
    }
}

/// Any enrolled, enabled user, as the database says now: the user's row is read again on
/// every request, so disabling a user takes effect at once.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let token = parts.extensions.get::<super::Token>().cloned().unwrap_or(super::Token::Missing);
        let name = match token {
            super::Token::Valid(name) => name,
            super::Token::Missing => {
                return Err(
                    ApiError::unauthenticated("not logged in: run `vault-cli login`").with_detail("no bearer token")
                );
            }
            super::Token::Invalid(why) => {
                return Err(ApiError::unauthenticated("session token is invalid or expired: run `vault-cli login`")
                    .with_detail(why));
            }
        };
        let lookup = name.clone();
        let role = st.db.read(move |s| policy::may_use_token(s, &lookup)).await?;
        Ok(Caller { name, role })
    }
}

/// Refuses unless the caller has one of `roles`.
fn require_role(parts: &Parts, caller: &Caller, roles: &[Role]) -> Result<(), ApiError> {
    if roles.contains(&caller.role) {
        return Ok(());
    }
    let action = request_log(parts)?.action();
    let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(ApiError::denied(format!("{action} needs the role {}; you are {}", wanted.join(" or "), caller.role))
        .with_detail(format!("role {} may not do this", caller.role)))
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $($role:expr),+) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(#[allow(dead_code, reason = "some routes need only the role check")] pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
                let caller = Caller::from_request_parts(parts, st).await?;
                require_role(parts, &caller, &[$($role),+])?;
                Ok($name(caller))
            }
        }
    };
}

role_extractor!(
    /// A caller with the admin role.
    Admin,
    Role::Admin
);
role_extractor!(
    /// A caller with the auditor role: reads the access log.
    Auditor,
    Role::Auditor
);
role_extractor!(
    /// A caller with the recorder role (service accounts of the phone system).
    Recorder,
    Role::Recorder
);
role_extractor!(
    /// A caller who may read case and recording metadata: admins and investigators
    /// (subject to grants) and auditors (metadata only).
    Reader,
    Role::Admin,
    Role::Investigator,
    Role::Auditor
);
role_extractor!(
    /// A caller who may fetch recordings, subject to an active grant.
    Fetcher,
    Role::Admin,
    Role::Investigator
);

/// What a route's path names, parsed from its raw segments in order.
pub trait PathIds: Sized {
    fn parse(raw: &[&str]) -> Result<Self, InvalidId>;
    /// Puts what the path names into the request's access-log entry.
    fn note(&self, _log: &RequestLog) {}
}

fn one<'a>(raw: &[&'a str]) -> &'a str {
    raw.first().copied().unwrap_or_default()
}

impl PathIds for CaseId {
    fn parse(raw: &[&str]) -> Result<Self, InvalidId> {
        one(raw).parse()
    }
    fn note(&self, log: &RequestLog) {
        log.set_case(self);
    }
}

impl PathIds for RecordingId {
    fn parse(raw: &[&str]) -> Result<Self, InvalidId> {
        one(raw).parse()
    }
    fn note(&self, log: &RequestLog) {
        log.set_recording(self);
    }
}

impl PathIds for UserName {
    fn parse(raw: &[&str]) -> Result<Self, InvalidId> {
        one(raw).parse()
    }
}

impl PathIds for (CaseId, UserName) {
    fn parse(raw: &[&str]) -> Result<Self, InvalidId> {
        Ok((one(raw).parse()?, raw.get(1).copied().unwrap_or_default().parse()?))
    }
    fn note(&self, log: &RequestLog) {
        log.set_case(&self.0);
    }
}

/// The ids in a route's path, each parsed into its type before anything else reads them,
/// so a path-like or malformed id never reaches the database or the blob directory.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: PathIds> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("malformed path: {}", e.body_text())))?;
        let values: Vec<&str> = raw.iter().map(|(_, v)| v).collect();
        let ids = T::parse(&values).map_err(|e| ApiError::bad_request(e.to_string()))?;
        ids.note(&request_log(parts)?);
        Ok(ApiPath(ids))
    }
}

/// A query string parsed into `T`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::bad_request(format!("bad query parameters: {}", e.body_text()))),
        }
    }
}

/// A JSON body parsed into `T` (at most `http::JSON_LIMIT` bytes).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_error(&rej)),
        }
    }
}

fn json_error(rej: &JsonRejection) -> ApiError {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("request body too large")
    } else {
        ApiError::bad_request(format!("malformed request: {}", rej.body_text()))
    }
}
