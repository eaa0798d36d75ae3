//! `vault-cli public-id [FILE]`: the public id (`vault1...`) of an identity file (FILE,
//! else `--identity`), for an identity made earlier or with `age-keygen`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::Global;

#[derive(Args)]
pub struct PublicId {
    /// The identity file (default: --identity / VAULT_IDENTITY).
    file: Option<PathBuf>,
}

impl PublicId {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let path = self
            .file
            .or_else(|| g.identity.clone())
            .context("no identity file given: pass FILE, --identity FILE or set VAULT_IDENTITY")?;
        let identity = vault_core::crypto::read_identity_file(&path)?;
        let id = vault_core::trust::SigningKey::from_identity(&identity).public_id();
        if g.json {
            crate::output::json(&serde_json::json!({ "id": id.to_string(), "recipient": id.recipient().to_string() }))?;
        } else {
            println!("{id}");
        }
        Ok(())
    }
}
