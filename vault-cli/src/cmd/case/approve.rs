//! `vault-cli case approve CASE --ap-ref`: records the AP's prior-check approval of a
//! covert case, which it needs before it takes recordings.

use chrono::NaiveDate;
use clap::Args;
use vault_core::api::{Approval, Done};
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Approve {
    case: CaseId,
    /// The AP's reference for its approval.
    #[arg(long)]
    ap_ref: String,
    /// Date of the approval (default: today).
    #[arg(long)]
    date: Option<NaiveDate>,
}

impl Approve {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let Approve { case, ap_ref, date } = self;
        let done: Done<CaseId> =
            Client::new(g)?.post_json(&format!("/v1/cases/{case}/approve"), &Approval { ap_ref, date })?;
        if g.json {
            crate::output::json(&done)?;
        }
        eprintln!("recorded the AP's approval; case {} is open for recordings", done.id);
        Ok(())
    }
}
