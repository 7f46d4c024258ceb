//! The arguments of `deepspark hook`: install, uninstall, status and run (the pre-push
//! hook itself). The gate it applies is `args.rs`'s [`GateArgs`]; what the hook does is in
//! `src/hook.rs` and `commands/hook.rs`.

use super::{ColorChoice, GateArgs};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// Install deepspark as this repository's pre-push hook (an existing hook is kept and run first).
    Install {
        /// Rewrite deepspark's hook even if it is already installed.
        #[arg(long)]
        force: bool,
        /// Install into the folder named by core.hooksPath (refused by default: it may be shared).
        #[arg(long)]
        allow_hooks_path: bool,
    },
    /// Remove deepspark's pre-push hook and put back the hook it had chained, exactly.
    Uninstall,
    /// Say whether deepspark's hook is installed, and what it chains.
    Status,
    /// Run as a pre-push hook: `pre-push` reads git's ref lines on stdin (the installed hook
    /// calls it); `pre-commit` reads the pre-commit framework's PRE_COMMIT_FROM_REF and
    /// PRE_COMMIT_TO_REF (the entry in `.pre-commit-hooks.yaml`).
    Run(Box<HookRunArgs>),
}

#[derive(Args, Debug)]
pub struct HookRunArgs {
    /// Who calls: `pre-push` (git, refs on stdin) or `pre-commit` (the framework's
    /// pre-push stage, refs in its environment variables; nothing read from stdin).
    #[arg(value_parser = ["pre-push", "pre-commit"])]
    pub hook: String,
    /// The remote's name, as git passes it.
    pub remote: Option<String>,
    /// The remote's URL, as git passes it.
    pub url: Option<String>,
    /// Stop scoring after this many seconds and report the rest as not reviewed [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub budget: Option<u64>,
    /// When to colour the report (written to stderr, which git shows during a push).
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
    #[command(flatten)]
    pub gate: GateArgs,
}
