//! `vault-cli recordings CASE`: the recordings of a case, metadata only.

use clap::Args;
use vault_core::api::{PAGE_MAX, RecordingInfo, RecordingPage};
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
        if g.json {
            return crate::output::json(&list);
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
            .collect();
        crate::output::table(&["RECORDING", "RECORDED AT", "ANNOUNCED", "BYTES", "KEY", "UPLOADED BY"], &rows);
        Ok(())
    }
}
