//! `vault-cli audit verify | export | log` (auditors).
//!
//! Whatever an auditor reads from the server is checked against the log's verifier key
//! and the checkpoint this machine verified last: the server's current checkpoint must
//! extend the pinned one (a consistency proof), and every entry shown must be in the
//! tree that checkpoint signs (an inclusion proof). When the log's key has changed, the
//! change is followed from the key the auditor supplied ([`follow`]).

use std::io::Read;

use anyhow::Context;
use clap::Subcommand;
use vault_core::cosign::{self, WitnessKey};
use vault_core::export::{Pin, verify_extends};
use vault_core::note::{Checkpoint, VerifierKey};
use vault_core::proof::ConsistencyProof;
use vault_core::rotation::KeyTransition;

use crate::Global;
use crate::client::Client;

/// The most bytes of a checkpoint note read from a server.
const MAX_NOTE: u64 = 64 * 1024;

mod export;
mod log;
mod restore;
mod verify;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the access log: that it extends what you verified last (or, with --full or
    /// the first time, every entry).
    Verify(verify::Verify),
    /// Write the access log, or the slice about one case or recording, to a file that
    /// verifies offline.
    Export(export::Export),
    /// List access-log entries, each proven to be in the log.
    Log(log::Log),
}

impl AuditCommand {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        match self {
            AuditCommand::Verify(c) => c.run(g),
            AuditCommand::Export(c) => c.run(g),
            AuditCommand::Log(c) => c.run(g),
        }
    }
}

/// The witnesses an auditor requires, for every command that trusts a checkpoint.
#[derive(clap::Args, Clone, Default)]
pub struct Witnesses {
    /// Trust a checkpoint only if this witness cosigned it (its verifier key, from
    /// `vault-cli witness key`); repeat, or separate with commas, for several. This is
    /// what stops a server from showing you a log others are not shown.
    #[arg(long = "witness-key", env = "VAULT_WITNESS_KEYS", value_delimiter = ',', value_parser = parse_witness_key)]
    pub keys: Vec<WitnessKey>,
}

fn parse_witness_key(s: &str) -> Result<WitnessKey, String> {
    WitnessKey::parse(s.trim()).map_err(|e| e.to_string())
}

impl Witnesses {
    /// Checks that `note` carries a valid cosignature by every required witness.
    pub fn check(&self, note: &str) -> anyhow::Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        cosign::verify(note, &self.keys).context("ACCESS LOG VERIFICATION FAILED: the checkpoint is not witnessed")?;
        Ok(())
    }
}

/// The server's current checkpoint, checked. Returned with its note and the key that
/// signs the log now; the caller pins it with [`crate::local::pin_checkpoint`] once it
/// has checked what it came for.
pub(crate) struct Current {
    pub checkpoint: Checkpoint,
    pub note: String,
    pub signer: VerifierKey,
}

/// The server's current checkpoint, checked: its signature by the log's key (`key`, the
/// one the auditor supplied, or the key this machine followed it to, or the key the log's
/// transitions lead to from there: [`follow`]); with required witnesses, that it is the
/// witnessed one and carries every one's cosignature; and, if this machine pinned a
/// checkpoint of the tree, that it extends the pin (a consistency proof). A pin from
/// before the tree can only be carried over by a full verification, which is the
/// caller's to do.
pub(crate) fn current_checkpoint(
    client: &mut Client,
    key: &VerifierKey,
    witnesses: &Witnesses,
    pinned: Option<Pin>,
) -> anyhow::Result<Current> {
    let path = if witnesses.keys.is_empty() { "/v1/audit/checkpoint" } else { "/v1/log/checkpoint" };
    let url = client.url(path);
    let resp = client.send(|h, _| h.get(&url))?;
    let mut note = String::new();
    // A note is a few hundred bytes (with a hundred cosignatures, some 10 KB).
    resp.take(MAX_NOTE).read_to_string(&mut note).context("reading the checkpoint")?;
    let known = crate::local::signing_key(key)?;
    // Following the key's transitions only when the checkpoint needs it: one request
    // less on every other run.
    let (signer, pinned) = match Checkpoint::open(&note, &known) {
        Ok(_) => (known, pinned),
        Err(e) => match follow(client, &known, pinned)? {
            (next, at) if next != known => (next, at),
            _ => return Err(e).context("ACCESS LOG VERIFICATION FAILED"),
        },
    };
    let checkpoint = Checkpoint::open(&note, &signer).context("ACCESS LOG VERIFICATION FAILED")?;
    witnesses.check(&note)?;
    if let Some(Pin::Tree { size, root }) = pinned {
        extends(client, size, &root, &checkpoint)?;
    }
    Ok(Current { checkpoint, note, signer })
}

