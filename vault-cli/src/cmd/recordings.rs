//! `vault-cli recordings CASE`: the recordings of a case, metadata only.

use clap::Args;
use vault_core::api::RecordingInfo;
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Recordings {
    case: CaseId,
}

impl Recordings {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let list: Vec<RecordingInfo> = Client::new(g)?.get_json(&format!("/v1/cases/{}/recordings", self.case))?;
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
