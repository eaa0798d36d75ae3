//! End-to-end tests: the real `vault-server` and `vault-cli` binaries on loopback.
//!
//! Each test starts its own server in a temporary directory. Every refusal is checked
//! three ways: the exit status (3 for access denied), the message, and the access-log
//! entry the server wrote for it.

use std::process::Command;

use vault_tests::{Backend, Out, Person, Vault, grep_dir, run};

/// A vault with alice (admin, custodian of one customer case), carol (second admin),
/// bob (investigator), pbx (recorder) and audrey (auditor).
struct World {
    v: Vault,
    alice: Person,
    carol: Person,
    bob: Person,
    pbx: Person,
    audrey: Person,
    case: String,
}

fn world() -> World {
    world_on(Backend::Local)
}

/// The world, with its recordings kept in `backend`.
fn world_on(backend: Backend) -> World {
    let v = Vault::start_on(backend);
    let alice = v.admin.clone();
    let carol = v.enrol("carol", "admin");
    let bob = v.enrol("bob", "investigator");
    let pbx = v.enrol("pbx", "recorder");
    let audrey = v.enrol("audrey", "auditor");
    let case = v
        .cli(
            &alice,
            &["case", "create", "--kind", "customer", "--title", "Complaints Q3", "--purpose", "complaint-handling"],
        )
        .ok();
    assert!(case.starts_with("case_"), "{case}");
    World { v, alice, carol, bob, pbx, audrey, case }
}

fn write(v: &Vault, name: &str, content: &[u8]) -> String {
    let p = v.dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_owned()
}

fn upload(w: &World, file: &str) -> String {
    let id = w.v.cli(&w.pbx, &["upload", &w.case, file, "--announced", "signal-tone"]).ok();
    assert!(id.starts_with("rec_"), "{id}");
    id
}

/// Asserts the newest log entry is a refusal of `action` by `actor`.
#[track_caller]
fn refused_logged(v: &Vault, actor: &str, action: &str) {
    let (a, act, outcome, _, details) = v.last_log();
    assert_eq!((a.as_str(), act.as_str(), outcome.as_str()), (actor, action, "refused"), "details: {details}");
}

fn age_tool() -> bool {
    Command::new("age").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn keygen_writes_a_private_identity_the_age_tool_can_use() {
    let v = Vault::start();
    let p = v.keygen("dora");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&p.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "identity file mode");
    let again = run(Command::new(vault_tests::bin("vault-cli")).args(["keygen", "--out"]).arg(&p.key));
    again.error("must not exist yet");

    assert!(age_tool(), "the `age` tool is needed for this test (apt-get install age)");
    let plain = write(&v, "hello.txt", b"interoperable\n");
    let ct = v.dir.path().join("hello.age");
    assert!(p.age_recipient().starts_with("age1") && p.recipient.starts_with("vault1"));
    run(Command::new("age").args(["-e", "-r", &p.age_recipient(), "-o"]).arg(&ct).arg(&plain)).ok();
    let dec = run(Command::new("age").args(["-d", "-i"]).arg(&p.key).arg(&ct));
    assert_eq!(dec.ok(), "interoperable");
}

/// An identity made by the `age` tool's own `age-keygen` is enrolled by its public id,
/// logs in, receives a grant and fetches: the signing key comes from the same file.
#[test]
fn an_identity_made_by_age_keygen_signs_in_and_fetches() {
    let w = world();
    let v = &w.v;
    assert!(age_tool(), "the `age` tool is needed for this test (apt-get install age)");
    let key = v.dir.path().join("erin.key");
    run(Command::new("age-keygen").arg("-o").arg(&key)).ok();
    let id = run(Command::new(vault_tests::bin("vault-cli")).arg("public-id").arg(&key)).ok();
    assert!(id.starts_with("vault1"), "{id}");
    let erin = Person { name: "erin".into(), key, recipient: id.clone() };
    assert_eq!(v.cli(&w.alice, &["user", "add", "erin", "--role", "investigator", "--recipient", &id]).ok(), "erin");
    // First login without a given root: the client pins it, showing the fingerprint the
    // operator has (as SSH shows a host key); the next login pins nothing new.
    let login = run(v.cli_cmd(&erin).env_remove("VAULT_TRUST_ROOT").arg("login"));
    login.ok();
    assert!(login.stderr.contains("trusting") && login.stderr.contains(&v.trust_root), "{}", login.stderr);
    let again = run(v.cli_cmd(&erin).env_remove("VAULT_TRUST_ROOT").arg("login"));
    again.ok();
    assert!(!again.stderr.contains("trusting"), "{}", again.stderr);
    // An empty fingerprint (a shell variable that was never set) is a mistake, not "any".
    run(v.cli_cmd(&erin).env("VAULT_TRUST_ROOT", "").arg("login")).error("set but empty");
    let rec = upload(&w, &write(v, "e.wav", b"for erin"));
    v.cli(&w.alice, &["grant", &w.case, "erin", "--reason", "review"]).ok();
    let out = v.dir.path().join("erin.out");
    let fetched = v.cli(&erin, &["fetch", &rec, "--reason", "review", "--out", out.to_str().unwrap()]);
    fetched.ok();
    assert!(
        fetched.stderr.contains("recorded by pbx") && fetched.stderr.contains("signature verified"),
        "{}",
        fetched.stderr
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"for erin");
}

