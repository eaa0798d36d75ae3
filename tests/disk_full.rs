//! A full disk (issue 13): every write path fails closed with a clear error, nothing
//! half-written stays visible, and the vault serves again, without a restart, once
//! space is freed.
//!
//! The data directory lives on a small tmpfs mounted in a mount namespace of its own
//! (`unshare -rm`), so the test fills a real file system without touching the machine's.
//! A shell started by `unshare` mounts it, initialises the vault there, starts
//! `vault-server serve` in the background and holds the namespace until the test closes
//! its stdin. The test reaches the tmpfs through `/proc/<shell>/root`, which shows files
//! as the namespace sees them (SQLite resolves that link to the host's `/`, so the
//! database is read from a copy, and `vault-server verify` runs inside with `nsenter`).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use vault_tests::{Out, Person, bin, run};

/// The tmpfs: room for the vault and a few small recordings.
const TMPFS_SIZE: &str = "4m";
/// A request or command that takes longer than this has hung.
const PATIENCE: Duration = Duration::from_secs(60);
/// tmpfs allocates whole pages.
const PAGE: u64 = 4096;

const NAMESPACE_SCRIPT: &str = r#"
set -e
mount -t tmpfs -o size="$SIZE" none "$MNT"
"$SERVER" init --data-dir "$MNT/data" --admin alice --recipient "$ALICE" --admin root2 --recipient "$ROOT2" > "$OUT/init.out"
"$SERVER" serve --data-dir "$MNT/data" --listen 127.0.0.1:0 2> "$OUT/server.log" &
server=$!
echo "$server" > "$OUT/server.pid"
# The namespace, and its tmpfs, lives until the test closes our stdin (or dies).
read -r _ || true
kill "$server" 2> /dev/null || true
wait "$server" || true
"#;

/// What this test needs from the machine, for the message when it is missing.
const NEEDS: &str = "this test needs `unshare -rm` and `nsenter` (util-linux) and permission to mount a tmpfs in a \
                     new mount namespace (run as root, or enable unprivileged user namespaces: \
                     sysctl kernel.unprivileged_userns_clone=1)";

/// A vault whose data directory is on a small tmpfs in a mount namespace of its own.
struct NsVault {
    dir: tempfile::TempDir,
    /// The tmpfs's mount point, as the namespace sees it (an empty directory outside).
    mnt: PathBuf,
    /// The shell holding the namespace; closing its stdin stops the server and it.
    holder: Child,
    stdin: Option<ChildStdin>,
    server_pid: u32,
    url: String,
    trust_root: String,
    alice: Person,
}

