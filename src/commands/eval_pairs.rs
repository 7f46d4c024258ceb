//! `deepspark eval-pairs`: does a risk model rate real bugs riskier than their fixes? With
//! `--lm`, does a language model find the buggy version more surprising?

use crate::cli::EvalPairsArgs;
use crate::model::RiskModel;
use crate::model::device::device;
use crate::render::sanitize::clean;
use crate::train::pairs::{
    LmPairAccuracy, PairAccuracy, PairReport, evaluate_pairs, in_split, load_pairs, read_pairs, sample, with_lm,
};
use anyhow::{Result, bail};
use std::io::Write;

pub fn run(args: EvalPairsArgs) -> Result<u8> {
    let dev = device(args.device)?;
    let model = RiskModel::load(&super::settings::model_files(args.model.as_deref())?, &dev)?;
    // Loaded before the data, so that a wrong --lm fails in a second.
    let mut lm = super::model::open(&args.lm, &dev)?;
    let pairs = load_pairs(&args.data)?;
    let chosen = sample(in_split(&pairs, args.split), args.limit);
    if chosen.is_empty() {
        bail!(
            "no bug/fix pairs in the {:?} split of the given files (eval-pairs reads *.commits.jsonl records \
             with `fix` and `diff`; a fix hunk gives a pair when it removes and adds code lines)",
            args.split
        );
    }
    let mut report = evaluate_pairs(&chosen, &model, args.split)?;
    if let Some(lm) = lm.as_deref_mut() {
        let started = std::time::Instant::now();
        let read = read_pairs(&chosen, lm)?;
        let tokens: usize = read.iter().flatten().map(|(b, f)| b.tokens + f.tokens).sum();
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "deepspark: {} read {} pairs ({tokens} scored tokens) in {seconds:.1}s ({:.1} pairs/s)",
            clean(&lm.describe()),
            read.iter().flatten().count(),
            read.len() as f64 / seconds.max(1e-9)
        );
        report = with_lm(report, &chosen, &read, lm.describe());
    }
    super::eval::write_report(args.format, &report, print_text)
}

fn print_text(r: &PairReport, out: &mut impl Write) -> std::io::Result<()> {
    let line = |what: &str, a: &PairAccuracy| {
        let mut s = format!(
            "{what}: {} pairs, buggy version riskier in {:.1}% (added-lines baseline {:.1}%); \
             same length: {} pairs, {:.1}% (baseline 50.0%)",
            a.n,
            100.0 * a.pair_accuracy,
            100.0 * a.baseline_pair_accuracy,
            a.n_same_length,
            100.0 * a.pair_accuracy_same_length
        );
        if let (Some(all), Some(same)) = (a.pair_path_accuracy, a.pair_path_accuracy_same_length) {
            s.push_str(&format!(
                "; pair path: buggy version above in {:.1}%, same length {:.1}%",
                100.0 * all,
                100.0 * same
            ));
        }
        if let Some(lm) = &a.lm {
            s.push_str(&lm_line(lm));
        }
        s
    };
    if let Some(name) = &r.language_model {
        writeln!(
            out,
            "language model: {} ({} pairs too long for it, left out of its figures)",
            clean(name),
            r.lm_skipped.unwrap_or(0)
        )?;
    }
    writeln!(out, "{}", line(&format!("bug/fix pairs ({} split)", r.split), &r.all))?;
    for (name, a) in &r.projects {
        writeln!(out, "  {}", line(&clean(name), a))?;
    }
    Ok(())
}

fn lm_line(a: &LmPairAccuracy) -> String {
    format!(
        "; language model: buggy version more surprising in {:.1}% of {} pairs, {:.1}% of {} same-length \
         (mean surprisal buggy {:.3}, fixed {:.3} nats/token)",
        100.0 * a.lm_pair_accuracy,
        a.lm_pairs,
        100.0 * a.lm_pair_accuracy_same_length,
        a.lm_pairs_same_length,
        a.lm_mean_surprisal_buggy,
        a.lm_mean_surprisal_fixed
    )
}
