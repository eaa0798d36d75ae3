//! `vault-cli case reopen CASE --reason` and `vault-cli case reopen approve CASE`: opening a
//! covert case on legal hold again, with four eyes.
//!
//! One admin requests it with a reason; the case stays closed (its grantees may still read
//! the evidence, nothing new comes in) until a second admin approves. Then it is open again:
//! its outcome is cleared, it takes recordings and grants, and both its legal hold (so
//! retention purges none of the evidence) and the duty to tell the employee (R6) stay.

use anyhow::Context;
use clap::{Args, Subcommand};
use vault_core::api::{Done, Reason};
use vault_core::ids::CaseId;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Reopen {
    #[command(subcommand)]
    sub: Option<ReopenSub>,
    #[arg(required = true)]
    case: Option<CaseId>,
    /// Why the investigation must resume (kept in the access log).
    #[arg(long, required = true)]
    reason: Option<String>,
}

#[derive(Subcommand)]
enum ReopenSub {
    /// Approve another admin's request to reopen the case (a second admin; four eyes).
    Approve { case: CaseId },
}

impl Reopen {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        if let Some(ReopenSub::Approve { case }) = self.sub {
            let done: Done<CaseId> =
                client.post_json(&format!("/v1/cases/{case}/reopen/approve"), &serde_json::json!({}))?;
            if g.json {
                crate::output::json(&done)?;
            }
            eprintln!(
                "reopened {}: it is open again for recordings and grants; it stays on legal hold until \
                 `case release-hold`, and the employee must still be told once it closes (vault-cli case notify)",
                done.id
            );
            return Ok(());
        }
        let (case, reason) = (self.case.context("CASE is required")?, self.reason.context("--reason is required")?);
        let done: Done<CaseId> = client.post_json(&format!("/v1/cases/{case}/reopen"), &Reason { reason })?;
        if g.json {
            crate::output::json(&done)?;
        }
        eprintln!(
            "requested reopening {}; it stays closed until a second admin approves: vault-cli case reopen approve {}",
            done.id, done.id
        );
        Ok(())
    }
}
