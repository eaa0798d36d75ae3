//! A restored server, from the auditor's side: what `audit verify` adds when the log no
//! longer extends the pin, and `audit verify --accept-restore`.
//!
//! A server restored from a backup has lost the entries written after the backup: its
//! log is a valid log that forks from (or is shorter than) the one an auditor pinned, and
//! a verification fails as it must. The operator's `vault-server restore` appends a
//! `log-restore` statement to the restored log, naming the backup's size N and tree head.
//! Only when the auditor asks, the statement is checked and accepted: it must be in the
//! log a checkpoint signed by the pinned log key covers (an inclusion proof), come right
//! after the N entries it names, restore fewer entries than the pin holds, and its tree
//! head must be that of the restored log's first N entries (a consistency proof); the
//! whole new log is then verified entry by entry and pinned. The old pin is kept beside
//! the new one, as the auditor's evidence of what was lost.
//!
//! What this cannot show: that the first N entries are the ones the auditor verified
//! before. The pin holds only a tree head of P entries, and proving that N entries are
//! its prefix needs hashes of the lost entries. The statement is the operator's word,
//! signed and logged: accepting it is a decision, which is why it takes a flag.

use std::io::BufReader;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use vault_core::export::{self, Pin, VerifyError};
use vault_core::log::Action;
use vault_core::note::{Checkpoint, VerifierKey};

use crate::client::Client;
use crate::output::printable;

/// A `log-restore` entry, proven to be in a signed checkpoint.
struct Statement {
    seq: u64,
    backup_size: u64,
    backup_root: [u8; 32],
    taken_at: String,
    reason: String,
}

/// Whether `e` says the server's log does not extend the pin (the failure a restore
/// causes, among others).
pub(super) fn is_divergence(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<VerifyError>(),
            Some(VerifyError::RolledBack { .. } | VerifyError::Inconsistent { .. } | VerifyError::Rewritten { .. })
        )
    })
}

/// What to tell an auditor whose pin of `pinned` entries the server's log no longer
/// extends, if the server states it was restored: `None` if it states nothing (or cannot
/// be asked). Changes nothing.
pub(super) fn hint(client: &mut Client, key: &VerifierKey, pinned: u64) -> Option<String> {
    let cp = super::current_checkpoint(client, key, &super::Witnesses::default(), None).ok()?.checkpoint;
    let all = statements(client, &cp).ok()?;
    let Some(st) = explaining(&all, pinned) else {
        return Some(
            "The server's log holds no restore statement that explains this: it is not a logged restore from a \
             backup. Do not accept it; ask the operator."
                .into(),
        );
    };
    Some(format!(
        "The server states it was restored from a backup (log entry {}, in its checkpoint of {} entries): the backup \
         held {} entries, taken {}, reason: {:?}. The {} entries after it that you verified are lost. To accept that \
         deliberately, run `vault-cli audit verify --accept-restore --server-key ...`, which checks the statement, \
         verifies the whole restored log and pins it; until then nothing changes.",
        st.seq,
        cp.size,
        st.backup_size,
        printable(&st.taken_at),
        printable(&st.reason),
        pinned - st.backup_size,
    ))
}

