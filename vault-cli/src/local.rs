//! Everything `vault-cli` keeps on this machine, in its configuration directory: the
//! cached session tokens, the trust root pinned for each server, and the access-log
//! checkpoint an auditor verified last. Files are named by the first 12
//! bytes (hex) of a SHA-256 of what they belong to, and written atomically and privately
//! (0600, in 0700 directories), so a crash leaves the old file or the new one, never a part.
//!
//! ```text
//! tokens/<id>.json        {"token":"...","expires_at":UNIX}   id of "SERVER\nUSER"
//! roots/<id>              SHA256:...                           id of "SERVER"
//! checkpoints/<id>.tree.note   the signed checkpoint (tree)    id of the verifier key
//! checkpoints/<id>.note   a checkpoint from before the tree     id of the verifier key
//! checkpoints/<id>.key    the log key followed to, once changed id of the verifier key
//! ```

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use vault_core::export::Pin;
use vault_core::ids::UserName;
use vault_core::note::{Checkpoint, VerifierKey};
use zeroize::Zeroizing;

/// The configuration directory: `$VAULT_CONFIG_DIR`, else `$XDG_CONFIG_HOME/vault-cli`,
/// else `~/.config/vault-cli`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("VAULT_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(d).join("vault-cli"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("set VAULT_CONFIG_DIR or HOME"))?;
    Ok(PathBuf::from(home).join(".config").join("vault-cli"))
}

/// The name of the file that belongs to `key`. Existing users have files under these
/// names, so the derivation must not change.
fn file_id(key: &str) -> String {
    hex::encode(&vault_core::sha256(key.as_bytes())[..12])
}

/// Tokens belong to a server and a user.
fn server_user_id(server: &str, user: &UserName) -> String {
    file_id(&format!("{server}\n{user}"))
}

/// Replaces `path` with `contents`: a temporary file in the same directory (tempfile
/// creates it 0600), synced, then renamed over `path`. A reader or a crash sees the old
/// file or the new one, never a part; missing directories are created 0700.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("every file here is in a subdirectory");
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file().write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

// Session tokens.

/// A cached token as read back.
#[derive(Deserialize)]
struct CachedToken {
    token: String,
    expires_at: i64,
}

/// A token as cached; borrowed, so no unzeroized copy of it is made on the way.
#[derive(Serialize)]
struct TokenToCache<'a> {
    token: &'a str,
    expires_at: i64,
}

fn token_file(dir: &Path, server: &str, user: &UserName) -> PathBuf {
    dir.join("tokens").join(format!("{}.json", server_user_id(server, user)))
}

/// The cached token of `user` on `server` if it is still valid at `valid_at` (Unix
/// seconds). A token that is missing, unreadable or expiring is no token: log in again.
pub fn cached_token(server: &str, user: &UserName, valid_at: i64) -> Option<Zeroizing<String>> {
    read_token(&token_file(&config_dir().ok()?, server, user), valid_at)
}

fn read_token(path: &Path, valid_at: i64) -> Option<Zeroizing<String>> {
    let text = Zeroizing::new(fs::read_to_string(path).ok()?);
    let cached: CachedToken = serde_json::from_str(&text).ok()?;
    let token = Zeroizing::new(cached.token);
    (cached.expires_at > valid_at).then_some(token)
}

/// Caches the token of `user` on `server`.
pub fn store_token(server: &str, user: &UserName, token: &str, expires_at: i64) -> anyhow::Result<()> {
    write_token(&token_file(&config_dir()?, server, user), token, expires_at)
}

fn write_token(path: &Path, token: &str, expires_at: i64) -> anyhow::Result<()> {
    let body = Zeroizing::new(serde_json::to_string(&TokenToCache { token, expires_at })?);
    write_private(path, body.as_bytes()).map_err(|e| anyhow!("cannot write token cache {}: {e}", path.display()))
}

// Trust-root pins.

fn root_file(dir: &Path, server: &str) -> PathBuf {
    dir.join("roots").join(file_id(server))
}

