//! `vault-cli user disable NAME`: ends a user's sessions and revokes their grants; they
//! stay listed, as disabled.

use clap::Args;
use vault_core::api::Done;
use vault_core::ids::UserName;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Disable {
    name: UserName,
}

impl Disable {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        let done: Done<UserName> =
            client.post_json(&format!("/v1/users/{}/disable", self.name), &serde_json::json!({}))?;
        if g.json {
            crate::output::json(&done)?;
        }
        eprintln!("disabled {}; their grants are revoked", done.id);
        Ok(())
    }
}
