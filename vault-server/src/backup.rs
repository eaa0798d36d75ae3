//! Backups of a data directory taken while it is served, their verification, and
//! restoring one into a new data directory.
//!
//! A backup is the database as of one commit (`VACUUM INTO`, which never holds up the
//! server's writer), then the blob of every recording that snapshot names, then the
//! server's keys: in that order, because blobs are only ever created before their row and
//! deleted after it (`blobs`, `retention`), so every blob a snapshot names either still
//! exists or was destroyed after the snapshot was taken. The second case makes the
//! attempt start again from a fresh snapshot (a bounded number of times), so a backup
//! never names a blob it lacks. It is written into a hidden sibling directory, verified
//! there (chain, tree, every named blob with its size and SHA-256), and only then given
//! its manifest and renamed into place: a backup interrupted at any point has no
//! manifest, and `restore` refuses it.
//!
//! Restoring appends a `log-restore` entry to the restored log, which names the backup's
//! log size and tree head: the server's signed, logged statement that entries after that
//! point are lost, which auditors whose pin is past it check before they accept it
//! (`vault-cli audit verify --accept-restore`).

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use vault_core::ids::RecordingId;
use vault_core::log::{Action, Outcome};
use zeroize::Zeroizing;

use crate::accesslog::{self, LogRecord};
use crate::blobs::{BlobStore, Listed, LocalBlobs, ObjectBlobs};
use crate::clock::now_rfc3339;
use crate::datadir::DataDir;
use crate::db::{self, Db};
use crate::server_keys;
use crate::store::Store;

/// The file a complete backup holds, written last.
pub const MANIFEST: &str = "backup.json";
/// The file a backup in progress holds, written first and removed once the manifest is
/// written: a directory with it is neither restored nor served.
pub const INCOMPLETE: &str = "backup-incomplete";
/// The manifest's `format`.
const FORMAT: &str = "recording-vault-backup/1";
/// Snapshots tried before giving up when recordings keep being destroyed under a backup.
const ATTEMPTS: usize = 5;
/// The actor of a restore's log entry.
const RESTORE_ACTOR: &str = "vault-server restore";

/// What a backup holds, in its `backup.json`. Nothing in it is secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// When the database snapshot was taken (RFC 3339, UTC).
    pub taken_at: String,
    pub log_origin: String,
    /// Entries in the backup's access log.
    pub log_size: u64,
    /// The Merkle tree head of those entries (base64), as checkpoints sign it.
    pub log_root: String,
    /// The hash of the last entry (hex).
    pub log_head: String,
    /// Recordings the database names, each with its blob.
    pub recordings: u64,
    pub blob_bytes: u64,
    /// The key files, by name.
    pub keys: Vec<String>,
    /// Where the recordings' ciphertext is, when it is not in the backup: the object
    /// store (`s3://bucket/prefix`), whose own replication keeps it (README, "Object
    /// storage"). Absent: the backup's `blobs/` holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_store: Option<String>,
}

/// What a verification found sound.
#[derive(Debug, Clone)]
pub struct Checked {
    pub log_origin: String,
    pub entries: u64,
    pub root: [u8; 32],
    pub head: [u8; 32],
    pub recordings: u64,
    pub blob_bytes: u64,
    /// Recordings of a backup whose objects the object store no longer has: destroyed
    /// or purged after the backup was taken (the store is not part of the backup).
    pub gone: Vec<RecordingId>,
}

/// A blob the snapshot names that was gone when it was to be copied: its recording was
/// destroyed or purged after the snapshot. Makes the backup start again.
#[derive(Debug, thiserror::Error)]
#[error("the blob of recording {0} was deleted while the backup was taken")]
struct BlobGone(RecordingId);

/// The server's keys changed while the backup was taken (`rotate-key` ran beside it), or
/// the snapshot and the keys copied do not belong together. Makes the backup start again:
/// a database and keys from either side of a rotation would restore into a vault whose
/// checkpoints no auditor's client accepts.
#[derive(Debug, thiserror::Error)]
#[error("the server's keys changed while the backup was taken ({0})")]
struct KeysChanged(String);

