//! Checks the lying server of `support::proxy` against a tiny echoing upstream.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::json;
use vault_tests::proxy::{Lie, Proxy, Request, Response};

fn hash(bytes: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    format!("{:016x}", h.finish())
}

/// Echoes what it got: method, path and query, headers, body length and hash, and the body
/// itself when it is UTF-8; `/teapot` answers 418 with a header of its own.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    let hdrs: BTreeMap<String, String> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned())).collect();
    let v = json!({
        "method": method.as_str(),
        "path": uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": hdrs,
        "len": body.len(),
        "hash": hash(&body),
        "body": std::str::from_utf8(&body).ok(),
        "field": "truth",
    });
    if uri.path() == "/teapot" {
        return (StatusCode::IM_A_TEAPOT, [("x-upstream", "kettle")], axum::Json(v)).into_response();
    }
    axum::Json(v).into_response()
}

/// Starts the echoing upstream on a free loopback port; it lives as long as the test process.
fn upstream() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(echo).layer(axum::extract::DefaultBodyLimit::disable());
            axum::serve(listener, app).await.unwrap();
        });
    });
    url
}

fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Sends a raw HTTP/1.1 request to `url`; returns (status, head, body).
fn raw(url: &str, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.replace("{addr}", addr).as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").expect("end of the head");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, resp[split + 4..].to_vec())
}

#[test]
fn a_get_passes_through_unchanged() {
    let up = upstream();
    let proxy = Proxy::start(&up, |_: &Request, _: &mut Response| {});
    assert!(proxy.url.starts_with("http://127.0.0.1:"), "{}", proxy.url);
    let c = client();

    let direct = c.get(format!("{up}/recordings/abc?limit=5&x=%20y")).header("x-custom", "a b").send().unwrap();
    let via = c.get(format!("{}/recordings/abc?limit=5&x=%20y", proxy.url)).header("x-custom", "a b").send().unwrap();
    assert_eq!(via.status(), direct.status());
    assert_eq!(via.headers()["content-type"], direct.headers()["content-type"]);
    let (direct, via): (serde_json::Value, serde_json::Value) = (direct.json().unwrap(), via.json().unwrap());
    assert_eq!(via["method"], "GET");
    assert_eq!(via["path"], "/recordings/abc?limit=5&x=%20y");
    assert_eq!(via["headers"]["x-custom"], "a b");
    assert_eq!(via["len"], 0);
    // The upstream sees its own address as the host, not the proxy's.
    assert_eq!(via["headers"]["host"], direct["headers"]["host"]);

    // Statuses and the upstream's own headers come back as they were.
    let teapot = c.post(format!("{}/teapot", proxy.url)).body("hi").send().unwrap();
    assert_eq!(teapot.status().as_u16(), 418);
    assert_eq!(teapot.headers()["x-upstream"], "kettle");
    let v: serde_json::Value = teapot.json().unwrap();
    assert_eq!((v["method"].as_str(), v["body"].as_str()), (Some("POST"), Some("hi")));

    assert_eq!(
        proxy.seen(),
        vec![
            ("GET".to_owned(), "/recordings/abc?limit=5&x=%20y".to_owned()),
            ("POST".to_owned(), "/teapot".to_owned()),
        ]
    );
}

#[test]
fn a_closure_rewrites_a_json_field() {
    let proxy = Proxy::start(&upstream(), |req: &Request, resp: &mut Response| {
        if req.path.starts_with("/lie") {
            assert_eq!(resp.header("Content-Type"), Some("application/json"));
            let mut v = resp.json();
            v["field"] = "a lie, and a much longer one than the truth".into();
            resp.set_json(&v);
            resp.set_header("X-Liar", "yes");
        }
    });
    let c = client();
    let lied = c.get(format!("{}/lie", proxy.url)).send().unwrap();
    assert_eq!(lied.status(), 200);
    assert_eq!(lied.headers()["x-liar"], "yes");
    let text = lied.text().unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["field"], "a lie, and a much longer one than the truth");

    // The content-length is the rewritten body's.
    let (status, head, body) = raw(&proxy.url, "GET /lie HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n", b"");
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains(&format!("content-length: {}\r\n", body.len())), "{head}");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["field"], v["field"]);

    let honest: serde_json::Value = c.get(format!("{}/honest", proxy.url)).send().unwrap().json().unwrap();
    assert_eq!(honest["field"], "truth");
}

