//! The lying server (SPEC §1a): a proxy between every CLI run and the real server answers
//! what an attacker who owns the server would, and the CLI must refuse with a clear
//! error, decrypt nothing and write nothing. Clients trust people's signatures chained to
//! the trust root they pinned, never the server's word.
//!
//! Each test sets its vault up honestly through the proxy (which keeps every honest answer,
//! so the "server" can replay or rework them), then switches a lie on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use vault_tests::proxy::{Lie, Proxy, Request, Response};
use vault_tests::{Out, Person, Vault, grep_dir, run};

const ENVELOPE: &str = "x-vault-envelope";
const CASE_RECIPIENT: &str = "x-vault-case-recipient";
const SHA256: &str = "x-vault-sha256";
const KEY_STATEMENT: &str = "x-vault-key-statement";
const STATEMENT: &str = "x-vault-statement";
const META: &str = "x-vault-meta";

type Rewrite = Box<dyn Fn(&Request, &mut Response) + Send + Sync>;

/// The lying server: honest until a test tells it a lie, and keeping every honest answer.
#[derive(Clone, Default)]
struct Liar(Arc<LiarState>);

#[derive(Default)]
struct LiarState {
    lie: Mutex<Option<Rewrite>>,
    answers: Mutex<Vec<(String, String, Response)>>,
}

impl Liar {
    /// From now on, every answer goes through `f`.
    fn lie(&self, f: impl Fn(&Request, &mut Response) + Send + Sync + 'static) {
        *self.0.lie.lock().unwrap() = Some(Box::new(f));
    }

    fn honest(&self) {
        *self.0.lie.lock().unwrap() = None;
    }

    /// The last honest answer to `method` `path` (without its query).
    #[track_caller]
    fn answer(&self, method: &str, path: &str) -> Response {
        let answers = self.0.answers.lock().unwrap();
        let found = answers.iter().rev().find(|(m, p, _)| m == method && p.split('?').next() == Some(path));
        found.map(|(_, _, r)| r.clone()).unwrap_or_else(|| panic!("no honest answer to {method} {path} yet"))
    }
}

impl Lie for Liar {
    fn response(&self, req: &Request, resp: &mut Response) {
        match &*self.0.lie.lock().unwrap() {
            Some(f) => f(req, resp),
            None => self.0.answers.lock().unwrap().push((req.method.clone(), req.path.clone(), resp.clone())),
        }
    }
}

/// Whether `req` is `method` `path` (query aside).
fn is(req: &Request, method: &str, path: &str) -> bool {
    req.method == method && req.path.split('?').next() == Some(path)
}

/// How many requests the proxy forwarded with `method` to a path starting with `prefix`.
fn sent(proxy: &Proxy, method: &str, prefix: &str) -> usize {
    proxy.seen().iter().filter(|(m, p)| m == method && p.starts_with(prefix)).count()
}

/// Runs `program args` with `input` on stdin; returns stdout, asserting success.
fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`{program}` is needed for this test (apt-get install age): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = String::from_utf8(pipe("sha256sum", &[], bytes)).unwrap();
    out.split_whitespace().next().unwrap().to_owned()
}

fn age_encrypt(recipient: &str, plain: &[u8]) -> Vec<u8> {
    pipe("age", &["-e", "-r", recipient], plain)
}

/// A fresh age key pair, made by the attacker with `age-keygen`: (secret key, recipient).
fn age_keygen() -> (String, String) {
    let text = String::from_utf8(pipe("age-keygen", &[], b"")).unwrap();
    let secret = text.lines().find(|l| l.starts_with("AGE-SECRET-KEY-1")).expect("a secret key line");
    let public = text.lines().find_map(|l| l.strip_prefix("# public key: ")).expect("a public key line");
    (secret.to_owned(), public.trim().to_owned())
}

fn write(v: &Vault, name: &str, content: &[u8]) -> String {
    let p = v.dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_owned()
}

fn new_case(v: &Vault, title: &str) -> String {
    let id = v.cli(&v.admin, &["case", "create", "--kind", "customer", "--title", title, "--purpose", "quality"]).ok();
    assert!(id.starts_with("case_"), "{id}");
    id
}

/// A fresh `--out` path under `dir`.
fn fresh_out(dir: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir).unwrap();
    dir.join(format!("out-{}.wav", N.fetch_add(1, Ordering::SeqCst)))
}