/// A digest of the key files of `dir` (names and contents), to see whether they changed.
fn keys_digest(dir: &DataDir) -> anyhow::Result<[u8; 32]> {
    let mut all = Zeroizing::new(Vec::new());
    for key in dir.key_files() {
        all.extend_from_slice(key.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        all.push(0);
        all.extend_from_slice(&Zeroizing::new(
            fs::read(&key).with_context(|| format!("cannot read {}", key.display()))?,
        ));
        all.push(0);
    }
    Ok(vault_core::sha256(&all))
}

/// Takes a backup of the data directory `dir` (served or not; `serve`'s lock is neither
/// needed nor taken) into the new directory `out`, and verifies it. With `link`, blobs
/// are hard-linked rather than copied where `out` is on the same filesystem (blobs are
/// never modified once in `blobs/`, so a link is a copy that takes no space). `blobs` is
/// the data dir's blob store: an object store's objects are not copied but checked to be
/// there, each with its size. Blocking.
pub fn backup(dir: &DataDir, out: &Path, link: bool, blobs: &BlobStore) -> anyhow::Result<Manifest> {
    dir.check_servable()?;
    if out.symlink_metadata().is_ok() {
        bail!("{} exists; a backup is never written over anything: give a new path", out.display());
    }
    let (parent, name) = split(out)?;
    let mut attempt = 1;
    loop {
        let staging = parent.join(format!(".{name}.partial-{}", vault_core::ids::random_hex16()));
        let taken = make_dirs(&staging).and_then(|()| take(dir, &staging, link, blobs));
        match taken {
            Ok(manifest) => {
                fs::rename(&staging, out)
                    .with_context(|| format!("cannot rename {} to {}", staging.display(), out.display()))?;
                fs::File::open(&parent)?.sync_all()?;
                return Ok(manifest);
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                let again = e
                    .downcast_ref::<BlobGone>()
                    .map(ToString::to_string)
                    .or_else(|| e.downcast_ref::<KeysChanged>().map(ToString::to_string));
                match again {
                    Some(why) if attempt < ATTEMPTS => {
                        tracing::info!(attempt, "{why}; starting again from a new snapshot");
                        attempt += 1;
                    }
                    Some(_) if e.downcast_ref::<KeysChanged>().is_some() => bail!(
                        "{e}, in each of {ATTEMPTS} snapshots: the data dir's log key is not the one its log's key \
                         transitions lead to (run `vault-server verify`), or keys are being rotated; no backup was \
                         written"
                    ),
                    Some(_) => bail!(
                        "{e}, in each of {ATTEMPTS} snapshots: recordings are being destroyed or purged faster than \
                         they can be copied; try again when the purge or destruction is over"
                    ),
                    None => return Err(e),
                }
            }
        }
    }
}

/// One attempt at a backup into `staging`: database, blobs, keys, verification, manifest.
fn take(dir: &DataDir, staging: &Path, link: bool, blobs: &BlobStore) -> anyhow::Result<Manifest> {
    let taken_at = now_rfc3339();
    let copy = DataDir::new(staging);
    fs::File::create(staging.join(INCOMPLETE))?.sync_all()?;
    // The keys before the snapshot, compared with those copied after it (below).
    let keys_before = keys_digest(dir)?;
    db::copy_snapshot(&dir.db_path(), &copy.db_path())?;
    if let BlobStore::Object(_) = blobs {
        // Checked where they are, from one listing, by `verify_dir` below.
    } else {
        let conn = db::open_read_only(&copy.db_path())?;
        Store::new(&conn).for_each_recording_blob(|id, _, _| {
            let name = crate::blobs::file_name(&id);
            let (from, to) = (dir.blobs().join(&name), copy.blobs().join(&name));
            match place_blob(&from, &to, link) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if still_named(dir, &id)? {
                        bail!(
                            "recording {id} has no blob in {}: the data dir is damaged (see `vault-server verify \
                             --blobs`); no backup was written",
                            dir.blobs().display()
                        );
                    }
                    Err(BlobGone(id).into())
                }
                Err(e) => Err(anyhow::anyhow!("cannot copy {} to {}: {e}", from.display(), to.display())),
            }
        })?;
    }
    fs::File::open(copy.blobs())?.sync_all()?;
    let mut keys = Vec::new();
    for key in dir.key_files() {
        let name = key.file_name().context("a key file has no name")?.to_owned();
        copy_secret(&key, &staging.join(&name))?;
        keys.push(name.to_string_lossy().into_owned());
    }
    if keys_digest(&copy)? != keys_before {
        return Err(KeysChanged("a key file changed between the snapshot and the copy".into()).into());
    }
    {
        // A rotation commits its transition before it replaces the key file: a snapshot
        // with the transition and the old key (or the reverse) is refused here.
        let conn = db::open_read_only(&copy.db_path())?;
        let s = Store::new(&conn);
        let origin = s.log_origin()?.context("the database has no log origin")?;
        let (log_key, _) = server_keys::load(&copy.log_key_path())?;
        crate::rotate::check_transitions_in(&s, &origin, &log_key).map_err(|e| KeysChanged(format!("{e:#}")))?;
    }
    let checked = match blobs {
        // A blob destroyed since the snapshot makes it start again (BlobGone), as above.
        BlobStore::Object(_) => verify_dir(&copy, Some(dir), blobs, false)?,
        BlobStore::Local(_) => verify_dir(&copy, None, &own_blobs(&copy), false)?,
    };
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        taken_at,
        log_origin: checked.log_origin,
        log_size: checked.entries,
        log_root: B64.encode(checked.root),
        log_head: hex::encode(checked.head),
        recordings: checked.recordings,
        blob_bytes: checked.blob_bytes,
        keys,
        blob_store: match blobs {
            BlobStore::Object(o) => Some(o.url()),
            BlobStore::Local(_) => None,
        },
    };
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(copy.backup_manifest())?;
    f.write_all(serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::remove_file(staging.join(INCOMPLETE))?;
    fs::File::open(staging)?.sync_all()?;
    Ok(manifest)
}

