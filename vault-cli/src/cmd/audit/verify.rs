//! `vault-cli audit verify [--file EXPORT] --server-key KEY`.
//!
//! Online, it fetches only the entries after the checkpoint this auditor verified last
//! and checks they chain from it; `--full` re-reads everything. With `--file` it checks
//! an export offline. Either way the checkpoint signature, every link and hash, and the
//! extension of the pinned checkpoint are checked, and the first bad entry is named.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use vault_core::export::{self, Verified};
use vault_core::note::VerifierKey;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Verify {
    /// The log's verifier key, from the server's operator (`vault-server log-key`).
    #[arg(long, env = "VAULT_SERVER_KEY")]
    server_key: String,
    /// Verify this export file offline instead of the server's log.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Re-verify every entry, not only those after your last checkpoint.
    #[arg(long)]
    full: bool,
    /// With --file: verify an export older than your last checkpoint on its own.
    #[arg(long, requires = "file")]
    ignore_pin: bool,
}

impl Verify {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let key = VerifierKey::parse(&self.server_key)?;
        let pinned = if self.ignore_pin { None } else { crate::local::pinned_checkpoint(&key)? };
        let result: Verified = match &self.file {
            Some(path) => {
                let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                export::verify(std::io::BufReader::with_capacity(1 << 20, f), &key, pinned, true)
            }
            None => {
                let mut client = Client::new(g)?;
                let from = match pinned {
                    Some(p) if !self.full => p.size,
                    _ => 0,
                };
                let url = client.url(&format!("/v1/audit/export?from={from}"));
                let resp = client.send(|h, _| h.get(&url))?;
                export::verify(std::io::BufReader::with_capacity(1 << 20, resp), &key, pinned, self.full)
            }
        }
        .context("ACCESS LOG VERIFICATION FAILED")?;
        let cp = &result.checkpoint;
        if !self.ignore_pin && pinned.is_none_or(|p| cp.size > p.size) {
            crate::local::pin_checkpoint(&key, &result.note)?;
        }
        if g.json {
            crate::output::json(&serde_json::json!({
                "ok": true,
                "origin": cp.origin,
                "size": cp.size,
                "head": B64.encode(cp.head),
                "checked": result.checked,
                "previous_size": pinned.map(|p| p.size),
            }))?;
        } else {
            println!("ok: {} entries, head {}", cp.size, B64.encode(cp.head));
        }
        eprintln!(
            "verified {} entries{} of log {}; it extends {}",
            result.checked,
            if self.full || self.file.is_some() || pinned.is_none() { "" } else { " added since your last checkpoint" },
            crate::output::printable(&cp.origin),
            match pinned {
                Some(p) => format!("the checkpoint you verified last ({} entries)", p.size),
                None => "nothing yet: this checkpoint is now pinned".into(),
            }
        );
        Ok(())
    }
}
