//! `deepspark review`: git -> hunks -> tokens -> model -> findings -> suggestions -> report.
//!
//! Reads only, unless `--apply` (work-tree files of the change, and the index with
//! `--index`, through `apply.rs`) or `--patch FILE` (a new file) is given. The model is
//! loaded only when there is something to score, and the generator only when a hunk is
//! risky enough for suggestions, so an empty change is fast.

use super::scoring::score_files;
use super::settings::{Settings, generator, learned_history, load_config, suggest_settings, use_color};
use crate::assist::Assistant;
use crate::cli::{CalibrationChoice, Format, ReviewArgs};
use crate::model::RiskModel;
use crate::model::device::device;
use crate::review::{Memory, Review, gate_tripped};
use crate::{exit, git, render, suggest};
use anyhow::{Context, Result, bail};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

/// Places the change in its repository's history: calibrates its risk on that history
/// (`history::remember`: this repository's own P(clean), or the model's with the reason),
/// ranks it against the recent commits and tempers a REJECT by that rank
/// (`Review::temper`). The history is the one `learn` stored with a learned model (whose
/// calibration is already this repository's), else the last `settings.history` commits
/// from HEAD, scored with `model` (cached; see `history.rs`). A change with nothing scored
/// is not placed; a history that cannot be read gives no rank and the default calibration.
/// Returns what the history offers the reasons (`Review::explain`).
pub fn rank(
    repo: &git2::Repository,
    review: &mut Review,
    settings: &Settings,
    model: &mut Option<RiskModel>,
    old_commit: Option<git2::Oid>,
) -> Memory {
    let mut memory = Memory::default();
    if review.scores.iter().all(|s| s.is_empty()) || settings.history == 0 {
        return memory;
    }
    let learned = learned_history(settings.model.as_deref());
    let mut history = learned.clone();
    if learned.is_empty() && repo.head().is_ok() {
        let got = super::history::scored(repo, "HEAD", settings.history, settings, model).and_then(|scored| {
            // Under MIN_HISTORY commits there is nothing to fit on, and nothing is written.
            let remembered = match scored.is_empty() {
                true => None,
                false => Some(super::history::remember(repo, settings, &scored)?),
            };
            Ok((scored, remembered))
        });
        match got {
            Ok((_, None)) => review.calibrate(crate::review::CalibrationInForce {
                text: format!(
                    "the embedded model's calibration: this repository has fewer than {} commits to learn from",
                    super::history::MIN_HISTORY
                ),
                ..Default::default()
            }),
            Ok((scored, Some(remembered))) => {
                history = scored
                    .iter()
                    .filter(|(_, s)| s.production)
                    .map(|(_, s)| s.risk)
                    .collect();
                history.sort_by(f32::total_cmp);
                memory.sizes = scored.iter().map(|(_, s)| s.hunks).collect();
                memory.fixes = remembered.fixes;
                memory.fixed_hunks = remembered.fixed_hunks;
                memory.now = remembered.now;
                if settings.calibration == CalibrationChoice::Repository {
                    review.calibrate(remembered.calibration);
                } else {
                    review.calibrate(crate::review::CalibrationInForce {
                        text: "the embedded model's calibration (--calibration default)".into(),
                        ..Default::default()
                    });
                }
            }
            Err(e) => eprintln!("deepspark: the change is not placed in this repository's history: {e:#}"),
        }
    }
    let rank = review
        .production_risk
        .and_then(|r| crate::review::HistoryRank::of(r as f64, &history))
        .filter(|h| h.commits >= super::history::MIN_HISTORY);
    review.temper(rank);
    // The functions the touched files' recent fixes changed, for the history's reasons.
    let paths: Vec<&str> = review
        .files
        .iter()
        .enumerate()
        .filter(|(fi, f)| (0..f.hunks.len()).any(|hi| review.context_of(*fi, hi).is_some()))
        .filter_map(|(_, f)| f.path.old.as_deref())
        .collect();
    if !memory.fixes.is_empty() && !paths.is_empty() {
        memory.functions_fixed = super::history::functions_fixed(repo, &memory.fixes, &paths, memory.now);
    }
    // Lines a bug fix had removed that the change adds back: only fixes older than the
    // change's old side are evidence about it.
    memory.before = old_commit
        .and_then(|o| repo.find_commit(o).ok())
        .map_or(memory.now, |c| c.time().seconds());
    if !memory.fixed_hunks.is_empty() {
        let index = crate::history::similar::Index::new(&memory.fixed_hunks);
        for (fi, f) in review.files.iter().enumerate() {
            let Some(path) = f.path.new.as_deref() else { continue };
            // A line the file already holds (elsewhere, or where the change moves it from)
            // is an idiom of the file, not the code a fix took out: the old side's lines
            // are not matched. Read only for a file with a match.
            let mut held: Option<std::collections::HashSet<String>> = None;
            for (hi, h) in f.hunks.iter().enumerate() {
                let production = review.syntax.get(fi).is_some_and(|s| s.is_production(hi));
                if production && !review.dismissed.contains(&(fi, hi)) {
                    let none = std::collections::HashSet::new();
                    if index.readded(path, h, memory.before, &none).is_none() {
                        continue;
                    }
                    let held = held.get_or_insert_with(|| old_lines(repo, old_commit, f.path.old.as_deref()));
                    if let Some(r) = index.readded(path, h, memory.before, held) {
                        memory.readded.push(((fi, hi), r));
                    }
                }
            }
        }
        review.set_readded(memory.readded.iter().map(|(at, _)| *at).collect());
    }
    // Who wrote the lines the change modifies: a fix, or fresh code (blame at the old side).
    if let Some(old) = old_commit
        && memory.now > 0
    {
        memory.written = super::history::written(repo, old, review);
    }
    memory
}

