//! `vault-cli audit log [--case CASE | --recording REC] [--server-key KEY]`: access-log
//! entries for people to read.
//!
//! With the log's verifier key (as `audit verify` takes it), every entry shown is proven
//! to be in the log: the server's checkpoint is checked against this machine's pin, and
//! each entry against the checkpoint by its inclusion proof. Without the key the entries
//! are shown as the server sent them, and stderr says so.

use clap::Args;
use vault_core::ids::{CaseId, RecordingId};
use vault_core::note::VerifierKey;
use vault_core::proof::ProvenEntry;

use crate::Global;
use crate::client::Client;

/// Entries per request.
const PAGE: u64 = 1000;

#[derive(Args)]
pub struct Log {
    /// Only entries about this case.
    #[arg(long, conflicts_with = "recording")]
    case: Option<CaseId>,
    /// Only entries about this recording.
    #[arg(long)]
    recording: Option<RecordingId>,
    /// Start at this sequence number.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// At most this many entries (default: all).
    #[arg(long)]
    limit: Option<u64>,
    /// The log's verifier key (`vault-server log-key`): prove every entry shown.
    #[arg(long, env = "VAULT_SERVER_KEY")]
    server_key: Option<String>,
    #[command(flatten)]
    witnesses: super::Witnesses,
}

impl Log {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        let proven = match &self.server_key {
            Some(k) => {
                let key = VerifierKey::parse(k)?;
                let pinned = crate::local::pinned_checkpoint(&key)?.map(|(p, _)| p);
                let now = super::current_checkpoint(&mut client, &key, &self.witnesses, pinned)?;
                if matches!(pinned, Some(vault_core::export::Pin::Tree { .. })) {
                    crate::local::pin_checkpoint(&key, &now.signer, &now.note)?;
                }
                Some(now.checkpoint)
            }
            None => None,
        };
        let filter = match (&self.case, &self.recording) {
            (Some(c), _) => format!("&case={c}"),
            (None, Some(r)) => format!("&recording={r}"),
            (None, None) => String::new(),
        };
        let size = proven.as_ref().map(|cp| format!("&size={}", cp.size)).unwrap_or_default();
        let want = self.limit.unwrap_or(u64::MAX);
        let mut all: Vec<ProvenEntry> = Vec::new();
        let mut from = self.from;
        while (all.len() as u64) < want {
            let limit = PAGE.min(want - all.len() as u64);
            let page: Vec<ProvenEntry> =
                client.get_json(&format!("/v1/audit/entries?from={from}&limit={limit}{filter}{size}"))?;
            // A short page is the end: reading the log appends to it, so "until empty"
            // would chase its own access records forever.
            let done = (page.len() as u64) < limit;
            let Some(last) = page.last() else { break };
            from = last.chained.entry.seq + 1;
            all.extend(page);
            if done {
                break;
            }
        }
        all.truncate(want.min(usize::MAX as u64) as usize);
        match &proven {
            Some(cp) => {
                for e in &all {
                    super::prove(e, cp)?;
                }
                eprintln!("{} entries, each proven to be in the log's checkpoint of {} entries", all.len(), cp.size);
            }
            None => eprintln!("entries as the server sent them; give --server-key to have each one proven"),
        }
        if g.json {
            return crate::output::json(&all.iter().map(|e| &e.chained).collect::<Vec<_>>());
        }
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|e| {
                let e = &e.chained.entry;
                let time = chrono::DateTime::from_timestamp_millis(e.time_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                vec![
                    e.seq.to_string(),
                    time,
                    e.actor.clone(),
                    e.action.clone(),
                    e.outcome.clone(),
                    if e.recording_id.is_empty() { e.case_id.clone() } else { e.recording_id.clone() },
                    e.reason.clone(),
                    e.details.clone(),
                ]
            })
            .collect();
        crate::output::table(
            &["SEQ", "TIME (UTC)", "ACTOR", "ACTION", "OUTCOME", "CASE/RECORDING", "REASON", "DETAILS"],
            &rows,
        );
        Ok(())
    }
}
