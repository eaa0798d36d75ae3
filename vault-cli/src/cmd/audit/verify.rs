//! `vault-cli audit verify [--file EXPORT] [--full] --server-key KEY`.
//!
//! Online, it checks the server's current checkpoint against the one this auditor
//! verified last with a consistency proof: a logarithmic number of hashes, however many
//! entries were added. The first time (nothing pinned), with a pin from before the
//! Merkle tree, or with `--full`, it reads every entry instead: each link and hash, the
//! tree head of all of them against the signed root, and the pin against the first
//! entries. With `--file` it checks an export or a log slice offline. The first bad entry
//! or proof is named.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use vault_core::export::{self, Pin};
use vault_core::note::{Checkpoint, VerifierKey};
use vault_core::proof::Slice;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Verify {
    /// The log's verifier key, from the server's operator (`vault-server log-key`).
    #[arg(long, env = "VAULT_SERVER_KEY")]
    server_key: String,
    /// Verify this export or slice file offline instead of the server's log.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Re-verify every entry, not only that the log extends your last checkpoint.
    #[arg(long)]
    full: bool,
    /// With --file: verify an export older than your last checkpoint on its own.
    #[arg(long, requires = "file")]
    ignore_pin: bool,
    /// Accept that the server was restored from a backup: only if its log holds the
    /// operator's restore statement, signed into a checkpoint, for fewer entries than you
    /// verified last. Prints how many entries are lost, verifies every entry of the
    /// restored log and pins it (see the README, "Backup and restore").
    #[arg(long, conflicts_with_all = ["file", "full", "ignore_pin", "keys"])]
    accept_restore: bool,
    #[command(flatten)]
    witnesses: super::Witnesses,
}

/// What a run established.
struct Outcome {
    checkpoint: Checkpoint,
    note: String,
    /// The key that signed it.
    signer: VerifierKey,
    /// Entries read and checked one by one (0 for a consistency proof).
    checked: u64,
    /// Whether the checkpoint is one to pin (a whole log, checked against the pin).
    pin: bool,
}

