//! `vault-cli case add-custodian CASE ADMIN`: a custodian unwraps every key version of the
//! case here and wraps each to the new admin's enrolled key, and signs the custodianship;
//! the server only stores the envelopes and the statement.

use anyhow::bail;
use clap::Args;
use vault_core::api::{Done, NewCustodian, Role};
use vault_core::ids::{CaseId, UserName};
use vault_core::trust::{CustodianStatement, Signed, statement};

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
        let signer = crate::trust::signing_key(&client)?;
        let keys = crate::custody::CustodianKeys::fetch(&mut client, &case)?;
        let person = keys.dir.person(&admin)?;
        if person.role != Role::Admin {
            bail!("{admin} is {}; only admins can be custodians", person.role);
        }
        let stmt = CustodianStatement {
            vault: keys.dir.vault().to_owned(),
            case: case.clone(),
            name: admin.clone(),
            id: person.id.clone(),
            by: client.user.clone(),
            at: statement::now(),
        };
        let req = NewCustodian {
            admin: admin.clone(),
            envelopes: keys.wrap_all_to(&admin)?,
            statement: Signed::sign(&stmt, &signer),
        };
        let done: Done<UserName> = client.post_json(&format!("/v1/cases/{case}/custodians"), &req)?;
        if g.json {
            crate::output::json(&done)?;
        }
        eprintln!("{} is now a custodian of {case} ({} key versions wrapped)", done.id, req.envelopes.len());
        Ok(())
    }
}
