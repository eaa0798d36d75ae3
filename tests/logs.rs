//! The server's own log lines with the real server: with `--log-format json` every line
//! is a JSON object; each request leaves one line with the id echoed in its
//! `x-request-id` header (a client's own id is replaced), its route template, status and
//! caller; a refusal leaves a line with route, user, client address and reason; no
//! token or identity ever appears. Text logs carry no escape codes off a terminal.

use vault_tests::{Vault, header};

/// Every line of the server's stderr that is JSON (all but the plain "listening on" and
/// "metrics on" lines, which scripts read), panicking on any other line.
fn json_lines(v: &Vault) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(v.server_log()).unwrap();
    text.lines()
        .filter(|l| !l.starts_with("listening on ") && !l.starts_with("metrics on "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect()
}

/// The lines of the request whose id is `id` with message `message`.
fn lines_of<'a>(lines: &'a [serde_json::Value], id: &str, message: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["span"]["request_id"] == id && l["message"] == message).collect()
}

#[test]
fn json_logs_have_one_line_per_request_with_its_id_and_a_line_per_refusal() {
    let v = Vault::start_with(&["--log-format", "json"]);
    let bob = v.enrol("bob", "investigator");
    v.cli(&bob, &["login"]).ok();
    let token = v.token(&bob);

    // Allowed: one line, with the id the answer carries, not the one the client sent.
    let (status, head, body) =
        v.raw_with_head("GET", "/v1/cases?limit=5", Some(&token), &[("x-request-id", "client-chosen")], b"");
    assert_eq!(status, 200, "{body}");
    let id = header(&head, "x-request-id").expect("the answer carries its request id").to_owned();
    assert_ne!(id, "client-chosen", "a client's own request id is replaced");
    assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

    // Refused: bob fetches a recording that is not his to fetch.
    let rec = "rec_0123456789abcdef0123456789abcdef";
    let (status, head, body) = v.raw_with_head(
        "POST",
        &format!("/v1/recordings/{rec}/fetch"),
        Some(&token),
        &[("content-type", "application/json")],
        br#"{"reason":"curious"}"#,
    );
    assert_eq!(status, 403, "{body}");
    let refused_id = header(&head, "x-request-id").unwrap().to_owned();
    assert_ne!(refused_id, id, "every request has an id of its own");

    let lines = json_lines(&v);
    let line = lines_of(&lines, &id, "request");
    assert_eq!(line.len(), 1, "one line per request: {line:?}");
    let l = line[0];
    assert_eq!(
        (l["method"].as_str(), l["route"].as_str(), l["status"].as_u64()),
        (Some("GET"), Some("/v1/cases"), Some(200))
    );
    assert_eq!((l["user"].as_str(), l["client"].as_str()), (Some("bob"), Some("127.0.0.1")));
    assert!(l["latency_ms"].as_f64().is_some() && l["bytes_out"].as_u64().is_some(), "{l}");
    assert!(lines_of(&lines, &id, "refused").is_empty(), "an allowed request leaves no refusal line");

    let refusal = lines_of(&lines, &refused_id, "refused");
    assert_eq!(refusal.len(), 1, "{refusal:?}");
    let r = refusal[0];
    assert_eq!(r["route"], "/v1/recordings/{id}/fetch", "the route template, not the path: {r}");
    assert_eq!((r["user"].as_str(), r["client"].as_str()), (Some("bob"), Some("127.0.0.1")), "{r}");
    assert_eq!((r["reason"].as_str(), r["status"].as_u64()), (Some("access_denied"), Some(403)), "{r}");
    let line = lines_of(&lines, &refused_id, "request");
    assert_eq!(line.len(), 1);
    assert_eq!(line[0]["route"], "/v1/recordings/{id}/fetch");
    for l in lines.iter().filter(|l| l["message"] == "request" || l["message"] == "refused") {
        assert!(!l.to_string().contains(rec), "a request or refusal line quotes the path: {l}");
    }

    // No token, and no identity, in any line.
    let text = std::fs::read_to_string(v.server_log()).unwrap();
    assert!(!text.contains(&token), "a session token reached the log");
    let secret = std::fs::read_to_string(&bob.key).unwrap();
    let secret = secret.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).expect("an identity line");
    assert!(!text.contains(secret) && !text.contains("AGE-SECRET-KEY-"), "an identity reached the log");
    assert!(!text.contains("curious"), "a request body reached the log");
}

#[test]
fn text_logs_carry_no_escape_codes_when_stderr_is_not_a_terminal() {
    let v = Vault::start();
    assert_eq!(v.raw("GET", "/v1/cases", None, &[], b"").0, 401);
    let text = std::fs::read_to_string(v.server_log()).unwrap();
    assert!(!text.contains('\x1b'), "escape codes in a redirected log: {text}");
    let refused = text.lines().find(|l| l.contains("refused") && l.contains("reason=")).expect("a refusal line");
    for field in ["route=/v1/cases", "reason=\"unauthenticated\"", "client=\"127.0.0.1\"", "request_id="] {
        assert!(refused.contains(field) || refused.contains(&field.replace('"', "")), "{field} in {refused}");
    }
    assert!(text.lines().any(|l| l.contains("request_id=") && l.contains("status=401")), "{text}");
}
