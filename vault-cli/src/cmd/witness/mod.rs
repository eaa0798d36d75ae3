//! `vault-cli witness serve | key`: run a witness of a vault's access log (an auditor, the
//! DPO, a works council, another company), and print its verifier key.
//!
//! The witness cosigns a checkpoint of the log only if the log proves it extends the one
//! the witness cosigned before (C2SP tlog-witness, `schema/WITNESS.md`), so a vault that
//! shows different logs to different people is caught by anyone who requires the
//! witness's cosignature. Its signing key is derived from the operator's age identity and
//! the witness's name; nothing secret is written to disk.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;
use vault_core::cosign::Cosigner;

use crate::Global;

mod key;
mod serve;
mod state;

#[derive(Subcommand)]
pub enum WitnessCommand {
    /// Run a witness: cosign checkpoints that extend what it cosigned before (HTTP, C2SP tlog-witness).
    Serve(serve::Serve),
    /// Print the witness's verifier key, for clients and the vault server's operator.
    Key(key::Key),
}

impl WitnessCommand {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        match self {
            WitnessCommand::Serve(c) => c.run(g),
            WitnessCommand::Key(c) => c.run(g),
        }
    }
}

/// The witness key of `name`, from the identity file given with `--identity`. The file
/// must be readable by its owner only: it is the one secret the witness's word rests on.
fn cosigner(g: &Global, name: &str) -> anyhow::Result<Cosigner> {
    let path = g.identity.as_deref().context("no identity given: pass --identity FILE or set VAULT_IDENTITY")?;
    check_private(path)?;
    let identity = vault_core::crypto::read_identity_file(path)?;
    Ok(Cosigner::from_identity(name, &identity)?)
}

fn check_private(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read identity file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "identity file {} is readable by others (mode {mode:03o}); run `chmod 600 {}` first",
            path.display(),
            path.display()
        );
    }
    Ok(())
}
