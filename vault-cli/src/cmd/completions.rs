//! `vault-cli completions SHELL`: the shell's completion script for every command and
//! flag, generated from the same definition that parses them, so it cannot fall behind.

use std::io::Write;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::Global;

#[derive(Args)]
#[command(after_help = "Install, for example:\n  \
    bash: vault-cli completions bash > ~/.local/share/bash-completion/completions/vault-cli\n  \
    zsh:  vault-cli completions zsh > ~/.zfunc/_vault-cli   (with fpath+=(~/.zfunc) before compinit)\n  \
    fish: vault-cli completions fish > ~/.config/fish/completions/vault-cli.fish")]
pub struct Completions {
    /// The shell to complete in.
    shell: Shell,
}

impl Completions {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        let mut cmd = crate::Cli::command();
        // Into a buffer first: clap_complete panics on a write error (a closed pipe),
        // where this reports it.
        let mut script = Vec::new();
        if self.shell == Shell::Bash {
            // clap_complete's bash script spells a hyphenated binary's states two ways,
            // so nothing after the first word completes (clap-rs/clap#6421, open in
            // 4.6.12). Generated for `vault_cli`, the states agree; only the line that
            // binds the function to the command must name the real binary.
            clap_complete::generate(self.shell, &mut cmd, "vault_cli", &mut script);
            let text = String::from_utf8(script).context("the completion script is not UTF-8")?;
            script = text.replace(" vault_cli\n", " vault-cli\n").into_bytes();
        } else {
            clap_complete::generate(self.shell, &mut cmd, "vault-cli", &mut script);
        }
        std::io::stdout().write_all(&script).context("cannot write the completion script to stdout")
    }
}
