//! Shutdown with the real server: on SIGTERM it drains for `--shutdown-grace-secs`. An
//! upload in progress finishes and is signed (its signature comes on a new connection,
//! which a draining server still takes); new work is answered 503 and `/readyz` says
//! not ready; an upload the deadline cuts off leaves no recording, no blob and no
//! temporary file, before and after the next start. The server logs "stopping" and
//! "stopped".

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use vault_tests::{Person, Vault, files_under};

/// A customer case with a recorder: (vault, recorder, case).
fn world(grace_secs: &str) -> (Vault, Person, String) {
    let v = Vault::start_with(&["--shutdown-grace-secs", grace_secs]);
    let pbx = v.enrol("pbx", "recorder");
    let case = v.cli(&v.admin, &["case", "create", "--kind", "customer", "--title", "S", "--purpose", "quality"]).ok();
    (v, pbx, case)
}

/// Starts an upload as `pbx` by hand and sends the first bytes of an age file, far short
/// of the length it announced; returns the open connection. The server holds a partial
/// file in `tmp/` once it has them.
fn start_slow_upload(v: &Vault, pbx: &Person, case: &str) -> TcpStream {
    v.cli(pbx, &["login"]).ok();
    let token = v.token(pbx);
    let addr = v.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let total = 10 * 1024 * 1024;
    write!(
        s,
        "POST /v1/cases/{case}/recordings?announced=signal-tone HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nx-vault-upload-length: {total}\r\nContent-Length: {total}\r\n\r\n"
    )
    .unwrap();
    s.write_all(b"age-encryption.org/v1\n-> X25519 ").unwrap();
    s.write_all(&[b'A'; 4096]).unwrap();
    s.flush().unwrap();
    wait_for(|| !files_under(&v.data().join("tmp")).is_empty(), "the upload's partial file in tmp/");
    s
}

/// Waits (at most 30 s) until `ok` holds.
fn wait_for(ok: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn log_text(v: &Vault) -> String {
    std::fs::read_to_string(v.server_log()).unwrap()
}

#[test]
fn fail_an_upload_cut_off_by_the_shutdown_deadline_leaves_nothing() {
    let (mut v, pbx, case) = world("1");
    let log_before = v.log_len();
    let upload = start_slow_upload(&v, &pbx, &case);
    v.sigterm();
    // The upload never ends, so the grace period does: the server closes it and exits.
    let status = v.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "a SIGTERM is a clean stop: {status}");
    drop(upload);
    let text = log_text(&v);
    assert!(text.contains("stopping"), "{text}");
    let stopped = text.lines().find(|l| l.contains("stopped")).unwrap_or_else(|| panic!("no stopped line: {text}"));
    assert!(stopped.contains("uploads_cut_off=1"), "{stopped}");
    // Nothing of it on disk, nothing in the database, before any start-up sweep ran.
    assert_eq!(files_under(&v.data().join("tmp")), Vec::<std::path::PathBuf>::new());
    assert_eq!(files_under(&v.data().join("blobs")), Vec::<std::path::PathBuf>::new());
    assert_eq!(v.count("SELECT count(*) FROM recordings"), 0);
    // The next start finds nothing to clean up, and the log is whole.
    v.restart();
    let started = log_text(&v);
    assert!(started.contains("swept_partial_uploads=0") && started.contains("removed_orphan_blobs=0"), "{started}");
    assert!(v.log_len() >= log_before);
    assert_eq!(v.count("SELECT count(*) FROM recordings"), 0);
}

#[test]
fn fail_new_work_while_draining_is_answered_503_and_readyz_says_not_ready() {
    let (mut v, pbx, case) = world("60");
    let upload = start_slow_upload(&v, &pbx, &case);
    v.sigterm();
    wait_for(|| log_text(&v).contains("stopping"), "the stopping line");
    let (status, body) = v.raw("GET", "/v1/cases", None, &[], b"");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("shutting down"), "{body}");
    let (status, body) = v.raw("GET", "/readyz", None, &[], b"");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""draining":true"#), "{body}");
    assert_eq!(v.raw("GET", "/healthz", None, &[], b"").0, 200, "alive while draining");
    // The client gives up: nothing is in progress, so the server stops long before its
    // 60 s grace, and the upload left nothing.
    drop(upload);
    let status = v.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert!(log_text(&v).contains("stopped"));
    assert!(files_under(&v.data().join("tmp")).is_empty());
    assert_eq!(v.count("SELECT count(*) FROM recordings"), 0);
}

#[test]
fn an_upload_in_progress_at_sigterm_commits_and_is_signed_within_the_grace() {
    let (mut v, pbx, case) = world("120");
    // Large enough that the upload is still streaming when the test sees its partial file.
    let file = v.dir.path().join("long-call.wav");
    std::fs::write(&file, vec![7u8; 48 * 1024 * 1024]).unwrap();
    let mut cli = v.cli_cmd(&pbx);
    cli.args(["upload", &case, file.to_str().unwrap(), "--announced", "signal-tone"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let upload = cli.spawn().unwrap();
    wait_for(|| !files_under(&v.data().join("tmp")).is_empty(), "the upload's partial file in tmp/");
    v.sigterm();
    let out = upload.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    let rec = stdout.trim().to_owned();
    assert!(rec.starts_with("rec_"), "{rec}");
    // Signed, so the server had nothing left to wait for and stopped well before 120 s.
    let status = v.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let text = log_text(&v);
    assert!(text.contains("stopped: every request finished"), "{text}");
    assert_eq!(v.count(&format!("SELECT count(*) FROM recordings WHERE id = '{rec}' AND statement IS NOT NULL")), 1);
    // After a restart it is listed to an auditor like any signed recording.
    v.restart();
    let auditor = v.enrol("audrey", "auditor");
    let listed = v.cli(&auditor, &["recordings", &case]);
    assert!(listed.ok().contains(&rec), "{listed:?}");
}