// The tests of recordings' ciphertext, run once on each blob store.
vault_tests::on_both_backends!(
    whole_flow_upload_grant_fetch_revoke,
    fail_a_swapped_damaged_or_extended_blob_is_refused_at_fetch_and_nothing_is_written,
    garbage_and_cut_off_uploads_never_become_recordings,
    acknowledged_recordings_survive_a_killed_server_and_the_chain_stays_valid,
    recordings_at_chunk_edges_round_trip,
);

fn whole_flow_upload_grant_fetch_revoke(backend: Backend) {
    let w = world_on(backend);
    let v = &w.v;
    let marker = b"PLAINTEXT-MARKER-7f3a9c";
    let mut content = vec![0u8; 3 * 1024 * 1024 + 17];
    for (i, b) in content.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    content.extend_from_slice(marker);
    let file = write(v, "call-0612345678.wav", &content);
    let rec = upload(&w, &file);
    // The upload, then the recorder's signature on it, each logged.
    let (actor, action, outcome, _, details) = v.last_log();
    assert_eq!((actor.as_str(), action.as_str(), outcome.as_str()), ("pbx", "recording-sign", "allowed"));
    assert!(details.contains("type: recording") && details.contains(&rec), "{details}");
    let upload_entry: String = v
        .db()
        .query_row("SELECT details FROM access_log WHERE action = 'upload' ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert!(upload_entry.contains("crc32"), "{upload_entry}");
    // The hash on record is the one the recorder signed.
    let stored: String = v.db().query_row("SELECT sha256 FROM recordings WHERE id = ?1", [&rec], |r| r.get(0)).unwrap();
    assert!(stored.len() == 64 && details.contains(&format!("sha256: {stored}")), "{stored} {details}");

    // Before a grant: refused, nothing written.
    let out = v.dir.path().join("out.wav");
    let o = out.to_str().unwrap();
    v.cli(&w.bob, &["fetch", &rec, "--reason", "complaint 17", "--out", o]).denied("no grant");
    refused_logged(v, "bob", "fetch");
    assert!(!out.exists());

    v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "complaint 17"]).ok();
    let (_, action, outcome, reason, _) = v.last_log();
    assert_eq!((action.as_str(), outcome.as_str(), reason.as_str()), ("grant", "allowed", "complaint 17"));

    let list = v.cli(&w.bob, &["--json", "recordings", &w.case]).ok();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], rec.as_str());
    assert_eq!(list[0]["announced"], "signal-tone");
    // The file name is readable by the grantee only, decrypted on their machine.
    let named = v.cli(&w.bob, &["recordings", &w.case, "--names"]).ok();
    assert!(named.contains("call-0612345678.wav"), "{named}");
    v.cli(&w.audrey, &["recordings", &w.case, "--names"]).denied("needs the role admin or investigator");

    let fetched = v.cli(&w.bob, &["fetch", &rec, "--reason", "complaint 17", "--out", o]);
    assert_eq!(fetched.ok(), o);
    // The file name travelled encrypted to the case and is readable by the grantee only.
    assert!(fetched.stderr.contains("uploaded as call-0612345678.wav"), "{}", fetched.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), content, "fetched plaintext differs");
    let (actor, action, outcome, reason, _) = v.last_log();
    assert_eq!(
        (actor.as_str(), action.as_str(), outcome.as_str(), reason.as_str()),
        ("bob", "fetch", "allowed", "complaint 17")
    );

    let show: serde_json::Value =
        serde_json::from_str(&v.cli(&w.alice, &["--json", "case", "show", &w.case]).ok()).unwrap();
    assert_eq!(show["grants"][0]["user"], "bob");
    assert_eq!(show["grants"][0]["status"], "active");
    assert_eq!(show["custodians"][0], "alice");
    assert_eq!(show["recordings"], 1);

    // Nothing secret at rest on the server or in its log.
    assert_eq!(v.blob_files().len(), 1, "the recording's ciphertext is not where the vault keeps it");
    for needle in [&marker[..], b"call-0612345678", b"AGE-SECRET-KEY-1", b"complaint-handling-secret"] {
        let mut hits = grep_dir(&v.data(), needle);
        if let Some(s3) = &v.s3 {
            hits.extend(grep_dir(s3.dir.path(), needle));
        }
        assert!(hits.is_empty(), "{:?} found in {hits:?}", String::from_utf8_lossy(needle));
    }
    let server_log = std::fs::read_to_string(v.server_log()).unwrap();
    assert!(!server_log.contains("PLAINTEXT-MARKER") && !server_log.contains("AGE-SECRET-KEY"));
    assert!(!server_log.contains("Bearer "), "tokens must not be logged");

    // Session tokens are cached privately.
    use std::os::unix::fs::PermissionsExt;
    let tokens = vault_tests::files_under(&v.dir.path().join("cfg-bob").join("tokens"));
    assert_eq!(tokens.len(), 1);
    assert_eq!(std::fs::metadata(&tokens[0]).unwrap().permissions().mode() & 0o777, 0o600, "token cache mode");

    // Revocation takes effect at once, even with bob's cached token.
    v.cli(&w.alice, &["revoke", &w.case, "bob", "--reason", "complaint closed"]).ok();
    assert_eq!(v.count("SELECT count(*) FROM envelopes WHERE holder = 'bob'"), 0, "revoked envelope kept");
    let out2 = v.dir.path().join("out2.wav");
    v.cli(&w.bob, &["fetch", &rec, "--reason", "again", "--out", out2.to_str().unwrap()]).denied("revoked");
    refused_logged(v, "bob", "fetch");
    assert!(!out2.exists());
    v.cli(&w.bob, &["recordings", &w.case]).denied("revoked");
}

