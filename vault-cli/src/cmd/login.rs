//! `vault-cli login`: answer the server's age challenge and cache a token, then check the
//! vault's trust root against `VAULT_TRUST_ROOT`, or pin it (showing its fingerprint) if
//! this machine has not seen the server before, and check that the caller's own
//! enrolment verifies from it with the key of their identity file.

use clap::Args;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Login {}

impl Login {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        let login = client.login()?;
        let dir = crate::trust::directory(&mut client)?;
        let me = dir.person(&client.user)?;
        if me.id != crate::trust::signing_key(&client)?.public_id() {
            anyhow::bail!("the trust root does not vouch for your identity file as {}'s key", client.user);
        }
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
