//! `vault-cli case release-hold CASE --reason`: lifts a closed case's legal hold, so its
//! recordings are purged when their retention period ends.

use clap::Args;
use vault_core::api::{Done, Reason};
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct ReleaseHold {
    case: CaseId,
    #[arg(long)]
    reason: String,
}

impl ReleaseHold {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let ReleaseHold { case, reason } = self;
        let done: Done<CaseId> =
            Client::new(g)?.post_json(&format!("/v1/cases/{case}/release-hold"), &Reason { reason })?;
        if g.json {
            crate::output::json(&done)?;
        }
        eprintln!(
            "released {} from legal hold; its retention period applies again, and once closed its recordings are no longer released",
            done.id
        );
        Ok(())
    }
}
