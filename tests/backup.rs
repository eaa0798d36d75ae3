//! End-to-end tests of `vault-server backup` and `restore` (issue 15): a backup taken
//! while the server serves, under concurrent uploads, with the server killed under it,
//! itself killed half-way, or tampered with; restoring, serving and fetching; and what
//! auditors see after a restore and how they accept it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vault_tests::{Backend, Out, Person, Vault, bin, grep_dir, json, run};

/// A vault with bob (investigator, granted on one customer case), pbx (recorder) and
/// audrey (auditor).
struct World {
    v: Vault,
    bob: Person,
    pbx: Person,
    audrey: Person,
    case: String,
    key: String,
}

fn world() -> World {
    world_on(Backend::Local)
}

fn world_on(backend: Backend) -> World {
    let v = Vault::start_on(backend);
    let bob = v.enrol("bob", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    let audrey = v.enrol("audrey", "auditor");
    let case = v
        .cli(&v.admin, &["case", "create", "--kind", "customer", "--title", "Q3", "--purpose", "complaint-handling"])
        .ok();
    v.cli(&v.admin, &["grant", &case, "bob", "--reason", "complaints"]).ok();
    let key = v.log_key();
    World { v, bob, pbx, audrey, case, key }
}

fn server(args: &[&str]) -> Out {
    run(Command::new(bin("vault-server")).args(args))
}

impl World {
    /// `vault-server ARGS`, naming the vault's blob store.
    fn server(&self, args: &[&str]) -> Out {
        run(Command::new(bin("vault-server")).args(args).args(self.v.store_flags()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.v.dir.path().join(name)
    }

    /// Uploads `content` as a new file; returns the recording's id.
    fn upload(&self, name: &str, content: &[u8]) -> String {
        let file = self.path(name);
        std::fs::write(&file, content).unwrap();
        let id =
            self.v.cli(&self.pbx, &["upload", &self.case, file.to_str().unwrap(), "--announced", "signal-tone"]).ok();
        assert!(id.starts_with("rec_"), "{id}");
        id
    }

    /// Fetches recording `id` as bob; returns the plaintext.
    fn fetch(&self, id: &str) -> Vec<u8> {
        let out = self.path(&format!("fetched-{id}-{}", vault_core::ids::random_hex16()));
        self.v.cli(&self.bob, &["fetch", id, "--reason", "complaint", "--out", out.to_str().unwrap()]).ok();
        std::fs::read(out).unwrap()
    }

    /// `vault-server backup` into `out`, started and left running.
    fn spawn_backup(&self, out: &Path) -> std::process::Child {
        Command::new(bin("vault-server"))
            .args(["backup", "--data-dir", self.v.data().to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(self.v.store_flags())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn backup(&self, out: &Path) -> Out {
        self.server(&["backup", "--data-dir", self.v.data().to_str().unwrap(), "--out", out.to_str().unwrap()])
    }

    /// Stops the server, restores `backup` as its data dir (keeping the old one aside as
    /// `data-before-N`) and serves it.
    fn restore_and_serve(&mut self, backup: &Path) -> Out {
        self.v.kill();
        let aside = self.path(&format!("data-before-{}", vault_core::ids::random_hex16()));
        std::fs::rename(self.v.data(), &aside).unwrap();
        let out = self.server(&[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data-dir",
            self.v.data().to_str().unwrap(),
            "--reason",
            "disk failure, ticket 42",
        ]);
        out.ok();
        self.v.restart();
        out
    }

    fn audit(&self, extra: &[&str]) -> Out {
        let mut args = vec!["--json", "audit", "verify", "--server-key", &self.key];
        args.extend_from_slice(extra);
        self.v.cli(&self.audrey, &args)
    }

    fn activity(&self, n: usize) {
        for _ in 0..n {
            self.v.cli(&self.v.admin, &["user", "list"]).ok();
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The recordings (signed, so listed and fetchable) a backup's database names.
fn signed_recordings(dir: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open_with_flags(dir.join("vault.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut stmt = db.prepare("SELECT id FROM recordings WHERE statement IS NOT NULL ORDER BY rowid").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

// Backups of either blob store: of an object store's, the database and keys, with every
// object checked where it is.
vault_tests::on_both_backends!(
    a_backup_taken_while_serving_restores_serves_and_fetches,
    a_backup_under_concurrent_uploads_is_consistent,
);

fn a_backup_taken_while_serving_restores_serves_and_fetches(backend: Backend) {
    let mut w = world_on(backend);
    let one = w.upload("one.wav", b"first call, plaintext that must not reach the server's disk");
    let two = w.upload("two.wav", &vec![7u8; 3 << 20]);
    let b = w.path("backup-1");
    let out = w.backup(&b);
    assert_eq!(out.ok(), b.to_str().unwrap());
    assert!(out.stderr.contains("2 recordings"), "{}", out.stderr);
    // The keys are private; no plaintext went into the backup.
    for k in ["jwt-key.pk8", "log-key.pk8"] {
        assert_eq!(mode(&b.join(k)), 0o600, "{k}");
    }
    assert_eq!(mode(&b.join("vault.db")), 0o600);
    assert!(grep_dir(&b, b"first call").is_empty());
    let manifest = json(&std::fs::read_to_string(b.join("backup.json")).unwrap());
    if backend == Backend::S3 {
        // The ciphertext stays in the object store; the backup names where.
        assert_eq!(manifest["blob_store"], "s3://vault/recordings");
        assert!(vault_tests::files_under(&b.join("blobs")).is_empty());
        assert!(out.stderr.contains("not in the backup"), "{}", out.stderr);
        // Checking it needs the store.
        server(&["verify", "--data-dir", b.to_str().unwrap()]).error("--blob-store s3://vault/recordings");
    } else {
        assert!(manifest.get("blob_store").is_none(), "{manifest}");
    }
    let size = manifest["log_size"].as_u64().unwrap();
    let checked = w.server(&["verify", "--data-dir", b.to_str().unwrap()]);
    assert!(checked.ok().contains("2 recordings"), "{}", checked.stdout);

    // What must be refused, changing nothing.
    w.backup(&b).error("exists; a backup is never written over anything");
    let served =
        run(Command::new(bin("vault-server")).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&b));
    served.error("is a backup");
    let busy = w.path("not-empty");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("x"), b"x").unwrap();
    w.server(&["restore", "--from", b.to_str().unwrap(), "--data-dir", busy.to_str().unwrap(), "--reason", "r"])
        .error("is not empty");
    w.server(&[
        "restore",
        "--from",
        b.to_str().unwrap(),
        "--data-dir",
        w.path("new").to_str().unwrap(),
        "--reason",
        "",
    ])
    .error("give the reason");
    assert!(!w.path("new").exists());

    // Written after the backup: lost by the restore.
    let three = w.upload("three.wav", b"after the backup");
    let restored = w.restore_and_serve(&b);
    assert_eq!(restored.stdout.trim(), size.to_string(), "the statement is the entry after the backup's last");
    assert!(restored.stderr.contains("R5"), "restore warns about destructions: {}", restored.stderr);
    assert_eq!(w.fetch(&one), b"first call, plaintext that must not reach the server's disk");
    assert_eq!(w.fetch(&two), vec![7u8; 3 << 20]);
    let gone = w.path("gone");
    let lost = w.v.cli(&w.bob, &["fetch", &three, "--reason", "x", "--out", gone.to_str().unwrap()]);
    assert_ne!(lost.code, 0, "a recording uploaded after the backup is gone");
    let (actor, action, reason, details): (String, String, String, String) =
        w.v.db()
            .query_row("SELECT actor, action, reason, details FROM access_log WHERE seq = ?1", [size as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
    assert_eq!(
        (actor.as_str(), action.as_str(), reason.as_str()),
        ("vault-server restore", "log-restore", "disk failure, ticket 42")
    );
    let details = json(&details);
    assert_eq!(details["backup_size"].as_u64(), Some(size));
    assert_eq!(details["backup_root"], manifest["log_root"]);
    // The restored vault verifies, blobs included, and a fresh auditor verifies it all.
    w.server(&["verify", "--blobs", "--data-dir", w.v.data().to_str().unwrap()]).ok();
    json(&w.audit(&["--full"]).ok());
}

fn a_backup_under_concurrent_uploads_is_consistent(backend: Backend) {
    let mut w = world_on(backend);
    w.upload("seed.wav", b"before");
    let base = w.v.cli_cmd(&w.pbx);
    let program = base.get_program().to_owned();
    let envs: Vec<_> = base.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
    let uploaders: Vec<_> = (0..3)
        .map(|t| {
            let (program, envs, case, dir) = (program.clone(), envs.clone(), w.case.clone(), w.v.dir.path().to_owned());
            std::thread::spawn(move || {
                let mut done = Vec::new();
                for i in 0..6 {
                    let content = format!("thread {t} call {i} ").repeat(20_000 + 1000 * i).into_bytes();
                    let file = dir.join(format!("up-{t}-{i}.wav"));
                    std::fs::write(&file, &content).unwrap();
                    let mut c = Command::new(&program);
                    for (k, v) in &envs {
                        match v {
                            Some(v) => c.env(k, v),
                            None => c.env_remove(k),
                        };
                    }
                    let o = c
                        .args(["upload", &case, file.to_str().unwrap(), "--announced", "signal-tone"])
                        .output()
                        .unwrap();
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                    done.push((String::from_utf8(o.stdout).unwrap().trim().to_owned(), content));
                }
                done
            })
        })
        .collect();
    // Backups, one after the other, for as long as the uploads go on (at least two).
    let mut backups = Vec::new();
    while backups.len() < 2 || !uploaders.iter().all(|u| u.is_finished()) {
        let b = w.path(&format!("backup-{}", backups.len()));
        w.backup(&b).ok();
        backups.push(b);
    }
    let mut uploaded: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    for u in uploaders {
        uploaded.extend(u.join().unwrap());
    }
    for b in &backups {
        w.server(&["verify", "--data-dir", b.to_str().unwrap()]).ok();
    }
    // The first backup, taken as the uploads began or while they went on: restore it.
    let b = &backups[0];
    let named = signed_recordings(b);
    assert!(!named.is_empty());
    w.restore_and_serve(b);
    for id in &named {
        let got = w.fetch(id);
        if let Some(want) = uploaded.get(id) {
            assert_eq!(&got, want, "{id}");
        } else {
            assert_eq!(got, b"before", "{id} is the seed");
        }
    }
    let full = json(&w.audit(&["--full"]).ok());
    assert_eq!(full["checked"], full["size"]);
}

#[test]
fn a_server_killed_during_a_backup_leaves_a_sound_backup_or_none() {
    let mut w = world();
    for i in 0..4 {
        w.upload(&format!("r{i}.wav"), &vec![i as u8; 2 << 20]);
    }
    let b = w.path("backup");
    let child = w.spawn_backup(&b);
    w.v.kill();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        server(&["verify", "--data-dir", b.to_str().unwrap()]).ok();
    } else {
        assert!(!b.exists(), "a failed backup left {}", b.display());
    }
    assert!(leftovers(w.v.dir.path()).is_empty(), "{:?}", leftovers(w.v.dir.path()));
    w.v.restart();
    w.activity(1);
    server(&["verify", "--blobs", "--data-dir", w.v.data().to_str().unwrap()]).ok();
}

/// Hidden directories a backup or restore works in, left in `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with('.'))
        .collect()
}

/// Replaces recording `id`'s blob in `data` with a named pipe, so that a backup reading
/// it blocks until something writes to the pipe; returns the real blob, moved aside.
fn blob_as_pipe(data: &Path, id: &str) -> PathBuf {
    let blob = data.join("blobs").join(format!("{id}.age"));
    let aside = data.join(format!("{id}.real"));
    std::fs::rename(&blob, &aside).unwrap();
    assert!(Command::new("mkfifo").arg(&blob).status().unwrap().success());
    aside
}

/// Waits (bounded) until `f` holds.
fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fail_a_backup_killed_half_way_leaves_nothing_restorable() {
    let mut w = world();
    let id = w.upload("r.wav", b"a call");
    w.v.kill();
    let real = blob_as_pipe(&w.v.data(), &id);
    let b = w.path("backup");
    let mut child = Command::new(bin("vault-server"))
        .args(["backup", "--data-dir", w.v.data().to_str().unwrap(), "--out", b.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The backup is now blocked reading the pipe, its database already copied.
    wait_for("the backup's working directory", || {
        leftovers(w.v.dir.path()).iter().any(|p| p.join("vault.db").exists())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!b.exists());
    let partial = leftovers(w.v.dir.path()).pop().unwrap();
    assert!(partial.file_name().unwrap().to_str().unwrap().contains(".partial-"), "{}", partial.display());
    let new = w.path("new");
    server(&["restore", "--from", partial.to_str().unwrap(), "--data-dir", new.to_str().unwrap(), "--reason", "r"])
        .error("is not a complete backup");
    assert!(!new.exists());
    run(Command::new(bin("vault-server")).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&partial))
        .error("interrupted half-way");
    // The vault itself is untouched.
    std::fs::remove_file(w.v.data().join("blobs").join(format!("{id}.age"))).unwrap();
    std::fs::rename(real, w.v.data().join("blobs").join(format!("{id}.age"))).unwrap();
    w.v.restart();
    assert_eq!(w.fetch(&id), b"a call");
}

#[test]
fn a_recording_purged_while_it_is_backed_up_makes_the_backup_start_again() {
    let w = world();
    // Blobs are copied in upload order: `first` is read before `old`.
    let first = w.upload("first.wav", b"kept");
    let file = w.path("old.wav");
    std::fs::write(&file, b"past retention").unwrap();
    let short =
        w.v.cli(
            &w.v.admin,
            &["case", "create", "--kind", "customer", "--title", "S", "--purpose", "sales", "--retention-days", "30"],
        )
        .ok();
    let old =
        w.v.cli(
            &w.pbx,
            &[
                "upload",
                &short,
                file.to_str().unwrap(),
                "--announced",
                "signal-tone",
                "--recorded-at",
                "2020-01-01T10:00:00Z",
            ],
        )
        .ok();
    let real = blob_as_pipe(&w.v.data(), &first);
    let content = std::fs::read(&real).unwrap();
    let pipe = w.v.data().join("blobs").join(format!("{first}.age"));
    let (at_pipe, go) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let (at_pipe_tx, at_pipe_rx) = at_pipe;
    let (go_tx, go_rx) = go;
    // Feeds the pipe to the first attempt once the purge is done (the real blob is back in
    // place by then, for the attempts that follow).
    let feeder = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&pipe).unwrap();
        at_pipe_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        std::io::Write::write_all(&mut f, &content).unwrap();
    });
    let b = w.path("backup");
    let child = w.spawn_backup(&b);
    at_pipe_rx.recv().unwrap();
    // The backup's snapshot names `old`; purged now, its blob is deleted.
    assert_eq!(server(&["purge", "--data-dir", w.v.data().to_str().unwrap()]).ok(), "1");
    std::fs::rename(&real, w.v.data().join("blobs").join(format!("{first}.age"))).unwrap();
    go_tx.send(()).unwrap();
    feeder.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("starting again from a new snapshot"), "{stderr}");
    let named = signed_recordings(&b);
    assert!(named.contains(&first) && !named.contains(&old), "{named:?}");
    server(&["verify", "--data-dir", b.to_str().unwrap()]).ok();
}

#[test]
fn fail_a_tampered_backup_is_refused() {
    let w = world();
    let id = w.upload("r.wav", &vec![1u8; 100_000]);
    w.upload("s.wav", b"another");
    let b = w.path("backup");
    w.backup(&b).ok();
    let blob = |dir: &Path| dir.join("blobs").join(format!("{id}.age"));
    let copy = |name: &str| {
        let to = w.path(name);
        assert!(Command::new("cp").arg("-a").arg(&b).arg(&to).status().unwrap().success());
        to
    };
    let flipped = copy("flipped");
    let mut bytes = std::fs::read(blob(&flipped)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(blob(&flipped), bytes).unwrap();
    let missing = copy("missing");
    std::fs::remove_file(blob(&missing)).unwrap();
    let cut = copy("cut");
    std::fs::OpenOptions::new().write(true).open(blob(&cut)).unwrap().set_len(10).unwrap();
    for (dir, needle) in [
        (&flipped, "SHA-256 is not the one its recorder signed"),
        (&missing, "its blob is missing"),
        (&cut, "its blob has 10 bytes"),
    ] {
        server(&["verify", "--data-dir", dir.to_str().unwrap()]).error(needle);
        let new = w.path(&format!("{}-restored", dir.file_name().unwrap().to_str().unwrap()));
        server(&["restore", "--from", dir.to_str().unwrap(), "--data-dir", new.to_str().unwrap(), "--reason", "r"])
            .error(needle);
        assert!(!new.exists());
    }
    // A log entry altered in the backup's database.
    let edited = copy("edited");
    let db = rusqlite::Connection::open(edited.join("vault.db")).unwrap();
    db.execute_batch("DROP TRIGGER access_log_no_update; UPDATE access_log SET reason = 'x' WHERE seq = 1;").unwrap();
    drop(db);
    server(&["verify", "--data-dir", edited.to_str().unwrap()]).error("entry 1");
    // The same blob check on the live vault.
    let mut bytes = std::fs::read(blob(&w.v.data())).unwrap();
    bytes[0] ^= 1;
    std::fs::write(blob(&w.v.data()), bytes).unwrap();
    server(&["verify", "--blobs", "--data-dir", w.v.data().to_str().unwrap()]).error("SHA-256");
}

#[test]
fn after_a_restore_auditors_refuse_until_they_accept_the_logged_statement() {
    let mut w = world();
    w.audit(&[]).ok();
    let b = w.path("backup");
    w.backup(&b).ok();
    let n = json(&std::fs::read_to_string(b.join("backup.json")).unwrap())["log_size"].as_u64().unwrap();
    w.activity(3);
    let pinned = json(&w.audit(&[]).ok())["size"].as_u64().unwrap();
    assert!(pinned > n);
    w.restore_and_serve(&b);
    // Refused, saying why and what to do; the pin is kept.
    for _ in 0..2 {
        let out = w.audit(&[]);
        out.error("VERIFICATION FAILED");
        assert!(out.stderr.contains("The server states it was restored from a backup"), "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!("The {} entries after it that you verified are lost", pinned - n)),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("--accept-restore"), "{}", out.stderr);
    }
    w.audit(&["--full"]).error("VERIFICATION FAILED");
    // Accepted only when asked: the loss is counted, the whole log verified and pinned.
    let accepted = json(&w.audit(&["--accept-restore"]).ok());
    assert_eq!(accepted["accepted_restore"].as_u64(), Some(n));
    assert_eq!(accepted["lost"].as_u64(), Some(pinned - n));
    assert_eq!(accepted["checked"], accepted["size"]);
    let cfg = w.v.dir.path().join("cfg-audrey").join("checkpoints");
    let kept: Vec<_> =
        std::fs::read_dir(&cfg).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(kept.iter().any(|f| f.contains(&format!("replaced-{pinned}"))), "{kept:?}");
    w.activity(1);
    let after = json(&w.audit(&[]).ok());
    assert_eq!(after["checked"].as_u64(), Some(0), "incremental again from the new pin");
    w.audit(&["--accept-restore"]).error("there is no restore to accept");
}

#[test]
fn fail_a_rollback_without_a_restore_statement_is_not_accepted() {
    let mut w = world();
    w.audit(&[]).ok();
    // A copy of the stopped vault, served again later without `restore`: a rollback the
    // log says nothing about, genuinely signed.
    w.v.kill();
    let old = w.path("old-data");
    assert!(Command::new("cp").arg("-a").arg(w.v.data()).arg(&old).status().unwrap().success());
    w.v.restart();
    w.activity(3);
    w.audit(&[]).ok();
    let cfg = w.v.dir.path().join("cfg-audrey").join("checkpoints");
    let pin_before = pins(&cfg);
    w.v.kill();
    std::fs::rename(w.v.data(), w.path("newer-data")).unwrap();
    std::fs::rename(&old, w.v.data()).unwrap();
    w.v.restart();
    let out = w.audit(&[]);
    out.error("VERIFICATION FAILED");
    assert!(out.stderr.contains("holds no restore statement"), "{}", out.stderr);
    w.audit(&["--accept-restore"]).error("REFUSED");
    assert_eq!(pins(&cfg), pin_before, "nothing was re-pinned");
}

/// The files of a pin directory and their contents.
fn pins(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}
