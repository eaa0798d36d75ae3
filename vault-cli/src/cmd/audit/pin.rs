//! The checkpoint an auditor verified last, kept locally per server verifier key.
//!
//! The pin is the signed checkpoint itself, so it is checked again when it is loaded: a
//! pin file edited by hand is refused rather than trusted. It is keyed by the verifier
//! key the auditor supplied, never by anything the server reports.

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use vault_core::export::Pin;
use vault_core::note::{Checkpoint, VerifierKey};

fn path(key: &VerifierKey) -> anyhow::Result<PathBuf> {
    let id = vault_core::sha256(key.to_text().as_bytes());
    Ok(crate::local::config_dir()?.join("checkpoints").join(format!("{}.note", hex::encode(&id[..12]))))
}

/// The pinned checkpoint for `key`, if this auditor has verified this log before.
pub fn load(key: &VerifierKey) -> anyhow::Result<Option<Pin>> {
    let p = path(key)?;
    let note = match fs::read_to_string(&p) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("cannot read pinned checkpoint {}: {e}", p.display())),
    };
    let cp = Checkpoint::open(&note, key)
        .with_context(|| format!("the pinned checkpoint {} is damaged; refusing to trust it", p.display()))?;
    Ok(Some(Pin { size: cp.size, head: cp.head }))
}

/// Keeps `note` as the new pin.
pub fn store(key: &VerifierKey, note: &str) -> anyhow::Result<()> {
    let p = path(key)?;
    let dir = p.parent().expect("pin path has a parent");
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file().write_all(note.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&p).map_err(|e| anyhow!("cannot write {}: {e}", p.display()))?;
    Ok(())
}
