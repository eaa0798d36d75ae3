//! `vault-cli user list`: the enrolled users with their role, status and recipient.

use clap::Args;
use vault_core::api::UserInfo;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct List {}

impl List {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
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
        Ok(())
    }
}
