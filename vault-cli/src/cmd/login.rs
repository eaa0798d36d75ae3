//! `vault-cli login`: answer the server's age challenge and cache a token.

use clap::Args;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Login {}

impl Login {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        let login = client.login()?;
        let expires = chrono::DateTime::from_timestamp(login.expires_at, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
        if g.json {
            crate::output::json(
                &serde_json::json!({ "user": client.user, "role": login.role, "expires_at": expires }),
            )?;
        }
        eprintln!("logged in as {} ({}); session valid until {expires}", client.user, login.role);
        Ok(())
    }
}
