//! The OpenAPI document against the real server, both ways: the server serves exactly
//! the checked-in `schema/openapi.json` (no token, no access-log entry); it is OpenAPI
//! 3.x; every route in `router()` is documented with its method, and every documented
//! operation is answered by the real server (not its "no such API route" fallback, not
//! 405). The schemas are checked against the serde types in vault-server's unit tests.

use std::collections::BTreeSet;
use std::path::Path;

use vault_tests::Vault;

fn checked_in() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/openapi.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (METHOD, path) of every `.route(...)` in the server's router, read from its source, so
/// that a route added there without documentation fails here.
fn routed() -> BTreeSet<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vault-server/src/http/mod.rs");
    let source = std::fs::read_to_string(&path).unwrap();
    let mut out = BTreeSet::new();
    for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let route = &line[".route(\"".len()..];
        let (p, rest) = route.split_once('"').unwrap();
        let methods: Vec<&str> =
            ["get", "post", "put", "delete", "patch"].into_iter().filter(|m| rest.contains(&format!("{m}("))).collect();
        assert_eq!(methods.len(), 1, "cannot tell the method of {line}");
        out.insert((methods[0].to_uppercase(), p.to_owned()));
    }
    assert!(out.len() > 30, "found only {} routes in {}", out.len(), path.display());
    out
}

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (p, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), p.clone()));
        }
    }
    out
}

#[test]
fn the_server_serves_the_checked_in_document_without_token_or_log_entry() {
    let v = Vault::start();
    let before = v.log_len();
    let (status, body) = v.raw("GET", "/v1/openapi.json", None, &[], b"");
    assert_eq!(status, 200);
    // Compared without printing 100 KB on failure; a stale binary is the usual cause.
    assert!(body == checked_in(), "the served document is not schema/openapi.json (rebuild vault-server?)");
    assert_eq!(v.log_len(), before, "fetching the document is not an access-log entry");

    let doc: serde_json::Value = serde_json::from_str(&body).expect("the document is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "not OpenAPI 3.x: {}", doc["openapi"]);
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    // Every $ref points at something that exists.
    let refs: Vec<&str> = body.split("\"$ref\": \"").skip(1).map(|s| s.split('"').next().unwrap()).collect();
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("not a local $ref: {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

#[test]
fn every_route_is_documented_and_every_documented_route_is_served() {
    let doc: serde_json::Value = serde_json::from_str(&checked_in()).unwrap();
    let (routed, documented) = (routed(), documented(&doc));
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(missing.is_empty(), "routes without documentation: {missing:?}");
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(extra.is_empty(), "documented operations the router lacks: {extra:?}");

    let v = Vault::start();
    for (method, p) in &documented {
        let id = if p.starts_with("/v1/recordings/") {
            format!("rec_{}", "0".repeat(32))
        } else {
            format!("case_{}", "0".repeat(32))
        };
        let concrete = p.replace("{id}", &id).replace("{name}", "alice").replace("{user}", "alice");
        let (status, body) = v.raw(method, &concrete, None, &[], b"");
        assert!(
            status != 405 && !(status == 404 && body.contains("no such API route")),
            "{method} {concrete}: the server does not serve it ({status}: {body})"
        );
    }
}

#[test]
fn fail_an_undocumented_path_is_the_servers_fallback() {
    // The check above can fail: the server's answer to a route it does not have.
    let v = Vault::start();
    let (status, body) = v.raw("GET", "/v1/no-such-route", None, &[], b"");
    assert_eq!(status, 404);
    assert!(body.contains("no such API route"), "{body}");
    let (status, _) = v.raw("DELETE", "/v1/cases", None, &[], b"");
    assert_eq!(status, 405);
}