/// Follows the log's key from `from` through the transitions the server lists
/// (`vault_core::rotation`): each must be from the key in effect and signed by it and by
/// the next key, and, for an auditor with a pin of the tree, extend the pin and then the
/// transition before by a consistency proof. Returns the key in effect after the last
/// one, and the tree the current checkpoint must then extend (the last transition's, or
/// `pinned` if none applied). A server cannot introduce a key the pinned one did not
/// sign over to, nor hide a transition: a checkpoint by a key not reached is refused.
pub(crate) fn follow(
    client: &mut Client,
    from: &VerifierKey,
    pinned: Option<Pin>,
) -> anyhow::Result<(VerifierKey, Option<Pin>)> {
    let all: Vec<KeyTransition> = client.get_json("/v1/log/key-transitions")?;
    let Some(first) = all.iter().position(|t| t.is_from(from)) else { return Ok((from.clone(), pinned)) };
    let (mut key, mut at) = (from.clone(), pinned);
    for t in &all[first..] {
        let (cp, next) = t.open(&key).context("ACCESS LOG VERIFICATION FAILED: a change of the log's key")?;
        match at {
            Some(Pin::Tree { size, root }) => extends(client, size, &root, &cp)
                .context("the change of the log's key does not extend the log you verified")?,
            // A pin of the hash chain is checked by the full verification that follows.
            Some(Pin::Chain { .. }) | None => {}
        }
        eprintln!(
            "note: the log's key changed at entry {}; the change is signed by the key you trust and by the new key {}",
            cp.size.saturating_sub(1),
            crate::output::printable(&next.to_text())
        );
        (key, at) = (next, Some(Pin::Tree { size: cp.size, root: cp.root }));
    }
    Ok((key, at))
}

/// Checks that entry `e` is in the tree `cp` signs, by its inclusion proof.
pub(crate) fn prove(e: &vault_core::proof::ProvenEntry, cp: &Checkpoint) -> anyhow::Result<()> {
    e.verify(cp).map_err(|why| {
        anyhow::anyhow!(
            "ACCESS LOG VERIFICATION FAILED: entry {} is not in the log the checkpoint of {} entries signs ({why})",
            e.chained.entry.seq,
            cp.size
        )
    })
}

/// Every entry matching `filter` (`&case=...`, `&action=...`, or empty) in the tree `cp`
/// signs, in log order, each proven included in it before `each` sees it.
pub(crate) fn for_each_proven(
    client: &mut Client,
    cp: &Checkpoint,
    filter: &str,
    mut each: impl FnMut(&vault_core::proof::ProvenEntry),
) -> anyhow::Result<()> {
    const PAGE: usize = 1000;
    let mut from = 0;
    loop {
        let page: Vec<vault_core::proof::ProvenEntry> =
            client.get_json(&format!("/v1/audit/entries?from={from}&limit={PAGE}&size={}{filter}", cp.size))?;
        for e in &page {
            prove(e, cp)?;
            each(e);
        }
        match page.last() {
            Some(last) if page.len() == PAGE => from = last.chained.entry.seq + 1,
            _ => return Ok(()),
        }
    }
}

/// Checks that two checkpoints of one log are consistent (the smaller extended by the
/// larger), asking the server for the proof.
pub(crate) fn check_consistent(client: &mut Client, a: &Checkpoint, b: &Checkpoint) -> anyhow::Result<()> {
    let (small, large) = if a.size <= b.size { (a, b) } else { (b, a) };
    extends(client, small.size, &small.root, large)
}

/// Checks that `now` extends the tree of `size` entries with head `root`, by a
/// consistency proof from the server (none is needed for equal sizes, and none can help
/// a smaller `now`: that is a rollback).
pub(crate) fn extends(client: &mut Client, size: u64, root: &[u8; 32], now: &Checkpoint) -> anyhow::Result<()> {
    let proof = if size > 0 && size < now.size {
        let p: ConsistencyProof = client.get_json(&format!("/v1/audit/consistency?from={size}&to={}", now.size))?;
        anyhow::ensure!(
            p.from == size && p.to == now.size,
            "ACCESS LOG VERIFICATION FAILED: the server answered a consistency proof for other sizes"
        );
        p.hashes
    } else {
        Vec::new()
    };
    verify_extends(size, root, now, &proof).context("ACCESS LOG VERIFICATION FAILED")
}
