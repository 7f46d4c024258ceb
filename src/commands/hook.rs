//! `deepspark hook install|uninstall|status|run`: the pre-push hook (see `hook.rs`).

use super::settings::{Settings, use_color};
use crate::cli::{HookCommand, HookRunArgs};
use crate::hook::{self, Installed, Status};
use crate::review::gate_tripped;
use crate::{exit, git, render};
use anyhow::{Context, Result};
use std::io::{IsTerminal, Read};
use std::time::Duration;

pub fn run(cmd: HookCommand) -> Result<u8> {
    match cmd {
        HookCommand::Install {
            force,
            allow_hooks_path,
        } => {
            let repo = git::open(None)?;
            let exe = std::env::current_exe().context("cannot locate the deepspark binary")?;
            let exe = exe.canonicalize().unwrap_or(exe);
            let (path, what) = hook::install(&repo, &exe, force, allow_hooks_path)?;
            match what {
                Installed::Fresh => println!("installed deepspark's pre-push hook: {}", path.display()),
                Installed::Chained(moved) => println!(
                    "installed deepspark's pre-push hook: {}\nyour existing hook was kept as {} and runs first",
                    path.display(),
                    moved.display()
                ),
                Installed::AlreadyThere => {
                    println!("deepspark's pre-push hook is already installed: {}", path.display())
                }
                Installed::Rewritten => println!("rewrote deepspark's pre-push hook: {}", path.display()),
            }
            Ok(exit::PASS)
        }
        HookCommand::Uninstall => {
            let repo = git::open(None)?;
            match hook::uninstall(&repo)? {
                Some(restored) => println!(
                    "removed deepspark's pre-push hook; restored your hook at {}",
                    restored.display()
                ),
                None => println!("removed deepspark's pre-push hook"),
            }
            Ok(exit::PASS)
        }
        HookCommand::Status => {
            let repo = git::open(None)?;
            let (dir, from_config) = hook::hooks_dir(&repo)?;
            let origin = if from_config { " (from core.hooksPath)" } else { "" };
            println!("hooks folder: {}{origin}", dir.display());
            match hook::status(&dir) {
                Status::Installed { chained: Some(c) } => println!("pre-push: deepspark, chaining {}", c.display()),
                Status::Installed { chained: None } => println!("pre-push: deepspark"),
                Status::NotInstalled { other_hook: true } => println!("pre-push: another hook (not deepspark)"),
                Status::NotInstalled { other_hook: false } => println!("pre-push: none"),
            }
            Ok(exit::PASS)
        }
        HookCommand::Run(args) => run_pre_push(*args),
    }
}

fn run_pre_push(args: HookRunArgs) -> Result<u8> {
    let repo = git::open(None)?;
    let refs = if args.hook == "pre-commit" {
        // The framework has already dropped deletions and found the new branch's base
        // (or given none): what is left is one ref, from its variables.
        let env = hook::PreCommitEnv::read(|name| std::env::var(name).ok());
        vec![
            env.pushed_ref(&repo)
                .context("cannot read the refs pre-commit passed")?,
        ]
    } else {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("cannot read git's pre-push input")?;
        hook::parse_input(&input)?
    };
    let cfg = super::settings::load_config(&args.gate, &repo)?;
    let mut settings = Settings::resolve(&args.gate, &cfg)?;
    settings.dismissed = super::dismiss::load(repo.workdir())?;
    settings.budget = Some(Duration::from_secs(args.budget.or(cfg.hook_budget).unwrap_or(60)));
    let style = render::terminal::Style {
        color: use_color(args.color, std::io::stderr().is_terminal()),
    };
    let mut code = exit::PASS;
    for r in refs.iter().filter(|r| !r.is_deletion()) {
        let Some(base) = hook::base_for(&repo, r)? else {
            continue;
        };
        let files = git::diff_commits(&repo, base, r.local, settings.context)?;
        if files.is_empty() {
            continue;
        }
        let sides = git::Sides::of_commits(&repo, base, r.local)?;
        let (mut review, mut model) = super::scoring::score_files(&repo, sides, files, &settings)?;
        let memory = super::review::rank(&repo, &mut review, &settings, &mut model, sides.old_commit);
        review.explain(&memory);
        let sides = crate::diff::OldNew {
            old: base.map_or("(empty tree)".to_string(), |b| b.to_string()[..12].to_string()),
            new: r.local_ref.clone(),
        };
        let mut err = std::io::stderr().lock();
        render::terminal::write(&review, &sides, &style, &mut err)?;
        if gate_tripped(review.verdict, settings.fail_on) {
            eprintln!(
                "\ndeepspark: push of {} blocked: the verdict is {} (the gate is --fail-on {:?}).\n\
                 To push anyway: git push --no-verify",
                crate::render::sanitize::clean(&r.local_ref),
                review.verdict.label(),
                settings.fail_on
            );
            code = exit::GATE;
        }
    }
    Ok(code)
}