/// Whether the live database still names recording `id` (a fresh read, after the
/// snapshot): a missing blob is then damage, not a destruction since the snapshot.
fn still_named(dir: &DataDir, id: &RecordingId) -> anyhow::Result<bool> {
    let conn = db::open_read_only(&dir.db_path())?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(Store::new(&conn).recording_exists(id)?)
}

/// Verifies a data directory or a backup without changing it: the access log's chain and
/// Merkle tree, the log key, and every blob its recordings name in `blobs`, the store
/// that holds them (present, with the size and SHA-256 the database records; in an
/// object store, the SHA-256 only with `hash_objects`, since that reads every object).
/// `live` is the data dir that may be served meanwhile: a blob missing there whose
/// recording is gone by now (destroyed since the read began) is not a fault when `dir` is
/// that data dir, and makes a backup of it start again when `dir` is the backup.
/// Blocking.
pub fn verify_dir(
    dir: &DataDir,
    live: Option<&DataDir>,
    blobs: &BlobStore,
    hash_objects: bool,
) -> anyhow::Result<Checked> {
    let conn = db::open_read_only(&dir.db_path())?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // One read transaction: a consistent view of a live database too.
    let tx = conn.unchecked_transaction()?;
    let s = Store::new(&tx);
    let (entries, head) = accesslog::verify(&s).context("the access log is broken")?;
    let root = s.merkle_root(entries)?;
    let log_origin = s.log_origin()?.context("the database has no log origin")?;
    let (log_key, _) = server_keys::load(&dir.log_key_path()).context("the log key is unusable")?;
    crate::rotate::check_transitions_in(&s, &log_origin, &log_key)?;
    // An object store is listed once (a thousand objects per request), not asked once
    // per recording.
    let holder = match blobs {
        BlobStore::Local(l) => Holder::Files(l),
        BlobStore::Object(o) => {
            let listed = o.list_blocking().with_context(|| format!("cannot list {}", o.url()))?;
            let sizes = listed
                .into_iter()
                .filter_map(|l| match l {
                    Listed::Blob(id, size) => Some((id, size)),
                    Listed::Other(_) => None,
                })
                .collect();
            Holder::Objects(o, sizes)
        }
    };
    let (mut recordings, mut blob_bytes) = (0u64, 0u64);
    let (mut problems, mut gone) = (Vec::new(), Vec::new());
    s.for_each_recording_blob(|id, size, sha256| {
        let problem = match &holder {
            Holder::Objects(o, sizes) => match sizes.get(&id) {
                None => Some(MISSING.to_owned()),
                Some(&got) if got != size => Some(format!("its object has {got} bytes, the database records {size}")),
                Some(_) if hash_objects && !sha256.is_empty() => {
                    let got = o.sha256_blocking(&id).with_context(|| format!("cannot read the object of {id}"))?;
                    (!got.eq_ignore_ascii_case(sha256))
                        .then(|| "its object's SHA-256 is not the one its recorder signed".to_owned())
                }
                Some(_) => None,
            },
            Holder::Files(l) => check_blob(&l.path(&id), size, sha256)?,
        };
        match problem {
            None => {
                recordings += 1;
                blob_bytes += size;
            }
            // A backup's object store is the live one: what it lacks was deleted since.
            Some(problem) if problem == MISSING && live.is_none() && matches!(holder, Holder::Objects(..)) => {
                gone.push(id)
            }
            Some(problem) => {
                let destroyed_since = problem == MISSING
                    && match live {
                        Some(l) => !still_named(l, &id)?,
                        None => false,
                    };
                if !destroyed_since {
                    problems.push(format!("recording {id}: {problem}"));
                } else if live.is_some_and(|l| l.root != dir.root) {
                    return Err(BlobGone(id).into());
                }
            }
        }
        Ok(())
    })?;
    if !problems.is_empty() {
        let shown: Vec<&str> = problems.iter().take(10).map(String::as_str).collect();
        bail!(
            "{} of the recordings the database names have no sound blob: {}{}",
            problems.len(),
            shown.join("; "),
            if problems.len() > shown.len() { "; ..." } else { "" }
        );
    }
    Ok(Checked { log_origin, entries, root, head, recordings, blob_bytes, gone })
}

