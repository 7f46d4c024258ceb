//! `deepspark eval-pairs`: does a risk model rate real bugs riskier than their fixes?

use crate::cli::EvalPairsArgs;
use crate::model::RiskModel;
use crate::model::device::device;
use crate::train::pairs::{PairAccuracy, PairReport, evaluate_pairs, in_split, load_pairs};
use anyhow::{Result, bail};
use std::io::Write;

pub fn run(args: EvalPairsArgs) -> Result<u8> {
    let dev = device(args.device)?;
    let model = RiskModel::load(&super::review::model_files(args.model.as_deref())?, &dev)?;
    let pairs = load_pairs(&args.data)?;
    let chosen = in_split(&pairs, args.split);
    if chosen.is_empty() {
        bail!(
            "no bug/fix pairs in the {:?} split of the given files (eval-pairs reads *.commits.jsonl records \
             with `fix` and `diff`; a fix hunk gives a pair when it removes and adds code lines)",
            args.split
        );
    }
    let report = evaluate_pairs(&chosen, &model, args.split)?;
    super::eval::write_report(args.format, &report, |r, out| print_text(r, out))
}

fn print_text(r: &PairReport, out: &mut impl Write) -> std::io::Result<()> {
    let line = |what: &str, a: &PairAccuracy| {
        format!(
            "{what}: {} pairs, buggy version riskier in {:.1}% (added-lines baseline {:.1}%); \
             same length: {} pairs, {:.1}% (baseline 50.0%)",
            a.n,
            100.0 * a.pair_accuracy,
            100.0 * a.baseline_pair_accuracy,
            a.n_same_length,
            100.0 * a.pair_accuracy_same_length
        )
    };
    writeln!(out, "{}", line(&format!("bug/fix pairs ({} split)", r.split), &r.all))?;
    for (name, a) in &r.projects {
        writeln!(out, "  {}", line(&crate::render::sanitize::clean(name), a))?;
    }
    Ok(())
}
