//! One module per subcommand; a group of subcommands is a folder whose `mod.rs` holds its
//! enum and dispatch, with one module per leaf.

use clap::Subcommand;

use crate::Global;

mod audit;
mod case;
mod completions;
mod evidence;
mod fetch;
mod grant;
mod ingest;
mod keygen;
mod login;
mod man;
mod public_id;
mod recordings;
mod report;
mod revoke;
mod upload;
mod user;
mod witness;

#[derive(Subcommand)]
pub enum Command {
    /// Create an age identity file (0600) and print your public id (vault1...).
    Keygen(keygen::Keygen),
    /// Print the public id (vault1...) of an existing identity file.
    PublicId(public_id::PublicId),
    /// Log in with your identity and cache a session token.
    Login(login::Login),
    /// Enrol, approve, list and disable users (admins).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Create, list, show and approve cases.
    #[command(subcommand)]
    Case(case::CaseCommand),
    /// Grant a person access to a case; approve a covert grant; deliver its key.
    Grant(grant::Grant),
    /// Revoke a person's access to a case.
    Revoke(revoke::Revoke),
    /// Encrypt a recording to its case and upload it (recorders).
    Upload(upload::Upload),
    /// Upload finished recordings from spool directories, then remove them (recorders).
    Ingest(ingest::Ingest),
    /// List the recordings of a case.
    Recordings(recordings::Recordings),
    /// Fetch and decrypt a recording.
    Fetch(fetch::Fetch),
    /// Export a recording with its proven custody for the police or a court; verify one.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    /// Compliance report: pending approvals, notifications, purges due, holds (admins).
    Report(report::Report),
    /// Verify, export and read the access log (auditors).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run a witness that cosigns the access log's checkpoints, or print its key.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Completions),
    /// Write man pages for vault-cli and each of its commands.
    Man(man::Man),
}

impl Command {
    pub fn run(self, g: &Global) -> anyhow::Result<()> {
        match self {
            Command::Keygen(c) => c.run(g),
            Command::PublicId(c) => c.run(g),
            Command::Login(c) => c.run(g),
            Command::User(c) => c.run(g),
            Command::Case(c) => c.run(g),
            Command::Grant(c) => c.run(g),
            Command::Revoke(c) => c.run(g),
            Command::Upload(c) => c.run(g),
            Command::Ingest(c) => c.run(g),
            Command::Recordings(c) => c.run(g),
            Command::Fetch(c) => c.run(g),
            Command::Evidence(c) => c.run(g),
            Command::Audit(c) => c.run(g),
            Command::Report(c) => c.run(g),
            Command::Witness(c) => c.run(g),
            Command::Completions(c) => c.run(g),
            Command::Man(c) => c.run(g),
        }
    }
}
