//! The witness's memory: per log origin, the size and root of the last checkpoint it
//! cosigned, in a JSON file replaced atomically (write a temporary file, fsync, rename,
//! fsync the directory) before any cosignature leaves the process. After a crash the
//! file holds at least every state a released cosignature rests on, so the witness can
//! never cosign two checkpoints of one log that contradict each other.
//!
//! ```json
//! {"format":"vault-witness-state/v1","witness":"NAME+KEYHASH+KEY","logs":{"ORIGIN":{"size":5,"root":"BASE64"}}}
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use vault_core::witness::TreeHead;

const FORMAT: &str = "vault-witness-state/v1";

/// The state file's largest size: a few hundred logs.
const MAX_STATE_BYTES: u64 = 1024 * 1024;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    witness: String,
    logs: BTreeMap<String, Head>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    size: u64,
    root: String,
}

/// What the witness cosigned last, per origin, and where it is kept.
#[derive(Clone)]
pub struct State {
    path: PathBuf,
    witness: String,
    logs: BTreeMap<String, TreeHead>,
}

/// Holds the lock file that keeps a second witness process off the same state (two
/// processes, each with its own memory, could cosign a fork between them).
pub struct Lock(#[allow(dead_code)] File);

impl State {
    /// Locks and reads the state at `path`, made for the witness key `witness`; creates
    /// it (empty) if it does not exist yet. A state of another witness key, or one that
    /// cannot be read, is an error: the witness does not start rather than forget.
    pub fn open(path: &Path, witness: &str) -> anyhow::Result<(State, Lock)> {
        let lock_path = lock_path(path);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open the lock file {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!("another witness is using the state {} (its lock {} is held)", path.display(), lock_path.display());
        }
        let state = match std::fs::File::open(path) {
            Ok(f) => Self::read(f, path, witness)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = State { path: path.to_owned(), witness: witness.to_owned(), logs: BTreeMap::new() };
                state.save().with_context(|| format!("cannot create the state file {}", path.display()))?;
                eprintln!("created the witness state {} (no checkpoint cosigned yet)", path.display());
                state
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read the state file {}", path.display())),
        };
        Ok((state, Lock(lock)))
    }

    fn read(f: File, path: &Path, witness: &str) -> anyhow::Result<State> {
        use std::io::Read;
        let mut text = String::new();
        f.take(MAX_STATE_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read the state file {}", path.display()))?;
        if text.len() as u64 > MAX_STATE_BYTES {
            bail!("the state file {} is over {MAX_STATE_BYTES} bytes", path.display());
        }
        let bad = |why: String| {
            anyhow::anyhow!("the state file {} is damaged: {why}; restore it from a backup", path.display())
        };
        let file: StateFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if file.format != FORMAT {
            return Err(bad(format!("its format is {:?}, not {FORMAT}", file.format)));
        }
        if file.witness != witness {
            bail!(
                "the state file {} belongs to the witness {}, not to {witness}: give the --name and --identity it was made with, or another --state",
                path.display(),
                file.witness
            );
        }
        let mut logs = BTreeMap::new();
        for (origin, head) in file.logs {
            let root = B64
                .decode(&head.root)
                .ok()
                .and_then(|r| <[u8; 32]>::try_from(r).ok())
                .ok_or_else(|| bad(format!("the root of {origin:?} is not a base64 hash")))?;
            logs.insert(origin, TreeHead { size: head.size, root });
        }
        Ok(State { path: path.to_owned(), witness: witness.to_owned(), logs })
    }

    pub fn get(&self, origin: &str) -> Option<TreeHead> {
        self.logs.get(origin).copied()
    }

    /// This state with `origin` at `head`.
    pub fn with(&self, origin: &str, head: TreeHead) -> State {
        let mut next = self.clone();
        next.logs.insert(origin.to_owned(), head);
        next
    }

    /// Replaces the file with this state, durably: a temporary file in the same
    /// directory, synced, renamed over the old one, and the directory synced.
    pub fn save(&self) -> anyhow::Result<()> {
        let file = StateFile {
            format: FORMAT.to_owned(),
            witness: self.witness.clone(),
            logs: self.logs.iter().map(|(o, h)| (o.clone(), Head { size: h.size, root: B64.encode(h.root) })).collect(),
        };
        let mut json = serde_json::to_vec_pretty(&file)?;
        json.push(b'\n');
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new().prefix(".witness-state-").tempfile_in(dir)?;
        tmp.write_all(&json)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_refuses_another_witness_or_a_second_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (s, lock) = State::open(&path, "w+00000000+BA==").unwrap();
        assert!(s.get("o").is_none());
        s.with("o", TreeHead { size: 5, root: [7; 32] }).save().unwrap();
        assert!(State::open(&path, "w+00000000+BA==").is_err(), "a second process took the lock");
        drop(lock);
        let (s, _lock) = State::open(&path, "w+00000000+BA==").unwrap();
        assert_eq!(s.get("o"), Some(TreeHead { size: 5, root: [7; 32] }));
        drop(_lock);
        let err = State::open(&path, "other+00000000+BA==").err().unwrap().to_string();
        assert!(err.contains("belongs to the witness w+00000000+BA=="), "{err}");
    }

    #[test]
    fn fail_a_damaged_state_stops_the_witness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for text in [
            "",
            "{}",
            r#"{"format":"vault-witness-state/v1","witness":"w","logs":{"o":{"size":5,"root":"AAAA"}}}"#,
            r#"{"format":"vault-witness-state/v2","witness":"w","logs":{}}"#,
            r#"{"format":"vault-witness-state/v1","witness":"w","logs":{},"extra":1}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(State::open(&path, "w").is_err(), "{text}");
        }
    }
}
