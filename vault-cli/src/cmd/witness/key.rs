//! `vault-cli witness key --identity FILE --name NAME`: the witness's verifier key
//! (`NAME+KEYHASH+BASE64`), to configure clients and the vault server with.

use clap::Args;

use crate::Global;

#[derive(Args)]
pub struct Key {
    /// The witness's name (a schema-less URL, e.g. witness.example.org/dpo); the key
    /// depends on it.
    #[arg(long)]
    name: String,
}

impl Key {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let key = super::cosigner(g, &self.name)?.verifier();
        if g.json {
            crate::output::json(&serde_json::json!({ "name": key.name, "key": key.to_text() }))?;
        } else {
            println!("{key}");
        }
        Ok(())
    }
}
