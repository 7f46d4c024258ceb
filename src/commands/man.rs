//! `deepspark man [SUBCOMMAND]`: the man page (roff) on stdout, generated from the clap
//! definition in `cli/`: deepspark(1), or deepspark-SUBCOMMAND(1) for one subcommand.
//! It does not install the page (see README.md, "Install").

use crate::cli::{Cli, ManArgs};
use crate::exit;
use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use std::io::Write;

pub fn run(args: ManArgs) -> Result<u8> {
    let mut cmd = Cli::command();
    // Building gives each subcommand its display name (deepspark-review, as man(1) names
    // subcommand pages: git-log(1)) and its usage line (`deepspark review ...`).
    cmd.build();
    let source = format!("{} {}", cmd.get_name(), cmd.get_version().unwrap_or_default());
    let cmd = match args.subcommand {
        None => cmd,
        Some(name) => match cmd.find_subcommand(&name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                bail!("no subcommand {name:?}; the subcommands are: {}", names.join(", "))
            }
        },
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .source(source)
        .render(&mut page)
        .context("cannot render the man page")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page)
        .and_then(|()| out.flush())
        .context("cannot write the man page to stdout")?;
    Ok(exit::PASS)
}