/// Runs `fetch REC` as `who` into a fresh file in `dir`, which must be left empty.
#[track_caller]
fn refused_fetch(v: &Vault, who: &Person, rec: &str, dir: &Path, needles: &[&str]) -> Out {
    let out = fresh_out(dir);
    let o = v.cli(who, &["fetch", rec, "--reason", "review", "--out", out.to_str().unwrap()]);
    o.error(needles[0]);
    for n in &needles[1..] {
        assert!(o.stderr.contains(n), "stderr lacks {n:?}: {}", o.stderr);
    }
    assert!(o.stdout.trim().is_empty(), "a refused fetch printed {:?}", o.stdout);
    assert!(!out.exists(), "a refused fetch wrote {}", out.display());
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "a refused fetch left files behind: {left:?}");
    o
}

/// Fetches REC as `who` honestly; returns the plaintext.
#[track_caller]
fn honest_fetch(v: &Vault, who: &Person, rec: &str) -> Vec<u8> {
    let out = fresh_out(&v.dir.path().join("honest"));
    v.cli(who, &["fetch", rec, "--reason", "review", "--out", out.to_str().unwrap()]).ok();
    std::fs::read(&out).unwrap()
}

/// The `vault: ...` line of the trust root in a `/v1/trust` answer.
fn vault_line(trust: &Value) -> String {
    trust["root"].as_str().unwrap().lines().nth(1).expect("a vault line").to_owned()
}

#[test]
fn fail_a_recorder_refuses_a_case_recipient_no_custodian_signed() {
    let mut v = Vault::start();
    let pbx = v.enrol("pbx", "recorder");
    let case = new_case(&v, "A");
    let other = new_case(&v, "B");
    let liar = Liar::default();
    let proxy = v.behind_proxy(liar.clone());
    let file = write(&v, "call.wav", b"a genuine call");

    // Honest: the upload works (and the lying server learns both cases' answers).
    let rec = v.cli(&pbx, &["upload", &case, &file]).ok();
    assert!(rec.starts_with("rec_"), "{rec}");
    v.cli(&pbx, &["upload", &other, &file]).ok();
    let uploads_to_case = || sent(&proxy, "POST", &format!("/v1/cases/{case}/recordings"));
    let stored = || v.count(&format!("SELECT count(*) FROM recordings WHERE case_id = '{case}'"));
    assert_eq!((uploads_to_case(), stored()), (1, 1));
    let path = format!("/v1/cases/{case}/recipient");
    let genuine = liar.answer("GET", &path).json();
    let of_other = liar.answer("GET", &format!("/v1/cases/{other}/recipient")).json();
    let genuine_recipient = genuine["recipient"].as_str().unwrap().to_owned();
    let key_text = genuine["statement"]["statement"].as_str().unwrap().to_owned();
    assert!(key_text.contains(&format!("recipient: {genuine_recipient}\n")), "{key_text}");

    // The server's own key pair, which it would like the recorder to encrypt to.
    let (_, evil) = age_keygen();
    let with_evil_recipient = key_text.replace(&genuine_recipient, &evil);
    let alice_sig = genuine["statement"]["signatures"][0]["sig"].clone();

    let mut evil_recipient = genuine.clone();
    evil_recipient["recipient"] = evil.clone().into();

    let mut altered = evil_recipient.clone();
    altered["statement"]["statement"] = with_evil_recipient.clone().into();

    let mut zero_signature = altered.clone();
    zero_signature["statement"]["signatures"][0]["sig"] = B64.encode([0u8; 64]).into();

    let mut by_mallory = evil_recipient.clone();
    by_mallory["statement"] = json!({
        "statement": with_evil_recipient.replace("\nby: alice\n", "\nby: mallory\n"),
        "signatures": [{ "by": "mallory", "sig": alice_sig }],
    });

    let with_evil = format!("the case recipient {evil} is not the one alice signed for {case} version 1");
    let wrong_case = format!("the key statement is for {other} version 1, not {case} version 1");
    let lies: [(&str, Value, &str); 5] = [
        ("its own recipient beside the custodian's genuine statement", evil_recipient, with_evil.as_str()),
        ("another case's genuine recipient and statement", of_other, wrong_case.as_str()),
        (
            "the statement rewritten to its recipient, alice's signature kept",
            altered,
            "alice's signature does not verify",
        ),
        ("the statement rewritten, with a signature of zeros", zero_signature, "alice's signature does not verify"),
        ("a statement signed by someone nobody enrolled", by_mallory, "mallory has no enrolment signed by an admin"),
    ];
    for (what, answer, why) in lies {
        let p = path.clone();
        liar.lie(move |req, resp| {
            if is(req, "GET", &p) && resp.status == 200 {
                resp.set_json(&answer);
            }
        });
        let o = v.cli(&pbx, &["upload", &case, &file]);
        o.error("its recipient is not vouched for by a custodian");
        assert!(o.stderr.contains(why), "{what}: stderr lacks {why:?}: {}", o.stderr);
        assert!(o.stdout.trim().is_empty(), "{what}: a refused upload printed {:?}", o.stdout);
        assert_eq!((uploads_to_case(), stored()), (1, 1), "{what}: an upload reached the server");
    }

    // Honest again, it uploads again.
    liar.honest();
    v.cli(&pbx, &["upload", &case, &file]).ok();
    assert_eq!((uploads_to_case(), stored()), (2, 2));
}