impl NsVault {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let alice = keygen(dir.path(), "alice");
        let root2 = keygen(dir.path(), "root2");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let script = dir.path().join("ns.sh");
        std::fs::write(&script, NAMESPACE_SCRIPT).unwrap();
        let holder_err = dir.path().join("namespace.err");
        let holder = Command::new("unshare")
            .args(["-rm", "sh"])
            .arg(&script)
            .env("SIZE", TMPFS_SIZE)
            .env("MNT", &mnt)
            .env("OUT", dir.path())
            .env("SERVER", bin("vault-server"))
            .env("ALICE", &alice.recipient)
            .env("ROOT2", &root2.recipient)
            .env("VAULT_LOG", "debug")
            .env("VAULT_PURGE_INTERVAL_SECS", "0")
            // As tests/support raises them: this test is not about limits on callers.
            .env("VAULT_UNAUTH_PER_SEC", "100000")
            .env("VAULT_UNAUTH_BURST", "100000")
            .env("VAULT_CHALLENGE_EVERY_SECS", "1")
            .env("VAULT_CHALLENGE_BURST", "100000")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&holder_err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare ({e}): {NEEDS}"));
        let mut v = NsVault {
            mnt,
            holder,
            stdin: None,
            server_pid: 0,
            url: String::new(),
            trust_root: String::new(),
            alice,
            dir,
        };
        v.stdin = v.holder.stdin.take();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = v.server_log();
            if let Some(line) = log.lines().find(|l| l.starts_with("listening on ")) {
                v.url = line["listening on ".len()..].trim().to_owned();
                break;
            }
            if let Some(status) = v.holder.try_wait().unwrap() {
                let err = std::fs::read_to_string(&holder_err).unwrap_or_default();
                panic!("the namespace with the vault on a tmpfs did not start ({status}): {err}\n{log}\n{NEEDS}");
            }
            assert!(Instant::now() < deadline, "vault-server did not start: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
        v.trust_root = std::fs::read_to_string(v.dir.path().join("init.out")).unwrap().trim().to_owned();
        v.server_pid = std::fs::read_to_string(v.dir.path().join("server.pid")).unwrap().trim().parse().unwrap();
        assert!(v.trust_root.starts_with("SHA256:"), "init printed {:?}", v.trust_root);
        v
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A path on the tmpfs, reachable from outside the namespace.
    fn inside(&self, rel: &str) -> PathBuf {
        let mnt = self.mnt.strip_prefix("/").unwrap();
        Path::new(&format!("/proc/{}/root", self.holder.id())).join(mnt).join(rel)
    }

    fn names(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.inside(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Fills the tmpfs to the last page; returns the filler's size.
    fn fill(&self) -> u64 {
        let mut f = std::fs::File::create(self.inside("filler")).unwrap();
        let mut total = 0u64;
        for chunk in [64 * 1024, PAGE as usize, 1] {
            let bytes = vec![0xa5u8; chunk];
            loop {
                match f.write(&bytes) {
                    Ok(n) => total += n as u64,
                    Err(e) if e.kind() == ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling the tmpfs: {e}"),
                }
            }
        }
        total
    }

    /// Frees `pages` pages of the full tmpfs.
    fn free_pages(&self, filled: u64, pages: u64) {
        let f = std::fs::OpenOptions::new().write(true).open(self.inside("filler")).unwrap();
        f.set_len(filled.div_ceil(PAGE).saturating_sub(pages) * PAGE).unwrap();
    }

    /// The database as it is now, from a copy (nothing writes while the test looks).
    fn db(&self) -> rusqlite::Connection {
        let copy = self.dir.path().join(format!("db-copy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir(&copy).unwrap();
        for f in ["vault.db", "vault.db-wal"] {
            let from = self.inside(&format!("data/{f}"));
            if from.exists() {
                std::fs::copy(&from, copy.join(f)).unwrap();
            }
        }
        rusqlite::Connection::open(copy.join("vault.db")).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// `vault-server verify` on the live data directory, inside the namespace.
    fn verify(&self) -> Out {
        run_timed(
            Command::new("nsenter")
                .args(["-t", &self.holder.id().to_string(), "-U", "-m", "--preserve-credentials"])
                .arg(bin("vault-server"))
                .args(["verify", "--data-dir"])
                .arg(self.mnt.join("data")),
        )
    }

    fn cli_cmd(&self, who: &Person) -> Command {
        vault_tests::cli_command(self.dir.path(), &self.url, &self.trust_root, who)
    }

    fn cli(&self, who: &Person, args: &[&str]) -> Out {
        run_timed(self.cli_cmd(who).args(args))
    }

    fn enrol(&self, name: &str, role: &str) -> Person {
        let p = keygen(self.dir.path(), name);
        self.cli(&self.alice, &["user", "add", name, "--role", role, "--recipient", &p.recipient]).ok();
        p
    }

    /// The cached session token of `who`.
    fn token(&self, who: &Person) -> String {
        let dir = self.dir.path().join(format!("cfg-{}", who.name)).join("tokens");
        let entry = std::fs::read_dir(&dir).expect("token dir").next().expect("a token").expect("entry");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// Sends one HTTP/1.1 request; returns (status, body). Panics if no answer comes.
    fn raw(&self, method: &str, path: &str, token: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        // The server may answer and close before it has read the whole body.
        let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body));
        let mut resp = Vec::new();
        if let Err(e) = s.read_to_end(&mut resp) {
            assert!(!resp.is_empty(), "no answer to {method} {path} ({e}); it hangs");
        }
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
    }

    /// Uploads `ciphertext` as `token`'s recording of `case` with a request of its own;
    /// returns the answer and what the server logged meanwhile.
    fn raw_upload(&self, case: &str, token: &str, ciphertext: &[u8]) -> ((u16, String), String) {
        let before = self.server_log().len();
        let len = ciphertext.len().to_string();
        let answer = self.raw(
            "POST",
            &format!("/v1/cases/{case}/recordings?announced=signal-tone"),
            token,
            &[("x-vault-upload-length", &len)],
            ciphertext,
        );
        (answer, self.server_log()[before..].to_owned())
    }

    fn server_alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.server_pid)).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.server_pid)).unwrap_or_default().contains(") Z ")
    }
}

