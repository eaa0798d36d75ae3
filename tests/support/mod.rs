//! Support for the end-to-end tests: a real `vault-server` on a free loopback port in a
//! temporary directory, and the real `vault-cli`, run as separate processes.
//!
//! The binaries are the ones Cargo built for this workspace (`cargo test --workspace`
//! builds them); they are found next to the test executable.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod proxy;
pub mod s3;
pub mod witness;

/// `vault-cli` as `who` against `url`, run in `dir` with a token cache of their own there
/// (`cfg-NAME`), trusting `trust_root`, and nothing from the environment it runs in.
pub fn cli_command(dir: &Path, url: &str, trust_root: &str, who: &Person) -> Command {
    let mut c = Command::new(bin("vault-cli"));
    c.current_dir(dir)
        .env("VAULT_SERVER", url)
        .env("VAULT_USER", &who.name)
        .env("VAULT_IDENTITY", &who.key)
        .env("VAULT_CONFIG_DIR", dir.join(format!("cfg-{}", who.name)))
        .env("VAULT_TRUST_ROOT", trust_root)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("VAULT_CA_CERT");
    c
}

/// Where Cargo put the workspace's binaries.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built; run `cargo test --workspace` (it builds the binaries)", path.display());
    path
}

/// `text` as JSON; panics with the text if it is not.
#[track_caller]
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The result of running a binary.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns stdout, trimmed.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code, 0,
            "expected success, got {}:\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self.stdout.trim().to_owned()
    }

    /// Asserts the "access denied" exit status and that stderr says `needle`.
    #[track_caller]
    pub fn denied(&self, needle: &str) {
        assert_eq!(
            self.code, 3,
            "expected access denied (3), got {}:\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}: {}", self.stderr);
        assert!(self.stdout.trim().is_empty(), "a refused command printed a result: {}", self.stdout);
    }

    /// Asserts a plain error (exit 1) whose message contains `needle`.
    #[track_caller]
    pub fn error(&self, needle: &str) {
        assert_eq!(
            self.code, 1,
            "expected error (1), got {}:\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}: {}", self.stderr);
    }

    /// Asserts a usage error (exit 2) whose message contains `needle`.
    #[track_caller]
    pub fn usage(&self, needle: &str) {
        assert_eq!(
            self.code, 2,
            "expected usage error (2), got {}:\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}: {}", self.stderr);
    }
}

pub fn run(cmd: &mut Command) -> Out {
    cmd.stdin(Stdio::null()).output().expect("run binary").into()
}