/// The lines of `path` at `commit`, whitespace collapsed (`history::similar::normal`); none
/// for a new file or one git cannot read (`git::read_new` on the commit's tree).
fn old_lines(
    repo: &git2::Repository,
    commit: Option<git2::Oid>,
    path: Option<&str>,
) -> std::collections::HashSet<String> {
    let (Some(commit), Some(path)) = (commit, path) else {
        return Default::default();
    };
    let tree = repo.find_commit(commit).map(|c| c.tree_id());
    let bytes = tree
        .ok()
        .and_then(|t| git::read_new(repo, git::Side::Tree(t), path).ok().flatten());
    bytes
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .map(crate::history::similar::normal)
                .collect()
        })
        .unwrap_or_default()
}

/// Adds verified suggestions to the review for hunks at or above the threshold, and returns
/// the reviewed contents of the files (for --apply and --patch). With an assistant, the
/// language model first rewrites the riskiest of those hunks; a hunk that adds back the
/// lines a bug fix had replaced is offered that fix's replacement (see `suggest::suggest`).
fn add_suggestions(
    review: &mut Review,
    model: &RiskModel,
    repo: &git2::Repository,
    new_side: git::Side,
    settings: &Settings,
    assistant: Option<&mut Assistant>,
    memory: &Memory,
) -> Result<Vec<Option<String>>> {
    let s = &settings.suggest;
    let mut contents: Vec<Option<String>> = vec![None; review.files.len()];
    // Only production code gets suggestions (tests, comments and reformats carry no risk),
    // so only files with a risky production hunk are read.
    let production = |f: usize, h: usize| review.syntax.get(f).is_none_or(|s| s.is_production(h));
    let from_history: Vec<((usize, usize), Vec<crate::model::LineEdit>)> = memory
        .readded
        .iter()
        .filter_map(|(at, r)| {
            Some((
                *at,
                crate::history::similar::candidate(r, &review.files[at.0].hunks[at.1])?,
            ))
        })
        .collect();
    let wanted = |f: usize| {
        review.scores[f]
            .iter()
            .enumerate()
            .any(|(h, score)| score.risk >= s.above && production(f, h))
            || from_history.iter().any(|(at, _)| at.0 == f)
    };
    if s.per_hunk == 0 || !(0..review.files.len()).any(wanted) {
        return Ok(contents);
    }
    let Some(generator) = generator(settings.model.as_deref())? else {
        return Ok(contents);
    };
    for (f, file) in review.files.iter().enumerate() {
        if wanted(f)
            && let Some(path) = file.path.new.as_deref()
        {
            contents[f] = git::read_new(repo, new_side, path)?.and_then(|b| String::from_utf8(b).ok());
        }
    }
    let targets: Vec<suggest::Target> = suggest::targets(&review.files, &review.scores, &contents)
        .into_iter()
        .filter(|t| production(t.file, t.hunk))
        .collect();
    let mut written: Vec<(usize, Vec<crate::model::LineEdit>, suggest::Author)> = from_history
        .into_iter()
        .filter_map(|(at, edits)| {
            let t = targets.iter().position(|t| (t.file, t.hunk) == at)?;
            Some((t, edits, suggest::Author::History))
        })
        .collect();
    if let Some(a) = assistant {
        for (k, t) in suggest::chosen(&targets, s).into_iter().enumerate() {
            let target = &targets[t];
            if k >= MAX_LM_SUGGESTIONS {
                a.skip(format!("suggestion for {} {}", target.path, target.hunk_ref.header()));
                continue;
            }
            if let Some(edits) = a.rewrite(
                target.path,
                review.context_of(target.file, target.hunk),
                target.hunk_ref,
            ) {
                written.push((t, edits, suggest::Author::LanguageModel));
            }
        }
    }
    let stats = crate::tokenize::ChangeStats::of(&review.files);
    review.suggestions = suggest::suggest(&targets, stats, model, &generator, &written, s)?;
    review.generator = Some(crate::model::Generator::describe(&generator));
    Ok(contents)
}

