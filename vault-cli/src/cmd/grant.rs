//! `vault-cli grant CASE USER --reason` and `vault-cli grant approve CASE USER`.
//!
//! Granting happens on the custodian's machine: the case secret is unwrapped here with
//! the custodian's identity and wrapped to the grantee's recipient; the server only ever
//! sees the two envelopes.

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use vault_core::api::{Done, GrantInfo, GrantStatus, NewGrant};
use vault_core::ids::{CaseId, UserName};

use crate::Global;
use crate::client::Client;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Grant {
    #[command(subcommand)]
    approve: Option<GrantSub>,
    #[arg(required = true)]
    case: Option<CaseId>,
    #[arg(required = true, value_name = "USER")]
    grantee: Option<UserName>,
    /// Why this person needs access (kept in the access log).
    #[arg(long, required = true)]
    reason: Option<String>,
    /// Last day the grant is valid (YYYY-MM-DD).
    #[arg(long)]
    until: Option<NaiveDate>,
}

#[derive(Subcommand)]
enum GrantSub {
    /// Approve a pending grant on a covert case (a second admin; four eyes).
    Approve {
        case: CaseId,
        #[arg(value_name = "USER")]
        grantee: UserName,
    },
}

impl Grant {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        if let Some(GrantSub::Approve { case, grantee: user }) = self.approve {
            let done: Done<UserName> =
                client.post_json(&format!("/v1/cases/{case}/grants/{user}/approve"), &serde_json::json!({}))?;
            if g.json {
                crate::output::json(&done)?;
            }
            eprintln!("approved the grant of {} on {case}; it is active now", done.id);
            return Ok(());
        }
        let (case, user, reason) = (
            self.case.context("CASE is required")?,
            self.grantee.context("USER is required")?,
            self.reason.context("--reason is required")?,
        );
        let keys = crate::custody::CustodianKeys::fetch(&mut client, &case)?;
        let req = NewGrant { user: user.clone(), reason, until: self.until, envelopes: keys.wrap_all_to(&user)? };
        let info: GrantInfo = client.post_json(&format!("/v1/cases/{case}/grants"), &req)?;
        if g.json {
            crate::output::json(&info)?;
        }
        match info.status {
            GrantStatus::Pending => eprintln!(
                "granted {user} access to covert case {case}, pending: a second admin must run `vault-cli grant approve {case} {user}`"
            ),
            _ => eprintln!("granted {user} access to case {case}"),
        }
        Ok(())
    }
}
