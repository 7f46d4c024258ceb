//! `deepspark train`: fit the risk model on labelled changes (see `train.rs`).

use crate::cli::TrainArgs;
use crate::model::device::device;
use crate::model::edit::{self, EditModel};
use crate::train::data::Split;
use crate::train::edits::{GeneratorOptions, load_fixes, save_generator, train_generator as train_generator_model};
use crate::train::{TrainOptions, train};
use anyhow::{Context, Result};
use std::path::Path;

/// Mines edit rules from the fix commits in the data and trains the generator's ranker;
/// writes generator.json, generator.safetensors and generator_metrics.json into `out`.
fn train_generator(args: &TrainArgs) -> Result<bool> {
    let fixes = load_fixes(&args.data)?;
    let mut fixes: Vec<_> = fixes
        .into_iter()
        .filter(|f| !args.holdout.contains(&f.project) && f.split != Split::Test)
        .collect();
    if !fixes.iter().any(|f| f.split == Split::Train) {
        eprintln!(
            "deepspark: no fix commits (`fix: true` with a `diff`) in the training split: no suggestion generator trained"
        );
        return Ok(false);
    }
    super::eval_suggest::read_files(&mut fixes, &args.files)?;
    let opts = GeneratorOptions {
        epochs: args.generator_epochs,
        seed: args.seed,
        ..Default::default()
    };
    let (model, varmap, report) = train_generator_model(&fixes, &opts)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    save_generator(&model, &varmap, &args.out)?;
    std::fs::write(
        args.out.join("generator_metrics.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    eprintln!(
        "deepspark: generator: {} rules from {} training fix hunks ({} reachable); calib top-1 {:.1}% top-5 {:.1}% of {} hunks (epoch {})",
        report.rules,
        report.train_hunks,
        report.train_reachable,
        100.0 * report.calib_top1,
        100.0 * report.calib_top5,
        report.calib_hunks,
        report.best_epoch
    );
    Ok(true)
}

/// The base model's generator, checked as `review` will load it, before any training.
fn base_generator(base: &Path) -> Result<bool> {
    match EditModel::read_dir(base) {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(e).with_context(|| format!("the suggestion generator of --base {}", base.display())),
    }
}

/// Keeps the base model's generator as it is (`--base` keeps what it does not refit).
fn copy_generator(base: &Path, out: &Path) -> Result<()> {
    for name in [edit::CONFIG, edit::WEIGHTS, "generator_metrics.json"] {
        let (from, to) = (base.join(name), out.join(name));
        // A stale file from an earlier run in --out must not pair with the base's.
        if to.is_file() {
            std::fs::remove_file(&to).with_context(|| format!("cannot replace {}", to.display()))?;
        }
        if from.is_file() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("cannot copy {} into {}", from.display(), out.display()))?;
        }
    }
    eprintln!("deepspark: generator kept from {}", base.display());
    Ok(())
}

pub fn run(args: TrainArgs) -> Result<u8> {
    if args.generator_only {
        if !train_generator(&args)? {
            anyhow::bail!("--generator-only needs commit records with fix commits and their diffs");
        }
        return Ok(crate::exit::PASS);
    }
    let dev = device(args.device)?;
    let opts = TrainOptions {
        data: args.data.clone(),
        out: args.out.clone(),
        epochs: args.epochs,
        seed: args.seed,
        d_model: args.d_model,
        n_layers: args.layers,
        n_heads: args.heads,
        d_ff: args.d_ff,
        max_len: args.max_len,
        vocab: args.vocab,
        batch: args.batch,
        lr: args.lr,
        weight_decay: args.weight_decay,
        dropout: args.dropout,
        holdout: args.holdout.clone(),
        pair_data: args.pair_data.clone(),
        max_train: args.max_train,
        resume: args.resume,
        checkpoint_every: args.checkpoint_every.max(1),
        change_features: !args.hunk_features_only,
        bag: args.bag,
        file_name: !args.no_file_name,
        wide: (!args.no_wide).then(|| crate::train::wide::WideOptions {
            epochs: args.wide_epochs.max(1),
            l2: args.wide_l2,
            seed: args.seed,
            pairs_weight: args.pairs_weight,
            pairs_margin: args.pairs_margin,
            pairs_size: args.pairs_size,
            ..Default::default()
        }),
        pair: args.pair_path.then(|| crate::train::wide::PairOptions {
            epochs: args.pair_epochs.max(1),
            l2: args.pair_l2,
            margin: args.pair_margin,
            seed: args.seed,
            bigrams: args.pair_bigrams as usize,
            ..Default::default()
        }),
        boost: args.boost,
        base: args.base.clone(),
        wide_prior: args.wide_prior,
        recalibrate_only: args.recalibrate,
    };
    // The base's generator, if any, is checked before the training it would otherwise fail after.
    let kept_from = match args.base.as_deref() {
        Some(base) if base_generator(base)? => Some(base),
        _ => None,
    };
    let report = train(&opts, &dev)?;
    match kept_from {
        Some(base) => copy_generator(base, &args.out)?,
        None => {
            train_generator(&args)?;
        }
    }
    super::eval::print_text(&report, &mut std::io::stdout())?;
    eprintln!("deepspark: model written to {}", args.out.display());
    Ok(crate::exit::PASS)
}
