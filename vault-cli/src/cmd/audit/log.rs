//! `vault-cli audit log [--case CASE]`: access-log entries for people to read.

use clap::Args;
use vault_core::ids::CaseId;
use vault_core::log::ChainedEntry;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Log {
    /// Only entries about this case.
    #[arg(long)]
    case: Option<CaseId>,
    /// Start at this sequence number.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// At most this many entries (default: all).
    #[arg(long)]
    limit: Option<u64>,
}

impl Log {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        let mut all: Vec<ChainedEntry> = Vec::new();
        let mut from = self.from;
        loop {
            let mut path = format!("/v1/audit/entries?from={from}&limit=1000");
            if let Some(c) = &self.case {
                path.push_str(&format!("&case={c}"));
            }
            let page: Vec<ChainedEntry> = client.get_json(&path)?;
            // A short page is the end: reading the log appends to it, so "until empty"
            // would chase its own access records forever.
            let done = page.len() < 1000;
            let Some(last) = page.last() else { break };
            from = last.entry.seq + 1;
            all.extend(page);
            if done {
                break;
            }
            if self.limit.is_some_and(|l| all.len() as u64 >= l) {
                all.truncate(self.limit.unwrap_or(u64::MAX) as usize);
                break;
            }
        }
        if g.json {
            return crate::output::json(&all);
        }
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|e| {
                let e = &e.entry;
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
