//! `vault-server rotate-key token|log`: replacing the server's own keys.
//!
//! **Token key.** Session tokens name the key that signed them (`kid`). Rotating keeps
//! the old key's *public* half in `jwt-retired.json` until every token it signed has
//! expired, so nobody is logged out; its private half is deleted.
//!
//! **Log key.** Auditors pin the log's verifier key. The new key is introduced by a
//! checkpoint signed by both the old and the new key (a [`KeyTransition`]), whose last
//! entry is the logged rotation naming the new key; auditors' clients follow it with
//! consistency proofs and carry their pins over without trusting the server. The old
//! private key is deleted: nothing later can carry its signature.
//!
//! Both run with the server stopped (they take the data directory's serving lock): the
//! server loads its keys at start. Each is made crash-safe by rolling forward: the new
//! key is written beside the old (`KEY.new`), then the rotation commits in the database
//! (the log entry, and for the log key the transition), then the new key replaces the
//! old. A start finding `KEY.new` completes the rotation if the database recorded it, and
//! deletes it if not.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};
use vault_core::log::{Action, Outcome};
use vault_core::note::VerifierKey;
use vault_core::rotation::{KeyTransition, RotationDetails};

use crate::accesslog::{self, LogRecord, append};
use crate::datadir::{self, DataDir};
use crate::db::Db;
use crate::server_keys;
use crate::store::Store;

/// The actor of rotation entries.
const ACTOR: &str = "vault-server rotate-key";
/// `meta` keys: the log key's transitions (a JSON list, oldest first), and the id of
/// the token key the last rotation introduced.
const TRANSITIONS: &str = "log_key_transitions";
const TOKEN_KID: &str = "token_kid";

/// Which key to rotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// The key that signs session tokens.
    Token,
    /// The key that signs the access log's checkpoints.
    Log,
}

/// A token key no longer signing, kept to check the tokens it signed until they expire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetiredTokenKey {
    pub kid: String,
    /// The raw Ed25519 public key, hex.
    pub public: String,
    /// When it stopped signing (Unix seconds).
    pub retired_at: i64,
}

/// The id a token key's tokens carry in their `kid` header.
pub fn kid(public: &[u8; 32]) -> String {
    hex::encode(&vault_core::sha256(public)[..8])
}

/// Rotates a key of the vault in `dir` (the server must be stopped). Returns what to
/// tell the operator.
pub fn rotate(dir: &DataDir, which: Which) -> anyhow::Result<String> {
    dir.check()?;
    let _lock = dir.lock_for_serving().context("rotate keys with the server stopped")?;
    let db = Db::open(&dir.db_path())?;
    finish(dir, &db)?;
    match which {
        Which::Token => rotate_token(dir, &db),
        Which::Log => rotate_log(dir, &db),
    }
}

fn rotate_token(dir: &DataDir, db: &Db) -> anyhow::Result<String> {
    let path = dir.jwt_key_path();
    let (old, _) = server_keys::load(&path)?;
    let next = pending(&path);
    server_keys::create(&next)?;
    let (new, _) = server_keys::load(&next)?;
    let (old_kid, new_kid) = (kid(&server_keys::public_key(&old)), kid(&server_keys::public_key(&new)));
    let details = RotationDetails {
        key: "token".into(),
        old_key: None,
        new_key: None,
        old_kid: Some(old_kid.clone()),
        new_kid: Some(new_kid.clone()),
    };
    let kid2 = new_kid.clone();
    db.transaction(move |s| {
        append(
            s,
            &LogRecord::new(ACTOR, Action::ServerKeyRotate).details(serde_json::to_value(&details)?),
            Outcome::Allowed,
        )?;
        s.set_meta(TOKEN_KID, &kid2)?;
        Ok(())
    })?;
    finish(dir, db)?;
    Ok(format!(
        "rotated the token key: new tokens carry key id {new_kid}; tokens signed by {old_kid} stay valid until they \
         expire (at most {} minutes)",
        crate::auth::TOKEN_LIFETIME_SECS / 60
    ))
}

fn rotate_log(dir: &DataDir, db: &Db) -> anyhow::Result<String> {
    // Only a sound log gets a transition: the new key must not vouch for a broken one.
    db.snapshot(accesslog::verify)?
        .context("the access log is broken; refusing to sign it with a new key (run `vault-server verify`)")?;
    let origin = datadir::log_origin(db)?;
    let path = dir.log_key_path();
    let (old, _) = server_keys::load(&path)?;
    check_transitions(db, &origin, &old)?;
    let next = pending(&path);
    server_keys::create(&next)?;
    let (new, _) = server_keys::load(&next)?;
    let (old_key, new_key) = (VerifierKey::from_pair(&origin, &old), VerifierKey::from_pair(&origin, &new));
    let details = RotationDetails {
        key: "log".into(),
        old_key: Some(old_key.to_text()),
        new_key: Some(new_key.to_text()),
        old_kid: None,
        new_kid: None,
    };
    // The transition is made inside the transaction that logs it, so that its checkpoint
    // ends with that entry.
    let size = db.transaction(move |s| {
        append(
            s,
            &LogRecord::new(ACTOR, Action::ServerKeyRotate).details(serde_json::to_value(&details)?),
            Outcome::Allowed,
        )?;
        let (cp, _) = accesslog::checkpoint(s, &origin, &old)?;
        let mut all = transitions(s)?;
        all.push(KeyTransition::sign(&cp, &old, &new));
        s.set_meta(TRANSITIONS, &serde_json::to_string(&all)?)?;
        Ok(cp.size)
    })?;
    finish(dir, db)?;
    Ok(format!(
        "rotated the log key at entry {}: checkpoints are now signed by\n{}\nAuditors' clients follow the change \
         (the transition is signed by the old and the new key); give the new key to every witness (`--log-key`, \
         beside the old one) before you start the server, and to new auditors",
        size - 1,
        new_key.to_text()
    ))
}

