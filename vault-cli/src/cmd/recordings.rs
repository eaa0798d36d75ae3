//! `vault-cli recordings CASE [--names]`: the recordings of a case, metadata only, and
//! with `--names` their original file names, decrypted locally.

use anyhow::Context;
use clap::Args;
use vault_core::api::{KeyEnvelope, PAGE_MAX, RecordingInfo, RecordingPage};
use vault_core::ids::{CaseId, RecordingId};

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Recordings {
    case: CaseId,
    /// Start after this recording (in upload order).
    #[arg(long)]
    after: Option<RecordingId>,
    /// List at most this many (default: all).
    #[arg(long)]
    limit: Option<usize>,
    /// Also decrypt each recording's call metadata (its original file name) with your
    /// envelopes of the case key (grantees; logged).
    #[arg(long)]
    names: bool,
}

impl Recordings {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        let mut list: Vec<RecordingInfo> = Vec::new();
        let mut after = self.after.clone();
        loop {
            let want = self.limit.map_or(PAGE_MAX as usize, |l| (l - list.len()).min(PAGE_MAX as usize));
            let mut path = format!("/v1/cases/{}/recordings?limit={want}", self.case);
            if let Some(a) = &after {
                path.push_str(&format!("&after={a}"));
            }
            let page: RecordingPage = client.get_json(&path)?;
            list.extend(page.recordings);
            after = page.next;
            if after.is_none() || self.limit.is_some_and(|l| list.len() >= l) {
                break;
            }
        }
        let names = if self.names { file_names(&mut client, &self.case, &list)? } else { Vec::new() };
        if g.json {
            let mut value = serde_json::to_value(&list)?;
            if let Some(items) = value.as_array_mut() {
                for (item, name) in items.iter_mut().zip(&names) {
                    item["file_name"] = serde_json::json!(name);
                }
            }
            return crate::output::json(&value);
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.recorded_at.clone(),
                    r.announced.to_string(),
                    r.size.to_string(),
                    r.key_version.to_string(),
                    r.uploaded_by.to_string(),
                ]
            })
            .zip(names.iter().map(Some).chain(std::iter::repeat(None)))
            .map(|(mut row, name)| {
                if self.names {
                    row.push(name.cloned().flatten().unwrap_or_else(|| "-".into()));
                }
                row
            })
            .collect();
        let mut header = vec!["RECORDING", "RECORDED AT", "ANNOUNCED", "BYTES", "KEY", "UPLOADED BY"];
        if self.names {
            header.push("FILE NAME");
        }
        crate::output::table(&header, &rows);
        Ok(())
    }
}

/// The original file name of each recording, decrypted with the caller's envelopes.
fn file_names(client: &mut Client, case: &CaseId, list: &[RecordingInfo]) -> anyhow::Result<Vec<Option<String>>> {
    let identity = client.identity()?;
    let envelopes: Vec<KeyEnvelope> = client.get_json(&format!("/v1/cases/{case}/envelopes"))?;
    let dir = crate::trust::directory(client)?;
    let (keys, _) = crate::custody::unwrap_envelopes(&dir, case, &envelopes, &identity)?;
    list.iter()
        .map(|r| {
            let (Some(meta), Some((_, key))) = (&r.meta, keys.iter().find(|(v, _)| *v == r.key_version)) else {
                return Ok(None);
            };
            let call = vault_core::crypto::open_call_meta(key.identity(), meta)
                .with_context(|| format!("cannot decrypt the call metadata of {}", r.id))?;
            Ok(call.file_name)
        })
        .collect()
}
