//! `vault-cli user ...`: enrolling the people and service accounts who use the vault,
//! listing them, and disabling them (admins). One module per subcommand.

use clap::Subcommand;

use crate::Global;

mod add;
mod approve;
mod disable;
mod list;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Enrol a person or service account.
    Add(add::Add),
    /// Approve an admin's enrolment (a second admin; four eyes).
    Approve(approve::Approve),
    /// List enrolled users.
    List(list::List),
    /// Disable a user: their sessions stop working and their grants are revoked.
    Disable(disable::Disable),
}

impl UserCommand {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        match self {
            UserCommand::Add(c) => c.run(g),
            UserCommand::Approve(c) => c.run(g),
            UserCommand::List(c) => c.run(g),
            UserCommand::Disable(c) => c.run(g),
        }
    }
}
