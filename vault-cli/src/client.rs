//! The HTTP client: every request to the server goes through here, plain or streamed, so
//! logging in, the session token and the mapping of error answers (access denied exits 3)
//! are in one place. A token is cached per server and user (see [`crate::local`]); when it
//! is missing, about to expire, or refused, the client logs in again with the age challenge
//! and retries once, except for uploads, whose one-shot body cannot be sent twice.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vault_core::api::{ChallengeRequest, ChallengeResponse, ErrorBody, LoginRequest, LoginResponse};
use vault_core::challenge::Challenge;
use vault_core::crypto::CryptoError;
use vault_core::ids::UserName;
use zeroize::Zeroizing;

use crate::Global;
use crate::transfer;

/// The server refused access; `vault-cli` exits with [`vault_core::api::EXIT_ACCESS_DENIED`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// The server answered with an error status other than a refusal of access: its status
/// and message (a caller that retries tells a refusal, 4xx, from trouble, 5xx).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Answered {
    pub status: u16,
    /// The server's machine-readable code (`conflict`, `key_changed`, ...), if it sent one.
    pub code: String,
    pub message: String,
}

/// The runtime and async HTTP client of streamed transfers, made once per [`Client`] and
/// shared by its copies, so that many uploads share one connection pool.
struct Streaming {
    rt: std::sync::Arc<tokio::runtime::Runtime>,
    http: reqwest::Client,
}

pub struct Client {
    pub base: String,
    pub user: UserName,
    identity_path: Option<PathBuf>,
    http: Http,
    /// The only roots TLS may trust; `None` for the system's roots.
    roots: Option<Vec<reqwest::Certificate>>,
    token: Option<Zeroizing<String>>,
    /// The trust root's fingerprint the user was given (`VAULT_TRUST_ROOT`), if any.
    pub trust_root: Option<String>,
    /// How long to wait for the server (`--timeout-secs`).
    timeout: Duration,
    /// Made on the first streamed transfer; see [`Streaming`].
    streaming: std::sync::Arc<std::sync::OnceLock<Streaming>>,
    /// Threads of the streaming runtime: 0 for one on the calling thread (one transfer at a
    /// time), else a pool that several threads' transfers share.
    streaming_threads: usize,
}

/// How long to wait for a connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the server URL: https anywhere, plain http only to this machine (loopback),
/// since session tokens and login answers must not cross a network in clear.
pub fn check_server_url(base: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(base).map_err(|e| anyhow!("--server {base:?} is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                bail!(
                    "refusing plain http:// to {}: your session token would cross the network in clear; use https://",
                    url.host_str().unwrap_or("?")
                )
            }
        }
        other => bail!("--server must be an https:// URL (or http:// on this machine), not {other}://"),
    }
}

/// Seconds of validity a cached token must still have to be used.
const TOKEN_MARGIN_SECS: i64 = 60;

