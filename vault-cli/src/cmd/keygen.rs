//! `vault-cli keygen --out FILE`: a standard age X25519 identity file, and the public id
//! (`vault1...`: its age recipient and the signing key derived from it) an admin enrols.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::Global;

#[derive(Args)]
pub struct Keygen {
    /// Where to write the identity (must not exist yet).
    #[arg(long)]
    out: PathBuf,
}

impl Keygen {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let identity = age::x25519::Identity::generate();
        let text = vault_core::crypto::identity_file_text(&identity);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.out)
            .with_context(|| format!("cannot create {} (it must not exist yet)", self.out.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        let recipient = identity.to_public().to_string();
        let id = vault_core::trust::SigningKey::from_identity(&identity).public_id().to_string();
        if g.json {
            crate::output::json(&serde_json::json!({ "id": id, "recipient": recipient, "identity_file": self.out }))?;
        } else {
            println!("{id}");
        }
        eprintln!(
            "wrote identity to {} (mode 0600; the age tool reads it too, recipient {recipient}); \
             give the public id above to an admin to be enrolled",
            self.out.display()
        );
        Ok(())
    }
}