/// The first suggestion of each hunk with risk >= `min_risk` (the hunks the report shows), as
/// whole-file edits.
fn file_edits(review: &Review, contents: &[Option<String>], min_risk: f32) -> Vec<crate::apply::FileEdit> {
    let mut out = Vec::new();
    for (f, file) in review.files.iter().enumerate() {
        let (Some(content), Some(path)) = (contents[f].as_deref(), file.path.new.as_deref()) else {
            continue;
        };
        let mut edits = Vec::new();
        for (h, hunk) in file.hunks.iter().enumerate() {
            if review.scores[f].get(h).is_none_or(|s| s.risk < min_risk) {
                continue;
            }
            if let Some(first) = review.suggestions_for(f, h).next() {
                edits.extend(suggest::line_edits(hunk, &first.edits));
            }
        }
        if !edits.is_empty() {
            out.push(crate::apply::FileEdit {
                path: path.to_string(),
                old: content.as_bytes().to_vec(),
                new: suggest::apply_to(content, &edits).into_bytes(),
            });
        }
    }
    out
}

/// `--patch FILE`: the suggestions as one patch; never overwrites an existing file.
pub fn write_patch(path: &Path, edits: &[crate::apply::FileEdit]) -> Result<()> {
    let text = crate::apply::patch(edits)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist already)", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Seconds the language model may spend in one review when neither `--lm-budget` nor the
/// config file says.
const DEFAULT_LM_BUDGET: f64 = 120.0;
/// Hunks per review the language model writes suggestions for (each is a generation of up to
/// the hunk's length again).
const MAX_LM_SUGGESTIONS: usize = 4;

/// The language model's comments on the riskiest `max` findings at or above `min_risk`.
fn comment(review: &mut Review, a: &mut Assistant, min_risk: f32, max: usize) {
    let findings: Vec<(usize, usize)> = review.findings(min_risk).iter().map(|f| f.index).collect();
    for (k, (fi, hi)) in findings.into_iter().enumerate() {
        let (path, hunk) = (review.files[fi].display_path(), &review.files[fi].hunks[hi]);
        if k >= max {
            a.skip(format!("comment on {path} {} (--lm-comments {max})", hunk.header()));
            continue;
        }
        if let Some(c) = a.comment(path, review.context_of(fi, hi), hunk) {
            review.assist.comments.push(crate::assist::HunkComment {
                file: fi,
                hunk: hi,
                line: c.line,
                text: c.text,
            });
        }
    }
}

/// The riskiest hunks as the REJECT note's prompt lists them: `path:line (risk): comment`.
fn concerns(review: &Review) -> Vec<String> {
    review
        .findings(f32::NEG_INFINITY)
        .iter()
        .take(3)
        .map(|f| {
            let (line, _) = f.lines();
            let said = review
                .assist
                .comment_for(f.index.0, f.index.1)
                .map(|c| format!(": {}", c.text))
                .unwrap_or_default();
            format!(
                "{}:{line} ({:.0}% risk){said}",
                f.file.display_path(),
                f.score.risk * 100.0
            )
        })
        .collect()
}

/// The surprisal of every scored hunk, riskiest first, while the budget lasts.
fn read(review: &mut Review, a: &mut Assistant) {
    let findings = review.findings(f32::NEG_INFINITY);
    let mut read = Vec::new();
    for (k, f) in findings.iter().enumerate() {
        if a.exhausted() {
            a.skip(format!("reading {} more hunk(s)", findings.len() - k));
            break;
        }
        if let Some(s) = a.read(f.file.display_path(), f.hunk) {
            read.push((f.index.0, f.index.1, s));
        }
    }
    review.assist.surprisal = read;
}

