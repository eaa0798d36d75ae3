//! `vault-cli`: the command line of the recording vault.
//!
//! Messages for people go to stderr; results (ids, tables, JSON with `--json`) go to
//! stdout. Exit status: 0 success, 1 error, 2 usage, 3 access denied.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser};

mod client;
mod cmd;
mod custody;
mod local;
mod output;
mod tls_hint;
mod transfer;
mod trust;
mod uploader;

#[derive(Parser)]
#[command(
    name = "vault-cli",
    version,
    about = "Encrypted, access-controlled vault for recorded calls",
    after_help = "Exit status: 0 success, 1 error, 2 usage, 3 access denied."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: cmd::Command,
}

/// Options every command takes.
#[derive(Args, Clone)]
pub struct Global {
    /// The vault server's URL.
    #[arg(long, global = true, env = "VAULT_SERVER", default_value = "http://127.0.0.1:8700")]
    pub server: String,
    /// Your user name in the vault.
    #[arg(long, global = true, env = "VAULT_USER")]
    pub user: Option<vault_core::ids::UserName>,
    /// Your age identity file (from `vault-cli keygen`).
    #[arg(long, global = true, env = "VAULT_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Trust only this CA certificate (PEM) for an https:// server, instead of the
    /// system's roots (for a vault with a private CA or a self-signed certificate).
    #[arg(long, global = true, env = "VAULT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// The fingerprint of the vault's trust root (`SHA256:...`, printed by `vault-server
    /// init`); without it, the root is pinned the first time this machine sees the server.
    #[arg(long, global = true, env = "VAULT_TRUST_ROOT")]
    pub trust_root: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for the server's answer (while a recording streams: for progress).
    #[arg(long, global = true, env = "VAULT_TIMEOUT_SECS", default_value_t = 60)]
    pub timeout_secs: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // TLS uses ring, the vault's crypto library; there is no other provider to choose.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command.run(&cli.global) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message may be the server's own words, or quote what someone typed.
            eprintln!("vault-cli: error: {}", output::printable(&format!("{e:#}")));
            if e.downcast_ref::<client::Denied>().is_some() {
                ExitCode::from(vault_core::api::EXIT_ACCESS_DENIED as u8)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
