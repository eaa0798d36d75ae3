//! `vault-cli audit verify | export | log` (auditors).

use clap::Subcommand;

use crate::Global;

mod export;
mod log;
mod verify;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the access log: signature, every link, and that it extends what you verified last.
    Verify(verify::Verify),
    /// Write the access log and a signed checkpoint to a file for offline verification.
    Export(export::Export),
    /// List access-log entries.
    Log(log::Log),
}

impl AuditCommand {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        match self {
            AuditCommand::Verify(c) => c.run(g),
            AuditCommand::Export(c) => c.run(g),
            AuditCommand::Log(c) => c.run(g),
        }
    }
}