impl Client {
    pub fn new(g: &Global) -> anyhow::Result<Self> {
        let user = g.user.clone().ok_or_else(|| anyhow!("no user given: pass --user NAME or set VAULT_USER"))?;
        let base = vault_core::challenge::normalize_origin(&g.server);
        check_server_url(&base)?;
        let ca = match &g.ca_cert {
            None => None,
            Some(p) => {
                let pem = std::fs::read(p).with_context(|| format!("cannot read --ca-cert {}", p.display()))?;
                Some(
                    reqwest::Certificate::from_pem(&pem)
                        .with_context(|| format!("{} is not a PEM certificate", p.display()))?,
                )
            }
        };
        // With --ca-cert, that CA alone is trusted: a public CA cannot vouch for the vault.
        // Plain http (loopback only, see check_server_url) uses no TLS at all, so the
        // system's roots are not loaded either (that read of /etc/ssl/certs cost up to
        // 0.2 s per command on a cold cache).
        let roots = match ca {
            Some(c) => Some(vec![c]),
            None if base.starts_with("http://") => Some(Vec::new()),
            None => None,
        };
        let timeout = Duration::from_secs(g.timeout_secs.max(1));
        let mut builder = Http::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(r) = &roots {
            builder = builder.tls_certs_only(r.clone());
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        Ok(Self {
            base,
            user,
            identity_path: g.identity.clone(),
            http,
            roots,
            token: None,
            trust_root: g.trust_root.clone(),
            timeout,
            streaming: Default::default(),
            streaming_threads: 0,
        })
    }

    /// Makes streamed transfers run on a pool of `threads`, shared by this client's
    /// copies (see [`Client::copy`]), for commands that upload from several threads.
    /// Call before the first transfer.
    pub fn share_transfers(&mut self, threads: usize) {
        self.streaming_threads = threads.max(1);
    }

    /// A copy of this client (same server, user, TLS roots, connection pool) with a token
    /// valid now, for another thread.
    pub fn copy(&mut self) -> anyhow::Result<Client> {
        let token = self.token()?;
        Ok(Client {
            base: self.base.clone(),
            user: self.user.clone(),
            identity_path: self.identity_path.clone(),
            http: self.http.clone(),
            roots: self.roots.clone(),
            token: Some(token),
            trust_root: self.trust_root.clone(),
            timeout: self.timeout,
            streaming: self.streaming.clone(),
            streaming_threads: self.streaming_threads,
        })
    }

    /// Forgets the session token, so that the next request logs in again (after the
    /// server refused it, for a request that cannot retry on its own: an upload).
    pub fn forget_token(&mut self) {
        self.token = None;
    }

    pub fn identity(&self) -> anyhow::Result<age::x25519::Identity> {
        let path = self
            .identity_path
            .as_ref()
            .ok_or_else(|| anyhow!("no identity given: pass --identity FILE or set VAULT_IDENTITY"))?;
        Ok(vault_core::crypto::read_identity_file(path)?)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Logs in with the age challenge and caches the token.
    pub fn login(&mut self) -> anyhow::Result<LoginResponse> {
        let identity = self.identity()?;
        let resp: ChallengeResponse = self.send_plain(
            self.http.post(self.url("/v1/login/challenge")).json(&ChallengeRequest { user: self.user.clone() }),
        )?;
        let ct = B64.decode(resp.ciphertext.as_bytes()).context("the server sent a malformed challenge")?;
        let plain = vault_core::crypto::decrypt_small(&identity, &ct).map_err(|e| match e {
            CryptoError::NotForThisIdentity => anyhow::Error::new(Denied(format!(
                "login failed: this identity is not the one enrolled for {} (check --identity and --user)",
                self.user
            ))),
            other => anyhow!("login failed: {other}"),
        })?;
        Challenge::check(&plain, &self.base, &self.user, chrono::Utc::now().timestamp())?;
        let answer = vault_core::challenge::response(&plain);
        let login: LoginResponse = self.send_plain(
            self.http
                .post(self.url("/v1/login"))
                .json(&LoginRequest { challenge_id: resp.challenge_id, response: answer }),
        )?;
        crate::local::store_token(&self.base, &self.user, &login.token, login.expires_at)?;
        self.token = Some(Zeroizing::new(login.token.clone()));
        Ok(login)
    }

    /// Runs `f` on its own thread with a copy of this client (same server, user, TLS
    /// roots and a token valid now), so that a request the command needs anyway (the
    /// trust material) overlaps with its main one instead of following it.
    pub fn in_background<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Client) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<T>>> {
        let mut copy = self.copy()?;
        Ok(std::thread::spawn(move || f(&mut copy)))
    }

    /// A token valid for at least a minute, logging in if needed.
    fn token(&mut self) -> anyhow::Result<Zeroizing<String>> {
        if self.token.is_none() {
            let valid_at = chrono::Utc::now().timestamp() + TOKEN_MARGIN_SECS;
            self.token = crate::local::cached_token(&self.base, &self.user, valid_at);
        }
        if self.token.is_none() {
            self.login()?;
        }
        Ok(self.token.clone().expect("set above"))
    }

    /// Sends an authenticated request built by `build`; on 401 logs in once and retries.
    pub fn send(&mut self, build: impl Fn(&Http, &str) -> RequestBuilder) -> anyhow::Result<Response> {
        let resp = self.with_relogin(
            |c, token| build(&c.http, &c.base).bearer_auth(token).send().map_err(transport),
            Response::status,
        )?;
        check(resp)
    }

    /// Sends with a valid token by `attempt`; if the server refuses it (401), logs in once
    /// and sends again. Only for requests whose body can be built a second time.
    fn with_relogin<R>(
        &mut self,
        attempt: impl Fn(&Self, &str) -> anyhow::Result<R>,
        status: fn(&R) -> StatusCode,
    ) -> anyhow::Result<R> {
        let token = self.token()?;
        let first = attempt(self, &token)?;
        if status(&first) != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        self.token = None;
        self.login()?;
        let token = self.token()?;
        attempt(self, &token)
    }

    pub fn get_json<T: DeserializeOwned>(&mut self, path: &str) -> anyhow::Result<T> {
        let url = self.url(path);
        let resp = self.send(|h, _| h.get(&url))?;
        resp.json().context("the server's answer is not what this client expects")
    }

    pub fn post_json<B: Serialize, T: DeserializeOwned>(&mut self, path: &str, body: &B) -> anyhow::Result<T> {
        let url = self.url(path);
        let resp = self.send(|h, _| h.post(&url).json(body))?;
        resp.json().context("the server's answer is not what this client expects")
    }

    fn send_plain<T: DeserializeOwned>(&self, req: RequestBuilder) -> anyhow::Result<T> {
        let resp = check(req.send().map_err(transport)?)?;
        resp.json().context("the server's answer is not what this client expects")
    }

    /// Starts a streamed upload to `path`, taking a token valid for at least a minute now.
    ///
    /// The body is a one-shot stream (the recording, encrypted as it is read), so a request
    /// refused for its token cannot be sent again after logging in: unlike [`Client::send`]
    /// there is no retry on 401, the refusal is the answer (exit 3). That is why the token
    /// is taken here, before the body exists, rather than when the request goes out.
    pub fn upload(&mut self, path: &str) -> anyhow::Result<Upload> {
        let token = self.token()?;
        let (rt, http) = self.streaming()?;
        Ok(Upload { url: self.url(path), token, rt, http })
    }

    /// POSTs `body` to `path` and returns the answer with its body not yet read, to be
    /// streamed. The JSON body can be sent again, so on 401 it logs in once and retries.
    pub fn fetch_stream<B: Serialize>(&mut self, path: &str, body: &B) -> anyhow::Result<Download> {
        let url = self.url(path);
        let (rt, http) = self.streaming()?;
        let resp = self.with_relogin(
            |_, token| {
                // Built inside the runtime: the read timeout's timer needs it.
                rt.block_on(async { http.post(&url).bearer_auth(token).json(body).send().await })
                    .map_err(|e| transport(e).context("fetch failed"))
            },
            reqwest::Response::status,
        )?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = rt.block_on(resp.bytes()).unwrap_or_default();
            return Err(error_from(status, &bytes));
        }
        Ok(Download { rt, resp })
    }