impl Drop for NsVault {
    fn drop(&mut self) {
        // The shell stops the server, and the namespace and its tmpfs go with them.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.holder.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").arg(self.server_pid.to_string()).status();
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn keygen(dir: &Path, name: &str) -> Person {
    let key = dir.join(format!("{name}.key"));
    let recipient = run(Command::new(bin("vault-cli")).args(["keygen", "--out"]).arg(&key)).ok();
    assert!(recipient.starts_with("vault1"), "keygen printed {recipient:?}");
    Person { name: name.to_owned(), key, recipient }
}

/// Runs a command to completion, failing the test if it takes longer than [`PATIENCE`].
fn run_timed(cmd: &mut Command) -> Out {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run binary");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(o) => {
            let o = o.expect("wait for binary");
            Out {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} hung for {PATIENCE:?}");
        }
    }
}

/// Asserts that a command failed because the server could not store something.
#[track_caller]
fn failed_on_the_server(out: &Out, what: &str) {
    assert!(
        out.code != 0 && out.code != 3,
        "{what}: expected a server error, got {}:\nstdout: {}\nstderr: {}",
        out.code,
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.trim().is_empty(), "{what} printed a result: {}", out.stdout);
    assert!(
        out.stderr.contains("storage is full") || out.stderr.contains("internal server error"),
        "{what}: stderr lacks the server's error: {}",
        out.stderr
    );
}

