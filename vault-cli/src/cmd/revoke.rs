//! `vault-cli revoke CASE USER --reason`: ends a grant and deletes the person's envelope.

use clap::Args;
use vault_core::api::{Done, Reason};
use vault_core::ids::{CaseId, UserName};

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Revoke {
    case: CaseId,
    #[arg(value_name = "USER")]
    grantee: UserName,
    /// Why access ends (kept in the access log).
    #[arg(long)]
    reason: String,
}

impl Revoke {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let done: Done<UserName> = Client::new(g)?.post_json(
            &format!("/v1/cases/{}/grants/{}/revoke", self.case, self.grantee),
            &Reason { reason: self.reason },
        )?;
        if g.json {
            crate::output::json(&done)?;
        }
        eprintln!("revoked the access of {} to case {}", done.id, self.case);
        Ok(())
    }
}