impl Verify {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let key = VerifierKey::parse(&self.server_key)?;
        let pinned = if self.ignore_pin { None } else { crate::local::pinned_checkpoint(&key)?.map(|(p, _)| p) };
        // Offline, files are checked with the key this machine last followed the log to.
        let known = crate::local::signing_key(&key)?;
        let out = match &self.file {
            Some(path) => {
                let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                let mut r = BufReader::with_capacity(1 << 20, f);
                if r.fill_buf()?.first() == Some(&b'{') {
                    return verify_slice(r, &known, &self.witnesses, g.json);
                }
                full(r, &known, pinned)?
            }
            None if self.accept_restore => {
                return super::restore::accept(&mut Client::new(g)?, &key, g.json);
            }
            None => {
                let mut client = Client::new(g)?;
                let online = (|| {
                    anyhow::Ok(match pinned {
                        Some(Pin::Tree { .. }) if !self.full => {
                            let now = super::current_checkpoint(&mut client, &key, &self.witnesses, pinned)?;
                            Outcome {
                                checkpoint: now.checkpoint,
                                note: now.note,
                                signer: now.signer,
                                checked: 0,
                                pin: true,
                            }
                        }
                        _ => {
                            // The key that signs now, followed from the one trusted here
                            // (its transitions' trees checked against a pin of the tree).
                            let (signer, since) = super::follow(&mut client, &known, pinned)?;
                            let url = client.url("/v1/audit/export");
                            // Every entry streams: hours for a big log, not --timeout-secs.
                            let resp =
                                client.send(|h, _| h.get(&url).timeout(std::time::Duration::from_secs(24 * 3600)))?;
                            let mut out = full(BufReader::with_capacity(1 << 20, resp), &signer, pinned)?;
                            if signer != known
                                && let Some(Pin::Tree { size, root }) = since
                            {
                                // The log read extends the last change of key.
                                anyhow::ensure!(
                                    out.checkpoint.size >= size,
                                    "ACCESS LOG VERIFICATION FAILED: the log is shorter than the change of its key"
                                );
                                let t = Checkpoint { origin: out.checkpoint.origin.clone(), size, root };
                                super::check_consistent(&mut client, &t, &out.checkpoint)?;
                            }
                            if !self.witnesses.keys.is_empty() {
                                // The export's checkpoint is the server's alone: what gets
                                // pinned is the witnessed one, shown consistent with it.
                                let tree_pin = pinned.filter(|p| matches!(p, Pin::Tree { .. }));
                                let w = super::current_checkpoint(&mut client, &key, &self.witnesses, tree_pin)?;
                                super::check_consistent(&mut client, &w.checkpoint, &out.checkpoint)?;
                                out.checkpoint = w.checkpoint;
                                out.note = w.note;
                            }
                            out
                        }
                    })
                })();
                match (online, pinned) {
                    (Err(e), Some(Pin::Tree { size, .. })) if super::restore::is_divergence(&e) => {
                        match super::restore::hint(&mut client, &key, size) {
                            Some(hint) => return Err(anyhow::anyhow!("{e:#}\n{hint}")),
                            None => return Err(e),
                        }
                    }
                    (result, _) => result?,
                }
            }
        };
        let cp = &out.checkpoint;
        if !self.ignore_pin && out.pin {
            crate::local::pin_checkpoint(&key, &out.signer, &out.note)?;
        }
        let previous = pinned.map(|p| p.size());
        if g.json {
            crate::output::json(&serde_json::json!({
                "ok": true,
                "origin": cp.origin,
                "size": cp.size,
                "root": B64.encode(cp.root),
                "checked": out.checked,
                "previous_size": previous,
            }))?;
        } else {
            println!("ok: {} entries, root {}", cp.size, B64.encode(cp.root));
        }
        let how = if out.checked > 0 || self.full || self.file.is_some() {
            format!("verified every entry ({}) of log {}", out.checked, crate::output::printable(&cp.origin))
        } else {
            format!(
                "verified by a consistency proof that log {} grew only by appending",
                crate::output::printable(&cp.origin)
            )
        };
        eprintln!(
            "{how}; it extends {}",
            match previous {
                Some(size) => format!("the checkpoint you verified last ({size} entries)"),
                None => "nothing yet: this checkpoint is now pinned".into(),
            }
        );
        Ok(())
    }
}

/// Every entry of an export (a file, or the server's stream).
fn full(r: impl std::io::Read, key: &VerifierKey, pinned: Option<Pin>) -> anyhow::Result<Outcome> {
    let v = export::verify(r, key, pinned).context("ACCESS LOG VERIFICATION FAILED")?;
    let pin = pinned.is_none_or(|p| v.checkpoint.size >= p.size());
    Ok(Outcome { checked: v.checked, checkpoint: v.checkpoint, note: v.note, signer: key.clone(), pin })
}

/// A slice of the log (`audit export --case/--recording`): each entry's inclusion in the
/// signed checkpoint. It is not pinned: it does not show the whole log.
fn verify_slice(
    r: impl std::io::Read,
    key: &VerifierKey,
    witnesses: &super::Witnesses,
    json: bool,
) -> anyhow::Result<()> {
    let slice: Slice = serde_json::from_reader(r).context("not a log slice (JSON)")?;
    let (cp, entries) = slice.verify(key).context("ACCESS LOG SLICE VERIFICATION FAILED")?;
    witnesses.check(&slice.checkpoint)?;
    if json {
        crate::output::json(&serde_json::json!({
            "ok": true,
            "selection": slice.selection,
            "origin": cp.origin,
            "size": cp.size,
            "root": B64.encode(cp.root),
            "entries": entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        }))?;
    } else {
        println!("ok: {} entries about {}, in the log of {} entries", entries.len(), slice.selection, cp.size);
    }
    eprintln!(
        "verified: each entry is in the log whose checkpoint of {} entries the server's log key signed. \
         A slice cannot show that the log holds no other entries about {}.",
        cp.size,
        crate::output::printable(&slice.selection)
    );
    Ok(())
}