/// `KEY.new`: a rotation's new key, before it replaces `KEY`.
fn pending(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".new");
    PathBuf::from(p)
}

/// Completes or abandons a rotation a crash interrupted (see the module's comment), for
/// both keys. Runs at start-up and before each rotation.
pub fn finish(dir: &DataDir, db: &Db) -> anyhow::Result<()> {
    settle(
        &dir.jwt_key_path(),
        |new| {
            Ok(db.transaction(|s| Ok(s.meta(TOKEN_KID)?))?.as_deref()
                == Some(kid(&server_keys::public_key(new)).as_str()))
        },
        |old| retire(dir, &server_keys::public_key(old)),
    )?;
    settle(
        &dir.log_key_path(),
        |new| {
            let origin = datadir::log_origin(db)?;
            let last = db.transaction(|s| Ok(transitions(s)?.last().map(|t| t.new_key.clone())))?;
            Ok(last.as_deref() == Some(VerifierKey::from_pair(&origin, new).to_text().as_str()))
        },
        |_| Ok(()),
    )
}

/// For the key at `path`: if a `KEY.new` is there, completes its rotation when the
/// database `recorded` it (`retiring` the old key first), and deletes it otherwise. A
/// key the database recorded was whole and durable before the commit; one that does not
/// load was cut off before it.
fn settle(
    path: &Path,
    recorded: impl FnOnce(&Ed25519KeyPair) -> anyhow::Result<bool>,
    retiring: impl FnOnce(&Ed25519KeyPair) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let next = pending(path);
    if !next.exists() {
        return Ok(());
    }
    match server_keys::load(&next) {
        Ok((new, _)) if recorded(&new)? => {
            retiring(&server_keys::load(path)?.0)?;
            replace(&next, path)
        }
        _ => fs::remove_file(&next).with_context(|| format!("cannot remove {}", next.display())),
    }
}

/// Renames `from` over `to` durably (the old key is gone once this returns).
fn replace(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::rename(from, to).with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    if let Some(parent) = to.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The log key's transitions, oldest first.
pub fn transitions(s: &Store<'_>) -> anyhow::Result<Vec<KeyTransition>> {
    match s.meta(TRANSITIONS)? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).context("the log key's transitions are damaged"),
    }
}

/// Checks the log key's transitions against the log and the key in `log-key.pk8`: each
/// from the key the one before introduced, signed by both, its checkpoint the tree the
/// log has at that size, and the last introducing the key in use. A log key that is not
/// the one the transitions lead to is refused: clients would reject everything it signs.
pub fn check_transitions(db: &Db, origin: &str, key: &Ed25519KeyPair) -> anyhow::Result<usize> {
    db.snapshot(|s| check_transitions_in(s, origin, key))?
}

/// [`check_transitions`] in a read transaction of the caller's.
pub fn check_transitions_in(s: &Store<'_>, origin: &str, key: &Ed25519KeyPair) -> anyhow::Result<usize> {
    let current = VerifierKey::from_pair(origin, key);
    let all = transitions(s)?;
    let Some(first) = all.first() else { return Ok(0) };
    let mut at = VerifierKey::parse(&first.old_key).context("the first log key transition names no valid key")?;
    let mut size = 0;
    for (i, t) in all.iter().enumerate() {
        let (cp, next) = t.open(&at).with_context(|| format!("log key transition {} is invalid", i + 1))?;
        if cp.origin != origin || cp.size <= size || cp.root != s.merkle_root(cp.size)? {
            bail!("log key transition {} does not sign this log's tree at its size", i + 1);
        }
        (at, size) = (next, cp.size);
    }
    if at != current {
        bail!(
            "log-key.pk8 is not the log key the last transition introduced ({}); restore that key file",
            at.to_text()
        );
    }
    Ok(all.len())
}

/// The public keys of retired token keys whose tokens may still be valid.
fn retired_token_keys(dir: &DataDir) -> anyhow::Result<Vec<RetiredTokenKey>> {
    let path = dir.retired_token_keys_path();
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let all: Vec<RetiredTokenKey> =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    let now = chrono::Utc::now().timestamp();
    Ok(all.into_iter().filter(|k| still_checks(k, now)).collect())
}

/// The raw public keys of [`retired_token_keys`], which check the tokens they signed.
pub fn retired_public_keys(dir: &DataDir) -> anyhow::Result<Vec<[u8; 32]>> {
    retired_token_keys(dir)?
        .iter()
        .map(|k| {
            hex::decode(&k.public)
                .ok()
                .and_then(|p| <[u8; 32]>::try_from(p).ok())
                .with_context(|| format!("{} is damaged", dir.retired_token_keys_path().display()))
        })
        .collect()
}

/// Whether tokens a retired key signed may still be unexpired (with slack for clocks).
fn still_checks(k: &RetiredTokenKey, now: i64) -> bool {
    now <= k.retired_at + crate::auth::TOKEN_LIFETIME_SECS + 60
}

/// Adds a token key's public half to the retired keys (dropping those past use).
fn retire(dir: &DataDir, public: &[u8; 32]) -> anyhow::Result<()> {
    let mut all = retired_token_keys(dir)?;
    let k = kid(public);
    if !all.iter().any(|r| r.kid == k) {
        all.push(RetiredTokenKey { kid: k, public: hex::encode(public), retired_at: chrono::Utc::now().timestamp() });
    }
    let path = dir.retired_token_keys_path();
    let tmp = pending(&path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(&all)?.as_bytes())?;
    f.sync_all()?;
    replace(&tmp, &path)
}
