//! `vault-cli man --out DIR`: man pages (roff, section 1) for `vault-cli` and each of its
//! commands, generated from the definition that parses them, for packagers and for
//! machines without the README.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};

use crate::Global;

#[derive(Args)]
#[command(after_help = "Read one with `man -l DIR/vault-cli-fetch.1`, or install them: \
    cp DIR/*.1 /usr/local/share/man/man1/")]
pub struct Man {
    /// The directory to write the pages to (created if missing; pages in it of the same
    /// name are replaced).
    #[arg(long)]
    out: PathBuf,
}

impl Man {
    pub fn run(self, _g: &Global) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.out).with_context(|| format!("cannot create {}", self.out.display()))?;
        let mut pages = 0;
        let mut out = std::io::stdout().lock();
        let cmd = crate::Cli::command().disable_help_subcommand(true);
        // One page per command and subcommand, as clap_mangen::generate_to writes them,
        // but counted and named here so that the user sees what was written.
        let mut stack = vec![{
            let mut c = cmd;
            c.build();
            c
        }];
        while let Some(c) = stack.pop() {
            stack.extend(c.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
            let path = clap_mangen::Man::new(c)
                .generate_to(&self.out)
                .with_context(|| format!("cannot write a man page in {}", self.out.display()))?;
            writeln!(out, "{}", path.display()).context("cannot write to stdout")?;
            pages += 1;
        }
        eprintln!("wrote {pages} man pages to {}", self.out.display());
        Ok(())
    }
}
