//! `vault-cli witness serve`, the real binary on a free loopback port: a log (a test key
//! made with ring, Merkle trees of test leaves built with vault-core) pushes checkpoints
//! with `add-checkpoint`; the witness cosigns those that extend what it cosigned before,
//! refuses rollbacks and forks with the protocol's statuses, keeps its state across a
//! crash, and refuses bad requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::Ed25519KeyPair;
use vault_core::cosign::{self, WitnessKey};
use vault_core::merkle::{self, Hash};
use vault_core::note::VerifierKey;
use vault_core::witness::{AddCheckpoint, SIZE_CONTENT_TYPE};
use vault_tests::witness::Witness;
use vault_tests::{bin, run};

const ORIGIN: &str = "recording-vault/00000000feedf00d";
const NAME: &str = "witness.example.org/dpo";

/// A log of test entries, signed with a ring key; `fork_at` rewrites the history from
/// that entry on.
struct Log {
    pair: Ed25519KeyPair,
}

impl Log {
    fn new(seed: u8) -> Self {
        Log { pair: Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap() }
    }

    fn key(&self) -> VerifierKey {
        VerifierKey::from_pair(ORIGIN, &self.pair)
    }

    fn leaves(size: u64, fork_at: Option<u64>) -> Vec<Hash> {
        (0..size)
            .map(|i| {
                let rewritten = fork_at.is_some_and(|f| i >= f);
                merkle::leaf_hash(format!("entry {i}{}", if rewritten { ", rewritten" } else { "" }).as_bytes())
            })
            .collect()
    }

    /// The signed checkpoint of the first `size` entries.
    fn checkpoint(&self, size: u64, fork_at: Option<u64>) -> String {
        let root = merkle::root(&Self::leaves(size, fork_at));
        vault_core::note::sign(&format!("{ORIGIN}\n{size}\n{}\n", B64.encode(root)), ORIGIN, &self.pair)
    }

    /// An add-checkpoint request from `old` to `size` (proof from the same history).
    fn request(&self, old: u64, size: u64, fork_at: Option<u64>) -> AddCheckpoint {
        let proof = if old == 0 || old == size {
            vec![]
        } else {
            merkle::consistency_proof(&Self::leaves(size, fork_at)[..], old, size).unwrap()
        };
        AddCheckpoint { old_size: old, proof, checkpoint: self.checkpoint(size, fork_at) }
    }
}

/// The requests these tests send a witness.
trait Calls {
    fn add(&self, request: &AddCheckpoint) -> Answer;
    fn post(&self, path: &str, body: &[u8]) -> Answer;
    fn stored_size(&self) -> Option<u64>;
}

impl Calls for Witness {
    fn add(&self, request: &AddCheckpoint) -> Answer {
        self.post("/add-checkpoint", request.to_body().as_bytes())
    }

    fn post(&self, path: &str, body: &[u8]) -> Answer {
        raw(&self.addr, "POST", path, body)
    }

    /// The size the state file holds for the test log.
    fn stored_size(&self) -> Option<u64> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(self.state()).unwrap()).unwrap();
        v["logs"][ORIGIN]["size"].as_u64()
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    /// Asserts a cosignature by `key` on `checkpoint` and returns its timestamp.
    #[track_caller]
    fn cosigned(&self, checkpoint: &str, key: &WitnessKey) -> u64 {
        assert_eq!(self.status, 200, "{self:?}");
        let note = cosign::add_signatures(checkpoint, &self.body).unwrap();
        let got = cosign::verify(&note, std::slice::from_ref(key)).unwrap();
        got[0].timestamp
    }

    /// Asserts a refusal with `status` and nothing cosigned.
    #[track_caller]
    fn refused(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{self:?}");
        assert!(!self.body.contains('\u{2014}'), "a refusal carried a signature line: {self:?}");
        self
    }
}

/// One HTTP/1.1 request on a fresh connection: the answer's status, content type, body.
fn raw(addr: &str, method: &str, path: &str, body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // A witness may answer (413) before it has read a large body, and close.
    let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body));
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim()))
        .unwrap_or("")
        .to_owned();
    Answer { status, content_type, body: body.to_owned() }
}

fn wait_for_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn cosigns_the_first_checkpoint_and_extensions_and_refuses_rollbacks_and_forks() {
    let log = Log::new(1);
    let w = Witness::start(NAME, &[&log.key()]);
    let key = w.key();
    assert!(std::fs::read_to_string(w.stderr_path()).unwrap().contains(&key.to_text()));

    // The first checkpoint: old size 0, no proof.
    let first = log.request(0, 3, None);
    let t = w.add(&first).cosigned(&first.checkpoint, &key);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(t.abs_diff(now) < 300, "timestamp {t}, now {now}");
    assert_eq!(w.stored_size(), Some(3));

    // An extension, with its consistency proof; then the same checkpoint again.
    let ext = log.request(3, 7, None);
    w.add(&ext).cosigned(&ext.checkpoint, &key);
    w.add(&log.request(7, 7, None)).cosigned(&ext.checkpoint, &key);
    assert_eq!(w.stored_size(), Some(7));

    // Rollbacks: a smaller checkpoint (400), an old size that is not the witness's (409,
    // with its size, as text/x.tlog.size), a log that starts over from 0 (409).
    w.add(&AddCheckpoint { old_size: 7, proof: vec![], checkpoint: log.checkpoint(5, None) }).refused(400);
    let a = w.add(&log.request(3, 5, None));
    a.refused(409);
    assert_eq!((a.body.as_str(), a.content_type.as_str()), ("7\n", SIZE_CONTENT_TYPE));
    assert_eq!(vault_core::witness::parse_size_body(&a.body), Some(7));
    assert_eq!(w.add(&log.request(0, 9, None)).refused(409).body, "7\n");

    // Forks: the same size with another history (409), a larger tree whose history
    // differs (its own proof does not lead from the cosigned root: 422), and a proof for
    // another pair of sizes (422).
    w.add(&log.request(7, 7, Some(4))).refused(409);
    w.add(&log.request(7, 12, Some(2))).refused(422);
    let mut wrong = log.request(7, 12, None);
    wrong.proof = log.request(6, 12, None).proof;
    w.add(&wrong).refused(422);
    let stderr = std::fs::read_to_string(w.stderr_path()).unwrap();
    assert!(stderr.contains("evidence from recording-vault/"), "the fork was not kept as evidence: {stderr}");

    // Nothing of that was cosigned or stored; the honest log goes on.
    assert_eq!(w.stored_size(), Some(7));
    let next = log.request(7, 12, None);
    w.add(&next).cosigned(&next.checkpoint, &key);
    assert_eq!(w.stored_size(), Some(12));
}