fn fail_a_swapped_damaged_or_extended_blob_is_refused_at_fetch_and_nothing_is_written(backend: Backend) {
    let w = world_on(backend);
    let v = &w.v;
    // Larger than one transfer chunk (256 KiB), so the damage lands mid-stream.
    let a_content: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    let b_content: Vec<u8> = (0..700_000u32).map(|i| (i % 247) as u8).collect();
    let a = upload(&w, &write(v, "a.wav", &a_content));
    let b = upload(&w, &write(v, "b.wav", &b_content));
    assert_ne!(a, b);
    v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "complaint 18"]).ok();
    let blob = |id: &str| v.blob_path(id);
    let original = std::fs::read(blob(&a)).unwrap();
    let out = v.dir.path().join("out.wav");
    let o = out.to_str().unwrap();

    // Another recording of the same case decrypts with the same key. Its size tells them
    // apart here (age adds random padding to each header), and the server says so ...
    std::fs::copy(blob(&b), blob(&a)).unwrap();
    v.cli(&w.bob, &["fetch", &a, "--reason", "complaint 18", "--out", o]).error("is damaged on the server");
    assert!(!out.exists(), "a swapped recording must not be written");
    // ... and where size and hash were rewritten to match, the recorder's signature does
    // not: b's blob under a's id, with b's size, hash and signed statement, is refused.
    let db = v.db_rw();
    let row = |id: &str| -> (i64, String, String) {
        db.query_row("SELECT size, sha256, statement FROM recordings WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap()
    };
    let (a_row, b_row) = (row(&a), row(&b));
    let set = |r: &(i64, String, String)| {
        db.execute(
            "UPDATE recordings SET size = ?1, sha256 = ?2, statement = ?3 WHERE id = ?4",
            rusqlite::params![r.0, r.1, r.2, a],
        )
        .unwrap()
    };
    set(&b_row);
    v.cli(&w.bob, &["fetch", &a, "--reason", "complaint 18", "--out", o]).error(&format!("not {a}"));
    assert!(!out.exists(), "a recording that is not the one recorded must not be written");
    // The server's own record of the hash is not what the fetch trusts: with a's blob
    // back, a wrong stored SHA-256 changes nothing.
    set(&a_row);
    std::fs::write(blob(&a), &original).unwrap();
    db.execute("UPDATE recordings SET sha256 = ?1 WHERE id = ?2", [&"0".repeat(64), &a]).unwrap();
    v.cli(&w.bob, &["fetch", &a, "--reason", "complaint 18", "--out", o]).ok();
    std::fs::remove_file(&out).unwrap();
    set(&a_row);

    let mut damaged = original.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x01;
    std::fs::write(blob(&a), &damaged).unwrap();
    v.cli(&w.bob, &["fetch", &a, "--reason", "complaint 18", "--out", o]).error("cannot decrypt recording");
    assert!(!out.exists(), "a damaged recording must not be written");

    let mut extended = original.clone();
    extended.extend_from_slice(b"appended");
    std::fs::write(blob(&a), &extended).unwrap();
    v.cli(&w.bob, &["fetch", &a, "--reason", "complaint 18", "--out", o]).error("is damaged on the server");
    assert!(!out.exists(), "an extended recording must not be written");

    // Put back, it fetches; nothing else is left beside --out.
    std::fs::write(blob(&a), &original).unwrap();
    v.cli(&w.bob, &["fetch", &a, "--reason", "complaint 18", "--out", o]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), a_content);
    let stray: Vec<_> = std::fs::read_dir(v.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".vault-fetch-"))
        .collect();
    assert!(stray.is_empty(), "temporary files left behind: {stray:?}");
}

