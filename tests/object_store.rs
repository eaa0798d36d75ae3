//! Recordings on an S3-compatible object store (issue 16), against a real one (s3s-fs):
//! a server killed during concurrent uploads (on both blob stores), a vault bound to its
//! store and prefix, a bucket that keeps versions, and backups whose ciphertext stays in
//! the store.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vault_tests::proxy::{Proxy, Request, Response};
use vault_tests::{Backend, Out, Vault, bin, cli_command, files_under, run};

vault_tests::on_both_backends!(a_server_killed_during_concurrent_uploads_loses_no_acknowledged_recording);

/// Recordings (plaintext) the uploaders cycle through: small ones, and ones of three
/// object-store parts.
fn contents() -> Vec<Vec<u8>> {
    (0..4u32)
        .map(|i| {
            let n = if i % 2 == 0 { 150_000 + i as usize } else { 20 << 20 };
            (0..n as u32).map(|j| (j.wrapping_mul(31).wrapping_add(i * 7) % 251) as u8).collect()
        })
        .collect()
}

/// Whether an upload is being received: the local store's file in `tmp/`; for the
/// object store, a multipart upload open in the store and named in `tmp/`.
fn uploading(v: &Vault) -> bool {
    let suffix = if v.s3.is_some() { ".multipart" } else { ".part" };
    let named = files_under(&v.data().join("tmp")).iter().any(|f| f.to_string_lossy().ends_with(suffix));
    named && v.s3.as_ref().is_none_or(|s3| !s3.open_uploads().is_empty())
}

fn a_server_killed_during_concurrent_uploads_loses_no_acknowledged_recording(backend: Backend) {
    let mut v = Vault::start_on(backend);
    let pbx = v.enrol("pbx", "recorder");
    let bob = v.enrol("bob", "investigator");
    let case = v
        .cli(&v.admin, &["case", "create", "--kind", "customer", "--title", "Q3", "--purpose", "complaint-handling"])
        .ok();
    v.cli(&v.admin, &["grant", &case, "bob", "--reason", "complaints"]).ok();
    let contents = contents();
    let files: Vec<PathBuf> = contents
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = v.dir.path().join(format!("call-{i}.wav"));
            std::fs::write(&f, c).unwrap();
            f
        })
        .collect();

    // Three uploaders, each going round the files until the server is gone.
    let acked: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let uploaders: Vec<_> = (0..3)
        .map(|t| {
            let (acked, stop, files) = (acked.clone(), stop.clone(), files.clone());
            let (dir, url, root, case, pbx) =
                (v.dir.path().to_owned(), v.url.clone(), v.trust_root.clone(), case.clone(), pbx.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::SeqCst) {
                    let which = i % files.len();
                    let out = run(cli_command(&dir, &url, &root, &pbx).args([
                        "upload",
                        &case,
                        files[which].to_str().unwrap(),
                        "--announced",
                        "signal-tone",
                    ]));
                    if out.code == 0 {
                        acked.lock().unwrap().push((out.stdout.trim().to_owned(), which));
                    }
                    i += 1;
                }
            })
        })
        .collect();

    // Killed once some uploads were acknowledged, while another is being received.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < 4 || !uploading(&v) {
        assert!(Instant::now() < deadline, "no upload was in flight after four were acknowledged");
        std::thread::sleep(Duration::from_millis(2));
    }
    v.kill();
    stop.store(true, Ordering::SeqCst);
    for u in uploaders {
        u.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    // Restarted: every acknowledged recording is there, whole.
    v.restart();
    let fetch = |id: &str| {
        let out = v.dir.path().join(format!("fetched-{id}"));
        v.cli(&bob, &["fetch", id, "--reason", "after the crash", "--out", out.to_str().unwrap()]).ok();
        std::fs::read(out).unwrap()
    };
    for (id, which) in &acked {
        assert!(fetch(id) == contents[*which], "acknowledged recording {id} is not what was uploaded");
    }
    // Whatever else is listed (signed, unacknowledged only because the answer was lost)
    // is whole too; nothing partial is visible.
    let listed = vault_tests::json(&v.cli(&bob, &["--json", "recordings", &case]).ok());
    let listed: Vec<String> = listed.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    for (id, _) in &acked {
        assert!(listed.contains(id), "acknowledged {id} is not listed");
    }
    for id in listed.iter().filter(|id| !acked.iter().any(|(a, _)| a == *id)) {
        let got = fetch(id);
        assert!(contents.contains(&got), "{id} is listed but is none of the recordings uploaded");
    }
    // What the crash cut off left nothing: no temporary file, no unfinished multipart
    // upload, no blob without its row.
    assert!(files_under(&v.data().join("tmp")).is_empty(), "{:?}", files_under(&v.data().join("tmp")));
    assert_eq!(v.blob_files().len() as i64, v.count("SELECT count(*) FROM recordings"));
    // Every multipart upload the server knew of is aborted. One the crash caught between
    // the store opening it and the server learning its id cannot be named, and so stays
    // open (the bucket's lifecycle rule aborts it; README): it holds no part, since parts
    // are sent only once the upload is named in tmp/.
    if let Some(s3) = &v.s3 {
        for upload in s3.open_uploads() {
            assert!(s3.parts_of(&upload).is_empty(), "{upload} is left open with parts {:?}", s3.parts_of(&upload));
        }
    }
    let verify = run(Command::new(bin("vault-server"))
        .args(["verify", "--blobs", "--data-dir"])
        .arg(v.data())
        .args(v.store_flags()));
    assert!(verify.ok().starts_with("ok: "), "{verify:?}");
}

