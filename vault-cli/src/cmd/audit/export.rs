//! `vault-cli audit export --out FILE [--case CASE | --recording REC]`: the whole log with
//! a signed checkpoint, or the slice of it about one case or recording with an inclusion
//! proof per entry, for `audit verify --file` on another machine.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;
use vault_core::ids::{CaseId, RecordingId};
use vault_core::note::VerifierKey;
use vault_core::proof::{SLICE_FORMAT, Slice, SliceEntry};

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Export {
    /// Where to write the export (must not exist yet).
    #[arg(long)]
    out: PathBuf,
    /// Only the entries about this case, each with its inclusion proof.
    #[arg(long, conflicts_with = "recording", requires = "server_key")]
    case: Option<CaseId>,
    /// Only the entries about this recording, each with its inclusion proof.
    #[arg(long, requires = "server_key")]
    recording: Option<RecordingId>,
    /// The log's verifier key: a slice is checked against it (and your pin) before it is
    /// written.
    #[arg(long, env = "VAULT_SERVER_KEY")]
    server_key: Option<String>,
    /// With witnesses required, a slice carries the witnessed checkpoint and its
    /// cosignatures, so that it verifies against them offline.
    #[command(flatten)]
    witnesses: super::Witnesses,
}

impl Export {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let dir = crate::output::new_output(&self.out)?;
        let mut client = Client::new(g)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        let selection = match (&self.case, &self.recording) {
            (Some(c), _) => Some((format!("case {c}"), format!("&case={c}"))),
            (None, Some(r)) => Some((format!("recording {r}"), format!("&recording={r}"))),
            (None, None) => None,
        };
        let n = match (selection, &self.server_key) {
            (Some((selection, filter)), Some(key)) => {
                let slice = slice(&mut client, &VerifierKey::parse(key)?, &self.witnesses, selection, &filter)?;
                serde_json::to_writer_pretty(&mut tmp, &slice)?;
                tmp.write_all(b"\n")?;
                slice.entries.len() as u64
            }
            _ => {
                let url = client.url("/v1/audit/export");
                // An export streams the whole log (gigabytes, for a busy year): it gets
                // hours, not --timeout-secs; a server that stops sending is closed by its
                // own idle timeout.
                let mut resp = client.send(|h, _| h.get(&url).timeout(std::time::Duration::from_secs(24 * 3600)))?;
                std::io::copy(&mut resp, &mut tmp).context("the export stream broke off; nothing was written")?
            }
        };
        tmp.flush()?;
        tmp.as_file().sync_all()?;
        tmp.persist_noclobber(&self.out).map_err(|e| anyhow!("cannot write {}: {}", self.out.display(), e.error))?;
        let what = if self.case.is_some() || self.recording.is_some() { "entries" } else { "bytes" };
        if g.json {
            crate::output::json(&serde_json::json!({ "out": self.out, what: n }))?;
        } else {
            println!("{}", self.out.display());
        }
        eprintln!(
            "wrote {n} {what}; check it with `vault-cli audit verify --file {} --server-key KEY`",
            self.out.display()
        );
        Ok(())
    }
}

/// The entries matching `filter` with their proofs in the server's current checkpoint,
/// checked here before they are written.
fn slice(
    client: &mut Client,
    key: &VerifierKey,
    witnesses: &super::Witnesses,
    selection: String,
    filter: &str,
) -> anyhow::Result<Slice> {
    let pinned = crate::local::pinned_checkpoint(key)?.map(|(p, _)| p);
    let super::Current { checkpoint: cp, note, signer } = super::current_checkpoint(client, key, witnesses, pinned)?;
    let mut entries = Vec::new();
    super::for_each_proven(client, &cp, filter, |e| {
        let mut encoding = Vec::new();
        e.chained.entry.encode_into(&mut encoding);
        entries.push(SliceEntry { encoding, proof: e.proof.clone() });
    })?;
    if matches!(pinned, Some(vault_core::export::Pin::Tree { .. })) {
        crate::local::pin_checkpoint(key, &signer, &note)?;
    }
    Ok(Slice { format: SLICE_FORMAT.into(), selection, checkpoint: note, entries })
}
