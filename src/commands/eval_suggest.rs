//! `deepspark eval-suggest`: measure patch suggestions on bug fixes they were not trained on.

use crate::cli::{EvalFormat, EvalSuggestArgs, FixFilesArgs};
use crate::config::Config;
use crate::model::RiskModel;
use crate::model::device::device;
use crate::train::edits::{FixHunk, SuggestReport, attach_files, evaluate_suggestions, load_fixes};
use anyhow::{Result, bail};
use std::io::Write;

pub fn run(args: EvalSuggestArgs) -> Result<u8> {
    let dev = device(args.device)?;
    let model = RiskModel::load(&super::settings::model_files(args.model.as_deref())?, &dev)?;
    let Some(generator) = super::settings::generator(args.model.as_deref())? else {
        bail!("no suggestion generator: this build embeds none and the model directory has no generator.json");
    };
    let settings = super::settings::suggest_settings(&args.suggest, &Config::default());
    let mut fixes = load_fixes(&args.data)?;
    fixes.retain(|f| crate::train::data::Dataset::in_split(f.split, args.split));
    read_files(&mut fixes, &args.files)?;
    let chosen: Vec<_> = fixes.iter().collect();
    if chosen.is_empty() {
        bail!(
            "no fix hunks in the {:?} split of the given files (eval-suggest reads *.commits.jsonl records with `fix` and `diff`)",
            args.split
        );
    }
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut small: Vec<_> = chosen.iter().copied().filter(|f| f.small).collect();
    small.truncate(limit);
    let mut lm = super::model::open(&args.lm, &dev)?;
    let mut assistant = lm
        .as_deref_mut()
        .map(|m| crate::assist::Assistant::new(m, crate::assist::Budget::new(None)));
    let small = evaluate_suggestions(
        &small,
        &model,
        &generator,
        &settings,
        args.split,
        args.examples,
        assistant.as_mut(),
    )?;
    let all = if assistant.is_some() {
        small.clone()
    } else {
        let mut chosen = chosen;
        chosen.truncate(limit);
        evaluate_suggestions(&chosen, &model, &generator, &settings, args.split, args.examples, None)?
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        EvalFormat::Json => {
            let mut v = serde_json::to_value(&all)?;
            v["small"] = serde_json::to_value(&small)?;
            serde_json::to_writer_pretty(&mut out, &v)?;
            writeln!(out)?;
        }
        EvalFormat::Text => {
            print_text("all fix hunks", &all, &mut out)?;
            print_text("single-hunk fixes, at most 5 changed lines", &small, &mut out)?;
            let tagged = all
                .examples
                .iter()
                .map(|e| (e, ""))
                .chain(small.examples.iter().map(|e| (e, ", small fix")));
            for (e, tag) in tagged {
                let mark = if e.matched { "MATCH" } else { "no match" };
                writeln!(
                    out,
                    "\n--- example ({mark}{tag}) {} {} {}",
                    e.project,
                    e.commit.chars().take(12).collect::<String>(),
                    e.path
                )?;
                write!(out, "{}", crate::render::sanitize::clean_with(&e.patch, true))?;
            }
        }
    }
    Ok(crate::exit::PASS)
}

fn print_text(what: &str, r: &SuggestReport, out: &mut impl Write) -> std::io::Result<()> {
    let pct = |v: f64| format!("{:.1}%", 100.0 * v);
    writeln!(
        out,
        "{what} ({} split): {} ({} remove a line; the rest only insert lines, which no rewrite can match)",
        r.split, r.n, r.rewritable
    )?;
    if r.with_file > 0 {
        writeln!(
            out,
            "  with the file before the fix read (names from all of it): {}",
            r.with_file
        )?;
    }
    writeln!(out, "  top-1 exact match: {}   top-5: {}", pct(r.top1), pct(r.top5))?;
    writeln!(
        out,
        "  coverage: {}   shown suggestions that apply: {}   mean risk drop: {:.3}",
        pct(r.coverage),
        pct(r.applies),
        r.risk_drop
    )?;
    writeln!(
        out,
        "  generator alone (no risk model): top-1 {}   top-5 {}   fix among all candidates: {}",
        pct(r.top1_generator),
        pct(r.top5_generator),
        pct(r.reachable)
    )?;
    writeln!(
        out,
        "  fix among candidates and kept by the rule suggestions are shown by (the bound on top-1): {}   first suggestions that only delete lines: {}",
        pct(r.eligible),
        pct(r.first_deletes)
    )?;
    if let Some(lm) = &r.lm {
        writeln!(
            out,
            "  language model ({}): verified rewrites {}   first suggestion by the model {}   its rewrite is the fix {}   ({:.0}s)",
            crate::render::sanitize::clean(&lm.model),
            pct(lm.rewrites),
            pct(lm.first_by_model),
            pct(lm.model_top1),
            lm.seconds
        )?;
    }
    Ok(())
}

/// Gives the fix hunks their files from `--repo` (none without it) and says on stderr how many
/// were found, so that a wrong repository shows.
pub(super) fn read_files(fixes: &mut [FixHunk], args: &FixFilesArgs) -> Result<()> {
    if args.repos.is_empty() {
        return Ok(());
    }
    let files = crate::git::ParentFiles::open(&args.repos)?;
    let n = attach_files(fixes, |commit, path| files.read(commit, path));
    eprintln!(
        "deepspark: read the file before the fix for {n} of {} fix hunks from {} repositor{}",
        fixes.len(),
        args.repos.len(),
        if args.repos.len() == 1 { "y" } else { "ies" }
    );
    Ok(())
}
