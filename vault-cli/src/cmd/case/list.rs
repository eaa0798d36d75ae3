//! `vault-cli case list`: the cases the caller may see, one line each.

use clap::Args;
use vault_core::api::CaseInfo;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct List {}

impl List {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let cases: Vec<CaseInfo> = Client::new(g)?.get_json("/v1/cases")?;
        if g.json {
            return crate::output::json(&cases);
        }
        let rows: Vec<Vec<String>> = cases
            .iter()
            .map(|c| {
                vec![
                    c.id.to_string(),
                    c.kind.to_string(),
                    c.status.to_string(),
                    c.recordings.to_string(),
                    c.title.clone(),
                ]
            })
            .collect();
        crate::output::table(&["CASE", "KIND", "STATUS", "RECORDINGS", "TITLE"], &rows);
        Ok(())
    }
}