pub fn run(args: ReviewArgs) -> Result<u8> {
    let repo = git::open(args.repo.as_deref())?;
    let cfg = load_config(&args.gate, &repo)?;
    let mut settings = Settings::resolve(&args.gate, &cfg)?;
    settings.dismissed = super::dismiss::load(repo.workdir())?;
    if let Some(m) = args.min_risk {
        settings.min_risk = m as f32;
    }
    settings.suggest = suggest_settings(&args.suggest, &cfg);
    let lm_args = super::model::lm_or_config(&args.lm, &cfg);
    if args.assist.explain && lm_args.lm.is_none() {
        bail!(
            "--explain needs a language model: pass --lm SPEC (see `deepspark model list`) or set `lm` in .deepspark.toml"
        );
    }
    let request = git::Request {
        revs: args.revs.clone(),
        staged: args.staged,
        commit: args.commit.clone(),
        context: settings.context,
    };
    let change = git::diff(&repo, &request)?;
    if args.apply && change.new_side != git::Side::WorkTree {
        bail!(
            "--apply writes to the work tree, but the new side of this review is {} (apply works with `review` or `review REV`, not --staged, --commit or ranges)",
            change.sides.new
        );
    }
    let sides = git::Sides {
        old_tree: change.old_tree,
        old_commit: change.old_commit,
        new: change.new_side,
    };
    let (mut review, mut model) = score_files(&repo, sides, change.files, &settings)?;
    let memory = rank(&repo, &mut review, &settings, &mut model, change.old_commit);
    let has_work = review.scores.iter().any(|s| !s.is_empty());
    let mut lm = match (&lm_args.lm, has_work) {
        (Some(_), true) => {
            eprintln!("deepspark: loading the language model...");
            super::model::open(&lm_args, &device(settings.device)?)?
        }
        _ => None,
    };
    let budget = args.assist.lm_budget.or(cfg.lm_budget).unwrap_or(DEFAULT_LM_BUDGET);
    let mut assistant = lm
        .as_deref_mut()
        .map(|m| Assistant::new(m, crate::assist::Budget::new(Some(Duration::from_secs_f64(budget)))));
    if let Some(a) = assistant.as_mut() {
        comment(&mut review, a, settings.min_risk, args.assist.lm_comments.unwrap_or(8));
    }
    let contents = match &model {
        Some(m) => add_suggestions(
            &mut review,
            m,
            &repo,
            change.new_side,
            &settings,
            assistant.as_mut(),
            &memory,
        )?,
        None => vec![None; review.files.len()],
    };
    drop(model);
    if let Some(mut a) = assistant {
        if args.assist.explain {
            review.assist.explanation = Some(a.explain(&review.files));
        }
        if review.verdict == crate::review::Verdict::Reject {
            review.assist.reject_note = a.apologise(review.p_clean, &concerns(&review));
        }
        read(&mut review, &mut a);
        review.assist.report = Some(a.finish());
    }
    review.explain(&memory);
    // SARIF, GitHub and Markdown reports show only hunks at or above --min-risk: --apply and
    // --patch never write a suggestion the chosen report did not point at.
    let shown = match args.format {
        Format::Terminal | Format::Json => 0.0,
        Format::Sarif | Format::Github | Format::Markdown => settings.min_risk,
    };
    let edits = file_edits(&review, &contents, shown);
    if edits.is_empty() && (args.patch.is_some() || args.apply) {
        eprintln!("deepspark: no suggestions to write");
    } else if let Some(p) = &args.patch {
        write_patch(p, &edits)?;
        eprintln!(
            "deepspark: wrote the suggestions for {} file(s) to {}",
            edits.len(),
            p.display()
        );
    }
    if args.apply && !edits.is_empty() {
        let written = crate::apply::apply(&repo, &edits, args.index)?;
        eprintln!("deepspark: applied suggestions to {written} file(s)");
    }
    let code = if gate_tripped(review.verdict, settings.fail_on) {
        exit::GATE
    } else {
        exit::PASS
    };

    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match args.format {
        Format::Json => render::json::write(&review, &change.sides, settings.fail_on, &mut out),
        Format::Sarif => render::sarif::write(&review, settings.min_risk, &mut out),
        Format::Github => render::github::write(&review, settings.min_risk, &mut out),
        Format::Markdown => render::markdown::write(&review, settings.min_risk, &mut out),
        Format::Terminal => {
            let style = render::terminal::Style {
                color: use_color(args.color, std::io::stdout().is_terminal()),
            };
            render::terminal::write(&review, &change.sides, &style, &mut out)
        }
    }
    .and_then(|_| out.flush());
    match written {
        // The reader stopped early (`| head`): not our failure; keep the verdict's code.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(e).context("cannot write the report"),
        Ok(()) => Ok(code),
    }
}