/// The trust root's fingerprint this machine pinned for `server`, if any.
pub fn pinned_root(server: &str) -> anyhow::Result<Option<String>> {
    let p = root_file(&config_dir()?, server);
    match fs::read_to_string(&p) {
        Ok(f) => Ok(Some(f.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("cannot read the trust-root pin {}: {e}", p.display())),
    }
}

/// Pins `fingerprint` as `server`'s trust root.
pub fn pin_root(server: &str, fingerprint: &str) -> anyhow::Result<()> {
    let p = root_file(&config_dir()?, server);
    write_private(&p, format!("{fingerprint}\n").as_bytes()).map_err(|e| anyhow!("cannot write {}: {e}", p.display()))
}

// Checkpoint pins. A pin is the signed checkpoint itself, so it is checked again when it
// is loaded: a pin edited by hand is refused rather than trusted. It is keyed by the
// verifier key the auditor supplied, never by anything the server reports.

fn checkpoint_file(dir: &Path, key: &VerifierKey) -> PathBuf {
    dir.join("checkpoints").join(format!("{}.note", file_id(&key.to_text())))
}

/// Where a pin of the Merkle tree is kept. Pins from before the tree (in
/// [`checkpoint_file`]) signed the hash chain's head; they are read until a full
/// verification replaces them.
fn tree_checkpoint_file(dir: &Path, key: &VerifierKey) -> PathBuf {
    dir.join("checkpoints").join(format!("{}.tree.note", file_id(&key.to_text())))
}

/// Where the key that signs the log now is kept, once this auditor followed the log's key
/// from `key` (the one they supplied) through its transitions.
fn followed_key_file(dir: &Path, key: &VerifierKey) -> PathBuf {
    dir.join("checkpoints").join(format!("{}.key", file_id(&key.to_text())))
}

/// The key that signs the log now as far as this machine knows: the one the auditor
/// supplied, or the one it was followed to (`audit::follow`).
pub fn signing_key(key: &VerifierKey) -> anyhow::Result<VerifierKey> {
    let path = followed_key_file(&config_dir()?, key);
    match fs::read_to_string(&path) {
        Ok(text) => VerifierKey::parse(text.trim())
            .with_context(|| format!("the followed log key {} is damaged; refusing to trust it", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(key.clone()),
        Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The checkpoint this auditor verified last of the log `key` signs (or signed before
/// its key changed), if any, with its signed note.
pub fn pinned_checkpoint(key: &VerifierKey) -> anyhow::Result<Option<(Pin, String)>> {
    let dir = config_dir()?;
    let signer = signing_key(key)?;
    for (path, tree) in [(tree_checkpoint_file(&dir, key), true), (checkpoint_file(&dir, key), false)] {
        let note = match fs::read_to_string(&path) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(anyhow!("cannot read pinned checkpoint {}: {e}", path.display())),
        };
        // Signed by the key followed to, or (the followed key is written first) by the
        // key before.
        let cp = Checkpoint::open(&note, &signer)
            .or_else(|_| Checkpoint::open(&note, key))
            .with_context(|| format!("the pinned checkpoint {} is damaged; refusing to trust it", path.display()))?;
        let pin =
            if tree { Pin::Tree { size: cp.size, root: cp.root } } else { Pin::Chain { size: cp.size, head: cp.root } };
        return Ok(Some((pin, note)));
    }
    Ok(None)
}

/// Keeps `note`, a checkpoint of the tree signed by `signer` (the key the log's
/// transitions led to from `key`, or `key` itself), as the new pin (replacing a pin from
/// before the tree).
pub fn pin_checkpoint(key: &VerifierKey, signer: &VerifierKey, note: &str) -> anyhow::Result<()> {
    let dir = config_dir()?;
    if signer != key {
        let k = followed_key_file(&dir, key);
        write_private(&k, format!("{}\n", signer.to_text()).as_bytes())
            .map_err(|e| anyhow!("cannot write {}: {e}", k.display()))?;
    }
    let p = tree_checkpoint_file(&dir, key);
    write_private(&p, note.as_bytes()).map_err(|e| anyhow!("cannot write {}: {e}", p.display()))?;
    let old = checkpoint_file(&dir, key);
    match fs::remove_file(&old) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow!("cannot remove the old pin {}: {e}", old.display())),
    }
}

/// Keeps a pin that an accepted restore replaces, beside the new one, as the auditor's
/// record of what they had verified; returns where.
pub fn keep_replaced_pin(key: &VerifierKey, note: &str) -> anyhow::Result<PathBuf> {
    let dir = config_dir()?;
    let cp = Checkpoint::open(note, key)?;
    let p = dir.join("checkpoints").join(format!("{}.replaced-{}.tree.note", file_id(&key.to_text()), cp.size));
    write_private(&p, note.as_bytes()).map_err(|e| anyhow!("cannot write {}: {e}", p.display()))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// The names existing users' files have (computed outside this code).
    #[test]
    fn file_names_are_those_of_earlier_versions() {
        let bob: UserName = "bob".parse().unwrap();
        let dir = Path::new("cfg");
        assert_eq!(token_file(dir, "http://127.0.0.1:9", &bob), Path::new("cfg/tokens/571373c3154e29dbca01fbe2.json"));
        assert_eq!(root_file(dir, "http://127.0.0.1:9"), Path::new("cfg/roots/").join(file_id("http://127.0.0.1:9")));
        let key = VerifierKey::parse("vault-test+ebccb924+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f").unwrap();
        assert_eq!(checkpoint_file(dir, &key), Path::new("cfg/checkpoints/3524a21964b9b71716ae713f.note"));
        assert_eq!(tree_checkpoint_file(dir, &key), Path::new("cfg/checkpoints/3524a21964b9b71716ae713f.tree.note"));
    }

    #[test]
    fn a_token_is_cached_in_the_same_format_and_read_back_while_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg").join("tokens").join("t.json");
        write_token(&path, "tok", 1000).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), r#"{"token":"tok","expires_at":1000}"#);
        assert_eq!(read_token(&path, 999).as_deref().map(String::as_str), Some("tok"));
        assert!(read_token(&path, 1000).is_none(), "a token expiring by then is not used");
        fs::write(&path, "{").unwrap();
        assert!(read_token(&path, 0).is_none(), "a damaged cache is no token");
    }

    #[test]
    fn files_are_replaced_whole_and_privately() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a").join("b");
        let path = sub.join("f");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        let names: Vec<_> = fs::read_dir(&sub).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["f"], "no temporary file is left behind");
    }
}
