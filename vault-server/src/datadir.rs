//! The data directory: its layout, `init`, and the checks before it is served.
//!
//! ```text
//! DIR/vault.db        SQLite metadata and the access log
//! DIR/jwt-key.pk8     Ed25519 key that signs session tokens (0600)
//! DIR/log-key.pk8     Ed25519 key that signs log checkpoints (0600)
//! DIR/jwt-retired.json  public halves of retired token keys (0600; `rotate`)
//! DIR/blobs/          recording ciphertext, one file per recording
//! DIR/tmp/            uploads in progress; emptied at start-up
//! ```
//!
//! A backup (`backup`) has the same layout plus `backup.json`, written last.
//!
//! The two keys are `server_keys`'; `rotate` replaces them.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use vault_core::api::Role;
use vault_core::ids::UserName;
use vault_core::log::{Action, Outcome};
use vault_core::trust::{PublicId, Root};

use crate::accesslog::{LogRecord, append};
use crate::clock::now_rfc3339;
use crate::db::Db;
use crate::server_keys;
use crate::store::NewUserRow;

pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }
    pub fn db_path(&self) -> PathBuf {
        self.root.join("vault.db")
    }
    pub fn jwt_key_path(&self) -> PathBuf {
        self.root.join("jwt-key.pk8")
    }
    pub fn log_key_path(&self) -> PathBuf {
        self.root.join("log-key.pk8")
    }
    /// The public halves of retired token keys (`rotate`), while their tokens may live.
    pub fn retired_token_keys_path(&self) -> PathBuf {
        self.root.join("jwt-retired.json")
    }
    /// The server's key files that exist: what a backup copies (0600) and a restore
    /// puts back. The one list of them, so that a new kind of key is added here once.
    pub fn key_files(&self) -> Vec<PathBuf> {
        [self.jwt_key_path(), self.log_key_path(), self.retired_token_keys_path()]
            .into_iter()
            .filter(|p| p.is_file())
            .collect()
    }
    /// Whether this is a backup (complete or interrupted) rather than a data dir.
    pub fn is_backup(&self) -> bool {
        self.backup_manifest().exists() || self.root.join(crate::backup::INCOMPLETE).exists()
    }
    /// The manifest a complete backup holds (written last; see `backup`).
    pub fn backup_manifest(&self) -> PathBuf {
        self.root.join(crate::backup::MANIFEST)
    }
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Takes the data directory for one serving process: an exclusive lock on
    /// `serve.lock`, held while the returned file lives. A second `serve` on the same
    /// directory would sweep the first one's uploads in flight (from `tmp/`, and from
    /// `blobs/` before their rows commit) as leftovers of a crash.
    pub fn lock_for_serving(&self) -> anyhow::Result<std::fs::File> {
        let path = self.root.join("serve.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another vault-server serve is running on {}; stop it first (two servers on one data dir would \
                 take each other's uploads in progress for crash leftovers)",
                self.root.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => anyhow::bail!("cannot lock {}: {e}", path.display()),
        }
    }

    /// Creates a new vault: directories, keys, database, and its initial admins, who are
    /// the trust root.
    pub fn init(&self, admins: Vec<(UserName, PublicId)>) -> anyhow::Result<Root> {
        let log_origin = format!("recording-vault/{}", &vault_core::ids::random_hex16()[..16]);
        let root = Root::new(log_origin.clone(), admins)?;
        if self.db_path().exists() {
            bail!(
                "{} already holds a vault; refusing to overwrite it (choose another --data-dir)",
                self.root.display()
            );
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .with_context(|| format!("cannot create data dir {}", self.root.display()))?;
        for d in [self.blobs(), self.tmp()] {
            fs::DirBuilder::new().mode(0o700).create(&d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        server_keys::create(&self.jwt_key_path())?;
        server_keys::create(&self.log_key_path())?;
        let db = Db::create(&self.db_path())?;
        let stored = root.clone();
        db.transaction(move |s| {
            s.set_log_origin(&log_origin)?;
            s.set_trust_root(&stored.text())?;
            let now = now_rfc3339();
            for (name, id) in &stored.admins {
                s.insert_user(&NewUserRow {
                    name,
                    role: Role::Admin,
                    id,
                    statement: None,
                    approved: true,
                    created_at: &now,
                    created_by: None,
                })?;
            }
            let first = &stored.admins[0].0;
            let rec = LogRecord::new(first.as_str(), Action::Init).details(serde_json::json!({
                "log_origin": log_origin,
                "admins": stored.admins.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                "trust_root": stored.text(),
                "fingerprint": stored.fingerprint(),
            }));
            append(s, &rec, Outcome::Allowed)?;
            Ok(())
        })?;
        fs::set_permissions(self.db_path(), fs::Permissions::from_mode(0o600))?;
        Ok(root)
    }

    /// Checks that the directory holds an initialised vault before anything is served.
    pub fn check(&self) -> anyhow::Result<()> {
        let meta = fs::metadata(&self.root).with_context(|| {
            format!("cannot read data dir {}; create it with `vault-server init`", self.root.display())
        })?;
        if !meta.is_dir() {
            bail!("{} is not a directory", self.root.display());
        }
        if !self.db_path().exists() {
            bail!(
                "{} is not an initialised vault (no vault.db); run `vault-server init --data-dir {} --admin NAME --recipient VAULT1...` first",
                self.root.display(),
                self.root.display()
            );
        }
        for d in [self.blobs(), self.tmp()] {
            if !d.is_dir() {
                bail!("{} is missing; the data dir is damaged", d.display());
            }
        }
        Ok(())
    }

    /// [`DataDir::check`], and that the directory is not a backup.
    pub fn check_servable(&self) -> anyhow::Result<()> {
        self.check()?;
        if self.is_backup() {
            // Served as it is, its log would roll every auditor back without a word.
            bail!(
                "{} is a backup (or one interrupted half-way), not a data dir; restore a complete backup into a new one with `vault-server restore --from {} \
                 --data-dir NEW --reason TEXT`, which logs the restore for auditors",
                self.root.display(),
                self.root.display()
            );
        }
        Ok(())
    }

    /// Removes uploads that were in progress when the server stopped, except the names
    /// of multipart uploads the object store could not abort (kept for the next start).
    pub fn sweep_tmp(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(self.tmp())? {
            let e = e?;
            if crate::blobs::s3::is_unfinished_name(&e.file_name()) {
                continue;
            }
            fs::remove_file(e.path())?;
            n += 1;
        }
        Ok(n)
    }
}

/// The log origin recorded at `init`.
pub fn log_origin(db: &Db) -> anyhow::Result<String> {
    db.transaction(|s| Ok(s.log_origin()?))?.context("the database has no log origin; the data dir is damaged")
}

/// The trust root recorded at `init`.
pub fn trust_root(dir: &DataDir) -> anyhow::Result<Root> {
    dir.check()?;
    let db = Db::open(&dir.db_path())?;
    let text =
        db.transaction(|s| Ok(s.trust_root()?))?.context("the database has no trust root; the data dir is damaged")?;
    Ok(Root::parse(&text)?)
}

/// The verifier key of the access log, in signed-note form.
pub fn log_verifier_key(dir: &DataDir) -> anyhow::Result<vault_core::note::VerifierKey> {
    dir.check()?;
    let db = Db::open(&dir.db_path())?;
    let origin = log_origin(&db)?;
    let (pair, _) = server_keys::load(&dir.log_key_path())?;
    Ok(vault_core::note::VerifierKey::from_pair(&origin, &pair))
}

/// The key that signs the access log's checkpoints.
pub fn log_key(dir: &DataDir) -> anyhow::Result<ring::signature::Ed25519KeyPair> {
    Ok(server_keys::load(&dir.log_key_path())?.0)
}