impl From<std::process::Output> for Out {
    fn from(o: std::process::Output) -> Self {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Waits (at most 30 s) until `vault-server serve`, started as `child` with its stderr
/// in `log`, says where it listens; returns that URL. Panics, with the log, if it exits
/// first.
pub fn wait_listening(child: &mut Child, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("listening on ")) {
            return line["listening on ".len()..].trim().to_owned();
        }
        if let Some(status) = child.try_wait().expect("wait for vault-server") {
            panic!("vault-server exited with {status}: {text}");
        }
        assert!(Instant::now() < deadline, "vault-server did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A person with an identity file.
#[derive(Clone, Debug)]
pub struct Person {
    pub name: String,
    pub key: PathBuf,
    /// Their public id (`vault1...`), which `user add --recipient` takes.
    pub recipient: String,
}

impl Person {
    /// The age recipient (`age1...`) of their identity file, for the `age` tool.
    pub fn age_recipient(&self) -> String {
        let text = std::fs::read_to_string(&self.key).expect("identity file");
        let line = text.lines().find_map(|l| l.strip_prefix("# public key: ")).expect("a public key line");
        line.trim().to_owned()
    }
}

/// A running vault in a temporary directory.
pub struct Vault {
    pub dir: tempfile::TempDir,
    pub url: String,
    /// alice: the first of the two initial admins (the trust root).
    pub admin: Person,
    /// root2: the second initial admin, who approves the admins alice enrols.
    pub second: Person,
    /// The trust root's fingerprint `vault-server init` printed; every CLI run gets it as
    /// `VAULT_TRUST_ROOT`.
    pub trust_root: String,
    server: Option<Child>,
    /// 0 (the default here): no background purge, so tests decide when purges happen.
    purge_interval_secs: u64,
    /// Extra arguments of `vault-server serve` (TLS).
    serve_args: Vec<String>,
    /// The CA certificate clients trust, for a TLS server.
    pub ca_cert: Option<PathBuf>,
    /// The object store the recordings are kept in, if not the data dir.
    pub s3: Option<s3::S3Server>,
}

/// Where a test vault keeps its recordings' ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The data dir's `blobs/` (the default).
    Local,
    /// A real S3-compatible object store (s3s-fs) on loopback.
    S3,
}

impl Vault {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn server_log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Initialises a vault with initial admins `alice` and `root2` and starts the server.
    ///
    /// Its limits on callers without a session, and the log gate's budgets, are raised far
    /// beyond what the tests do (every test's CLI runs from 127.0.0.1), so that every
    /// refusal gets its own entry; [`Vault::start_with`] sets them.
    pub fn start() -> Self {
        Self::start_purging_every(0)
    }

    /// As [`Vault::start`], keeping the recordings in `backend`.
    pub fn start_on(backend: Backend) -> Self {
        Self::start_on_purging_every(backend, 0)
    }

    /// As [`Vault::start_purging_every`], keeping the recordings in `backend`.
    pub fn start_on_purging_every(backend: Backend, secs: u64) -> Self {
        let mut v = Self::init(secs);
        if backend == Backend::S3 {
            let s3 = s3::S3Server::start();
            v.serve_args = s3.flags(s3::PREFIX);
            v.s3 = Some(s3);
        }
        v.restart();
        v
    }

    /// The `vault-server` flags that name this vault's blob store (none for the local
    /// one), for commands other than `serve`.
    pub fn store_flags(&self) -> Vec<String> {
        self.s3.as_ref().map(|s| s.flags(s3::PREFIX)).unwrap_or_default()
    }

    /// Where recording `id`'s ciphertext is stored, as a file: in the data dir's `blobs/`
    /// or in the object store's directory.
    pub fn blob_path(&self, id: &str) -> PathBuf {
        match &self.s3 {
            None => self.data().join("blobs").join(format!("{id}.age")),
            Some(s) => s.object(&format!("{}/blobs/{id}.age", s3::PREFIX)),
        }
    }

    /// Every stored blob, as files.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        match &self.s3 {
            None => files_under(&self.data().join("blobs")),
            Some(s) => {
                let under = format!("{}/blobs/", s3::PREFIX);
                s.keys().into_iter().filter(|k| k.starts_with(&under)).map(|k| s.object(&k)).collect()
            }
        }
    }

    /// As [`Vault::start`], serving with `args` added to `vault-server serve` (flags win
    /// over the raised limits, which the harness sets in the environment).
    pub fn start_with(args: &[&str]) -> Self {
        let mut v = Self::start();
        v.serve_args = args.iter().map(|a| a.to_string()).collect();
        v.restart();
        v
    }

    /// Restarts the server with `args` added to `vault-server serve`.
    pub fn serve_with(&mut self, args: &[String]) {
        self.serve_args.extend(args.iter().cloned());
        self.restart();
    }

    /// As [`Vault::start`], with the server's retention purge running every `secs`.
    pub fn start_purging_every(secs: u64) -> Self {
        let mut v = Self::init(secs);
        v.restart();
        v
    }