#[test]
fn fetched_recording_decrypts_with_the_age_tool_too() {
    // The stored format is plain age: a grantee could decrypt with standard tools.
    let w = world();
    let v = &w.v;
    let file = write(v, "c.wav", b"standard format all the way down");
    let rec = upload(&w, &file);
    let blob = v.data().join("blobs").join(format!("{rec}.age"));
    assert!(blob.exists());
    let head = std::fs::read(&blob).unwrap();
    assert!(head.starts_with(b"age-encryption.org/v1\n"));
    // The admin's own identity cannot open it: it is encrypted to the case key only.
    assert!(age_tool(), "the `age` tool is needed for this test");
    let o = run(Command::new("age").args(["-d", "-i"]).arg(&w.alice.key).arg(&blob));
    assert_ne!(o.code, 0, "the admin's identity decrypted a recording directly");

    // A grantee needs nothing from the vault but its two stored files: the standard tool
    // opens their envelope with their own identity, and the recording with the case key
    // inside. The recording spans several 64 KiB chunks and ends in a partial one, so
    // this checks the CLI's STREAM encryption against the age tool.
    let alice_envelope: Vec<u8> = v
        .db()
        .query_row("SELECT envelope FROM envelopes WHERE case_id = ?1 AND holder = 'alice'", [&w.case], |r| r.get(0))
        .unwrap();
    let env_file = write(v, "alice.envelope", &alice_envelope);
    let o = run(Command::new("age").args(["-d", "-i"]).arg(&w.alice.key).arg(&env_file));
    assert_eq!(o.code, 0, "age -d of the envelope: {}", o.stderr);
    let case_key = write(v, "case.key", o.stdout.as_bytes());
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let big = write(v, "d.wav", &content);
    let rec = upload(&w, &big);
    let blob = v.data().join("blobs").join(format!("{rec}.age"));
    let out = v.dir.path().join("d.age-tool.wav");
    let o = run(Command::new("age").args(["-d", "-i"]).arg(&case_key).arg("-o").arg(&out).arg(&blob));
    assert_eq!(o.code, 0, "age -d of the recording with the case key: {}", o.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), content);
}

#[test]
fn roles_are_enforced_and_each_refusal_is_logged() {
    let w = world();
    let v = &w.v;
    let file = write(v, "a.wav", b"some call");
    let rec = upload(&w, &file);

    // Recorders read nothing, not even the list.
    v.cli(&w.pbx, &["recordings", &w.case]).denied("needs the role");
    refused_logged(v, "pbx", "recording-list");
    v.cli(&w.pbx, &["case", "list"]).denied("needs the role");
    refused_logged(v, "pbx", "case-list");
    let out = v.dir.path().join("x").to_str().unwrap().to_owned();
    v.cli(&w.pbx, &["fetch", &rec, "--reason", "r", "--out", &out]).denied("needs the role");
    refused_logged(v, "pbx", "fetch");

    // Investigators and auditors cannot upload, enrol or create cases.
    v.cli(&w.bob, &["upload", &w.case, &file]).denied("needs the role recorder");
    refused_logged(v, "bob", "case-recipient");
    let stranger = v.keygen("eve");
    v.cli(&w.bob, &["user", "add", "eve", "--role", "admin", "--recipient", &stranger.recipient])
        .denied("needs the role admin");
    refused_logged(v, "bob", "user-add");
    v.cli(&w.audrey, &["case", "create", "--kind", "customer", "--title", "t", "--purpose", "sales"])
        .denied("needs the role admin");
    refused_logged(v, "audrey", "case-create");
    v.cli(&w.pbx, &["user", "list"]).denied("needs the role admin");

    // Auditors see metadata but can fetch nothing and can never be granted.
    let list = v.cli(&w.audrey, &["--json", "recordings", &w.case]).ok();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], rec.as_str());
    assert!(list[0]["meta"].is_null(), "auditors must not get call metadata");
    v.cli(&w.audrey, &["fetch", &rec, "--reason", "r", "--out", &out]).denied("needs the role");
    refused_logged(v, "audrey", "fetch");
    v.cli(&w.alice, &["grant", &w.case, "audrey", "--reason", "r"]).denied("only investigators and admins");
    refused_logged(v, "alice", "grant");
    v.cli(&w.alice, &["grant", &w.case, "pbx", "--reason", "r"]).denied("only investigators and admins");

    // Admins: never to self, only custodians grant, and no fetch without a grant.
    v.cli(&w.alice, &["grant", &w.case, "alice", "--reason", "me"]).denied("cannot grant yourself");
    refused_logged(v, "alice", "grant");
    v.cli(&w.carol, &["grant", &w.case, "bob", "--reason", "r"]).denied("not a custodian");
    refused_logged(v, "carol", "case-key");
    v.cli(&w.alice, &["fetch", &rec, "--reason", "curious", "--out", &out]).denied("no grant");
    refused_logged(v, "alice", "fetch");
    // A second admin granted by the custodian may fetch.
    v.cli(&w.alice, &["grant", &w.case, "carol", "--reason", "second reviewer"]).ok();
    v.cli(&w.carol, &["fetch", &rec, "--reason", "review", "--out", &out]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), b"some call");
}

