//! `vault-cli case add-custodian CASE ADMIN`: a custodian unwraps every key version of the
//! case here and wraps each to the new admin's pinned recipient; the server only stores the
//! envelopes.

use clap::Args;
use vault_core::api::{Done, NewCustodian};
use vault_core::ids::{CaseId, UserName};

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct AddCustodian {
    case: CaseId,
    #[arg(value_name = "ADMIN")]
    admin: UserName,
}

impl AddCustodian {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let AddCustodian { case, admin } = self;
        let mut client = Client::new(g)?;
        let keys = crate::custody::CustodianKeys::fetch(&mut client, &case)?;
        let req = NewCustodian { admin: admin.clone(), envelopes: keys.wrap_all_to(&admin)? };
        let done: Done<UserName> = client.post_json(&format!("/v1/cases/{case}/custodians"), &req)?;
        if g.json {
            crate::output::json(&done)?;
        }
        eprintln!("{} is now a custodian of {case} ({} key versions wrapped)", done.id, req.envelopes.len());
        Ok(())
    }
}