/// Runs `vault-server serve` on `data` with `args`, expecting it to refuse to start;
/// returns what it said.
fn refused_to_serve(data: &Path, args: &[String]) -> Out {
    let mut child = Command::new(bin("vault-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vault-server served where it had to refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Out::from(child.wait_with_output().unwrap());
    assert_ne!(out.code, 0, "{out:?}");
    out
}

fn with(flags: &[String], replace: &str, by: &str) -> Vec<String> {
    let mut out = flags.to_vec();
    let i = out.iter().position(|f| f == replace).expect("the flag") + 1;
    out[i] = by.to_owned();
    out
}

#[test]
fn fail_a_vault_uses_only_its_own_store_and_prefix() {
    let mut v = Vault::start_on(Backend::S3);
    let pbx = v.enrol("pbx", "recorder");
    let case = v.cli(&v.admin, &["case", "create", "--kind", "customer", "--title", "Q", "--purpose", "sales"]).ok();
    let file = v.dir.path().join("a.wav");
    std::fs::write(&file, b"a call").unwrap();
    v.cli(&pbx, &["upload", &case, file.to_str().unwrap(), "--announced", "signal-tone"]).ok();
    v.kill();
    let s3 = v.s3.as_ref().unwrap();
    let flags = v.store_flags();
    let before = s3.keys();

    // Started without its store, it would find every recording missing.
    let out = refused_to_serve(&v.data(), &[]);
    assert!(out.stderr.contains("keeps its recordings in s3://vault/recordings"), "{}", out.stderr);
    assert!(out.stderr.contains("--blob-store s3://vault/recordings"), "{}", out.stderr);
    // Another prefix of the same bucket is another store.
    let out = refused_to_serve(&v.data(), &with(&flags, "--blob-store", "s3://vault/other"));
    assert!(out.stderr.contains("not s3://vault/other"), "{}", out.stderr);

    // Another vault given this vault's prefix: it would take this vault's objects for
    // orphans and remove them.
    let other = Vault::start();
    let mut other = other;
    other.kill();
    let out = refused_to_serve(&other.data(), &flags);
    assert!(out.stderr.contains("belongs to another vault"), "{}", out.stderr);
    // A prefix holding objects no vault claims, likewise.
    std::fs::create_dir_all(s3.object("shared/blobs")).unwrap();
    std::fs::write(s3.object("shared/blobs/report.pdf"), b"someone else's").unwrap();
    let out = refused_to_serve(&other.data(), &with(&flags, "--blob-store", "s3://vault/shared"));
    assert!(out.stderr.contains("no vault.json naming this vault"), "{}", out.stderr);
    assert!(s3.object("shared/blobs/report.pdf").exists());
    // A vault that already keeps recordings in blobs/ cannot switch.
    other.restart();
    let opbx = other.enrol("pbx", "recorder");
    let ocase =
        other.cli(&other.admin, &["case", "create", "--kind", "customer", "--title", "Q", "--purpose", "sales"]).ok();
    let ofile = other.dir.path().join("b.wav");
    std::fs::write(&ofile, b"b call").unwrap();
    other.cli(&opbx, &["upload", &ocase, ofile.to_str().unwrap(), "--announced", "signal-tone"]).ok();
    other.kill();
    let out = refused_to_serve(&other.data(), &with(&flags, "--blob-store", "s3://vault/fresh"));
    assert!(out.stderr.contains("already keeps recordings in its data dir's blobs/"), "{}", out.stderr);

    // Plain HTTP needs saying so; wrong credentials fail at start-up, not at the first
    // upload.
    let no_http: Vec<String> = flags.iter().filter(|f| *f != "--s3-allow-http").cloned().collect();
    let out = refused_to_serve(&v.data(), &no_http);
    assert!(out.stderr.contains("is plain HTTP") && out.stderr.contains("--s3-allow-http"), "{}", out.stderr);
    let out = refused_to_serve(&v.data(), &with(&flags, "--s3-secret-access-key", "not-the-secret"));
    assert!(out.stderr.contains("cannot reach s3://vault/recordings"), "{}", out.stderr);
    assert!(!out.stderr.contains("not-the-secret"), "the secret was printed: {}", out.stderr);

    // None of it changed the store, and the vault serves with its own.
    assert_eq!(s3.keys().into_iter().filter(|k| !k.starts_with("shared/")).collect::<Vec<_>>(), before);
    v.restart();
    v.cli(&v.admin, &["user", "list"]).ok();
}

/// Adds a version id to every answer to a PUT, as a bucket with versioning does.
fn versioned(req: &Request, resp: &mut Response) {
    if req.method == "PUT" {
        resp.headers.push(("x-amz-version-id".into(), "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrH".into()));
    }
}

#[test]
fn serve_warns_when_the_bucket_keeps_versions() {
    let mut v = Vault::start_on(Backend::S3);
    let log = std::fs::read_to_string(v.server_log()).unwrap();
    assert!(!log.contains("keeps versions"), "a warning without versioning: {log}");
    let proxy = Proxy::start_keeping_host(&v.s3.as_ref().unwrap().endpoint, versioned);
    let flags = with(&v.store_flags(), "--s3-endpoint", &proxy.url);
    v.kill();
    let mut serve = Command::new(bin("vault-server"));
    serve.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(v.data()).args(&flags);
    let log_file = v.dir.path().join("versioned.log");
    let mut child = serve
        .env("VAULT_READY_MIN_FREE_MIB", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    vault_tests::wait_listening(&mut child, &log_file);
    let log = std::fs::read_to_string(&log_file).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("warning: s3://vault/recordings keeps versions of objects"), "{log}");
    assert!(log.contains("object lock in compliance mode"), "{log}");
}

#[test]
fn a_restored_backup_does_not_bring_back_recordings_destroyed_since() {
    let mut v = Vault::start_on(Backend::S3);
    let pbx = v.enrol("pbx", "recorder");
    let covert = v
        .cli(
            &v.admin,
            &["case", "create", "--kind", "covert", "--title", "F", "--suspicion", "theft", "--dpia-ref", "D"],
        )
        .ok();
    v.cli(&v.admin, &["case", "approve", &covert, "--ap-ref", "AP-1", "--date", "2026-01-10"]).ok();
    let file = v.dir.path().join("covert.wav");
    std::fs::write(&file, b"a covert call").unwrap();
    let rec = v.cli(&pbx, &["upload", &covert, file.to_str().unwrap(), "--announced", "none"]).ok();
    let backup = v.dir.path().join("backup");
    let flags = v.store_flags();
    let server = |args: &[&str]| run(Command::new(bin("vault-server")).args(args).args(&flags));
    server(&["backup", "--data-dir", v.data().to_str().unwrap(), "--out", backup.to_str().unwrap()]).ok();
    // Nothing criminal found: destroyed at once (R5), after the backup.
    v.cli(&v.second, &["case", "close", &covert, "--outcome", "no-offence"]).ok();
    assert!(!v.blob_path(&rec).exists());

    // The backup verifies, and says the recording's object is gone.
    let out = server(&["verify", "--data-dir", backup.to_str().unwrap()]);
    out.ok();
    assert!(out.stderr.contains("1 recordings the backup names are no longer in the object store"), "{}", out.stderr);
    assert!(out.stderr.contains(&rec), "{}", out.stderr);
    // Restored, the destruction holds: the ciphertext does not come back.
    v.kill();
    std::fs::rename(v.data(), v.dir.path().join("data-before")).unwrap();
    let restored = server(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--data-dir",
        v.data().to_str().unwrap(),
        "--reason",
        "disk failure",
    ]);
    restored.ok();
    assert!(restored.stderr.contains(&rec), "the restore does not name the recording: {}", restored.stderr);
    v.restart();
    assert!(!v.blob_path(&rec).exists(), "a destroyed recording's ciphertext came back");
    // Closing the case again removes its row; nothing else is left.
    v.cli(&v.second, &["case", "close", &covert, "--outcome", "no-offence"]).ok();
    assert_eq!(v.count("SELECT count(*) FROM recordings"), 0);
    assert!(v.blob_files().is_empty());
}

#[test]
fn fail_bad_blob_store_settings_are_refused_before_anything_starts() {
    let mut v = Vault::start();
    v.kill();
    for (setting, why) in [
        ("file:///srv/blobs", "give `local` or `s3://BUCKET/PREFIX`"),
        ("s3://Bad_Bucket/x", "is not a bucket name"),
        ("s3://vault/a/../b", "plain names"),
    ] {
        let out = refused_to_serve(&v.data(), &["--blob-store".into(), setting.into()]);
        assert!(out.stderr.contains(why), "{setting}: {}", out.stderr);
    }
    // Nothing was recorded: the vault still serves from blobs/.
    v.restart();
}

#[test]
fn the_object_store_is_configured_from_the_config_file_with_the_secret_in_a_file_of_its_own() {
    // A vault that has kept nothing yet may still move to an object store.
    let mut v = Vault::start();
    let s3 = vault_tests::s3::S3Server::start();
    let secret = v.dir.path().join("s3-secret");
    std::fs::write(&secret, format!("{}\n", vault_tests::s3::SECRET_KEY)).unwrap();
    let config = v.dir.path().join("vault.toml");
    std::fs::write(
        &config,
        format!(
            "blob-store = \"s3://{}/from-config\"\ns3-endpoint = \"{}\"\ns3-allow-http = true\n\
             s3-access-key-id = \"{}\"\ns3-secret-access-key-file = \"{}\"\n",
            vault_tests::s3::BUCKET,
            s3.endpoint,
            vault_tests::s3::ACCESS_KEY,
            secret.display()
        ),
    )
    .unwrap();
    v.serve_with(&["--config".into(), config.to_str().unwrap().into()]);
    let pbx = v.enrol("pbx", "recorder");
    let case = v.cli(&v.admin, &["case", "create", "--kind", "customer", "--title", "Q", "--purpose", "sales"]).ok();
    let file = v.dir.path().join("a.wav");
    std::fs::write(&file, b"a call kept in the object store").unwrap();
    let rec = v.cli(&pbx, &["upload", &case, file.to_str().unwrap(), "--announced", "signal-tone"]).ok();
    assert!(s3.object(&format!("from-config/blobs/{rec}.age")).exists(), "{:?}", s3.keys());
    assert!(files_under(&v.data().join("blobs")).is_empty());
    let log = std::fs::read_to_string(v.server_log()).unwrap();
    assert!(log.contains("blob_store=s3://vault/from-config"), "{log}");
    assert!(!log.contains(vault_tests::s3::SECRET_KEY), "the secret reached the log");
    // A secret given both ways is a mistake, said so before anything starts.
    let both = refused_to_serve(
        &v.data(),
        &["--config".into(), config.to_str().unwrap().into(), "--s3-secret-access-key".into(), "another".into()],
    );
    assert!(both.stderr.contains("cannot be used with"), "{}", both.stderr);
}

#[test]
fn fail_an_upload_cut_off_or_refused_leaves_nothing_in_the_object_store() {
    let v = Vault::start_on(Backend::S3);
    let pbx = v.enrol("pbx", "recorder");
    let case = v.cli(&v.admin, &["case", "create", "--kind", "customer", "--title", "Q", "--purpose", "sales"]).ok();
    // A real ciphertext of three parts, to cut off.
    let file = v.dir.path().join("big.wav");
    std::fs::write(&file, vec![5u8; 20 << 20]).unwrap();
    let rec = v.cli(&pbx, &["upload", &case, file.to_str().unwrap(), "--announced", "signal-tone"]).ok();
    let full = std::fs::read(v.blob_path(&rec)).unwrap();
    let s3 = v.s3.as_ref().unwrap();
    let objects = s3.keys();
    v.cli(&pbx, &["login"]).ok();
    let token = v.token(&pbx);
    let path = format!("/v1/cases/{case}/recordings?announced=signal-tone");
    let len = full.len().to_string();

    // Cut off after more than one part was sent: the multipart upload is aborted.
    let cut = &full[..12 << 20];
    v.raw(
        "POST",
        &path,
        Some(&token),
        &[("content-length", &len), ("x-vault-upload-length", &len), ("x-test-cut", "1")],
        cut,
    );
    // Not age, announced as large (the server refuses it at its first bytes and hangs up
    // while the client still sends; hence sent as one that hangs up too).
    let garbage = vec![0u8; 9 << 20];
    let glen = garbage.len().to_string();
    let refused = v.count("SELECT count(*) FROM access_log WHERE action = 'upload' AND outcome = 'refused'");
    v.raw(
        "POST",
        &path,
        Some(&token),
        &[("content-length", &glen), ("x-vault-upload-length", &glen), ("x-test-cut", "1")],
        &garbage,
    );

    // The cut-off upload is aborted once the server sees the connection gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refusals = || v.count("SELECT count(*) FROM access_log WHERE action = 'upload' AND outcome = 'refused'");
    while !s3.open_uploads().is_empty() || !files_under(&v.data().join("tmp")).is_empty() || refusals() < refused + 2 {
        assert!(Instant::now() < deadline, "uploads left open ({:?}) or not refused", s3.open_uploads());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s3.keys(), objects, "an object was left behind");
    assert_eq!(v.count("SELECT count(*) FROM recordings"), 1);
}

#[test]
fn readyz_says_not_ready_while_the_object_store_does_not_answer() {
    let mut v = Vault::start_on(Backend::S3);
    let (status, body) = v.raw("GET", "/readyz", None, &[], b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(vault_tests::json(&body)["checks"]["blob_store_reachable"], true, "{body}");
    // The store goes away: not ready, so a load balancer sends nothing new here.
    drop(v.s3.take());
    let (status, body) = v.raw("GET", "/readyz", None, &[], b"");
    assert_eq!(status, 503, "{body}");
    assert_eq!(vault_tests::json(&body)["checks"]["blob_store_reachable"], false, "{body}");
    assert_eq!(vault_tests::json(&body)["checks"]["database_writable"], true, "{body}");
}
