//! `vault-cli case ...`: creating cases and reading them, their custodians and keys, and
//! what happens to a case later: the AP's approval, telling the employee, closing it,
//! releasing its legal hold, and reopening it. One module per subcommand.

use clap::Subcommand;

use crate::Global;

mod add_custodian;
mod approve;
mod close;
mod create;
mod list;
mod notify;
mod release_hold;
mod reopen;
mod rotate_key;
mod show;

#[derive(Subcommand)]
pub enum CaseCommand {
    /// Create a case; its key pair is generated here and wrapped to you. Prints the id.
    Create(create::Create),
    /// List the cases you may see.
    List(list::List),
    /// Show one case with its legal basis, custodians and grants.
    Show(show::Show),
    /// Make another admin a custodian: wrap every key version of the case to them.
    AddCustodian(add_custodian::AddCustodian),
    /// Make a new case key for future recordings, wrapped to the remaining holders.
    RotateKey(rotate_key::RotateKey),
    /// Close a case. A covert case closed with `no-offence` has all its recordings and
    /// keys destroyed at once (R5); with `offence` it goes on legal hold (R7).
    Close(close::Close),
    /// Record that the employee was told about covert recording, or defer telling (R6).
    Notify(notify::Notify),
    /// Release a case from legal hold, so retention applies again; its grantees read
    /// nothing more, and it can no longer be reopened.
    ReleaseHold(release_hold::ReleaseHold),
    /// Request reopening a covert case on legal hold (`reopen CASE --reason TEXT`), or
    /// approve another admin's request (`reopen approve CASE`): four eyes.
    Reopen(reopen::Reopen),
    /// Record the AP's prior-check approval of a covert case (R3).
    Approve(approve::Approve),
}

impl CaseCommand {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        match self {
            CaseCommand::Create(c) => c.run(g),
            CaseCommand::List(c) => c.run(g),
            CaseCommand::Show(c) => c.run(g),
            CaseCommand::AddCustodian(c) => c.run(g),
            CaseCommand::RotateKey(c) => c.run(g),
            CaseCommand::Close(c) => c.run(g),
            CaseCommand::Notify(c) => c.run(g),
            CaseCommand::ReleaseHold(c) => c.run(g),
            CaseCommand::Reopen(c) => c.run(g),
            CaseCommand::Approve(c) => c.run(g),
        }
    }
}
