//! `vault-cli case close CASE --outcome`: ends a case; what happens to its recordings then
//! depends on the outcome (destroyed, on legal hold, or purged at the end of retention).

use clap::Args;
use vault_core::api::{CaseInfo, Closing, Done, Outcome};
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Close {
    case: CaseId,
    #[arg(long)]
    outcome: Outcome,
}

impl Close {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let Close { case, outcome } = self;
        let mut client = Client::new(g)?;
        let done: Done<CaseId> = client.post_json(&format!("/v1/cases/{case}/close"), &Closing { outcome })?;
        let info: CaseInfo = client.get_json(&format!("/v1/cases/{case}"))?;
        if g.json {
            crate::output::json(&info)?;
        }
        match outcome {
            Outcome::NoOffence => eprintln!(
                "closed {}: {} recordings and every key envelope destroyed; `vault-cli case show {}` prints the certificate",
                done.id,
                info.destroyed.len(),
                done.id
            ),
            Outcome::Offence => eprintln!(
                "closed {}: on legal hold until `case release-hold`; its grantees may still fetch its recordings, \
                 and two admins may reopen it (`case reopen`)",
                done.id
            ),
            Outcome::Completed => {
                eprintln!("closed {}; recordings are purged when their retention period ends", done.id)
            }
        }
        if let Some(n) = &info.notification {
            eprintln!("the employee must be told about the recording by {} (vault-cli case notify)", n.due);
        }
        Ok(())
    }
}