#[test]
fn fail_fetch_refuses_a_recording_the_server_made_up() {
    let mut v = Vault::start();
    let alice = v.admin.clone();
    let bob = v.enrol("bob", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    let case = new_case(&v, "Complaints");
    // Several 64 KiB chunks each, so that damage lands mid-stream.
    let content1: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let content2: Vec<u8> = (0..140_000u32).map(|i| (i % 241) as u8).collect();
    let rec1 = v.cli(&pbx, &["upload", &case, &write(&v, "one.wav", &content1)]).ok();
    let rec2 = v.cli(&pbx, &["upload", &case, &write(&v, "two.wav", &content2)]).ok();
    v.cli(&alice, &["grant", &case, "bob", "--reason", "complaint 17"]).ok();
    let liar = Liar::default();
    let _proxy = v.behind_proxy(liar.clone());

    // Honest through the proxy: both fetch, and the lying server keeps their answers.
    assert_eq!(honest_fetch(&v, &bob, &rec1), content1);
    assert_eq!(honest_fetch(&v, &bob, &rec2), content2);
    let path = format!("/v1/recordings/{rec1}/fetch");
    let genuine1 = liar.answer("POST", &path);
    let genuine2 = liar.answer("POST", &format!("/v1/recordings/{rec2}/fetch"));
    assert_eq!(genuine1.header(SHA256), Some(sha256_hex(&genuine1.body).as_str()));
    let case_recipient = genuine1.header(CASE_RECIPIENT).unwrap().to_owned();
    for h in [ENVELOPE, SHA256, KEY_STATEMENT, STATEMENT, META] {
        assert!(genuine1.header(h).is_some(), "the honest answer lacks {h}");
    }

    // The attacker's recording: a case key pair of its own, fake audio encrypted to it, and
    // the fake case secret wrapped to bob, who would open it with his own identity.
    let marker = b"FABRICATED-CALL-9e41c7";
    let fake_audio: Vec<u8> = marker.iter().copied().cycle().take(20_000).collect();
    let (fake_secret, fake_recipient) = age_keygen();
    let fake_ct = age_encrypt(&fake_recipient, &fake_audio);
    let fake_env = age_encrypt(&bob.age_recipient(), format!("{fake_secret}\n").as_bytes());
    // The fabrication is sound: bob's identity opens the envelope, whose key opens the audio.
    let attacker = tempfile::tempdir().unwrap();
    let bob_opens = run(Command::new("age").args(["-d", "-i"]).arg(&bob.key).arg({
        let p = attacker.path().join("env.age");
        std::fs::write(&p, &fake_env).unwrap();
        p
    }));
    assert_eq!(bob_opens.ok(), fake_secret);
    let secret_file = attacker.path().join("fake.key");
    std::fs::write(&secret_file, format!("{fake_secret}\n")).unwrap();
    let ct_file = attacker.path().join("fake.age");
    std::fs::write(&ct_file, &fake_ct).unwrap();
    let opened = Command::new("age").args(["-d", "-i"]).arg(&secret_file).arg(&ct_file).output().unwrap();
    assert_eq!(opened.stdout, fake_audio);
    // And fake audio encrypted to the genuine case recipient, which the server knows.
    let forged_ct = age_encrypt(&case_recipient, &fake_audio);

    let with_body = |base: &Response, body: &[u8]| {
        let mut r = base.clone();
        r.body = body.to_vec();
        r.set_header(SHA256, &sha256_hex(body));
        r.headers.retain(|(k, _)| k != META);
        r
    };
    let without = |base: &Response, names: &[&str]| {
        let mut r = base.clone();
        r.headers.retain(|(k, _)| !names.contains(&k.as_str()));
        r
    };
    let mut fake = with_body(&genuine1, &fake_ct);
    fake.set_header(ENVELOPE, &B64.encode(&fake_env));
    fake.set_header(CASE_RECIPIENT, &fake_recipient);

    // The custodian's statement rewritten to name the fake recipient, alice's signature kept.
    let mut altered_key = fake.clone();
    let key_json = B64.decode(genuine1.header(KEY_STATEMENT).unwrap()).unwrap();
    let mut key_stmt: Value = serde_json::from_slice(&key_json).unwrap();
    let text = key_stmt["statement"].as_str().unwrap().replace(&case_recipient, &fake_recipient);
    key_stmt["statement"] = text.into();
    altered_key.set_header(KEY_STATEMENT, &B64.encode(key_stmt.to_string()));

    let mut replayed_statement = genuine1.clone();
    replayed_statement.set_header(STATEMENT, genuine2.header(STATEMENT).unwrap());
    let mut forged_replayed = with_body(&genuine1, &forged_ct);
    forged_replayed.set_header(STATEMENT, genuine2.header(STATEMENT).unwrap());

    let mut flipped = genuine1.body.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let truncated = &genuine1.body[..genuine1.body.len() - 100];
    let mut extended = genuine1.body.clone();
    extended.extend_from_slice(b"appended by the server");

    let refuse = format!("refusing {rec1}");
    let not_rec1 = format!("the signed recording is {rec2}, not {rec1}");
    let fake_not_signed = format!("the case recipient {fake_recipient} is not the one alice signed");
    let cases: Vec<(&str, Response, Vec<&str>)> = vec![
        (
            "(a) a made-up key pair beside the genuine statements",
            fake.clone(),
            vec!["its case key is not vouched for by a custodian", refuse.as_str(), fake_not_signed.as_str()],
        ),
        (
            "(a) a made-up key pair, the custodian's statement rewritten to name it",
            altered_key,
            vec!["its case key is not vouched for by a custodian", "alice's signature does not verify"],
        ),
        (
            "(b) a made-up key pair without any statement",
            without(&fake, &[KEY_STATEMENT, STATEMENT]),
            vec!["its case key comes without a custodian's signature", refuse.as_str()],
        ),
        (
            "(b) fake audio for the genuine case key, without the recorder's statement",
            without(&with_body(&genuine1, &forged_ct), &[STATEMENT]),
            vec!["no recorder signed it", refuse.as_str()],
        ),
        (
            "(b) fake audio for the genuine case key, beside the genuine recorder's statement",
            with_body(&genuine1, &forged_ct),
            vec!["that pbx signed; nothing was written", "differs from the"],
        ),
        (
            "(c) the statement of another recording of the case",
            replayed_statement,
            vec![not_rec1.as_str(), refuse.as_str()],
        ),
        ("(c) another recording of the case, all of it", genuine2.clone(), vec![not_rec1.as_str(), refuse.as_str()]),
        ("(c) fake audio with another recording's statement", forged_replayed, vec![not_rec1.as_str()]),
        (
            "(d) a byte of the ciphertext flipped",
            with_body(&genuine1, &flipped),
            vec!["cannot decrypt recording", "nothing was written"],
        ),
        (
            "(d) the ciphertext truncated",
            with_body(&genuine1, truncated),
            vec!["cannot decrypt recording", "nothing was written"],
        ),
        (
            "(d) the ciphertext extended",
            with_body(&genuine1, &extended),
            vec!["cannot decrypt recording", "nothing was written"],
        ),
        (
            "(d) no ciphertext at all",
            with_body(&genuine1, b""),
            vec!["cannot decrypt recording", "nothing was written"],
        ),
    ];
    let outs = v.dir.path().join("refused");
    for (what, answer, needles) in cases {
        let p = path.clone();
        liar.lie(move |req, resp| {
            if is(req, "POST", &p) && resp.status == 200 {
                *resp = answer.clone();
            }
        });
        eprintln!("the lie: {what}");
        refused_fetch(&v, &bob, &rec1, &outs, &needles);
    }

    // Nothing of the fake recording reached any file of the vault or of its users.
    let hits = grep_dir(v.dir.path(), marker);
    assert!(hits.is_empty(), "the fabricated audio was written to {hits:?}");

    // Honest again, the genuine recording fetches.
    liar.honest();
    assert_eq!(honest_fetch(&v, &bob, &rec1), content1);
}

#[test]
fn fail_a_client_refuses_a_different_trust_root() {
    let mut v = Vault::start();
    let alice = v.admin.clone();
    let bob = v.enrol("bob", "investigator");
    v.enrol("dave", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    let case = new_case(&v, "Q");
    let file = write(&v, "call.wav", b"a call");
    let rec = v.cli(&pbx, &["upload", &case, &file]).ok();
    v.cli(&alice, &["grant", &case, "bob", "--reason", "r"]).ok();
    let liar = Liar::default();
    let proxy = v.behind_proxy(liar.clone());
    honest_fetch(&v, &bob, &rec);
    let trust = liar.answer("GET", "/v1/trust").json();

    // The attacker's own root: the same vault, with mallory as its only admin.
    let mallory = v.keygen("mallory");
    let fake_root = format!("vault-trust-root/v1\n{}\nadmin: mallory {}\n", vault_line(&trust), mallory.recipient);
    let lie_about_root = {
        let fake_root = fake_root.clone();
        move |req: &Request, resp: &mut Response| {
            if is(req, "GET", "/v1/trust") && resp.status == 200 {
                let mut t = resp.json();
                t["root"] = fake_root.clone().into();
                resp.set_json(&t);
            }
        }
    };

    // (a) With VAULT_TRUST_ROOT: every command that needs trust refuses.
    liar.lie(lie_about_root.clone());
    let says = "as VAULT_TRUST_ROOT says";
    let posts = |prefix: &str| sent(&proxy, "POST", prefix);
    let before = (posts("/v1/cases/"), posts("/v1/users"));
    let refused = |o: Out| {
        o.error(says);
        assert!(o.stderr.contains("admins mallory"), "{}", o.stderr);
        assert!(o.stdout.trim().is_empty(), "a refused command printed {:?}", o.stdout);
    };
    refused(v.cli(&pbx, &["upload", &case, &file]));
    refused(v.cli(&alice, &["user", "add", "eve", "--role", "investigator", "--recipient", &mallory.recipient]));
    refused(v.cli(&alice, &["grant", &case, "dave", "--reason", "r"]));
    refused(v.cli(&alice, &["case", "create", "--kind", "customer", "--title", "T", "--purpose", "sales"]));
    refused(v.cli(&alice, &["user", "approve", "mallory"]));
    assert_eq!((posts("/v1/cases/"), posts("/v1/users")), before, "a refused command still sent something");
    let outs = v.dir.path().join("refused");
    let o = refused_fetch(&v, &bob, &rec, &outs, &[says]);
    assert!(o.stderr.contains("admins mallory"), "{}", o.stderr);
    assert_eq!(v.count("SELECT count(*) FROM users WHERE name = 'eve'"), 0);
    assert_eq!(v.count("SELECT count(*) FROM envelopes WHERE holder = 'dave'"), 0);
    assert_eq!(v.count("SELECT count(*) FROM recordings"), 1);

    // (b) Without VAULT_TRUST_ROOT: the first honest run pins the root, as SSH does ...
    liar.honest();
    let unpinned = |p: &Person, args: &[&str]| run(v.cli_cmd(p).env_remove("VAULT_TRUST_ROOT").args(args));
    let first = unpinned(&pbx, &["upload", &case, &file]);
    first.ok();
    assert!(first.stderr.contains("trusting") && first.stderr.contains(&v.trust_root), "{}", first.stderr);
    let again = unpinned(&pbx, &["upload", &case, &file]);
    again.ok();
    assert!(!again.stderr.contains("trusting"), "pinned twice: {}", again.stderr);
    let out = fresh_out(&v.dir.path().join("honest"));
    let bob_first = unpinned(&bob, &["fetch", &rec, "--reason", "r", "--out", out.to_str().unwrap()]);
    bob_first.ok();
    assert!(bob_first.stderr.contains("trusting"), "{}", bob_first.stderr);
    // ... and a later run with the lying root refuses.
    liar.lie(lie_about_root);
    let uploads = posts(&format!("/v1/cases/{case}/recordings"));
    let o = unpinned(&pbx, &["upload", &case, &file]);
    o.error("trust root changed");
    assert!(o.stderr.contains("admins mallory") && o.stderr.contains(&v.trust_root), "{}", o.stderr);
    assert_eq!(posts(&format!("/v1/cases/{case}/recordings")), uploads, "an upload reached the server");
    std::fs::create_dir_all(&outs).unwrap();
    let out = fresh_out(&outs);
    let o = unpinned(&bob, &["fetch", &rec, "--reason", "r", "--out", out.to_str().unwrap()]);
    o.error("trust root changed");
    assert!(!out.exists(), "a refused fetch wrote {}", out.display());
    assert_eq!(v.count("SELECT count(*) FROM recordings"), 3);
}

#[test]
fn fail_the_server_cannot_slip_in_an_enrolment_of_its_own() {
    let mut v = Vault::start();
    let alice = v.admin.clone();
    let root2 = v.second.clone();
    let bob = v.enrol("bob", "investigator");
    let carol = v.enrol("carol", "investigator");
    let dave = v.enrol("dave", "investigator");
    let liar = Liar::default();
    let proxy = v.behind_proxy(liar.clone());
    let case = new_case(&v, "Q");
    let trust = liar.answer("GET", "/v1/trust").json();
    let vault = vault_line(&trust);
    let bob_enrolment = trust["enrolments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["statement"].as_str().unwrap().contains("\nname: bob\n"))
        .expect("bob's enrolment")
        .clone();
    // A genuine signature of alice's, of another text.
    let alice_sig = bob_enrolment["signatures"][0]["sig"].clone();

    // Enrolments the server made up: mallory as admin "by alice" (and "approved by root2"),
    // bob with mallory's key, and alice (a root admin) with mallory's key.
    let mallory = v.keygen("mallory");
    let forged = |name: &str, role: &str| {
        json!({
            "statement": format!(
                "vault-statement/v1\ntype: enrol\n{vault}\nname: {name}\nrole: {role}\nid: {}\nby: alice\nat: 2026-01-01T00:00:00.000Z\n",
                mallory.recipient
            ),
            "signatures": [{ "by": "alice", "sig": alice_sig }, { "by": "root2", "sig": alice_sig }],
        })
    };
    let fakes = vec![forged("mallory", "admin"), forged("bob", "investigator"), forged("alice", "admin")];
    let grants_sent = || sent(&proxy, "POST", &format!("/v1/cases/{case}/grants"));
    let envelopes = |who: &str| v.count(&format!("SELECT count(*) FROM envelopes WHERE holder = '{who}'"));
    let opens = |who: &Person, holder: &str| {
        let env: Vec<u8> = v
            .db()
            .query_row("SELECT envelope FROM envelopes WHERE case_id = ?1 AND holder = ?2", [&case, holder], |r| {
                r.get(0)
            })
            .unwrap();
        let p = v.dir.path().join(format!("{holder}.envelope"));
        std::fs::write(&p, env).unwrap();
        run(Command::new("age").args(["-d", "-i"]).arg(&who.key).arg(&p)).code == 0
    };

    // Slipped in after the genuine enrolments, then before them.
    for (round, grantee) in [(0, &carol), (1, &dave)] {
        let fakes = fakes.clone();
        liar.lie(move |req, resp| {
            if is(req, "GET", "/v1/trust") && resp.status == 200 {
                let mut t = resp.json();
                let list = t["enrolments"].as_array_mut().unwrap();
                for (i, f) in fakes.iter().enumerate() {
                    if round == 0 {
                        list.push(f.clone());
                    } else {
                        list.insert(i, f.clone());
                    }
                }
                resp.set_json(&t);
            }
        });
        let granted = grants_sent();
        // Nothing is wrapped to the made-up admin ...
        let o = v.cli(&alice, &["grant", &case, "mallory", "--reason", "r"]);
        o.error("alice's signature does not verify");
        assert!(o.stderr.contains("mallory's enrolment is not valid"), "{}", o.stderr);
        assert_eq!(grants_sent(), granted, "a refused grant reached the server");
        // ... and a forged rival enrolment of bob changes nothing: only enrolments whose
        // signatures verify count, so bob is granted with his own key, never mallory's.
        if round == 0 {
            v.cli(&alice, &["grant", &case, "bob", "--reason", "r"]).ok();
            assert!(opens(&bob, "bob"), "bob's envelope does not open with his key");
            assert!(!opens(&mallory, "bob"), "bob's envelope opens with mallory's key");
        }
        let granted = grants_sent();
        // A second admin does not cosign the made-up admin.
        let approvals = sent(&proxy, "POST", "/v1/users/mallory/approve");
        let o = v.cli(&root2, &["user", "approve", "mallory"]);
        o.error("the enrolment does not verify; do not approve it");
        assert!(o.stderr.contains("alice's signature does not verify"), "{}", o.stderr);
        assert_eq!(sent(&proxy, "POST", "/v1/users/mallory/approve"), approvals);
        // The fake enrolment of alice changes nothing: a root admin's key is the root's.
        // Someone nobody doubts is granted as usual, wrapped to their own enrolled key.
        v.cli(&alice, &["grant", &case, &grantee.name, "--reason", "r"]).ok();
        assert_eq!(grants_sent(), granted + 1);
        assert!(opens(grantee, &grantee.name), "{}'s envelope does not open with their key", grantee.name);
        assert!(!opens(&mallory, &grantee.name), "{}'s envelope opens with mallory's key", grantee.name);
    }
    assert_eq!(envelopes("mallory"), 0);
    assert_eq!(envelopes("bob"), 1);
    assert_eq!(v.count("SELECT count(*) FROM users WHERE name = 'mallory'"), 0);
}

#[test]
fn one_admin_cannot_enrol_a_second_admin_alone() {
    let v = Vault::start();
    let alice = v.admin.clone();
    let root2 = v.second.clone();
    let m1 = v.keygen("m1");
    let added = v.cli(&alice, &["user", "add", "m1", "--role", "admin", "--recipient", &m1.recipient]);
    assert_eq!(added.ok(), "m1");
    assert!(added.stderr.contains("pending"), "{}", added.stderr);
    let approved = || v.count("SELECT approved FROM users WHERE name = 'm1'");
    assert_eq!(approved(), 0);
    let list = v.cli(&alice, &["user", "list"]).ok();
    assert!(list.lines().any(|l| l.starts_with("m1") && l.contains("pending approval")), "{list}");

    // m1 cannot log in yet, and alice cannot approve her own enrolment of m1.
    v.cli(&m1, &["login"]).denied("approval");
    v.cli(&alice, &["user", "approve", "m1"]).denied("four eyes");
    assert_eq!(approved(), 0);

    // Nor with a signature of her own making, sent past the CLI.
    let zeros = json!({ "signature": B64.encode([0u8; 64]) }).to_string();
    let json_type = [("content-type", "application/json")];
    let (status, body) = v.raw("POST", "/v1/users/m1/approve", Some(&v.token(&alice)), &json_type, zeros.as_bytes());
    assert!(status == 400 || status == 403, "a forged approval by alice answered {status}: {body}");
    assert!(body.contains("four eyes"), "{body}");
    assert_eq!(approved(), 0);
    // A second admin's forged (not signed) approval does not count either.
    v.cli(&root2, &["login"]).ok();
    let (status, body) = v.raw("POST", "/v1/users/m1/approve", Some(&v.token(&root2)), &json_type, zeros.as_bytes());
    assert!(status == 400 || status == 403, "a forged approval by root2 answered {status}: {body}");
    assert!(body.contains("no second admin's approval"), "{body}");
    let (actor, action, outcome, _, _) = v.last_log();
    assert_eq!((actor.as_str(), action.as_str(), outcome.as_str()), ("root2", "user-approve", "refused"));
    assert_eq!(approved(), 0);
    v.cli(&m1, &["login"]).denied("approval");

    // root2's real approval lets m1 in.
    v.cli(&root2, &["user", "approve", "m1"]).ok();
    assert_eq!(approved(), 1);
    v.cli(&m1, &["login"]).ok();
}

/// The second attack of the issue: `case rotate-key` wraps the new case secret to every
/// holder the server lists. Now each holder needs a signed custodianship or a valid signed
/// grant for this case; a holder the server added stops the rotation before anything is
/// wrapped or sent.
#[test]
fn fail_rotation_refuses_a_holder_the_server_added() {
    let mut v = Vault::start();
    let alice = v.admin.clone();
    let ivan = v.enrol("ivan", "investigator");
    let eve = v.enrol("eve", "investigator");
    let liar = Liar::default();
    let proxy = v.behind_proxy(liar.clone());
    let case = new_case(&v, "R");
    let other = new_case(&v, "S");
    v.cli(&alice, &["grant", &case, "ivan", "--reason", "r"]).ok();
    v.cli(&alice, &["grant", &other, "eve", "--reason", "r"]).ok();
    // eve's genuine signed grant, on the other case (the server keeps every statement).
    v.cli(&alice, &["case", "add-custodian", &other, "root2"]).ok();
    v.cli(&alice, &["case", "rotate-key", &other]).ok();
    let other_key = liar.answer("GET", &format!("/v1/cases/{other}/key")).json();
    let eve_grant = other_key["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["user"] == "eve")
        .expect("eve holds the other case's key")["grant"]
        .clone();
    assert!(eve_grant["statement"].is_string(), "{other_key}");
    let root2_custodianship = other_key["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["user"] == "root2")
        .expect("root2 holds the other case's key")["custodian"]
        .clone();
    let mallory = v.keygen("mallory");
    let key_path = format!("/v1/cases/{case}/key");
    let rotate_path = format!("/v1/cases/{case}/rotate");
    let lies = [
        (
            json!({ "user": "mallory", "recipient": mallory.age_recipient(), "custodian": null, "grant": null }),
            "refusing to wrap the new key to mallory: no signed custodianship or grant",
        ),
        (
            json!({ "user": "eve", "recipient": eve.age_recipient(), "custodian": null, "grant": null }),
            "no signed custodianship or grant says they hold it",
        ),
        (
            json!({ "user": "eve", "recipient": eve.age_recipient(), "custodian": null, "grant": eve_grant }),
            "the grant is for",
        ),
        (
            json!({ "user": "root2", "recipient": v.second.age_recipient(), "custodian": root2_custodianship, "grant": null }),
            "the custodian statement is for",
        ),
    ];
    for (holder, needle) in lies {
        let path = key_path.clone();
        liar.lie(move |req, resp| {
            if is(req, "GET", &path) {
                let mut j = resp.json();
                j["holders"].as_array_mut().unwrap().push(holder.clone());
                resp.set_json(&j);
            }
        });
        let before = sent(&proxy, "POST", &rotate_path);
        let o = v.cli(&alice, &["case", "rotate-key", &case]);
        o.error(needle);
        assert!(o.stderr.contains("refusing to wrap the new key"), "{}", o.stderr);
        assert_eq!(sent(&proxy, "POST", &rotate_path), before, "a rotation went to the server");
        assert_eq!(v.count(&format!("SELECT key_version FROM cases WHERE id = '{case}'")), 1);
    }
    // ivan's grant rewritten to name eve and her key: alice's signature no longer holds.
    let path = key_path.clone();
    let (ivan_id, eve_id) = (ivan.recipient.clone(), eve.recipient.clone());
    liar.lie(move |req, resp| {
        if is(req, "GET", &path) {
            let mut j = resp.json();
            for h in j["holders"].as_array_mut().unwrap() {
                if h["user"] == "ivan" {
                    let text = h["grant"]["statement"]
                        .as_str()
                        .unwrap()
                        .replace("name: ivan", "name: eve")
                        .replace(&ivan_id, &eve_id);
                    h["grant"]["statement"] = json!(text);
                    h["user"] = json!("eve");
                }
            }
            resp.set_json(&j);
        }
    });
    v.cli(&alice, &["case", "rotate-key", &case]).error("alice's signature does not verify");
    assert_eq!(v.count(&format!("SELECT key_version FROM cases WHERE id = '{case}'")), 1);
    // Honest again: the rotation wraps to alice and ivan, and to nobody else.
    liar.honest();
    v.cli(&alice, &["case", "rotate-key", &case]).ok();
    let holders: Vec<String> = {
        let db = v.db();
        let mut st =
            db.prepare("SELECT holder FROM envelopes WHERE case_id = ?1 AND version = 2 ORDER BY holder").unwrap();
        st.query_map([&case], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(holders, ["alice", "ivan"]);
    assert_eq!(honest_fetch_after_rotation(&v, &ivan, &case), b"after rotation");
}

/// Uploads a recording under the case's current key and fetches it as `who`.
fn honest_fetch_after_rotation(v: &Vault, who: &Person, case: &str) -> Vec<u8> {
    let pbx = v.enrol("pbx-rot", "recorder");
    let file = write(v, "after.wav", b"after rotation");
    let rec = v.cli(&pbx, &["upload", case, &file]).ok();
    honest_fetch(v, who, &rec)
}

/// A lying server shows a covert grant as approved when no second admin signed it: the
/// custodian's `grant deliver` checks the approval's signature itself, sends nothing, and
/// no envelope is made.
#[test]
fn fail_no_covert_key_is_delivered_on_an_approval_the_server_made_up() {
    let mut v = Vault::start();
    let alice = v.admin.clone();
    v.enrol("bob", "investigator");
    let liar = Liar::default();
    let proxy = v.behind_proxy(liar.clone());
    let case = v
        .cli(&alice, &["case", "create", "--kind", "covert", "--title", "F", "--suspicion", "fraud", "--dpia-ref", "D"])
        .ok();
    v.cli(&alice, &["case", "approve", &case, "--ap-ref", "AP-1"]).ok();
    v.cli(&alice, &["grant", &case, "bob", "--reason", "inv"]).ok();
    let case_path = format!("/v1/cases/{case}");
    liar.lie(move |req, resp| {
        if is(req, "GET", &case_path) {
            let mut j = resp.json();
            for g in j["grants"].as_array_mut().unwrap() {
                // root2 "approved", with a genuine signature of alice's over the same text.
                let sig = g["statement"]["signatures"][0]["sig"].clone();
                g["statement"]["signatures"].as_array_mut().unwrap().push(json!({ "by": "root2", "sig": sig }));
                g["approved_by"] = json!("root2");
            }
            resp.set_json(&j);
        }
    });
    let deliver = format!("/v1/cases/{case}/grants/bob/deliver");
    v.cli(&alice, &["grant", "deliver", &case, "bob"]).error("has no second admin's approval");
    assert_eq!(sent(&proxy, "POST", &deliver), 0, "a delivery went to the server");
    assert_eq!(v.count(&format!("SELECT count(*) FROM envelopes WHERE case_id = '{case}' AND holder = 'bob'")), 0);
}