#[test]
fn a_restarted_witness_remembers_what_it_cosigned() {
    let log = Log::new(2);
    let mut w = Witness::start(NAME, &[&log.key()]);
    let key = w.key();
    let first = log.request(0, 5, None);
    w.add(&first).cosigned(&first.checkpoint, &key);

    // Killed at once, as in a crash, and started again on the same state.
    w.restart();
    let a = w.add(&log.request(0, 5, Some(1)));
    assert_eq!(a.refused(409).body, "5\n", "a restarted witness forgot it cosigned size 5");
    w.add(&log.request(5, 5, Some(1))).refused(409);
    w.add(&log.request(5, 8, Some(3))).refused(422);
    let ext = log.request(5, 8, None);
    w.add(&ext).cosigned(&ext.checkpoint, &key);

    // And again: the extension is what it remembers now.
    w.restart();
    w.add(&log.request(5, 9, None)).refused(409);
    let ext = log.request(8, 9, None);
    w.add(&ext).cosigned(&ext.checkpoint, &key);
    assert_eq!(w.stored_size(), Some(9));
}

#[test]
fn fail_bad_requests_and_untrusted_logs() {
    let log = Log::new(3);
    let w = Witness::start(NAME, &[&log.key()]);
    let good = log.request(0, 4, None).to_body();
    let p = B64.encode([1u8; 32]);
    for body in [
        String::new(),
        "hello".to_owned(),
        good.replacen("old 0", "old 00", 1),
        good.replacen("old 0", "old -1", 1),
        good.replacen("\n\n", "\n", 1),
        format!("old 0\n{p}\n\n{}", log.checkpoint(4, None)),
        format!("old 2\n{}\n\n{}", &p[..40], log.checkpoint(4, None)),
        format!("old 2\n{}\n{}", format!("{p}\n").repeat(64), log.checkpoint(4, None)),
        format!("old 0\n\n{}", log.checkpoint(4, None).replace("\n\n", "\n")),
    ] {
        w.post("/add-checkpoint", body.as_bytes()).refused(400);
    }
    w.post("/add-checkpoint", b"old 0\n\n\xff\xfe\n\n").refused(400);
    // Over the size limit.
    let big = format!("{good}{}", "x".repeat(64 * 1024));
    w.post("/add-checkpoint", big.as_bytes()).refused(413);

    // A checkpoint signed by another key under the log's name: 403; a log the witness
    // does not follow: 404.
    let impostor = Log::new(99);
    w.add(&impostor.request(0, 4, None)).refused(403);
    let other_origin = {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[3; 32]).unwrap();
        let text = format!("other.example/log\n4\n{}\n", B64.encode([0u8; 32]));
        AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: vault_core::note::sign(&text, "other.example/log", &pair),
        }
    };
    w.add(&other_origin).refused(404);
    // Other paths and methods.
    assert_eq!(raw(&w.addr, "GET", "/add-checkpoint", b"").status, 405);
    assert_eq!(w.post("/", good.as_bytes()).status, 404);

    // None of it was stored, and the log's first checkpoint is still cosigned.
    assert_eq!(w.stored_size(), None);
    let first = log.request(0, 4, None);
    w.add(&first).cosigned(&first.checkpoint, &w.key());
}

#[test]
fn fail_a_second_witness_on_the_same_state_or_an_identity_others_can_read() {
    let log = Log::new(4);
    let w = Witness::start(NAME, &[&log.key()]);
    // A second process on the same state could cosign a fork the first never saw.
    let mut second =
        w.serve_command().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let status = wait_for_exit(&mut second).expect("a second witness on the same state kept running");
    assert!(!status.success());
    let mut err = String::new();
    second.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("another witness is using the state"), "{err}");

    // An identity file others can read is refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&w.identity, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(Command::new(bin("vault-cli"))
        .args(["witness", "key", "--name", NAME, "--identity"])
        .arg(&w.identity)
        .env_remove("VAULT_IDENTITY"));
    out.error("readable by others");
    std::fs::set_permissions(&w.identity, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A log key that cannot be read (here: the witness's own key, type 04) stops it at
    // start, before it listens.
    let out = run(Command::new(bin("vault-cli"))
        .args(["witness", "serve", "--name", NAME, "--log-key", &w.key().to_text(), "--state"])
        .arg(w.dir.path().join("other.json"))
        .arg("--identity")
        .arg(&w.identity)
        .env_remove("VAULT_IDENTITY"));
    out.error("--log-key");
    assert!(!w.dir.path().join("other.json").exists());
}