/// The store a backup (or a data dir) keeps its own blobs in: its `blobs/`.
pub fn own_blobs(dir: &DataDir) -> BlobStore {
    BlobStore::local(dir.blobs(), dir.tmp())
}

/// Where `verify_dir` finds the blobs: files, or objects with their sizes as listed.
enum Holder<'a> {
    Files(&'a LocalBlobs),
    Objects(&'a ObjectBlobs, HashMap<RecordingId, u64>),
}

const MISSING: &str = "its blob is missing";

/// What is wrong with a blob (`None`: nothing): missing, another size, another SHA-256
/// (checked only once its recorder signed one).
fn check_blob(path: &Path, size: u64, sha256: &str) -> anyhow::Result<Option<String>> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(MISSING.into())),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    let len = f.metadata()?.len();
    if len != size {
        return Ok(Some(format!("its blob has {len} bytes, the database records {size}")));
    }
    if sha256.is_empty() {
        return Ok(None);
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let got = hex::encode(ctx.finish());
    if !got.eq_ignore_ascii_case(sha256) {
        return Ok(Some("its blob's SHA-256 is not the one its recorder signed".into()));
    }
    Ok(None)
}

/// Reads and checks a backup's manifest, then verifies the backup against it. A backup
/// of a vault on an object store is checked against `blobs`, which must be that store.
pub fn verify_backup(backup: &DataDir, blobs: &BlobStore) -> anyhow::Result<(Manifest, Checked)> {
    let complete = !backup.root.join(INCOMPLETE).exists();
    let text = match fs::read_to_string(backup.backup_manifest()) {
        Ok(t) if complete => t,
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            bail!("cannot read {}: {e}", backup.backup_manifest().display())
        }
        _ => bail!(
            "{} is not a complete backup (it lacks the {MANIFEST} a backup writes last, or still holds the \
             {INCOMPLETE} it writes first: it was interrupted half-way); take a new backup with `vault-server backup`",
            backup.root.display()
        ),
    };
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a backup manifest", backup.backup_manifest().display()))?;
    if manifest.format != FORMAT {
        bail!(
            "{} is a backup of format {:?}; this vault-server reads {FORMAT:?}",
            backup.root.display(),
            manifest.format
        );
    }
    let store = match &manifest.blob_store {
        None => own_blobs(backup),
        Some(url) if *url == blobs.describe() => blobs.clone(),
        Some(url) => bail!(
            "the recordings of the backup {} are not in it but in {url}: give --blob-store {url} (with its endpoint \
             and credentials) to check them",
            backup.root.display()
        ),
    };
    let checked = verify_dir(backup, None, &store, false)
        .with_context(|| format!("the backup {} does not verify; it cannot be restored", backup.root.display()))?;
    if checked.entries != manifest.log_size
        || B64.encode(checked.root) != manifest.log_root
        || checked.log_origin != manifest.log_origin
        || checked.recordings + checked.gone.len() as u64 != manifest.recordings
    {
        bail!(
            "the backup {} does not hold what its manifest says (a log of {} entries, {} recordings; it holds {} \
             and {}); it cannot be restored",
            backup.root.display(),
            manifest.log_size,
            manifest.recordings,
            checked.entries,
            checked.recordings
        );
    }
    Ok((manifest, checked))
}