    /// The runtime and async client (with this client's TLS roots) of streamed
    /// transfers; see [`crate::transfer`].
    fn streaming(&self) -> anyhow::Result<(std::sync::Arc<tokio::runtime::Runtime>, reqwest::Client)> {
        if let Some(s) = self.streaming.get() {
            return Ok((s.rt.clone(), s.http.clone()));
        }
        let rt = match self.streaming_threads {
            0 => transfer::runtime()?,
            n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
        };
        // No limit on the whole transfer (a recording may take hours); a limit on silence.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(r) = &self.roots {
            builder = builder.tls_certs_only(r.clone());
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        let s = self.streaming.get_or_init(|| Streaming { rt: std::sync::Arc::new(rt), http });
        Ok((s.rt.clone(), s.http.clone()))
    }
}

/// An upload ready to send, from [`Client::upload`].
pub struct Upload {
    url: String,
    token: Zeroizing<String>,
    rt: std::sync::Arc<tokio::runtime::Runtime>,
    http: reqwest::Client,
}

/// The answer to an upload: its headers and its (small, JSON) body.
pub struct Answer {
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Upload {
    /// POSTs `body` as it is produced, and reads the answer. An error status becomes an
    /// error with the server's message (access denied for 401 and 403).
    pub fn send(
        &self,
        query: &[(&str, String)],
        headers: Vec<(&'static str, String)>,
        body: transfer::ChunkStream,
    ) -> anyhow::Result<Answer> {
        self.post(self.request(query, headers).body(reqwest::Body::wrap_stream(body)))
    }

    /// As [`Upload::send`], with a body made beforehand (a small recording, encrypted and
    /// signed before it is sent).
    pub fn send_bytes(
        &self,
        query: &[(&str, String)],
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        self.post(self.request(query, headers).body(body))
    }

    fn request(&self, query: &[(&str, String)], headers: Vec<(&'static str, String)>) -> reqwest::RequestBuilder {
        let mut req = self.http.post(&self.url).query(query);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req
    }

    fn post(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        let req = req.bearer_auth(self.token.as_str());
        let answer = self.rt.block_on(async {
            let mut resp = req.send().await?;
            let status = resp.status();
            let headers = std::mem::take(resp.headers_mut());
            Ok::<_, reqwest::Error>((status, headers, resp.bytes().await?))
        });
        let (status, headers, body) = answer.map_err(|e| transport(e).context("upload failed"))?;
        if !status.is_success() {
            return Err(error_from(status, &body));
        }
        Ok(Answer { headers, body })
    }
}

/// A streamed answer from [`Client::fetch_stream`]: its headers now, its body read on the
/// runtime that made the request.
pub struct Download {
    rt: std::sync::Arc<tokio::runtime::Runtime>,
    resp: reqwest::Response,
}

impl Download {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.resp.headers().get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_length(&self) -> Option<u64> {
        self.resp.content_length()
    }

    /// Passes the body on to a [`transfer::ChunkReader`]; see [`transfer::forward_hashed`].
    pub fn forward_hashed(
        self,
        chunks: &std::sync::mpsc::SyncSender<transfer::Chunk>,
    ) -> Result<Option<String>, reqwest::Error> {
        self.rt.block_on(transfer::forward_hashed(self.resp.bytes_stream(), chunks))
    }
}

fn transport(e: reqwest::Error) -> anyhow::Error {
    // The chain carries the cause (refused connection, unknown certificate issuer, ...).
    if e.is_timeout() {
        anyhow::Error::new(e).context(
            "the server did not answer in time; is it overloaded or unreachable? (wait longer with --timeout-secs)",
        )
    } else if let Some(hint) = crate::tls_hint::hint(&e) {
        anyhow::Error::new(e).context(hint)
    } else if e.is_connect() {
        anyhow::Error::new(e)
            .context("cannot reach the server; is vault-server running, and are --server (and --ca-cert) right?")
    } else {
        anyhow::Error::new(e).context("request failed")
    }
}

/// Turns an error status into an error with the server's message.
fn check(resp: Response) -> anyhow::Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    Err(error_from(status, &resp.bytes().unwrap_or_default()))
}

/// The error for an answer with an error status: access denied (exit 3) for 401 and
/// 403, otherwise the server's message.
fn error_from(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let (code, msg) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error, b.message),
        Err(_) => (String::new(), format!("the server answered {status}")),
    };
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        Denied(msg).into()
    } else {
        Answered { status: status.as_u16(), code, message: msg }.into()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-request server on loopback that reads a request (with a chunked body, if
    /// any) and answers 401. Returns the client's URL and a handle yielding the request
    /// line and how many more connections came within a moment after the answer.
    fn refusing_server() -> (String, std::thread::JoinHandle<(String, usize)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut chunked = false;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                chunked |= line.to_ascii_lowercase().starts_with("transfer-encoding: chunked");
                if line == "\r\n" {
                    break;
                }
            }
            if chunked {
                // Read the whole body, so the client sees the answer rather than a reset.
                let mut seen = Vec::new();
                let mut byte = [0u8; 1];
                while !seen.ends_with(b"\r\n0\r\n\r\n") && !seen.starts_with(b"0\r\n\r\n") {
                    reader.read_exact(&mut byte).unwrap();
                    seen.push(byte[0]);
                }
            }
            let body = r#"{"error":"unauthorized","message":"session expired"}"#;
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            drop(stream);
            listener.set_nonblocking(true).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            let more = std::iter::from_fn(|| listener.accept().ok()).count();
            (request_line.trim_end().to_owned(), more)
        });
        (url, handle)
    }

    fn client_with_token(url: &str) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let g = Global {
            server: url.into(),
            user: Some("rec".parse().unwrap()),
            identity: None,
            ca_cert: None,
            trust_root: None,
            json: false,
            timeout_secs: 60,
        };
        let mut client = Client::new(&g).unwrap();
        client.token = Some(Zeroizing::new("expired-token".into()));
        client
    }

    #[test]
    fn fail_a_refused_upload_is_access_denied_and_not_sent_again() {
        let (url, server) = refusing_server();
        let mut client = client_with_token(&url);
        let upload = client.upload("/v1/cases/c/recordings").unwrap();
        let (mut writer, body, _) = transfer::chunk_channel();
        let producer = std::thread::spawn(move || {
            writer.write_all(b"ciphertext").unwrap();
            writer.finish().unwrap();
        });
        let err = upload.send(&[], Vec::new(), body).err().expect("refused");
        producer.join().unwrap();
        assert_eq!(err.downcast_ref::<Denied>().map(|d| d.0.as_str()), Some("session expired"));
        let (request, more) = server.join().unwrap();
        assert_eq!(request, "POST /v1/cases/c/recordings HTTP/1.1");
        assert_eq!(more, 0, "a one-shot body must not be sent again");
    }

    #[test]
    fn fail_a_refused_fetch_logs_in_again_before_resending() {
        let (url, server) = refusing_server();
        let mut client = client_with_token(&url);
        let err = client.fetch_stream("/v1/recordings/r/fetch", &serde_json::json!({})).err().expect("refused");
        // Logging in again needs the identity, which this client lacks: the retry was tried.
        assert!(err.to_string().starts_with("no identity given"), "{err:#}");
        let (request, more) = server.join().unwrap();
        assert_eq!(request, "POST /v1/recordings/r/fetch HTTP/1.1");
        assert_eq!(more, 0);
    }

    #[test]
    fn error_statuses_become_the_servers_message_and_refusals_exit_3() {
        let body = br#"{"error":"forbidden","message":"you have no grant on this case"}"#;
        for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
            let e = error_from(status, body);
            assert_eq!(e.downcast_ref::<Denied>().map(|d| d.0.as_str()), Some("you have no grant on this case"));
        }
        let e = error_from(StatusCode::CONFLICT, body);
        assert!(e.downcast_ref::<Denied>().is_none());
        assert_eq!(e.to_string(), "you have no grant on this case");
        let e = error_from(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(e.to_string(), "the server answered 502 Bad Gateway");
    }
}
