//! `vault-cli user add NAME --role --recipient`: enrols someone with their age recipient,
//! the public half of the identity they log in with and case keys are wrapped to.

use clap::Args;
use vault_core::api::{Created, NewUser, Role};
use vault_core::ids::UserName;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Add {
    name: UserName,
    #[arg(long)]
    role: Role,
    /// Their age recipient (`age1...`).
    #[arg(long)]
    recipient: String,
}

impl Add {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let Add { name, role, recipient } = self;
        let mut client = Client::new(g)?;
        let created: Created<UserName> = client.post_json("/v1/users", &NewUser { name, role, recipient })?;
        if g.json {
            crate::output::json(&created)?;
        } else {
            println!("{}", created.id);
        }
        eprintln!("enrolled {} as {role}", created.id);
        Ok(())
    }
}