#[test]
fn disabled_users_are_refused_at_once_despite_a_valid_token() {
    let w = world();
    let v = &w.v;
    let file = write(v, "a.wav", b"call");
    let rec = upload(&w, &file);
    v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "r"]).ok();
    v.cli(&w.bob, &["recordings", &w.case]).ok(); // caches bob's token
    v.cli(&w.alice, &["user", "disable", "bob"]).ok();
    let out = v.dir.path().join("o").to_str().unwrap().to_owned();
    v.cli(&w.bob, &["fetch", &rec, "--reason", "r", "--out", &out]).denied("disabled");
    // (The CLI reads the trust material beside the fetch, refused too, in either order.)
    let last_two: Vec<(String, String)> = {
        let db = v.db();
        let mut st =
            db.prepare("SELECT action, outcome FROM access_log WHERE actor = 'bob' ORDER BY seq DESC LIMIT 2").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    assert!(last_two.contains(&("fetch".into(), "refused".into())), "{last_two:?}");
    // Logging in again does not help.
    v.cli(&w.bob, &["login"]).denied("login failed");
    refused_logged(v, "bob", "login-challenge");
    let show: serde_json::Value =
        serde_json::from_str(&v.cli(&w.alice, &["--json", "case", "show", &w.case]).ok()).unwrap();
    assert_eq!(show["grants"][0]["status"], "revoked");
    v.cli(&w.alice, &["user", "disable", "alice"]).error("cannot disable yourself");
    let users = v.cli(&w.alice, &["user", "list"]).ok();
    assert!(users.lines().any(|l| l.starts_with("bob") && l.contains("disabled")), "{users}");
}

#[test]
fn login_refuses_wrong_identity_and_unknown_users() {
    let w = world();
    let v = &w.v;
    let mallory = Person { name: "bob".into(), ..v.keygen("mallory") };
    v.cli(&mallory, &["login"]).denied("not the one enrolled");
    let ghost = v.keygen("ghost");
    v.cli(&ghost, &["login"]).denied("not the one enrolled");
    refused_logged(v, "ghost", "login-challenge");
    // A garbage identity file is a clear local error.
    let bad = Person { key: v.dir.path().join("junk.key"), ..w.bob.clone() };
    std::fs::write(&bad.key, "not a key\n").unwrap();
    v.cli(&bad, &["login"]).error("not an age X25519 identity file");
    // Login answers challenges only for this server: a relayed challenge names another.
    let o = run(v.cli_cmd(&w.bob).env("VAULT_SERVER", v.url.replace("127.0.0.1", "localhost")).arg("login"));
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("possible relay"), "{}", o.stderr);
}