/// Restores the backup `from` into `to`, a new (or empty) data directory, and appends the
/// restore statement (`log-restore`) to its access log. Returns the backup's manifest and
/// the sequence number of the statement. Blocking.
pub fn restore(from: &DataDir, to: &Path, reason: &str, blobs: &BlobStore) -> anyhow::Result<(Manifest, u64, Checked)> {
    if reason.trim().is_empty() {
        bail!("give the reason for the restore with --reason; auditors read it in the log");
    }
    let (manifest, checked) = verify_backup(from, blobs)?;
    match fs::read_dir(to) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{} is not empty; restore into a new or empty directory", to.display());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot read {}: {e}", to.display()),
    }
    let (parent, name) = split(to)?;
    let staging = parent.join(format!(".{name}.restoring-{}", vault_core::ids::random_hex16()));
    let restored = (|| {
        make_dirs(&staging)?;
        let copy = DataDir::new(&staging);
        place_file(&from.db_path(), &copy.db_path())?;
        fs::set_permissions(copy.db_path(), fs::Permissions::from_mode(0o600))?;
        for e in fs::read_dir(from.blobs())? {
            let e = e?;
            place_blob(&e.path(), &copy.blobs().join(e.file_name()), false)?;
        }
        fs::File::open(copy.blobs())?.sync_all()?;
        for key in from.key_files() {
            copy_secret(&key, &staging.join(key.file_name().context("a key file has no name")?))?;
        }
        let seq = append_statement(&copy, &manifest, reason)?;
        fs::File::open(&staging)?.sync_all()?;
        anyhow::Ok(seq)
    })();
    let seq = match restored {
        Ok(seq) => seq,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // Over an empty directory, rename(2) replaces it.
    fs::rename(&staging, to).with_context(|| format!("cannot rename {} to {}", staging.display(), to.display()))?;
    fs::File::open(&parent)?.sync_all()?;
    Ok((manifest, seq, checked))
}

/// Appends the restore statement to the restored log, as the entry right after the
/// backup's last one.
fn append_statement(copy: &DataDir, manifest: &Manifest, reason: &str) -> anyhow::Result<u64> {
    let db = Db::open(&copy.db_path())?;
    let rec = LogRecord::new(RESTORE_ACTOR, Action::LogRestore).reason(reason).details(serde_json::json!({
        "backup_size": manifest.log_size,
        "backup_root": manifest.log_root,
        "backup_taken_at": manifest.taken_at,
        "log_origin": manifest.log_origin,
    }));
    let seq = db.transaction(move |s| Ok(accesslog::append(s, &rec, Outcome::Allowed)?))?;
    if seq != manifest.log_size {
        bail!("the restored log has {seq} entries, its backup's manifest says {}", manifest.log_size);
    }
    // Everything into the database file: the directory is complete without its WAL.
    db.with(|c| c.pragma_update(None, "wal_checkpoint", "TRUNCATE"))?;
    Ok(seq)
}

/// `path`'s parent directory (`.` for a bare name) and its file name.
fn split(path: &Path) -> anyhow::Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} does not end in a directory name", path.display()))?
        .to_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!(
            "{} does not exist or is not a directory; create it first (mkdir -m 0700 {}): a backup holds the \
             server's keys",
            parent.display(),
            parent.display()
        );
    }
    Ok((parent, name))
}

/// A new data directory's skeleton: the directory, `blobs/` and `tmp/`, 0700.
fn make_dirs(root: &Path) -> anyhow::Result<()> {
    let dir = DataDir::new(root);
    for d in [root.to_owned(), dir.blobs(), dir.tmp()] {
        fs::DirBuilder::new().mode(0o700).create(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    Ok(())
}

/// Puts a blob at `to`: a hard link with `link` where the filesystem allows, otherwise a
/// copy (with its permissions), synced.
fn place_blob(from: &Path, to: &Path, link: bool) -> std::io::Result<()> {
    if link {
        match fs::hard_link(from, to) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {}
            Err(e) => return Err(e),
        }
    }
    place_file(from, to)
}

/// Copies a file (with its permissions) to the new file `to`, synced.
fn place_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = fs::File::open(from)?;
    let mode = src.metadata()?.permissions().mode();
    let mut dst = fs::OpenOptions::new().write(true).create_new(true).mode(mode & 0o777).open(to)?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()
}

/// Copies a key file to the new file `to`, 0600, synced; the key is held in memory only
/// in a zeroizing buffer.
fn copy_secret(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = Zeroizing::new(fs::read(from).with_context(|| format!("cannot read {}", from.display()))?);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    Ok(())
}
