//! `vault-cli user add NAME --role --recipient VAULT1...`: enrols someone by signing an
//! enrolment statement (name, role, public id) with the caller's key. An admin's
//! enrolment also needs a second admin's signature (`user approve`).

use anyhow::Context;
use clap::Args;
use vault_core::api::{Created, NewUser, Role};
use vault_core::ids::UserName;
use vault_core::trust::{Enrol, PublicId, Signed, statement};

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Add {
    name: UserName,
    #[arg(long)]
    role: Role,
    /// Their public id (`vault1...`, the last line `vault-cli keygen` printed for them).
    #[arg(long)]
    recipient: String,
}

impl Add {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let Add { name, role, recipient } = self;
        let id: PublicId = recipient.parse()?;
        let mut client = Client::new(g)?;
        let key = crate::trust::signing_key(&client)?;
        let dir = crate::trust::directory(&mut client)?;
        let me = dir.person(&client.user).context("you cannot enrol anyone")?;
        if me.id != key.public_id() {
            anyhow::bail!("your identity file is not the key {} is enrolled with", client.user);
        }
        let enrol =
            Enrol { vault: dir.vault().to_owned(), name, role, id, by: client.user.clone(), at: statement::now() };
        let enrolment = Signed::sign(&enrol, &key);
        let created: Created<UserName> = client.post_json("/v1/users", &NewUser { enrolment })?;
        if g.json {
            crate::output::json(&created)?;
        } else {
            println!("{}", created.id);
        }
        if role == Role::Admin {
            eprintln!(
                "enrolled {} as admin, pending: a second admin must run `vault-cli user approve {}` before they can \
                 log in",
                created.id, created.id
            );
        } else {
            eprintln!("enrolled {} as {role}", created.id);
        }
        Ok(())
    }
}
