//! `vault-cli user approve NAME`: a second admin approves an admin's enrolment by signing
//! it too (four eyes). The statement is checked first: the caller sees who enrolled whom,
//! with which key, and signs only a first signature that verifies.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use vault_core::api::{Cosignature, Done, Role};
use vault_core::ids::UserName;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Approve {
    name: UserName,
}

impl Approve {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let mut client = Client::new(g)?;
        let key = crate::trust::signing_key(&client)?;
        let (dir, info) = crate::trust::directory_and_enrolments(&mut client)?;
        let (statement, e) = crate::trust::enrolment_of(&dir, &info, &self.name)
            .context("the enrolment does not verify; do not approve it")?
            .with_context(|| format!("the server holds no enrolment of {}", self.name))?;
        if e.role != Role::Admin {
            bail!("{} is enrolled as {}; only an admin's enrolment needs approval", e.name, e.role);
        }
        let signature = B64.encode(key.sign(statement.statement.as_bytes()));
        let done: Done<UserName> =
            client.post_json(&format!("/v1/users/{}/approve", self.name), &Cosignature { signature })?;
        if g.json {
            crate::output::json(&done)?;
        }
        eprintln!("approved {} as admin (enrolled by {} with key {}); they can log in now", e.name, e.by, e.id);
        Ok(())
    }
}