#[test]
fn a_full_disk_fails_every_write_closed_and_the_vault_serves_again_once_space_is_freed() {
    let v = NsVault::start();
    let alice = v.alice.clone();
    let bob = v.enrol("bob", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    let case = v.cli(&alice, &["case", "create", "--kind", "customer", "--title", "Q3", "--purpose", "sales"]).ok();
    v.cli(&alice, &["grant", &case, "bob", "--reason", "complaint 4"]).ok();
    let first_call = b"the first call, stored before the disk filled up".repeat(200);
    std::fs::write(v.dir.path().join("first.wav"), &first_call).unwrap();
    let first = v.cli(&pbx, &["upload", &case, "first.wav", "--announced", "signal-tone"]).ok();
    let pbx_token = v.token(&pbx);
    // A whole age file, to send again in requests of the test's own.
    let ciphertext = std::fs::read(v.inside(&format!("data/blobs/{first}.age"))).unwrap();

    // The disk fills up.
    let filled = v.fill();
    let entries = v.count("SELECT count(*) FROM access_log");
    let rows = v.count("SELECT count(*) FROM recordings");
    let blobs_before = v.names("data/blobs");

    // Receiving an upload into tmp/ fails, with nothing left behind, and is not a hang.
    let ((status, answer), logged) = v.raw_upload(&case, &pbx_token, &ciphertext);
    assert_eq!(status, 507, "upload onto a full disk: {answer}");
    assert!(answer.contains("storage is full"), "{answer}");
    assert!(logged.contains("No space left on device"), "the upload did not fail writing to tmp/: {logged}");
    assert!(v.names("data/tmp").is_empty(), "a partial upload stayed in tmp/: {:?}", v.names("data/tmp"));

    // The CLI's upload fails with the server's error: its first logged request cannot be
    // logged, so it is not served.
    let big = vec![7u8; 300 * 1024];
    std::fs::write(v.dir.path().join("second.wav"), &big).unwrap();
    let out = v.cli(&pbx, &["upload", &case, "second.wav", "--announced", "signal-tone"]);
    failed_on_the_server(&out, "upload");

    // A login cannot be logged, so it fails: no token.
    let out = v.cli(&alice, &["login"]);
    failed_on_the_server(&out, "login");
    // Nor can a refusal (a recorder may not fetch): a server error, not a silent 403.
    let (status, answer) = v.raw(
        "POST",
        &format!("/v1/recordings/{first}/fetch"),
        &pbx_token,
        &[("content-type", "application/json")],
        br#"{"reason":"r"}"#,
    );
    assert!(matches!(status, 500 | 507), "a refusal that could not be logged: {status} {answer}");

    // With room for the upload's ciphertext but not for its row, the row's commit fails
    // after the blob was moved into blobs/, and the blob goes again.
    v.free_pages(filled, (ciphertext.len() as u64).div_ceil(PAGE));
    let ((status, answer), logged) = v.raw_upload(&case, &pbx_token, &ciphertext);
    assert_eq!(status, 500, "an upload whose row could not be written: {answer}");
    assert!(logged.contains("commit failed"), "the upload did not fail at its row's commit: {logged}");
    v.fill();

    // Nothing of any of it is visible or logged, and nothing half-written stayed.
    assert_eq!(v.count("SELECT count(*) FROM access_log"), entries, "an entry was written on a full disk");
    assert_eq!(v.count("SELECT count(*) FROM recordings"), rows, "a recording row was written on a full disk");
    assert_eq!(v.names("data/blobs"), blobs_before, "blobs/ changed on a full disk");
    assert!(v.names("data/tmp").is_empty(), "tmp/ kept {:?}", v.names("data/tmp"));
    assert!(v.server_alive(), "the server died on a full disk: {}", v.server_log());

    // With room for the log entries of an upload's first requests but not for its
    // ciphertext, the CLI's upload fails while it streams the file, and says so.
    v.free_pages(filled, 64);
    let uploads = v.count("SELECT count(*) FROM access_log WHERE action = 'upload'");
    let large = vec![9u8; 2 * 1024 * 1024];
    std::fs::write(v.dir.path().join("large.wav"), &large).unwrap();
    let out = v.cli(&pbx, &["upload", &case, "large.wav", "--announced", "signal-tone"]);
    failed_on_the_server(&out, "an upload larger than the room left");
    assert_eq!(v.count("SELECT count(*) FROM access_log WHERE action = 'upload'"), uploads);
    assert_eq!(v.count("SELECT count(*) FROM recordings"), rows);
    assert_eq!(v.names("data/blobs"), blobs_before);
    assert!(v.names("data/tmp").is_empty(), "tmp/ kept {:?}", v.names("data/tmp"));

    // Space is freed: the same server serves again.
    std::fs::remove_file(v.inside("filler")).unwrap();
    v.cli(&alice, &["login"]).ok();
    let second = v.cli(&pbx, &["upload", &case, "second.wav", "--announced", "signal-tone"]).ok();
    for (id, content) in [(&first, &first_call[..]), (&second, &big[..])] {
        let out = v.dir.path().join(format!("{id}.out"));
        v.cli(&bob, &["fetch", id, "--reason", "complaint 4", "--out", out.to_str().unwrap()]).ok();
        assert!(std::fs::read(&out).unwrap() == content, "{id} fetched differently");
    }
    let listed: serde_json::Value = serde_json::from_str(&v.cli(&bob, &["--json", "recordings", &case]).ok()).unwrap();
    let listed: Vec<&str> = listed.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [first.as_str(), second.as_str()]);
    let mut blobs = vec![format!("{first}.age"), format!("{second}.age")];
    blobs.sort();
    assert_eq!(v.names("data/blobs"), blobs);
    assert!(v.names("data/tmp").is_empty());
    assert!(v.count("SELECT count(*) FROM access_log") > entries);

    let out = v.verify();
    assert!(out.ok().starts_with("ok: "), "{out:?}");
    assert!(!out.stderr.contains("orphan") && !out.stderr.contains("unrecognised"), "{}", out.stderr);
}
