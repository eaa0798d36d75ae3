//! `vault-cli ingest` and idempotent uploads, against the real binaries: files dropped
//! into a spool arrive in the vault and their plaintext goes; a file being written is not
//! taken early; a crash of either side loses and duplicates nothing; refusals land in
//! `failed/` with the reason; a lying server cannot make the ingester delete plaintext
//! the vault does not hold; `upload CASE -` reads standard input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vault_tests::proxy::{Request, Response, Switch};
use vault_tests::{Person, Vault, json, run};

/// A vault with a customer case that pbx (recorder) uploads to and bob (investigator)
/// may read.
struct World {
    v: Vault,
    pbx: Person,
    bob: Person,
    case: String,
    spool: PathBuf,
}

fn world() -> World {
    let v = Vault::start();
    let pbx = v.enrol("pbx", "recorder");
    let bob = v.enrol("bob", "investigator");
    let case =
        v.cli(&v.admin, &["case", "create", "--kind", "customer", "--title", "Sales calls", "--purpose", "sales"]).ok();
    v.cli(&v.admin, &["grant", &case, "bob", "--reason", "quality review"]).ok();
    let spool = v.dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    World { v, pbx, bob, case, spool }
}

/// Some bytes that differ per `n`: a recording.
fn recording(n: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Puts a finished recording into the spool the safe way: written beside it, renamed in.
fn drop_in(spool: &Path, name: &str, content: &[u8]) {
    let tmp = spool.parent().unwrap().join(format!(".{name}.writing"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, spool.join(name)).unwrap();
}

/// Files directly in `dir` (not in done/ or failed/).
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits (up to a minute) for `cond`, failing with `what` and the ingester's log.
#[track_caller]
fn wait_for(what: &str, log: &Path, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; ingest log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `vault-cli ingest`, killed when dropped.
struct Ingester {
    child: Child,
    log: PathBuf,
    status: PathBuf,
}

impl Ingester {
    fn start(w: &World, extra: &[&str]) -> Self {
        Self::start_at(&w.v, &w.pbx, &w.spool, &w.case, extra)
    }

    fn start_at(v: &Vault, pbx: &Person, spool: &Path, case: &str, extra: &[&str]) -> Self {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = v.dir.path().join(format!("ingest-{run}.log"));
        let status = v.dir.path().join("ingest-status.json");
        let child = v
            .cli_cmd(pbx)
            .args(["ingest", "--watch"])
            .arg(spool)
            .args(["--case", case, "--announced", "signal-tone", "--settle-secs", "1", "--status-file"])
            .arg(&status)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start vault-cli ingest");
        Ingester { child, log, status }
    }

    fn status(&self) -> serde_json::Value {
        std::fs::read_to_string(&self.status).map(|t| json(&t)).unwrap_or(serde_json::Value::Null)
    }

    fn uploaded(&self) -> u64 {
        let s = self.status();
        s["uploaded"].as_u64().unwrap_or(0) + s["repeated"].as_u64().unwrap_or(0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "ingest did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Ingester {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The ids of the world's case's signed recordings, as bob lists them.
fn listed(w: &World) -> Vec<String> {
    listed_in(w, &w.case)
}

/// The ids of `case`'s signed recordings, as bob lists them.
fn listed_in(w: &World, case: &str) -> Vec<String> {
    let out = w.v.cli(&w.bob, &["--json", "recordings", case]).ok();
    let v = json(&out);
    let list = v["recordings"].as_array().cloned().or_else(|| v.as_array().cloned()).unwrap_or_default();
    list.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

/// Fetches `id` as bob and returns the plaintext.
fn fetched(w: &World, id: &str) -> Vec<u8> {
    let out = w.v.dir.path().join(format!("{id}.out"));
    let _ = std::fs::remove_file(&out);
    w.v.cli(&w.bob, &["fetch", id, "--reason", "quality review", "--out", out.to_str().unwrap()]).ok();
    std::fs::read(&out).unwrap()
}

/// Every recording row (signed or not) the server holds.
fn rows(v: &Vault) -> i64 {
    v.count("SELECT count(*) FROM recordings")
}

/// Asserts the vault holds each of `contents` exactly once, signed, and nothing else.
#[track_caller]
fn holds_exactly(w: &World, contents: &[Vec<u8>]) {
    let ids = listed(w);
    assert_eq!(ids.len(), contents.len(), "recordings listed");
    assert_eq!(rows(&w.v), contents.len() as i64, "rows, signed or not: a duplicate or a leftover");
    let mut got: Vec<Vec<u8>> = ids.iter().map(|id| fetched(w, id)).collect();
    let mut want = contents.to_vec();
    got.sort();
    want.sort();
    assert!(got == want, "the fetched plaintexts are not the files dropped in");
}

#[test]
fn files_dropped_into_a_spool_arrive_and_their_plaintext_is_gone() {
    let w = world();
    let ing = Ingester::start(&w, &[]);
    let contents: Vec<Vec<u8>> = (0..5).map(|n| recording(n, 20_000 + n * 1000)).collect();
    for (n, c) in contents.iter().enumerate() {
        drop_in(&w.spool, &format!("call-{n}.wav"), c);
    }
    // With a sidecar, sealed to the case with the recording.
    std::fs::write(
        w.spool.join("call-9.wav.json"),
        r#"{"from":"+31201234567","to":"+31207654321","agent":"anna","direction":"inbound","call_id":"1701.42"}"#,
    )
    .unwrap();
    let with_sidecar = recording(9, 5000);
    drop_in(&w.spool, "call-9.wav", &with_sidecar);
    wait_for("the spool to empty", &ing.log, || files_in(&w.spool).is_empty() && ing.uploaded() == 6);
    let mut all = contents.clone();
    all.push(with_sidecar.clone());
    holds_exactly(&w, &all);
    assert!(ing.log().contains("uploaded"), "{}", ing.log());
    // The server never saw the sidecar's numbers in clear.
    assert!(vault_tests::grep_dir(&w.v.data(), b"+31201234567").is_empty(), "call metadata in clear on the server");
    let id = listed(&w).into_iter().find(|id| fetched(&w, id) == with_sidecar).unwrap();
    let out = w.v.dir.path().join("meta.out");
    let shown =
        w.v.cli(&w.bob, &["--json", "fetch", &id, "--reason", "quality review", "--out", out.to_str().unwrap()]).ok();
    for field in ["+31201234567", "+31207654321", "anna", "inbound", "1701.42", "call-9.wav"] {
        assert!(shown.contains(field), "{field} not in the fetched call metadata: {shown}");
    }
}

#[test]
fn fail_a_file_still_being_written_is_not_taken_early() {
    let w = world();
    let ing = Ingester::start(&w, &[]);
    // Started and watching (a file it found at start-up would be judged by settling).
    wait_for("the ingester to start", &ing.log, || ing.status().is_object());
    let whole = recording(1, 300_000);
    let path = w.spool.join("live.wav");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&whole[..100_000]).unwrap();
    f.flush().unwrap();
    // The writer pauses for longer than --settle-secs: the file is open, so not finished.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(rows(&w.v), 0, "taken while still being written:\n{}", ing.log());
    assert!(path.exists());
    f.write_all(&whole[100_000..]).unwrap();
    drop(f);
    wait_for("the closed file to be uploaded", &ing.log, || !path.exists() && ing.uploaded() == 1);
    holds_exactly(&w, &[whole]);
}

#[test]
fn fail_a_server_killed_mid_batch_loses_nothing_and_duplicates_nothing() {
    let mut w = world();
    // A stable address for the ingester across the server's restart.
    let proxy = w.v.behind_proxy(Switch::default());
    let contents: Vec<Vec<u8>> = (0..60).map(|n| recording(n, 40_000)).collect();
    for (n, c) in contents.iter().enumerate() {
        drop_in(&w.spool, &format!("c{n:03}.wav"), c);
    }
    let ing = Ingester::start(&w, &["--jobs", "4"]);
    wait_for("some uploads", &ing.log, || ing.uploaded() >= 5);
    w.v.kill();
    std::thread::sleep(Duration::from_millis(500));
    w.v.restart();
    proxy.set_upstream(&w.v.url);
    w.v.url = proxy.url.clone();
    wait_for("the spool to empty after the restart", &ing.log, || files_in(&w.spool).is_empty());
    holds_exactly(&w, &contents);
    let out = run(Command::new(vault_tests::bin("vault-server")).args(["verify", "--data-dir"]).arg(w.v.data()));
    out.ok();
}

#[test]
fn fail_an_ingester_killed_mid_upload_and_restarted_loses_nothing_and_duplicates_nothing() {
    let w = world();
    let contents: Vec<Vec<u8>> = (0..150).map(|n| recording(n, 100_000)).collect();
    for (n, c) in contents.iter().enumerate() {
        drop_in(&w.spool, &format!("c{n:03}.wav"), c);
    }
    let mut first = Ingester::start(&w, &["--jobs", "4"]);
    wait_for("some uploads", &first.log, || rows(&w.v) >= 3);
    first.kill();
    let left = files_in(&w.spool).len();
    assert!(left > 0, "everything was uploaded before the kill: nothing tested");
    let again = Ingester::start(&w, &["--once"]);
    wait_for("the spool to empty", &again.log, || files_in(&w.spool).is_empty());
    holds_exactly(&w, &contents);
}

/// The server stores an upload, but its answer (to `answered`: the upload itself, or the
/// signature that follows a large one) is lost on the way; the ingester tries again.
fn lost_answer_is_uploaded_again_without_a_duplicate(size: usize, answered: &'static str) {
    let mut w = world();
    let lie = Switch::default();
    let _proxy = w.v.behind_proxy(lie.clone());
    let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let once = lost.clone();
    lie.lie(move |req: &Request, resp: &mut Response| {
        let path = req.path.split('?').next().unwrap_or_default();
        if req.method == "POST" && path.ends_with(answered) && !once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            resp.status = 502;
            resp.headers.clear();
            resp.body = b"bad gateway".to_vec();
        }
    });
    let content = recording(7, size);
    drop_in(&w.spool, "lost.wav", &content);
    let ing = Ingester::start(&w, &[]);
    wait_for("the retry", &ing.log, || ing.status()["repeated"] == 1);
    assert!(lost.load(std::sync::atomic::Ordering::SeqCst), "the answer was never lost: nothing tested");
    assert!(files_in(&w.spool).is_empty());
    assert!(ing.log().contains("already in the vault"), "{}", ing.log());
    holds_exactly(&w, &[content]);
    // The repeat is in the access log.
    let repeats =
        w.v.count("SELECT count(*) FROM access_log WHERE action = 'upload' AND details LIKE '%\"repeated\":true%'");
    assert_eq!(repeats, 1);
}

#[test]
fn fail_a_lost_answer_to_a_small_upload_is_uploaded_again_without_a_duplicate() {
    // Sent signed, in one request.
    lost_answer_is_uploaded_again_without_a_duplicate(50_000, "/recordings");
}

#[test]
fn fail_a_lost_answer_to_a_large_uploads_signature_is_uploaded_again_without_a_duplicate() {
    // Streamed, then signed in a second request.
    lost_answer_is_uploaded_again_without_a_duplicate(5 << 20, "/signature");
}

/// The lying server answers every upload "I have that already" with `forge(honest answer
/// to an earlier upload, the id asked for)`; the ingester must keep the plaintext and say
/// `why` it did not believe the answer.
fn lying_server_cannot_have_plaintext_deleted(forge: fn(&str, &str) -> String, why: &str) {
    let mut w = world();
    let lie = Switch::default();
    let _proxy = w.v.behind_proxy(lie.clone());
    // An honest upload, whose signed answer the server keeps to replay.
    let first = w.v.dir.path().join("first.wav");
    std::fs::write(&first, recording(1, 10_000)).unwrap();
    let stored =
        w.v.cli(&w.pbx, &["--json", "upload", &w.case, first.to_str().unwrap(), "--announced", "signal-tone"]).ok();
    lie.lie(move |req: &Request, resp: &mut Response| {
        if req.method == "POST" && req.path.contains("/recordings?") {
            let asked = req.path.split("recording_id=").nth(1).unwrap_or_default().split('&').next().unwrap();
            resp.status = 200;
            resp.headers.retain(|(k, _)| k != "x-vault-crc32");
            resp.headers.push(("x-vault-repeated".into(), "true".into()));
            resp.body = forge(&stored, asked).into_bytes();
        }
    });
    let content = recording(2, 10_000);
    drop_in(&w.spool, "kept.wav", &content);
    let ing = Ingester::start(&w, &["--once", "--max-attempts", "1"]);
    wait_for("the ingester to give up", &ing.log, || w.spool.join("failed/kept.wav").exists());
    assert_eq!(std::fs::read(w.spool.join("failed/kept.wav")).unwrap(), content, "the plaintext must be kept");
    let reason = std::fs::read_to_string(w.spool.join("failed/kept.wav.reason")).unwrap();
    assert!(reason.contains("not trusting that answer") && reason.contains(why), "{reason}");
}

#[test]
fn fail_a_lying_server_cannot_have_plaintext_deleted_with_another_recordings_statement() {
    // The recorder's own signature, but for another recording.
    lying_server_cannot_have_plaintext_deleted(|stored, _| stored.to_owned(), "for another recording");
}

#[test]
fn fail_a_lying_server_cannot_have_plaintext_deleted_with_a_statement_it_rewrote() {
    // The id asked for, in a statement the server edited: the signature no longer holds.
    lying_server_cannot_have_plaintext_deleted(
        |stored, asked| {
            let old = json(stored)["id"].as_str().unwrap().to_owned();
            stored.replace(&old, asked)
        },
        "does not carry this recorder's signature",
    );
}

#[test]
fn fail_a_file_for_a_closed_case_lands_in_failed_with_the_reason() {
    let w = world();
    w.v.cli(&w.v.admin, &["case", "close", &w.case, "--outcome", "completed"]).ok();
    let content = recording(3, 10_000);
    std::fs::write(w.spool.join("late.wav.json"), r#"{"agent":"anna"}"#).unwrap();
    drop_in(&w.spool, "late.wav", &content);
    let mut ing = Ingester::start(&w, &["--once"]);
    let status = ing.stop_when_done();
    assert!(status.success(), "{}", ing.log());
    assert_eq!(std::fs::read(w.spool.join("failed/late.wav")).unwrap(), content);
    assert!(w.spool.join("failed/late.wav.json").exists(), "the sidecar goes with it");
    let reason = std::fs::read_to_string(w.spool.join("failed/late.wav.reason")).unwrap();
    assert!(reason.contains("closed"), "{reason}");
    assert_eq!(ing.status()["failed"], 1);
    // Refused at start-up (a warning), then for the file once, and once more after logging
    // in again (an expired session is refused alike); not tried again and again.
    let refusals = w.v.count("SELECT count(*) FROM access_log WHERE actor = 'pbx' AND outcome = 'refused'");
    assert_eq!(refusals, 3, "{}", ing.log());
    assert!(ing.log().contains("warning"), "{}", ing.log());
    assert_eq!(rows(&w.v), 0);
}

#[test]
fn fail_a_bad_sidecar_lands_in_failed_and_nothing_is_uploaded() {
    let w = world();
    std::fs::write(w.spool.join("odd.wav.json"), r#"{"agnet":"anna"}"#).unwrap();
    drop_in(&w.spool, "odd.wav", b"RIFF....");
    let mut ing = Ingester::start(&w, &["--once"]);
    assert!(ing.stop_when_done().success(), "{}", ing.log());
    let reason = std::fs::read_to_string(w.spool.join("failed/odd.wav.reason")).unwrap();
    assert!(reason.contains("agnet"), "{reason}");
    assert_eq!(rows(&w.v), 0);
}

#[test]
fn keep_moves_uploaded_files_to_done() {
    let w = world();
    let content = recording(4, 3000);
    drop_in(&w.spool, "kept.wav", &content);
    let mut ing = Ingester::start(&w, &["--once", "--keep"]);
    assert!(ing.stop_when_done().success(), "{}", ing.log());
    assert_eq!(std::fs::read(w.spool.join("done/kept.wav")).unwrap(), content);
    holds_exactly(&w, &[content]);
}

impl Ingester {
    /// Waits for an `--once` ingester to exit by itself.
    fn stop_when_done(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "ingest --once did not finish:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn sigterm_stops_the_ingester_cleanly() {
    let w = world();
    let mut ing = Ingester::start(&w, &[]);
    wait_for("the status file", &ing.log, || ing.status().is_object());
    assert!(ing.stop().success(), "{}", ing.log());
    assert!(ing.log().contains("ingest stopping"), "{}", ing.log());
}

#[test]
fn stdin_upload_round_trips_and_an_upload_key_makes_it_idempotent() {
    let w = world();
    let content = recording(5, 700_000);
    let upload = |key: &str| {
        let mut child =
            w.v.cli_cmd(&w.pbx)
                .args(["upload", &w.case, "-", "--announced", "signal-tone", "--upload-key", key])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
        child.stdin.take().unwrap().write_all(&content).unwrap();
        vault_tests::Out::from(child.wait_with_output().unwrap())
    };
    let first = upload("pbx-call-1701.42");
    let id = first.ok();
    assert!(id.starts_with("rec_"), "{id}");
    assert_eq!(fetched(&w, &id), content);
    let again = upload("pbx-call-1701.42");
    assert_eq!(again.ok(), id, "the same key must give the same recording");
    assert!(again.stderr.contains("already holds"), "{}", again.stderr);
    let other = upload("pbx-call-1701.43");
    assert_ne!(other.ok(), id);
    assert_eq!(listed(&w).len(), 2);
}

/// A raw upload by `who` to the world's case under recording id `id` (3 bytes that are not
/// age: only refusals before the body are expected).
fn upload_raw(w: &World, who: &Person, id: &str) -> (u16, String) {
    w.v.cli(who, &["login"]).ok();
    let token = w.v.token(who);
    w.v.raw(
        "POST",
        &format!("/v1/cases/{}/recordings?announced=signal-tone&recording_id={id}", w.case),
        Some(&token),
        &[("x-vault-upload-length", "3")],
        b"abc",
    )
}

#[test]
fn fail_an_id_in_use_by_another_recorder_is_refused() {
    let w = world();
    let pbx2 = w.v.enrol("pbx2", "recorder");
    let file = w.v.dir.path().join("a.wav");
    std::fs::write(&file, recording(6, 1000)).unwrap();
    let id = w
        .v
        .cli(&w.pbx, &["upload", &w.case, file.to_str().unwrap(), "--announced", "signal-tone", "--upload-key", "k1"])
        .ok();
    let (status, body) = upload_raw(&w, &pbx2, &id);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("in use"), "{body}");
    let (actor, action, outcome, _, _) = w.v.last_log();
    assert_eq!((actor.as_str(), action.as_str(), outcome.as_str()), ("pbx2", "upload", "refused"));
    assert_eq!(rows(&w.v), 1);
}

#[test]
fn the_handoff_script_of_the_pbx_recipes_delivers_a_recording_with_its_call_metadata() {
    let w = world();
    let ing = Ingester::start(&w, &[]);
    wait_for("the ingester to start", &ing.log, || ing.status().is_object());
    // Where the phone system wrote the recording (same file system as the spool).
    let monitor = w.v.dir.path().join("monitor");
    std::fs::create_dir(&monitor).unwrap();
    let content = recording(11, 64_000);
    let file = monitor.join("1701942.42.wav");
    std::fs::write(&file, &content).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vault-handoff");
    let out = run(Command::new("sh").arg(&script).arg(&w.spool).arg(&file).args([
        "+31201234567",
        "6001",
        "anna \"the\" agent",
        "inbound",
        "1701942.42",
    ]));
    out.ok();
    assert!(!file.exists(), "the recording was moved, not copied");
    wait_for("the upload", &ing.log, || ing.uploaded() == 1 && files_in(&w.spool).is_empty());
    let id = listed(&w).pop().unwrap();
    let o = w.v.dir.path().join("handoff.out");
    let shown =
        w.v.cli(&w.bob, &["--json", "fetch", &id, "--reason", "quality review", "--out", o.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&o).unwrap(), content);
    let call = &json(&shown)["call"];
    assert_eq!(call["from"], "+31201234567");
    assert_eq!(call["to"], "6001");
    assert_eq!(call["agent"], "anna \"the\" agent");
    assert_eq!(call["direction"], "inbound");
    assert_eq!(call["call_id"], "1701942.42");
    assert_eq!(call["file_name"], "1701942.42.wav");
}

#[test]
fn fail_a_recording_destroyed_under_r5_is_not_stored_again_by_a_retry() {
    let w = world();
    let admin = &w.v.admin;
    let covert =
        w.v.cli(
            admin,
            &["case", "create", "--kind", "covert", "--title", "Fraud", "--suspicion", "theft", "--dpia-ref", "D-7"],
        )
        .ok();
    w.v.cli(admin, &["case", "approve", &covert, "--ap-ref", "AP-2026-1", "--date", "2026-01-10"]).ok();
    let file = w.v.dir.path().join("covert.wav");
    std::fs::write(&file, recording(12, 2000)).unwrap();
    let args = ["upload", &covert, file.to_str().unwrap(), "--announced", "none", "--upload-key", "call-77"];
    let id = w.v.cli(&w.pbx, &args).ok();
    // Nothing criminal found: destroyed at once (R5).
    w.v.cli(admin, &["case", "close", &covert, "--outcome", "no-offence"]).ok();
    // The phone system still has its copy and tries again: refused, not stored anew.
    let again = w.v.cli(&w.pbx, &args);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("closed") || again.stderr.contains("destroyed"), "{}", again.stderr);
    assert_eq!(w.v.count(&format!("SELECT count(*) FROM recordings WHERE id = '{id}'")), 0);
    // Even aimed past the closed case, the id itself is refused as destroyed.
    let (status, body) = upload_raw(&w, &w.pbx, &id);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("destroyed"), "{body}");
}

/// Rewrites the CLI's signed uploads on their way to the server, as a broken or hostile
/// network would.
struct Tamper(fn(&mut Request));

impl vault_tests::proxy::Lie for Tamper {
    fn request(&self, req: &mut Request) {
        if req.method == "POST" && req.path.contains("/recordings?") {
            (self.0)(req)
        }
    }
}

/// Uploads a small file through `tamper`; returns the CLI's result.
fn upload_through(tamper: fn(&mut Request)) -> (World, vault_tests::Out) {
    let mut w = world();
    let _proxy = w.v.behind_proxy(Tamper(tamper));
    let file = w.v.dir.path().join("small.wav");
    std::fs::write(&file, recording(21, 30_000)).unwrap();
    let out = w.v.cli(&w.pbx, &["upload", &w.case, file.to_str().unwrap(), "--announced", "signal-tone"]);
    (w, out)
}

#[test]
fn fail_a_signed_upload_damaged_on_the_way_is_refused_and_nothing_is_stored() {
    let (w, out) = upload_through(|req| {
        assert!(req.header("x-vault-statement").is_some(), "a small upload is sent signed");
        let n = req.body.len();
        req.body[n - 100] ^= 1;
    });
    out.error("damaged on the way");
    assert_eq!(rows(&w.v), 0);
    let (actor, action, outcome, _, _) = w.v.last_log();
    assert_eq!((actor.as_str(), action.as_str(), outcome.as_str()), ("pbx", "upload", "refused"));
}

#[test]
fn fail_a_signed_upload_under_another_id_than_its_statement_names_is_refused() {
    let (w, out) = upload_through(|req| {
        let (path, query) = req.path.split_once('?').unwrap();
        let query: Vec<String> = query
            .split('&')
            .map(|kv| {
                if kv.starts_with("recording_id=") {
                    format!("recording_id=rec_{}", "ab".repeat(16))
                } else {
                    kv.to_owned()
                }
            })
            .collect();
        req.path = format!("{path}?{}", query.join("&"));
    });
    out.error("statement must be signed by you for rec_abab");
    assert_eq!(rows(&w.v), 0);
}

#[test]
fn fail_a_signed_upload_with_a_forged_signature_is_refused() {
    let (w, out) = upload_through(|req| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut signed =
            json(&String::from_utf8(b64.decode(req.header("x-vault-statement").unwrap()).unwrap()).unwrap());
        signed["signatures"][0]["sig"] = b64.encode([7u8; 64]).into();
        req.set_header("x-vault-statement", &b64.encode(signed.to_string()));
    });
    out.error("does not verify with your enrolled key");
    assert_eq!(rows(&w.v), 0);
}

#[test]
fn a_case_key_rotated_under_a_running_ingester_is_picked_up() {
    let w = world();
    let ing = Ingester::start(&w, &[]);
    drop_in(&w.spool, "before.wav", &recording(31, 10_000));
    wait_for("the first upload", &ing.log, || ing.uploaded() == 1);
    // The ingester checked the old key; a custodian rotates it.
    w.v.cli(&w.v.admin, &["case", "rotate-key", &w.case]).ok();
    drop_in(&w.spool, "after.wav", &recording(32, 10_000));
    wait_for("the second upload", &ing.log, || ing.uploaded() == 2 && files_in(&w.spool).is_empty());
    let versions = w.v.count("SELECT count(DISTINCT key_version) FROM recordings");
    assert_eq!(versions, 2, "the second recording is under the new key:\n{}", ing.log());
    assert_eq!(ing.status()["failed"], 0);
}

#[test]
fn a_routes_file_sends_each_spool_to_its_own_case() {
    let w = world();
    let other =
        w.v.cli(
            &w.v.admin,
            &["case", "create", "--kind", "customer", "--title", "Complaints", "--purpose", "complaint-handling"],
        )
        .ok();
    w.v.cli(&w.v.admin, &["grant", &other, "bob", "--reason", "quality review"]).ok();
    let complaints = w.v.dir.path().join("complaints");
    std::fs::create_dir(&complaints).unwrap();
    let routes = w.v.dir.path().join("routes");
    std::fs::write(&routes, format!("# spool  case  announced\nspool {}\ncomplaints {other} spoken-notice\n", w.case))
        .unwrap();
    let sales_call = recording(41, 4000);
    let complaint = recording(42, 4000);
    drop_in(&w.spool, "sale.wav", &sales_call);
    drop_in(&complaints, "complaint.wav", &complaint);
    let log = w.v.dir.path().join("routes.log");
    let out =
        w.v.cli_cmd(&w.pbx)
            .args(["ingest", "--routes"])
            .arg(&routes)
            .args(["--once", "--settle-secs", "0"])
            .stderr(std::fs::File::create(&log).unwrap())
            .status()
            .unwrap();
    assert!(out.success(), "{}", std::fs::read_to_string(&log).unwrap());
    let ids = listed(&w);
    assert_eq!(ids.len(), 1);
    assert_eq!(fetched(&w, &ids[0]), sales_call);
    let theirs = listed_in(&w, &other);
    assert_eq!(theirs.len(), 1);
    assert_eq!(fetched(&w, &theirs[0]), complaint);
    assert!(files_in(&w.spool).is_empty() && files_in(&complaints).is_empty());
}
