//! The authorisation matrix in process: the real router, driven with
//! `tower::ServiceExt::oneshot` (no socket), against a vault in a temporary directory.
//!
//! Where `tests/matrix.rs` checks every route against every role through the real
//! binaries, this checks every named decision of `policy` and every refusing extractor:
//! each row is a request that must be refused, with its status and the reason the caller
//! is told, and each refusal must leave exactly one `refused` entry (with the right actor
//! and action) and change nothing else. The allowed side of each decision follows.

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::json;
use tower::ServiceExt;
use vault_core::api::{CaseBasis, Closing, NewCase, NewCustodian, NewGrant, Outcome, Purpose, Role, WrappedKey};
use vault_core::crypto::CaseKey;
use vault_core::ids::{CaseId, RecordingId, UserName};
use vault_core::log::Entry;
use vault_core::trust::{
    CaseKeyStatement, CustodianStatement, Disable, Enrol, GrantStatement, RecordingStatement, Signed, SigningKey,
    statement,
};

use crate::datadir::DataDir;
use crate::state::{AppState, Config, open_state};
use crate::store::Store;

struct World {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    st: AppState,
    app: Router,
    /// The log origin, which every signed statement names.
    vault: String,
    people: HashMap<String, age::x25519::Identity>,
    /// Case name -> (id, key).
    cases: HashMap<&'static str, (CaseId, CaseKey)>,
    /// A signed recording of the open case, and one not signed yet.
    rec: RecordingId,
    unsigned: RecordingId,
}

/// One refusal: (who, method, path, JSON body, status, what the caller is told, action).
/// `who` is a user name, `-` for no token, or `token:...` for a raw token. Paths name
/// cases as `{open}`, `{closed}`, `{pending}` (covert, not approved) and `{covert}`
/// (approved), and the one recording of `{open}` as `{rec}`. Bodies may be made by
/// [`World::body`]: `disable:WHO:BY` (a signed disabling), `enrol:WHO:ROLE:BY` (a signed
/// enrolment), `cosign:WHO:BY` (BY's signature of WHO's enrolment), `recsig:BY` (BY's
/// signature of `{rec}`).
type Row = (&'static str, &'static str, &'static str, &'static str, u16, &'static str, &'static str);

