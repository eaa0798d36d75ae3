//! `vault-cli user add | list | disable` (admins).

use clap::Subcommand;
use vault_core::api::{Created, NewUser, Role, UserInfo};
use vault_core::ids::UserName;

use crate::Global;
use crate::client::Client;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Enrol a person or service account.
    Add {
        name: UserName,
        #[arg(long)]
        role: Role,
        /// Their age recipient (`age1...`).
        #[arg(long)]
        recipient: String,
    },
    /// List enrolled users.
    List,
    /// Disable a user: their sessions stop working and their grants are revoked.
    Disable { name: UserName },
}

impl UserCommand {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        match self {
            UserCommand::Add { name, role, recipient } => {
                let created: Created<UserName> = client.post_json("/v1/users", &NewUser { name, role, recipient })?;
                if g.json {
                    crate::output::json(&created)?;
                } else {
                    println!("{}", created.id);
                }
                eprintln!("enrolled {} as {role}", created.id);
            }
            UserCommand::List => {
                let users: Vec<UserInfo> = client.get_json("/v1/users")?;
                if g.json {
                    return crate::output::json(&users);
                }
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.name.to_string(),
                            u.role.to_string(),
                            if u.enabled { "enabled" } else { "disabled" }.into(),
                            u.recipient.clone(),
                        ]
                    })
                    .collect();
                crate::output::table(&["NAME", "ROLE", "STATUS", "RECIPIENT"], &rows);
            }
            UserCommand::Disable { name } => {
                let done: Created<UserName> =
                    client.post_json(&format!("/v1/users/{name}/disable"), &serde_json::json!({}))?;
                if g.json {
                    crate::output::json(&done)?;
                }
                eprintln!("disabled {}; their grants are revoked", done.id);
            }
        }
        Ok(())
    }
}
