//! `vault-cli audit export --out FILE`: the whole log with a signed checkpoint, for
//! `audit verify --file` on another machine.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;

use crate::Global;
use crate::client::Client;

#[derive(Args)]
pub struct Export {
    /// Where to write the export (must not exist yet).
    #[arg(long)]
    out: PathBuf,
}

impl Export {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        let dir = crate::output::new_output(&self.out)?;
        let mut client = Client::new(g)?;
        let url = client.url("/v1/audit/export?from=0");
        // An export streams the whole log (gigabytes, for a busy year): it gets hours, not
        // --timeout-secs; a server that stops sending is closed by its own idle timeout.
        let mut resp = client.send(|h, _| h.get(&url).timeout(std::time::Duration::from_secs(24 * 3600)))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        let n = std::io::copy(&mut resp, &mut tmp).context("the export stream broke off; nothing was written")?;
        tmp.flush()?;
        tmp.as_file().sync_all()?;
        tmp.persist_noclobber(&self.out).map_err(|e| anyhow!("cannot write {}: {}", self.out.display(), e.error))?;
        if g.json {
            crate::output::json(&serde_json::json!({ "out": self.out, "bytes": n }))?;
        } else {
            println!("{}", self.out.display());
        }
        eprintln!(
            "wrote {n} bytes; check it with `vault-cli audit verify --file {} --server-key KEY`",
            self.out.display()
        );
        Ok(())
    }
}