#[test]
fn forged_and_confused_tokens_are_refused_and_logged() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    let w = world();
    let v = &w.v;
    v.cli(&w.bob, &["login"]).ok();
    let good = v.token(&w.bob);
    let (status, _) = v.raw("GET", &format!("/v1/cases/{}", w.case), Some(&good), &[], b"");
    assert_eq!(status, 403, "bob has no grant");
    let parts: Vec<&str> = good.split('.').collect();
    let claims: serde_json::Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
    // bob's claims with sub changed to alice, signature kept.
    let mut elevated = claims.clone();
    elevated["sub"] = "alice".into();
    let forged = format!("{}.{}.{}", parts[0], B64URL.encode(elevated.to_string()), parts[2]);
    // alg "none" and HS256 confusion.
    let none = format!("{}.{}.", B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let hs = format!("{}.{}.{}", B64URL.encode(r#"{"alg":"HS256","typ":"JWT"}"#), parts[1], parts[2]);
    let mut expired = claims.clone();
    expired["exp"] = 1_000_000.into();
    let expired = format!("{}.{}.{}", parts[0], B64URL.encode(expired.to_string()), parts[2]);
    for bad in [forged.as_str(), none.as_str(), hs.as_str(), expired.as_str(), "garbage"] {
        let before = v.log_len();
        let (status, body) = v.raw("GET", "/v1/users", Some(bad), &[], b"");
        assert_eq!(status, 401, "token {bad} gave {status} {body}");
        assert!(body.contains("vault-cli login"), "{body}");
        assert_eq!(v.log_len(), before + 1, "refusal not logged");
        refused_logged(v, "-", "user-list");
    }
    let (status, _) = v.raw("GET", "/v1/users", None, &[], b"");
    assert_eq!(status, 401);
}

#[test]
fn bad_ids_are_refused_without_touching_anything() {
    let w = world();
    let v = &w.v;
    let file = write(v, "a.wav", b"x");
    upload(&w, &file);
    // The CLI refuses malformed ids itself (usage error)...
    v.cli(&w.bob, &["fetch", "../../etc/passwd", "--reason", "r", "--out", "o"]).usage("not valid");
    v.cli(&w.alice, &["case", "show", "case_123"]).usage("not valid");
    // ...and the server refuses them too, logged, whatever a client sends.
    v.cli(&w.alice, &["login"]).ok();
    let token = v.token(&w.alice);
    for path in ["/v1/cases/..%2F..%2Fetc%2Fpasswd", "/v1/cases/case_ZZ", "/v1/users/..%2Fx"] {
        let (status, body) = v.raw("GET", path, Some(&token), &[], b"");
        assert_eq!(status, 400, "{path}: {body}");
        refused_logged(v, "alice", if path.contains("users") { "user-show" } else { "case-show" });
    }
    // Unknown but well-formed ids: admins learn it does not exist; investigators
    // cannot tell it apart from a case that is not theirs.
    let unknown = "case_0123456789abcdef0123456789abcdef";
    v.cli(&w.alice, &["case", "show", unknown]).error("no case");
    v.cli(&w.bob, &["case", "show", unknown]).denied("no grant on this case (or it does not exist)");
    v.cli(&w.bob, &["case", "show", &w.case]).denied("no grant on this case (or it does not exist)");
    let out = v.dir.path().join("o").to_str().unwrap().to_owned();
    v.cli(&w.bob, &["fetch", "rec_0123456789abcdef0123456789abcdef", "--reason", "r", "--out", &out])
        .denied("(or it does not exist)");
    assert_eq!(v.count("SELECT count(*) FROM recordings"), 1);
}

fn garbage_and_cut_off_uploads_never_become_recordings(backend: Backend) {
    let w = world_on(backend);
    let v = &w.v;
    v.cli(&w.pbx, &["login"]).ok();
    let token = v.token(&w.pbx);
    let path = format!("/v1/cases/{}/recordings?announced=signal-tone", w.case);

    // Not age ciphertext.
    let (status, body) = v.raw("POST", &path, Some(&token), &[], b"RIFF\x00\x00WAVEfmt plain audio");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not age ciphertext"), "{body}");
    refused_logged(v, "pbx", "upload");

    // An age header that never completes.
    let (status, _) = v.raw("POST", &path, Some(&token), &[], b"age-encryption.org/v1\n-> X25519 abc\n");
    assert_eq!(status, 400);

    // A real age stream, cut off mid-body by the client hanging up.
    let file = write(v, "big.wav", &vec![7u8; 2 * 1024 * 1024]);
    let full = {
        let up = v.cli(&w.pbx, &["--json", "upload", &w.case, &file]).ok();
        let info: serde_json::Value = serde_json::from_str(&up).unwrap();
        std::fs::read(v.blob_path(info["id"].as_str().unwrap())).unwrap()
    };
    let recordings = v.count("SELECT count(*) FROM recordings");
    let half = &full[..full.len() / 2];
    let mut framed = format!("{:x}\r\n", half.len()).into_bytes();
    framed.extend_from_slice(half);
    v.raw("POST", &path, Some(&token), &[("transfer-encoding", "chunked"), ("x-test-cut", "1")], &framed);
    // Also a fixed-length body that ends early.
    let len = full.len().to_string();
    v.raw("POST", &path, Some(&token), &[("content-length", &len), ("x-test-cut", "1")], half);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(v.count("SELECT count(*) FROM recordings"), recordings, "a cut-off upload became a recording");
    let blobs = v.blob_files().len() as i64;
    assert_eq!(blobs, recordings, "stray blob left behind");
    assert!(vault_tests::files_under(&v.data().join("tmp")).is_empty(), "partial upload left in tmp");
}

#[test]
fn case_rules_at_creation_and_upload() {
    let w = world();
    let v = &w.v;
    let a = &w.alice;
    // Missing fields name the field and the reason.
    v.cli(a, &["case", "create", "--kind", "customer", "--title", "t"]).error("needs --purpose");
    v.cli(
        a,
        &[
            "case",
            "create",
            "--kind",
            "employee",
            "--title",
            "t",
            "--reason",
            "quality",
            "--ap-informed",
            "2026-01-05",
            "--dpia-ref",
            "D1",
        ],
    )
    .error("--works-council-ref REF or --no-works-council");
    v.cli(a, &["case", "create", "--kind", "covert", "--title", "t", "--dpia-ref", "D2"]).error("needs --suspicion");
    let employee = v
        .cli(
            a,
            &[
                "case",
                "create",
                "--kind",
                "employee",
                "--title",
                "Call centre",
                "--reason",
                "quality",
                "--no-works-council",
                "--ap-informed",
                "2026-01-05",
                "--dpia-ref",
                "D1",
            ],
        )
        .ok();
    assert!(employee.starts_with("case_"));

    // Covert: pending approval, no recordings until approved; unannounced allowed then.
    let covert = v
        .cli(
            a,
            &[
                "case",
                "create",
                "--kind",
                "covert",
                "--title",
                "Fraud",
                "--suspicion",
                "theft of customer data",
                "--dpia-ref",
                "D3",
            ],
        )
        .ok();
    let file = write(v, "c.wav", b"covert call");
    v.cli(&w.pbx, &["upload", &covert, &file, "--announced", "none"]).denied("AP's prior-check approval");
    refused_logged(v, "pbx", "case-recipient");
    v.cli(a, &["case", "approve", &covert, "--ap-ref", "AP-2026-77"]).ok();
    let rec = v.cli(&w.pbx, &["upload", &covert, &file, "--announced", "none"]).ok();
    assert!(rec.starts_with("rec_"));

    // Unannounced recordings are refused outside covert cases.
    v.cli(&w.pbx, &["upload", &w.case, &file, "--announced", "none"]).error("must have been announced");
    refused_logged(v, "pbx", "upload");
    v.cli(&w.pbx, &["upload", &employee, &file, "--announced", "none"]).error("must have been announced");

    // Covert grants wait for a second admin.
    v.cli(a, &["grant", &covert, "bob", "--reason", "investigation"]).ok();
    let out = v.dir.path().join("cv").to_str().unwrap().to_owned();
    v.cli(&w.bob, &["fetch", &rec, "--reason", "r", "--out", &out]).denied("second admin");
    v.cli(a, &["grant", "approve", &covert, "bob"]).denied("four eyes");
    v.cli(&w.carol, &["grant", "approve", &covert, "bob"]).ok();
    v.cli(a, &["grant", "deliver", &covert, "bob"]).ok();
    v.cli(&w.bob, &["fetch", &rec, "--reason", "r", "--out", &out]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), b"covert call");
}

#[test]
fn server_refuses_uninitialised_dirs_and_double_init() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |d: &std::path::Path| {
        run(Command::new(vault_tests::bin("vault-server"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(d))
    };
    let o = serve(&dir.path().join("missing"));
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("vault-server init"), "{}", o.stderr);
    let o = serve(dir.path());
    assert!(o.stderr.contains("not an initialised vault"), "{}", o.stderr);

    let w = world();
    let o = run(Command::new(vault_tests::bin("vault-server")).args(["init", "--data-dir"]).arg(w.v.data()).args([
        "--admin",
        "zed",
        "--recipient",
        &w.alice.recipient,
    ]));
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("already holds a vault"), "{}", o.stderr);
    let o = run(Command::new(vault_tests::bin("vault-server"))
        .args(["init", "--data-dir"])
        .arg(dir.path().join("new"))
        .args(["--admin", "zed", "--recipient", "age1notarecipient"]));
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("bare age recipient, which carries no signing key"), "{}", o.stderr);
    assert!(!dir.path().join("new").join("vault.db").exists());
}

