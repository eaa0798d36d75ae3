//! The server's own Ed25519 keys: one signs session tokens, one signs access-log
//! checkpoints. Two rather than one, so that a token signature can never be mistaken for
//! a checkpoint signature or the other way round. (Case keys are not the server's: it
//! only ever holds their envelopes.)

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use ring::signature::{Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

/// Loads an Ed25519 key pair and its PKCS#8 document.
pub fn load(path: &Path) -> anyhow::Result<(Ed25519KeyPair, Zeroizing<Vec<u8>>)> {
    let pkcs8 = Zeroizing::new(fs::read(path).with_context(|| format!("cannot read key {}", path.display()))?);
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|e| anyhow::anyhow!("{} is not an Ed25519 PKCS#8 key: {e}", path.display()))?;
    Ok((pair, pkcs8))
}

/// Generates a key and writes it to a new file (0600), durably.
pub fn create(path: &Path) -> anyhow::Result<()> {
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

/// The raw 32-byte public key of a key pair.
pub fn public_key(pair: &Ed25519KeyPair) -> [u8; 32] {
    pair.public_key().as_ref().try_into().expect("Ed25519 public keys are 32 bytes")
}