/// Forges the caller's token and moves every request to `/forged`.
struct Forger;

impl Lie for Forger {
    fn request(&self, req: &mut Request) {
        assert_eq!(req.header("AUTHORIZATION"), Some("Bearer mine"));
        req.set_header("authorization", "Bearer forged");
        req.path = format!("/forged{}", req.path);
    }

    fn response(&self, req: &Request, resp: &mut Response) {
        assert!(req.path.starts_with("/forged/"), "{}", req.path);
        resp.status = 201;
    }
}

#[test]
fn a_lie_rewrites_a_request_header() {
    let proxy = Proxy::start(&upstream(), Forger);
    let r = client().get(format!("{}/whoami", proxy.url)).header("Authorization", "Bearer mine").send().unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["headers"]["authorization"], "Bearer forged");
    assert_eq!(v["path"], "/forged/whoami");
    assert_eq!(proxy.seen(), vec![("GET".to_owned(), "/forged/whoami".to_owned())]);
}

#[test]
fn a_chunked_post_arrives_intact_with_a_content_length() {
    let proxy = Proxy::start(&upstream(), |req: &Request, _: &mut Response| {
        // The lie sees the request as the client framed it.
        assert_eq!(req.header("transfer-encoding"), Some("chunked"));
    });
    // 3 MiB: more than axum's default body limit of 2 MiB.
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut framed = Vec::new();
    for chunk in data.chunks(100_003) {
        framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /recordings?name=a.bin HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                Transfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\nX-Test: 1\r\n\r\n";
    let (status, _, body) = raw(&proxy.url, head, &framed);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["len"], data.len());
    assert_eq!(v["hash"], hash(&data));
    assert_eq!(v["path"], "/recordings?name=a.bin");
    assert_eq!(v["headers"]["content-length"], data.len().to_string());
    assert_eq!(v["headers"]["content-type"], "application/octet-stream");
    assert_eq!(v["headers"]["x-test"], "1");
    assert!(v["headers"].get("transfer-encoding").is_none(), "{}", v["headers"]);
    assert!(v["headers"].get("connection").is_none(), "{}", v["headers"]);

    // A blocking reqwest upload of unknown length goes out chunked too.
    let small = b"hello, chunked world".to_vec();
    let r = client()
        .put(format!("{}/recordings/x", proxy.url))
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(small.clone())))
        .send()
        .unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["body"], "hello, chunked world");
    assert_eq!(v["headers"]["content-length"], small.len().to_string());

    assert_eq!(
        proxy.seen(),
        vec![("POST".to_owned(), "/recordings?name=a.bin".to_owned()), ("PUT".to_owned(), "/recordings/x".to_owned()),]
    );
}

#[test]
fn dropping_the_proxy_stops_it() {
    let proxy = Proxy::start(&upstream(), |_: &Request, _: &mut Response| {});
    let addr = proxy.url.trim_start_matches("http://").to_owned();
    assert_eq!(client().get(format!("{}/x", proxy.url)).send().unwrap().status(), 200);
    drop(proxy);
    assert!(TcpStream::connect(&addr).is_err(), "the proxy still listens on {addr}");
}

#[test]
fn set_upstream_moves_the_proxy_to_another_server() {
    // Nothing listens on port 1: the proxy answers 502 with the reason.
    let proxy = Proxy::start("http://127.0.0.1:1", |_: &Request, _: &mut Response| {});
    let c = client();
    let r = c.get(format!("{}/x", proxy.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 502);
    assert!(r.text().unwrap().contains("lying proxy"));
    proxy.set_upstream(&upstream());
    let v: serde_json::Value = c.get(format!("{}/y", proxy.url)).send().unwrap().json().unwrap();
    assert_eq!(v["path"], "/y");
    assert_eq!(proxy.seen(), vec![("GET".to_owned(), "/x".to_owned()), ("GET".to_owned(), "/y".to_owned())]);
}