fn acknowledged_recordings_survive_a_killed_server_and_the_chain_stays_valid(backend: Backend) {
    let mut w = world_on(backend);
    let file = write(&w.v, "k.wav", b"survives");
    let rec = upload(&w, &file);
    w.v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "r"]).ok();
    w.v.kill();
    let verify = run(Command::new(vault_tests::bin("vault-server"))
        .args(["verify", "--blobs", "--data-dir"])
        .arg(w.v.data())
        .args(w.v.store_flags()));
    assert!(verify.ok().starts_with("ok: "), "{verify:?}");
    assert!(verify.stderr.contains("every blob of the 1 recordings is present"), "{verify:?}");
    w.v.restart();
    let out = w.v.dir.path().join("after").to_str().unwrap().to_owned();
    w.v.cli(&w.bob, &["fetch", &rec, "--reason", "after restart", "--out", &out]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), b"survives");
}

#[test]
fn a_tampered_log_stops_the_server_from_serving() {
    let mut w = world();
    w.v.kill();
    let db = w.v.db_rw();
    db.execute_batch("DROP TRIGGER access_log_no_update; UPDATE access_log SET actor = 'mallory' WHERE seq = 1;")
        .unwrap();
    drop(db);
    let verify = run(Command::new(vault_tests::bin("vault-server")).args(["verify", "--data-dir"]).arg(w.v.data()));
    assert_eq!(verify.code, 1);
    assert!(verify.stderr.contains("entry 1:"), "{}", verify.stderr);
    let serve = run(Command::new(vault_tests::bin("vault-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(w.v.data()));
    assert_eq!(serve.code, 1);
    assert!(serve.stderr.contains("access log is broken"), "{}", serve.stderr);
    let _: &Out = &serve;
}

#[test]
fn requests_fail_closed_when_the_access_log_cannot_be_written() {
    let w = world();
    let v = &w.v;
    let file = write(v, "a.wav", b"must not leak");
    let rec = upload(&w, &file);
    v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "r"]).ok();
    v.cli(&w.bob, &["recordings", &w.case]).ok();
    let recordings = v.count("SELECT count(*) FROM recordings");

    // Make every log append fail, as a full disk or a damaged table would.
    let db = v.db_rw();
    db.execute_batch(
        "CREATE TRIGGER broken_log BEFORE INSERT ON access_log BEGIN SELECT RAISE(ABORT, 'log unavailable'); END;",
    )
    .unwrap();
    let out = v.dir.path().join("leak.wav");
    v.cli(&w.bob, &["fetch", &rec, "--reason", "r", "--out", out.to_str().unwrap()]).error("internal server error");
    assert!(!out.exists(), "a recording was served without an access-log entry");
    v.cli(&w.pbx, &["upload", &w.case, &file]).error("internal server error");
    assert_eq!(v.count("SELECT count(*) FROM recordings"), recordings, "an upload was stored without a log entry");
    assert_eq!(vault_tests::files_under(&v.data().join("blobs")).len() as i64, recordings, "stray blob");
    v.cli(&w.alice, &["revoke", &w.case, "bob", "--reason", "r"]).error("internal server error");
    assert_eq!(
        v.count("SELECT count(*) FROM grants WHERE status = 'revoked'"),
        0,
        "a change was kept without its log entry"
    );

    db.execute_batch("DROP TRIGGER broken_log;").unwrap();
    v.cli(&w.bob, &["fetch", &rec, "--reason", "r", "--out", out.to_str().unwrap()]).ok();
}

fn recordings_at_chunk_edges_round_trip(backend: Backend) {
    // Sizes at the edges of age's 64 KiB chunks (where the last chunk is full, or holds
    // one byte) and of the CLI's 256 KiB transfer chunks, including an empty recording.
    let w = world_on(backend);
    let v = &w.v;
    v.cli(&w.alice, &["grant", &w.case, "bob", "--reason", "edges"]).ok();
    // And of the object store's 8 MiB parts: one request below, a multipart upload above.
    for n in [0usize, 1, 65_535, 65_536, 65_537, 262_144, 262_145, 3 * 65_536, 8_300_000, 8_388_608, 17_000_000] {
        let content: Vec<u8> = (0..n).map(|i| (i * 31 % 256) as u8).collect();
        let file = write(v, &format!("edge-{n}.wav"), &content);
        let rec = upload(&w, &file);
        let blob = std::fs::metadata(v.blob_path(&rec)).unwrap().len() as usize;
        let chunks = n.div_ceil(65_536).max(1);
        assert!(blob > n + 16 * chunks + 16, "{n} bytes: blob of {blob} bytes is too short for age");
        let out = v.dir.path().join(format!("edge-{n}.out"));
        v.cli(&w.bob, &["fetch", &rec, "--reason", "edges", "--out", out.to_str().unwrap()]).ok();
        assert_eq!(std::fs::read(&out).unwrap(), content, "{n} bytes");
    }
}
