//! `vault-cli user list`: the enrolled users with their role, status and public id. The
//! list is the server's; whose enrolment verifies from the trust root is what commands
//! that wrap keys check (`vault-cli user approve` shows a pending admin's enrolment).

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
                    match (u.enabled, u.pending_approval) {
                        (false, _) => "disabled",
                        (true, true) => "pending approval",
                        (true, false) => "enabled",
                    }
                    .into(),
                    u.id.clone(),
                ]
            })
            .collect();
        crate::output::table(&["NAME", "ROLE", "STATUS", "PUBLIC ID"], &rows);
        Ok(())
    }
}
