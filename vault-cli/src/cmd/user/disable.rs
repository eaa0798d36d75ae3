//! `vault-cli user disable NAME`: ends a user's sessions and revokes their grants; they
//! stay listed, as disabled. The caller signs the disabling, so every client stops
//! trusting what the user signed.

use anyhow::Context;
use clap::Args;
use vault_core::api::{Disabling, Done};
use vault_core::ids::UserName;
use vault_core::trust::{Disable as DisableStatement, Signed, statement};

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Disable {
    name: UserName,
}

impl Disable {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        let key = crate::trust::signing_key(&client)?;
        let (dir, info) = crate::trust::directory_and_enrolments(&mut client)?;
        // The key to disable: from a valid enrolment, or from one still waiting for its
        // approval (whose first signature must verify).
        let id = match dir.person(&self.name) {
            Ok(p) => p.id.clone(),
            Err(why) => {
                let found = crate::trust::enrolment_of(&dir, &info, &self.name).with_context(|| format!("{why}"))?;
                found.with_context(|| format!("{why}"))?.1.id
            }
        };
        let stmt = DisableStatement {
            vault: dir.vault().to_owned(),
            name: self.name.clone(),
            id,
            by: client.user.clone(),
            at: statement::now(),
        };
        let body = Disabling { statement: Signed::sign(&stmt, &key) };
        let done: Done<UserName> = client.post_json(&format!("/v1/users/{}/disable", self.name), &body)?;
        if g.json {
            crate::output::json(&done)?;
        }
        eprintln!("disabled {}; their grants are revoked and nothing they signed is trusted any more", done.id);
        Ok(())
    }
}