#[rustfmt::skip]
const REFUSALS: &[Row] = &[
    // Extractors: authentication, role, ids, bodies, queries.
    ("-", "GET", "/v1/users", "", 401, "not logged in", "user-list"),
    ("token:garbage", "GET", "/v1/users", "", 401, "session token is invalid", "user-list"),
    ("dave", "GET", "/v1/cases", "", 403, "your account is disabled", "case-list"),
    ("ivan", "GET", "/v1/users", "", 403, "user-list needs the role admin; you are investigator", "user-list"),
    ("pbx", "GET", "/v1/cases/{open}", "", 403, "needs the role admin or investigator or auditor", "case-show"),
    ("audrey", "POST", "/v1/recordings/{rec}/fetch", r#"{"reason":"r"}"#, 403, "needs the role", "fetch"),
    ("alice", "GET", "/v1/cases/case_ZZ", "", 400, "is not valid: expected", "case-show"),
    ("alice", "GET", "/v1/users/..%2Fx", "", 400, "is not valid", "user-show"),
    ("alice", "POST", "/v1/users", "{", 400, "malformed request", "user-add"),
    ("ivan", "GET", "/v1/cases/{open}/recordings?limit=x", "", 400, "bad query parameters", "recording-list"),
    ("-", "POST", "/v1/login", "[]", 400, "malformed request", "login"),
    ("alice", "GET", "/v1/cases/%FF", "", 400, "malformed path", "case-show"),
    ("audrey", "GET", "/v1/audit/entries?from=x", "", 400, "bad query parameters", "audit-log"),
    ("audrey", "GET", "/v1/audit/entries?case=case_1", "", 400, "is not valid", "audit-log"),
    // may_disable_user, and the signed disabling
    ("alice", "POST", "/v1/users/alice/disable", "disable:alice:alice", 400, "cannot disable yourself", "user-disable"),
    ("alice", "POST", "/v1/users/nobody/disable", "disable:ivy:alice", 404, "no user nobody", "user-disable"),
    ("alice", "POST", "/v1/users/dave/disable", "disable:dave:alice", 409, "already disabled", "user-disable"),
    ("bob", "POST", "/v1/users/alice/disable", "disable:alice:bob", 409, "is the only custodian of", "user-disable"),
    ("alice", "POST", "/v1/users/ivy/disable", "disable:ivan:alice", 400, "must name ivy", "user-disable"),
    ("alice", "POST", "/v1/users/ivy/disable", "disable:ivy:bob", 400, "signed by you", "user-disable"),
    ("alice", "POST", "/v1/users/ivy/disable", "{}", 400, "malformed request", "user-disable"),
    // Enrolment: signed by the caller, verifying; an admin's approved by a second admin.
    ("alice", "POST", "/v1/users", "enrol:mallory:investigator:bob", 400, "signed as bob", "user-add"),
    ("ivan", "POST", "/v1/users", "enrol:mallory:investigator:ivan", 403, "needs the role admin", "user-add"),
    ("alice", "POST", "/v1/users", "enrol:ivy:investigator:alice", 409, "already exists", "user-add"),
    ("alice", "POST", "/v1/users/penny/approve", "cosign:penny:alice", 403, "four eyes: you enrolled penny", "user-approve"),
    ("bob", "POST", "/v1/users/penny/approve", "cosign:penny:carol", 400, "no second admin's approval", "user-approve"),
    ("bob", "POST", "/v1/users/ivan/approve", "cosign:ivan:bob", 409, "not waiting for approval", "user-approve"),
    ("bob", "POST", "/v1/users/nobody/approve", "cosign:penny:bob", 404, "no user nobody", "user-approve"),
    // The recorder's signature on an upload.
    ("pbx", "POST", "/v1/recordings/{rec}/signature", "recsig:pbx", 409, "signed already", "recording-sign"),
    ("alice", "POST", "/v1/recordings/{rec}/signature", "recsig:pbx", 403, "needs the role recorder", "recording-sign"),
    ("pbx", "POST", "/v1/recordings/{unsigned}/signature", "recsig:alice", 400, "must be signed by you", "recording-sign"),
    ("pbx2", "POST", "/v1/recordings/{unsigned}/signature", "recsig:pbx2", 403, "uploaded by another recorder", "recording-sign"),
    ("ivan", "POST", "/v1/recordings/{unsigned}/fetch", r#"{"reason":"r"}"#, 403, "(or it does not exist)", "fetch"),
    // may_show_case
    ("ivan", "GET", "/v1/cases/{covert}", "", 403, "no grant on this case (or it does not exist)", "case-show"),
    ("ivan", "GET", "/v1/cases/case_0123456789abcdef0123456789abcdef", "", 403, "(or it does not exist)", "case-show"),
    ("alice", "GET", "/v1/cases/case_0123456789abcdef0123456789abcdef", "", 404, "no case", "case-show"),
    // may_approve_case
    ("alice", "POST", "/v1/cases/{open}/approve", r#"{"ap_ref":"AP"}"#, 400, "only covert cases", "case-approve"),
    ("alice", "POST", "/v1/cases/{covert}/approve", r#"{"ap_ref":"AP"}"#, 409, "not pending approval", "case-approve"),
    ("bob", "POST", "/v1/cases/{pending}/approve", r#"{"ap_ref":"AP","date":"2999-01-01"}"#, 400, "in the future", "case-approve"),
    // may_take_recordings, check_upload
    ("pbx", "GET", "/v1/cases/{pending}/recipient", "", 403, "until an admin records the AP", "case-recipient"),
    ("pbx", "GET", "/v1/cases/{closed}/recipient", "", 403, "closed and takes no new recordings", "case-recipient"),
    ("pbx", "POST", "/v1/cases/{open}/recordings?announced=none", "", 400, "must have been announced", "upload"),
    ("pbx", "POST", "/v1/cases/{pending}/recordings?announced=none", "", 403, "takes no recordings", "upload"),
    // close_rule
    ("alice", "POST", "/v1/cases/{covert}/close", r#"{"outcome":"completed"}"#, 400, "offence or no-offence", "case-close"),
    ("alice", "POST", "/v1/cases/{open}/close", r#"{"outcome":"offence"}"#, 400, "closes with --outcome completed", "case-close"),
    ("alice", "POST", "/v1/cases/{closed}/close", r#"{"outcome":"completed"}"#, 409, "already closed", "case-close"),
    // may_notify, may_release_hold
    ("alice", "POST", "/v1/cases/{open}/notify", r#"{"kind":"told","date":"2026-01-01","how":"letter"}"#, 409, "no notification duty", "notify"),
    ("alice", "POST", "/v1/cases/{open}/release-hold", r#"{"reason":"r"}"#, 409, "not on legal hold", "release-hold"),
    // reopen_rule, may_request_reopen, may_approve_reopen
    ("alice", "POST", "/v1/cases/{closed}/reopen", r#"{"reason":"r"}"#, 409, "outcome completed, which ends its purpose", "case-reopen"),
    ("alice", "POST", "/v1/cases/{open}/reopen", r#"{"reason":"r"}"#, 409, "only a closed case can be reopened", "case-reopen"),
    ("alice", "POST", "/v1/cases/{closed}/reopen", r#"{"reason":" "}"#, 400, "--reason must not be empty", "case-reopen"),
    ("ivan", "POST", "/v1/cases/{closed}/reopen", r#"{"reason":"r"}"#, 403, "case-reopen needs the role admin", "case-reopen"),
    ("bob", "POST", "/v1/cases/{closed}/reopen/approve", "", 409, "it cannot be reopened", "case-reopen-approve"),
    ("pbx", "POST", "/v1/cases/{closed}/reopen/approve", "", 403, "needs the role admin", "case-reopen-approve"),
    // require_custodian, may_read_case_key, may_add_custodian, may_rotate
    ("bob", "GET", "/v1/cases/{open}/key", "", 403, "not a custodian of this case", "case-key"),
    ("bob", "POST", "/v1/cases/{open}/custodians", r#"{"admin":"carol","envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 403, "not a custodian", "add-custodian"),
    ("alice", "POST", "/v1/cases/{open}/custodians", r#"{"admin":"ivan","envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 403, "only admins can be custodians", "add-custodian"),
    ("alice", "POST", "/v1/cases/{open}/custodians", r#"{"admin":"alice","envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 409, "already a custodian", "add-custodian"),
    ("bob", "POST", "/v1/cases/{open}/rotate", r#"{"from_version":1,"recipient":"x","envelopes":[],"key_statement":{"statement":"x","signatures":[]}}"#, 403, "not a custodian", "rotate-key"),
    ("alice", "POST", "/v1/cases/{open}/rotate", r#"{"from_version":7,"recipient":"x","envelopes":[],"key_statement":{"statement":"x","signatures":[]}}"#, 409, "changed meanwhile", "rotate-key"),
    ("alice", "POST", "/v1/cases/{closed}/rotate", r#"{"from_version":1,"recipient":"x","envelopes":[],"key_statement":{"statement":"x","signatures":[]}}"#, 409, "no longer rotated", "rotate-key"),
    // may_grant
    ("alice", "POST", "/v1/cases/{open}/grants", r#"{"user":"alice","reason":"r","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 403, "cannot grant yourself", "grant"),
    ("bob", "POST", "/v1/cases/{open}/grants", r#"{"user":"ivy","reason":"r","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 403, "only a custodian of the case can grant", "grant"),
    ("alice", "POST", "/v1/cases/{open}/grants", r#"{"user":"pbx","reason":"r","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 403, "only investigators and admins", "grant"),
    ("alice", "POST", "/v1/cases/{open}/grants", r#"{"user":"audrey","reason":"r","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 403, "only investigators and admins", "grant"),
    ("alice", "POST", "/v1/cases/{open}/grants", r#"{"user":"dave","reason":"r","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 409, "user dave is disabled", "grant"),
    ("alice", "POST", "/v1/cases/{closed}/grants", r#"{"user":"ivy","reason":"r","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 409, "no new grants", "grant"),
    ("alice", "POST", "/v1/cases/{open}/grants", r#"{"user":"ivan","reason":"r","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 409, "already has a active grant", "grant"),
    ("alice", "POST", "/v1/cases/{open}/grants", r#"{"user":"ivy","reason":"r","until":"2000-01-01","envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 400, "--until is in the past", "grant"),
    ("alice", "POST", "/v1/cases/{open}/grants", r#"{"user":"ivy","reason":" ","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 400, "--reason must not be empty", "grant"),
    ("alice", "POST", "/v1/cases/{open}/grants", "grant:open:ivy:alice:none", 409, "send exactly one envelope", "grant"),
    // The signed grant: by the caller, for this grantee; no envelope before a covert approval.
    ("alice", "POST", "/v1/cases/{open}/grants", "grant:open:ivy:bob:env", 400, "must be signed by you", "grant"),
    ("alice", "POST", "/v1/cases/{open}/grants", r#"{"user":"ivy","reason":"r","until":null,"envelopes":[],"statement":{"statement":"x","signatures":[]}}"#, 400, "the grant does not verify", "grant"),
    ("alice", "POST", "/v1/cases/{covert}/grants", "grant:covert:carol:alice:env", 400, "takes no envelope before a second admin approves", "grant"),
    // may_approve_grant: four eyes
    ("alice", "POST", "/v1/cases/{covert}/grants/ivy/approve", "approve:covert:ivy:alice", 403, "four eyes", "grant-approve"),
    ("ivy", "POST", "/v1/cases/{covert}/grants/ivy/approve", "approve:covert:ivy:ivy", 403, "needs the role admin", "grant-approve"),
    ("bob", "POST", "/v1/cases/{open}/grants/ivan/approve", "approve:open:ivan:bob", 409, "not pending", "grant-approve"),
    ("bob", "POST", "/v1/cases/{open}/grants/ivy/approve", r#"{"signature":"x","envelopes":[]}"#, 404, "ivy has no grant", "grant-approve"),
    ("carol", "POST", "/v1/cases/{covert}/grants/ivy/approve", "approve:covert:ivy:bob", 400, "your approval does not verify", "grant-approve"),
    ("carol", "POST", "/v1/cases/{covert}/grants/bob/approve", "approve:covert:bob:carol", 409, "approved, not pending approval", "grant-approve"),
    // may_deliver_key
    ("alice", "POST", "/v1/cases/{covert}/grants/ivy/deliver", r#"{"envelopes":[]}"#, 403, "not approved yet", "grant-deliver"),
    ("carol", "POST", "/v1/cases/{covert}/grants/bob/deliver", r#"{"envelopes":[]}"#, 403, "not a custodian", "grant-deliver"),
    ("alice", "POST", "/v1/cases/{open}/grants/ivan/deliver", r#"{"envelopes":[]}"#, 409, "no key to deliver", "grant-deliver"),
    ("bob", "GET", "/v1/cases/{covert}/envelopes", "", 403, "waiting for a custodian to deliver the key", "case-envelopes"),
    // may_revoke
    ("bob", "POST", "/v1/cases/{open}/grants/ivy/revoke", r#"{"reason":"r"}"#, 404, "ivy has no grant", "revoke"),
    // require_active_grant, may_list_recordings, may_fetch
    ("ivy", "GET", "/v1/cases/{covert}/recordings", "", 403, "waiting for a second admin", "recording-list"),
    ("ivy", "GET", "/v1/cases/{open}/recordings", "", 403, "no grant on this case", "recording-list"),
    ("alice", "GET", "/v1/cases/{open}/recordings", "", 403, "no grant on this case", "recording-list"),
    ("ivy", "GET", "/v1/cases/{covert}/envelopes", "", 403, "waiting for a second admin", "case-envelopes"),
    ("audrey", "GET", "/v1/cases/case_0123456789abcdef0123456789abcdef/recordings", "", 404, "no case", "recording-list"),
    ("ivy", "POST", "/v1/recordings/{rec}/fetch", r#"{"reason":"r"}"#, 403, "no grant on this case", "fetch"),
    ("ivan", "POST", "/v1/recordings/rec_0123456789abcdef0123456789abcdef/fetch", r#"{"reason":"r"}"#, 403, "(or it does not exist)", "fetch"),
    ("ivan", "POST", "/v1/recordings/{rec}/fetch", r#"{"reason":""}"#, 400, "--reason must not be empty", "fetch"),
];

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut people = HashMap::new();
        // The trust root: alice, bob and carol.
        let mut root = Vec::new();
        for name in ["alice", "bob", "carol"] {
            let id = age::x25519::Identity::generate();
            root.push((name.parse().unwrap(), SigningKey::from_identity(&id).public_id()));
            people.insert(name.to_owned(), id);
        }
        let vault = DataDir::new(&data).init(root).unwrap().vault;
        let cfg = Config {
            data_dir: data,
            origin: "http://127.0.0.1:1".into(),
            max_upload: 1 << 30,
            purge_interval: None,
            limits: Default::default(),
            witnesses: Vec::new(),
            witness_every: None,
            witness_on_demand: std::time::Duration::ZERO,
            ready_min_free: 0,
            blobs: crate::blobs::BlobArgs::local(),
        };
        let st = open_state(&cfg).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut w = World {
            dir,
            rt,
            app: crate::http::router(st.clone()),
            st,
            vault,
            people,
            cases: HashMap::new(),
            rec: RecordingId::random(),
            unsigned: RecordingId::random(),
        };
        // penny is an admin whose enrolment waits for a second admin.
        for (name, role) in [
            ("ivan", Role::Investigator),
            ("ivy", Role::Investigator),
            ("dave", Role::Investigator),
            ("audrey", Role::Auditor),
            ("pbx", Role::Recorder),
            ("pbx2", Role::Recorder),
            ("penny", Role::Admin),
        ] {
            w.people.insert(name.to_owned(), age::x25519::Identity::generate());
            w.ok("alice", "POST", "/v1/users", &w.body(&format!("enrol:{name}:{role}:alice")));
        }
        let customer = CaseBasis::Customer { purpose: Purpose::Sales, dpia_ref: None };
        let covert = CaseBasis::Covert { suspicion: "s".into(), dpia_ref: "D".into() };
        for (name, basis) in [("open", &customer), ("closed", &customer), ("pending", &covert), ("covert", &covert)] {
            w.create_case(name, basis.clone());
        }
        w.ok("alice", "POST", &w.path("/v1/cases/{covert}/approve"), &json!({ "ap_ref": "AP" }));
        w.rec = w.upload("open");
        w.sign_upload("pbx", &w.rec.clone());
        w.unsigned = w.upload("open");
        w.grant("alice", "open", "ivan");
        w.grant("alice", "covert", "ivy");
        w.grant("alice", "covert", "bob");
        // bob's covert grant is approved by carol, who holds no key: it waits for delivery.
        w.ok("carol", "POST", &w.path("/v1/cases/{covert}/grants/bob/approve"), &w.body("approve:covert:bob:carol"));
        w.ok("alice", "POST", &w.path("/v1/cases/{closed}/close"), &Closing { outcome: Outcome::Completed });
        w.ok("alice", "POST", "/v1/users/dave/disable", &w.body("disable:dave:alice"));
        w
    }

    fn key(&self, who: &str) -> SigningKey {
        SigningKey::from_identity(&self.people[who])
    }

    /// A request body: one of the signed statements [`REFUSALS`] describes, else `text`.
    fn body(&self, text: &str) -> serde_json::Value {
        let parts: Vec<&str> = text.split(':').collect();
        let user = |i: usize| parts[i].parse::<UserName>().unwrap();
        match parts[0] {
            "disable" => {
                let d = Disable {
                    vault: self.vault.clone(),
                    name: user(1),
                    id: self.key(parts[1]).public_id(),
                    by: user(2),
                    at: statement::now(),
                };
                json!({ "statement": Signed::sign(&d, &self.key(parts[2])) })
            }
            "enrol" => {
                let who = parts[1];
                let id = self.people.get(who).map_or_else(
                    || SigningKey::from_identity(&age::x25519::Identity::generate()).public_id(),
                    |i| SigningKey::from_identity(i).public_id(),
                );
                let e = Enrol {
                    vault: self.vault.clone(),
                    name: user(1),
                    role: parts[2].parse().unwrap(),
                    id,
                    by: user(3),
                    at: statement::now(),
                };
                json!({ "enrolment": Signed::sign(&e, &self.key(parts[3])) })
            }
            "cosign" => {
                let text = self
                    .st
                    .db
                    .with(move |c| Store::new(c).enrolment(&"penny".parse().unwrap()).unwrap().unwrap().statement)
                    .unwrap()
                    .statement;
                json!({ "signature": B64.encode(self.key(parts[2]).sign(text.as_bytes())) })
            }
            "recsig" => json!({ "statement": self.recording_statement(&self.rec, parts[1]) }),
            "grant" => {
                let case = parts[1];
                let envelopes = if parts[4] == "env" { self.envelopes_for(case, parts[2]) } else { Vec::new() };
                serde_json::to_value(self.new_grant(case, parts[2], parts[3], envelopes)).unwrap()
            }
            "approve" => {
                let (case, user) = (self.cases[parts[1]].0.clone(), user(2));
                let text = self
                    .st
                    .db
                    .with(move |c| Store::new(c).grant(&case, &user).unwrap().unwrap().statement)
                    .unwrap()
                    .statement;
                json!({ "signature": B64.encode(self.key(parts[3]).sign(text.as_bytes())), "envelopes": [] })
            }
            _ if text.is_empty() => serde_json::Value::Null,
            _ => serde_json::from_str(text).unwrap(),
        }
    }

    /// `by`'s signed statement of recording `id` as the server stored it.
    fn recording_statement(&self, id: &RecordingId, by: &str) -> Signed {
        let rid = id.clone();
        let stored = self.st.db.with(move |c| Store::new(c).recording(&rid).unwrap().unwrap());
        let r = RecordingStatement {
            vault: self.vault.clone(),
            case: stored.case_id,
            recording: id.clone(),
            version: stored.key_version,
            // The hash the recorder computed (the server keeps only a CRC-32 before this).
            sha256: hex::encode(vault_core::sha256(
                &std::fs::read(self.dir.path().join("data").join("blobs").join(format!("{id}.age"))).unwrap(),
            )),
            size: stored.size,
            recorded_at: stored.recorded_at,
            announced: stored.announced,
            by: by.parse().unwrap(),
            at: statement::now(),
        };
        Signed::sign(&r, &self.key(by))
    }

    fn sign_upload(&self, by: &str, id: &RecordingId) {
        let body = json!({ "statement": self.recording_statement(id, by) });
        self.ok(by, "POST", &format!("/v1/recordings/{id}/signature"), &body);
    }

    fn path(&self, p: &str) -> String {
        let mut p = p.replace("{rec}", self.rec.as_str()).replace("{unsigned}", self.unsigned.as_str());
        for (name, (id, _)) in &self.cases {
            p = p.replace(&format!("{{{name}}}"), id.as_str());
        }
        p
    }

    /// Sends a request as `who` and returns the status and body.
    fn call(&self, who: &str, method: &str, path: &str, body: Body, json: bool) -> (StatusCode, Bytes) {
        let mut req = Request::builder().method(method).uri(path);
        let token = match who.strip_prefix("token:") {
            Some(raw) => Some(raw.to_owned()),
            None if who == "-" => None,
            None => Some(self.st.tokens.issue(&who.parse().unwrap()).unwrap().0),
        };
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if json {
            req = req.header("content-type", "application/json");
        }
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
            let status = resp.status();
            (status, axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap())
        })
    }

    /// Sends a JSON request that must succeed.
    #[track_caller]
    fn ok<B: Serialize>(&self, who: &str, method: &str, path: &str, body: &B) -> serde_json::Value {
        let (status, answer) = self.call(who, method, path, Body::from(serde_json::to_vec(body).unwrap()), true);
        let text = String::from_utf8_lossy(&answer);
        assert!(status.is_success(), "{method} {path} as {who}: {status} {text}");
        serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null)
    }

    fn create_case(&mut self, name: &'static str, basis: CaseBasis) {
        let key = CaseKey::generate();
        let me = self.people["alice"].to_public();
        let id = CaseId::random();
        let stmt = CaseKeyStatement {
            vault: self.vault.clone(),
            case: id.clone(),
            kind: basis.kind(),
            version: 1,
            recipient: key.recipient(),
            by: "alice".parse().unwrap(),
            at: statement::now(),
        };
        let req = NewCase {
            id,
            key_statement: Signed::sign(&stmt, &self.key("alice")),
            title: name.into(),
            retention_days: None,
            basis,
            recipient: key.recipient(),
            envelope: B64.encode(key.wrap_to(&me)),
        };
        let id = self.ok("alice", "POST", "/v1/cases", &req)["id"].as_str().unwrap().parse().unwrap();
        self.cases.insert(name, (id, key));
    }

    fn upload(&self, case: &str) -> RecordingId {
        let (id, key) = &self.cases[case];
        let recipient = vault_core::crypto::parse_recipient(&key.recipient()).unwrap();
        let mut ct = Vec::new();
        vault_core::crypto::encrypt_stream(&recipient, &mut &b"a call"[..], &mut ct).unwrap();
        let path = format!("/v1/cases/{id}/recordings?announced=signal-tone");
        let token = self.st.tokens.issue(&"pbx".parse().unwrap()).unwrap().0;
        let req = Request::post(&path)
            .header("authorization", format!("Bearer {token}"))
            .header(vault_core::api::HEADER_UPLOAD_LENGTH, ct.len())
            .body(Body::from(ct))
            .unwrap();
        let (status, answer) = self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.unwrap();
            (resp.status(), axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap())
        });
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer));
        serde_json::from_slice::<serde_json::Value>(&answer).unwrap()["id"].as_str().unwrap().parse().unwrap()
    }

    fn envelopes_for(&self, case: &str, user: &str) -> Vec<WrappedKey> {
        let key = &self.cases[case].1;
        vec![WrappedKey { version: 1, envelope: B64.encode(key.wrap_to(&self.people[user].to_public())) }]
    }

    /// A grant of `case` to `user`, signed by `by`.
    fn new_grant(&self, case: &str, user: &str, by: &str, envelopes: Vec<WrappedKey>) -> NewGrant {
        let stmt = GrantStatement {
            vault: self.vault.clone(),
            case: self.cases[case].0.clone(),
            name: user.parse().unwrap(),
            id: self.key(user).public_id(),
            until: None,
            by: by.parse().unwrap(),
            at: statement::now(),
        };
        NewGrant {
            user: user.parse().unwrap(),
            reason: "matrix".into(),
            until: None,
            envelopes,
            statement: Signed::sign(&stmt, &self.key(by)),
        }
    }

    /// Grants as a custodian does: with every key version, except on a covert case.
    fn grant(&self, by: &str, case: &str, user: &str) -> serde_json::Value {
        let envelopes = if case == "covert" { Vec::new() } else { self.envelopes_for(case, user) };
        let req = self.new_grant(case, user, by, envelopes);
        self.ok(by, "POST", &self.path(&format!("/v1/cases/{{{case}}}/grants")), &req)
    }

    fn log(&self) -> Vec<Entry> {
        self.st
            .db
            .with(|c| Store::new(c).log_entries(0, u64::MAX, None, u32::MAX).unwrap())
            .into_iter()
            .map(|e| e.entry)
            .collect()
    }

    fn fingerprint(&self) -> ([u8; 32], usize) {
        let blobs = std::fs::read_dir(self.dir.path().join("data").join("blobs")).unwrap().count()
            + std::fs::read_dir(self.dir.path().join("data").join("tmp")).unwrap().count();
        (self.st.db.with(|c| Store::new(c).fingerprint().unwrap()), blobs)
    }
}

#[test]
fn every_refusal_is_logged_once_and_changes_nothing() {
    let w = World::new();
    for &(who, method, path, body, status, told, action) in REFUSALS {
        let path = w.path(path);
        let cell = format!("{method} {path} as {who}");
        let (before_log, before) = (w.log().len(), w.fingerprint());
        let json = !body.is_empty();
        let body =
            if body.starts_with(['{', '[']) || body.is_empty() { body.to_owned() } else { w.body(body).to_string() };
        let (got, answer) = w.call(who, method, &path, Body::from(body), json);
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(got.as_u16(), status, "{cell}: {answer}");
        assert!(answer.contains(told), "{cell}: told {answer}, not {told:?}");
        let log = w.log();
        assert_eq!(log.len(), before_log + 1, "{cell}: the refusal must be logged exactly once");
        let e = log.last().unwrap();
        let actor = if who.starts_with("token:") { "-" } else { who };
        assert_eq!((e.actor.as_str(), e.action.as_str(), e.outcome.as_str()), (actor, action, "refused"), "{cell}");
        assert!(e.details.contains(told), "{cell}: details {}", e.details);
        assert_eq!(w.fingerprint(), before, "{cell}: a refused request changed something");
    }
}

#[test]
fn refusals_name_the_case_or_recording_they_were_about() {
    let w = World::new();
    let open = w.cases["open"].0.to_string();
    w.call("ivy", "POST", &w.path("/v1/recordings/{rec}/fetch"), Body::from(r#"{"reason":"curious"}"#), true);
    let e = w.log().pop().unwrap();
    assert_eq!(
        (e.case_id.as_str(), e.recording_id.as_str(), e.reason.as_str()),
        (open.as_str(), w.rec.as_str(), "curious")
    );
    w.call("bob", "GET", &w.path("/v1/cases/{open}/key"), Body::empty(), false);
    assert_eq!(w.log().pop().unwrap().case_id, open);
}

#[test]
fn what_policy_allows_goes_through_and_is_logged_as_allowed() {
    let w = World::new();
    let allowed = |action: &str| {
        let e = w.log().pop().unwrap();
        assert_eq!((e.action.as_str(), e.outcome.as_str()), (action, "allowed"), "{e:?}");
    };
    // Four eyes: a second admin approves (no envelope exists before); a custodian delivers
    // the key; then the grantee reads.
    let covert = w.cases["covert"].0.clone();
    let ivy_holds_a_key = || {
        let covert = covert.clone();
        w.st.db.with(move |c| Store::new(c).envelope(&covert, 1, &"ivy".parse().unwrap()).unwrap().is_some())
    };
    assert!(!ivy_holds_a_key(), "an envelope exists for a covert grant before its approval");
    w.ok("carol", "POST", &w.path("/v1/cases/{covert}/grants/ivy/approve"), &w.body("approve:covert:ivy:carol"));
    allowed("grant-approve");
    assert!(!ivy_holds_a_key(), "carol holds no key, so her approval delivers none");
    let (status, _) = w.call("ivy", "GET", &w.path("/v1/cases/{covert}/envelopes"), Body::empty(), false);
    assert_eq!(status, StatusCode::FORBIDDEN, "approved but not delivered");
    let delivery = json!({ "envelopes": w.envelopes_for("covert", "ivy") });
    assert_eq!(w.ok("alice", "POST", &w.path("/v1/cases/{covert}/grants/ivy/deliver"), &delivery)["status"], "active");
    allowed("grant-deliver");
    assert!(ivy_holds_a_key());
    w.ok("ivy", "GET", &w.path("/v1/cases/{covert}/recordings"), &json!({}));
    allowed("recording-list");
    // An active grant fetches, with its own envelope; auditors see metadata only.
    let (status, _) =
        w.call("ivan", "POST", &w.path("/v1/recordings/{rec}/fetch"), Body::from(r#"{"reason":"r"}"#), true);
    assert_eq!(status, StatusCode::OK);
    allowed("fetch");
    let page = w.ok("audrey", "GET", &w.path("/v1/cases/{open}/recordings"), &json!({}));
    assert!(page["recordings"][0]["meta"].is_null(), "{page}");
    // A custodian grants with an envelope of every version, and makes another custodian.
    assert_eq!(w.grant("alice", "open", "ivy")["status"], "active");
    allowed("grant");
    let custodian = CustodianStatement {
        vault: w.vault.clone(),
        case: w.cases["open"].0.clone(),
        name: "bob".parse().unwrap(),
        id: w.key("bob").public_id(),
        by: "alice".parse().unwrap(),
        at: statement::now(),
    };
    let req = NewCustodian {
        admin: "bob".parse().unwrap(),
        envelopes: w.envelopes_for("open", "bob"),
        statement: Signed::sign(&custodian, &w.key("alice")),
    };
    w.ok("alice", "POST", &w.path("/v1/cases/{open}/custodians"), &req);
    w.ok("bob", "GET", &w.path("/v1/cases/{open}/key"), &json!({}));
    allowed("case-key");
    // Any admin revokes; the revoked grantee is refused at once, saying so.
    w.ok("carol", "POST", &w.path("/v1/cases/{open}/grants/ivan/revoke"), &json!({ "reason": "done" }));
    allowed("revoke");
    let (status, answer) =
        w.call("ivan", "POST", &w.path("/v1/recordings/{rec}/fetch"), Body::from(r#"{"reason":"r"}"#), true);
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&answer).contains("was revoked"));
    // Disabling a user ends their sessions at once.
    w.ok("bob", "POST", "/v1/users/ivy/disable", &w.body("disable:ivy:bob"));
    allowed("user-disable");
    let (status, _) = w.call("ivy", "GET", "/v1/cases", Body::empty(), false);
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[test]
fn fail_a_refusal_that_cannot_be_logged_is_a_server_error_and_logs_nothing() {
    let w = World::new();
    // A full disk or a damaged table: every append to the log fails.
    w.st.db.with(|c| {
        c.execute_batch("CREATE TRIGGER broken BEFORE INSERT ON access_log BEGIN SELECT RAISE(ABORT, 'no space'); END;")
            .unwrap()
    });
    let before = (w.log().len(), w.fingerprint());
    for (who, method, path, body) in [
        ("-", "GET", "/v1/users", ""),
        ("ivan", "GET", "/v1/users", ""),
        ("alice", "GET", "/v1/cases/case_ZZ", ""),
        ("ivy", "POST", "/v1/recordings/{rec}/fetch", r#"{"reason":"r"}"#),
        ("alice", "POST", "/v1/cases/{covert}/grants/ivy/approve", r#"{"signature":"x","envelopes":[]}"#),
    ] {
        let path = w.path(path);
        let (status, answer) = w.call(who, method, &path, Body::from(body), !body.is_empty());
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path} as {who}: {answer}");
        assert!(answer.contains("internal server error"), "{answer}");
    }
    assert_eq!((w.log().len(), w.fingerprint()), before, "nothing may change without its log entry");
}
