//! `deepspark completions SHELL`: a completion script for the shell, on stdout, generated
//! from the clap definition in `cli/` (so it knows every subcommand and flag). It does not
//! install the script: where it goes depends on the shell (see README.md, "Install").

use crate::cli::{Cli, CompletionsArgs};
use crate::exit;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::io::Write;

pub fn run(args: CompletionsArgs) -> Result<u8> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    // clap_complete writes straight to the writer and panics on an I/O error, so the script is
    // built in memory and written here, where a closed pipe is an error like any other.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("cannot write the completion script to stdout")?;
    Ok(exit::PASS)
}
