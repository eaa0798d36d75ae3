//! The data directory: its layout, `init`, and opening it for `serve`.
//!
//! ```text
//! DIR/vault.db        SQLite metadata and the access log
//! DIR/jwt-key.pk8     Ed25519 key that signs session tokens (0600)
//! DIR/log-key.pk8     Ed25519 key that signs log checkpoints (0600)
//! DIR/blobs/          recording ciphertext, one file per recording
//! DIR/tmp/            uploads in progress; emptied at start-up
//! ```
//!
//! Two keys rather than one, so that a token signature can never be mistaken for a
//! checkpoint signature or the other way round.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ring::signature::{Ed25519KeyPair, KeyPair};
use vault_core::api::Role;
use vault_core::ids::UserName;
use zeroize::Zeroizing;

use crate::db::{Db, LogRecord, append_log};

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
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Creates a new vault: directories, keys, database, and the first admin.
    pub fn init(&self, admin: &UserName, recipient: &str) -> anyhow::Result<()> {
        vault_core::crypto::parse_recipient(recipient)?;
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
        write_new_key(&self.jwt_key_path())?;
        write_new_key(&self.log_key_path())?;
        let db = Db::create(&self.db_path())?;
        let log_origin = format!("recording-vault/{}", &vault_core::ids::random_hex16()[..16]);
        let (admin, recipient) = (admin.clone(), recipient.trim().to_owned());
        db.with(move |c| -> anyhow::Result<()> {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("INSERT INTO meta (key, value) VALUES ('log_origin', ?1)", [&log_origin])?;
            tx.execute(
                "INSERT INTO users (name, role, recipient, created_at) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![admin.as_str(), Role::Admin.as_str(), recipient, now_rfc3339()],
            )?;
            append_log(
                &tx,
                &LogRecord::new(admin.as_str(), "init", "allowed")
                    .details(serde_json::json!({ "log_origin": log_origin, "admin": admin.as_str() })),
            )?;
            tx.commit()?;
            Ok(())
        })?;
        fs::set_permissions(self.db_path(), fs::Permissions::from_mode(0o600))?;
        Ok(())
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
                "{} is not an initialised vault (no vault.db); run `vault-server init --data-dir {} --admin NAME --recipient AGE1...` first",
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

    /// Removes uploads that were in progress when the server stopped.
    pub fn sweep_tmp(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(self.tmp())? {
            let e = e?;
            fs::remove_file(e.path())?;
            n += 1;
        }
        Ok(n)
    }
}

/// The log origin recorded at `init`.
pub fn log_origin(c: &mut rusqlite::Connection) -> anyhow::Result<String> {
    c.query_row("SELECT value FROM meta WHERE key = 'log_origin'", [], |r| r.get(0))
        .context("the database has no log origin; the data dir is damaged")
}

/// The verifier key of the access log, in signed-note form.
pub fn log_verifier_key(dir: &DataDir) -> anyhow::Result<vault_core::note::VerifierKey> {
    dir.check()?;
    let db = Db::open(&dir.db_path())?;
    let origin = db.with(log_origin)?;
    let (pair, _) = load_key(&dir.log_key_path())?;
    Ok(vault_core::note::VerifierKey::from_pair(&origin, &pair))
}

/// Loads an Ed25519 key pair and its PKCS#8 document.
pub fn load_key(path: &Path) -> anyhow::Result<(Ed25519KeyPair, Zeroizing<Vec<u8>>)> {
    let pkcs8 = Zeroizing::new(fs::read(path).with_context(|| format!("cannot read key {}", path.display()))?);
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|e| anyhow::anyhow!("{} is not an Ed25519 PKCS#8 key: {e}", path.display()))?;
    Ok((pair, pkcs8))
}

/// The raw 32-byte public key of a key pair.
pub fn public_key(pair: &Ed25519KeyPair) -> [u8; 32] {
    pair.public_key().as_ref().try_into().expect("Ed25519 public keys are 32 bytes")
}

fn write_new_key(path: &Path) -> anyhow::Result<()> {
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("key generation failed"))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(doc.as_ref())?;
    f.sync_all()?;
    Ok(())
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