/// `audit verify --accept-restore`: checks the restore statement that explains why the
/// log no longer extends the pin, verifies the whole log, and pins it.
pub(super) fn accept(client: &mut Client, key: &VerifierKey, json: bool) -> anyhow::Result<()> {
    let (pin, old_note) = crate::local::pinned_checkpoint(key)?
        .context("you have pinned no checkpoint of this log, so there is no restore to accept: run `audit verify`")?;
    let Pin::Tree { size: pinned, root: pinned_root } = pin else {
        bail!("your pin is from before the Merkle tree; run `audit verify --full` first")
    };
    let super::Current { checkpoint: cp, signer, .. } =
        super::current_checkpoint(client, key, &super::Witnesses::default(), None)?;
    if super::extends(client, pinned, &pinned_root, &cp).is_ok() {
        bail!(
            "the server's log extends the checkpoint you verified last ({pinned} entries): there is no restore to \
             accept; run `audit verify`"
        );
    }
    let url = client.url("/v1/audit/export");
    let resp = client.send(|h, _| h.get(&url).timeout(std::time::Duration::from_secs(24 * 3600)))?;
    let v = export::verify(BufReader::with_capacity(1 << 20, resp), &signer, None)
        .context("ACCESS LOG VERIFICATION FAILED: the restored log itself does not verify; nothing was changed")?;
    let all = statements(client, &v.checkpoint)?;
    let st = explaining(&all, pinned).with_context(|| {
        format!(
            "REFUSED: the server's log does not extend the checkpoint you verified last ({pinned} entries), and it \
             holds no restore statement for a backup of fewer entries: this is a rollback or a rewrite, not a logged \
             restore. Nothing was changed; keep your pin and ask the operator"
        )
    })?;
    super::extends(client, st.backup_size, &st.backup_root, &v.checkpoint).with_context(|| {
        format!(
            "REFUSED: the restore statement (entry {}) names a tree head that is not the restored log's first {} \
             entries; nothing was changed",
            st.seq, st.backup_size
        )
    })?;
    let kept = crate::local::keep_replaced_pin(key, &old_note)?;
    crate::local::pin_checkpoint(key, &signer, &v.note)?;
    let lost = pinned - st.backup_size;
    if json {
        crate::output::json(&serde_json::json!({
            "ok": true,
            "accepted_restore": st.seq,
            "backup_size": st.backup_size,
            "backup_taken_at": st.taken_at,
            "reason": st.reason,
            "previous_size": pinned,
            "lost": lost,
            "size": v.checkpoint.size,
            "root": B64.encode(v.checkpoint.root),
            "checked": v.checked,
        }))?;
    } else {
        println!("ok: {} entries, root {}", v.checkpoint.size, B64.encode(v.checkpoint.root));
    }
    eprintln!(
        "accepted the server's restore statement (log entry {}: a backup of {} entries taken {}, reason: {:?}). {lost} \
         of the {pinned} entries you had verified are lost. Verified every entry ({}) of the restored log and pinned \
         it; your previous pin is kept in {}",
        st.seq,
        st.backup_size,
        printable(&st.taken_at),
        printable(&st.reason),
        v.checked,
        kept.display()
    );
    Ok(())
}

/// The restore statement that explains a log no longer extending a pin of `pinned`
/// entries: the latest one that restored fewer entries, logged right after them.
fn explaining(all: &[Statement], pinned: u64) -> Option<&Statement> {
    // A backup holds the `init` entry at least.
    all.iter().rev().find(|s| s.backup_size > 0 && s.backup_size < pinned && s.seq == s.backup_size)
}

/// Every `log-restore` entry of the log `cp` signs, each proven included in it.
fn statements(client: &mut Client, cp: &Checkpoint) -> anyhow::Result<Vec<Statement>> {
    let mut out = Vec::new();
    super::for_each_proven(client, cp, &format!("&action={}", Action::LogRestore), |e| {
        let entry = &e.chained.entry;
        if entry.action == Action::LogRestore.as_str()
            && entry.outcome == "allowed"
            && let Some(st) = parse(entry)
        {
            out.push(st);
        }
    })?;
    Ok(out)
}

/// A restore statement's fields; `None` if its details are not those of one.
fn parse(e: &vault_core::log::Entry) -> Option<Statement> {
    let d: serde_json::Value = serde_json::from_str(&e.details).ok()?;
    let root = B64.decode(d["backup_root"].as_str()?).ok()?.try_into().ok()?;
    Some(Statement {
        seq: e.seq,
        backup_size: d["backup_size"].as_u64()?,
        backup_root: root,
        taken_at: d["backup_taken_at"].as_str().unwrap_or_default().to_owned(),
        reason: e.reason.clone(),
    })
}