    /// Initialises a vault (not yet served).
    fn init(secs: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let admin = keygen_in(dir.path(), "alice");
        let second = keygen_in(dir.path(), "root2");
        let init = run(Command::new(bin("vault-server"))
            .args(["init", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--admin", "alice", "--recipient", &admin.recipient])
            .args(["--admin", "root2", "--recipient", &second.recipient]));
        let trust_root = init.ok();
        assert!(trust_root.starts_with("SHA256:"), "init printed {trust_root:?}");
        Vault {
            dir,
            url: String::new(),
            admin,
            second,
            trust_root,
            server: None,
            purge_interval_secs: secs,
            serve_args: Vec::new(),
            ca_cert: None,
            s3: None,
        }
    }

    /// A vault served over HTTPS with a fresh self-signed certificate for 127.0.0.1 and
    /// localhost, which the CLI is told to trust with `VAULT_CA_CERT`.
    pub fn start_tls() -> Self {
        let mut v = Self::start();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate a certificate");
        let (cert_path, key_path) = (v.dir.path().join("tls-cert.pem"), v.dir.path().join("tls-key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        v.serve_args = vec![
            "--tls-cert".into(),
            cert_path.to_str().unwrap().into(),
            "--tls-key".into(),
            key_path.to_str().unwrap().into(),
        ];
        v.ca_cert = Some(cert_path);
        v.restart();
        v
    }

    /// Starts (or restarts) the server on a free port and waits until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.server_log()).expect("server log");
        let child = Command::new(bin("vault-server"))
            .args(["serve", "--data-dir"])
            .arg(self.data())
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.serve_args)
            .env("VAULT_LOG", "debug")
            .env("VAULT_PURGE_INTERVAL_SECS", self.purge_interval_secs.to_string())
            .env("VAULT_UNAUTH_PER_SEC", "100000")
            // Every witnessed-checkpoint request asks the witnesses (no throttle), so that
            // tests see the checkpoint their own requests made.
            .env("VAULT_WITNESS_ON_DEMAND_MILLIS", "0")
            // Test machines may have little disk; `/readyz`'s own test raises it.
            .env("VAULT_READY_MIN_FREE_MIB", "1")
            .env("VAULT_UNAUTH_BURST", "100000")
            .env("VAULT_CHALLENGE_EVERY_SECS", "1")
            .env("VAULT_CHALLENGE_BURST", "100000")
            .env("VAULT_LOG_ENTRIES_PER_ADDRESS", "100000")
            .env("VAULT_LOG_ENTRIES_PER_WINDOW", "100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vault-server");
        let log = self.server_log();
        self.url = wait_listening(self.server.insert(child), &log);
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.stop();
    }

    /// The running server's process id.
    pub fn pid(&self) -> u32 {
        self.server.as_ref().expect("the server runs").id()
    }

    /// Sends the server SIGTERM, as an init system stopping it would.
    pub fn sigterm(&self) {
        let out = run(Command::new("kill").args(["-TERM", &self.pid().to_string()]));
        assert_eq!(out.code, 0, "kill -TERM: {out:?}");
    }

    /// Waits (at most `within`) for the server to exit on its own, and returns its exit
    /// status; the server is then stopped, and `restart` starts it again.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.server.as_mut().expect("the server runs");
        loop {
            if let Some(status) = child.try_wait().expect("wait for vault-server") {
                self.server = None;
                return status;
            }
            assert!(Instant::now() < deadline, "vault-server did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The rest of the first line of the server's stderr that starts with `prefix`, once
    /// it is there.
    pub fn log_value(&self, prefix: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.server_log()).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix(prefix)).map(|v| v.trim().to_owned())
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn keygen(&self, name: &str) -> Person {
        keygen_in(self.dir.path(), name)
    }

    /// `vault-cli` as `who`, with a token cache of their own.
    pub fn cli(&self, who: &Person, args: &[&str]) -> Out {
        run(self.cli_cmd(who).args(args))
    }

    pub fn cli_cmd(&self, who: &Person) -> Command {
        let mut c = cli_command(self.dir.path(), &self.url, &self.trust_root, who);
        if let Some(ca) = &self.ca_cert {
            c.env("VAULT_CA_CERT", ca);
        }
        c
    }

    /// Enrols `name` with `role` (as alice; an admin approved by root2) and returns the
    /// person.
    pub fn enrol(&self, name: &str, role: &str) -> Person {
        let p = self.keygen(name);
        let out = self.cli(&self.admin, &["user", "add", name, "--role", role, "--recipient", &p.recipient]);
        assert_eq!(out.ok(), name);
        if role == "admin" {
            self.cli(&self.second, &["user", "approve", name]).ok();
        }
        p
    }

    /// Puts a lying proxy between every CLI run and the server from now on: the server
    /// is restarted to name the proxy as its public URL (login challenges are bound to
    /// it), and `self.url` becomes the proxy's. The lie decides what the server "says".
    pub fn behind_proxy(&mut self, lie: impl proxy::Lie) -> proxy::Proxy {
        let p = proxy::Proxy::start("http://127.0.0.1:1", lie);
        self.serve_args.extend(["--public-url".to_owned(), p.url.clone()]);
        self.restart();
        p.set_upstream(&self.url);
        self.url = p.url.clone();
        p
    }

    /// Opens the server's database read-only (WAL lets us read while it runs).
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(self.data().join("vault.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open vault.db")
    }

    /// Opens the server's database for writing, as an attacker with disk access could.
    pub fn db_rw(&self) -> rusqlite::Connection {
        let db = rusqlite::Connection::open(self.data().join("vault.db")).expect("open vault.db");
        db.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
        db
    }

    /// The last access-log entry: (actor, action, outcome, reason, details).
    pub fn last_log(&self) -> (String, String, String, String, String) {
        self.db()
            .query_row(
                "SELECT actor, action, outcome, reason, details FROM access_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .expect("read log")
    }

    pub fn log_len(&self) -> i64 {
        self.db().query_row("SELECT count(*) FROM access_log", [], |r| r.get(0)).expect("count")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).expect("count")
    }

    /// The access log's verifier key, as `vault-server log-key` prints it (what auditors
    /// pass as `--server-key`).
    pub fn log_key(&self) -> String {
        run(Command::new(bin("vault-server")).args(["log-key", "--data-dir"]).arg(self.data())).ok()
    }

    /// The cached session token of `who` (after they have logged in).
    pub fn token(&self, who: &Person) -> String {
        let dir = self.dir.path().join(format!("cfg-{}", who.name)).join("tokens");
        let entry = std::fs::read_dir(&dir).expect("token dir").next().expect("a token").expect("entry");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// Sends a raw HTTP/1.1 request and returns (status, body). With a
    /// `transfer-encoding: chunked` header, `body` must be framed by the caller; with an
    /// `x-test-cut` header the connection is closed right after `body` is sent.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let (status, _, body) = self.raw_with_head(method, path, token, headers, body);
        (status, body)
    }

    /// As [`Vault::raw`], also returning the answer's head (status line and headers).
    pub fn raw_with_head(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, String) {
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && *v == "chunked");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let has_length = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        if !chunked && !has_length {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let sent = s.write_all(req.as_bytes()).and_then(|()| s.write_all(body));
        if headers.iter().any(|(k, _)| *k == "x-test-cut") {
            // Hang up mid-body, as a client that crashed or lost its network would.
            let _ = s.shutdown(std::net::Shutdown::Both);
            return (0, String::new(), String::new());
        }
        sent.expect("send request");
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (status, head.to_owned(), body.to_owned())
    }
}

/// Reads an HTTP/1.1 answer to the end of the connection: (status, body as text); status
/// 0 if there was none.
pub fn read_answer(s: &mut TcpStream) -> (u16, String) {
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

impl Drop for Vault {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keygen_in(dir: &Path, name: &str) -> Person {
    let key = dir.join(format!("{name}.key"));
    let out = run(Command::new(bin("vault-cli")).args(["keygen", "--out"]).arg(&key));
    let recipient = out.ok();
    assert!(recipient.starts_with("vault1"), "keygen printed {recipient:?}");
    Person { name: name.to_owned(), key, recipient }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether `needle` occurs in any file under `dir`.
pub fn grep_dir(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).map(|b| b.windows(needle.len()).any(|w| w == needle)).unwrap_or(false))
        .collect()
}

/// The value of header `name` in an answer's head (as [`Vault::raw_with_head`] returns it).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One sample of a Prometheus text exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Parses a Prometheus text exposition (format 0.0.4), panicking on any line that is
/// neither a comment, blank, nor `name{label="value",...} number`.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| bad(line));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| bad(line)),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, std::collections::BTreeMap::new()),
            Some((name, rest)) => {
                let mut rest = rest.strip_suffix('}').unwrap_or_else(|| bad(line));
                let mut labels = std::collections::BTreeMap::new();
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").unwrap_or_else(|| bad(line));
                    // Values escape `\`, `"` and newlines with a backslash.
                    let (mut value, mut chars, mut end) = (String::new(), after.char_indices(), None);
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next() {
                                Some((_, 'n')) => value.push('\n'),
                                Some((_, c)) => value.push(c),
                                None => bad(line),
                            },
                            '"' => {
                                end = Some(i);
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                    let end = end.unwrap_or_else(|| bad(line));
                    labels.insert(key.to_owned(), value);
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name, labels)
            }
        };
        let name_ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !name_ok {
            bad::<()>(line);
        }
        out.push(Sample { name: name.to_owned(), labels, value });
    }
    out
}

fn bad<T>(line: &str) -> T {
    panic!("not a Prometheus sample line: {line:?}")
}

/// The sum of the samples named `name` whose labels include every one of `labels`.
pub fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// GETs `url` (plain HTTP on loopback) and returns (status, body).
pub fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (addr, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("send request");
    read_answer(&mut s)
}

/// Runs each of the named test functions (each taking a [`Backend`]) once per blob
/// store, as the tests `local::NAME` and `s3::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[test] fn $name() { super::$name($crate::Backend::Local) })*
        }
        mod s3 {
            $(#[test] fn $name() { super::$name($crate::Backend::S3) })*
        }
    };
}
