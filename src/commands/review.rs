//! `deepspark review`: git -> hunks -> tokens -> model -> findings -> suggestions -> report.
//!
//! Reads only, unless `--apply` (work-tree files of the change, and the index with
//! `--index`, through `apply.rs`) or `--patch FILE` (a new file) is given. The model is
//! loaded only when there is something to score, and the generator only when a hunk is
//! risky enough for suggestions, so an empty change is fast.

use crate::assist::Assistant;
use crate::cli::{CalibrationChoice, ColorChoice, FailOn, Format, GateArgs, ReviewArgs, SuggestArgs};
use crate::config::Config;
use crate::diff::{FileDiff, Skip};
use crate::history::calibration::Calibration;
use crate::model::device::{DeviceChoice, device};
use crate::model::weights::ModelFiles;
use crate::model::{EditModel, HunkScore, RiskModel, ScoreInput, Scorer};
use crate::review::{Memory, Review, Thresholds, gate_tripped, judge};
use crate::{exit, git, render, skip, suggest};
use anyhow::{Context, Result, bail};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where `deepspark learn` writes the repository's own model, relative to its work tree;
/// `review`, `scan` and the hook use it when no model is named.
pub const LEARNED_DIR: &str = ".deepspark/model";
/// What `learn` writes beside the model: where and when it learned (see `commands::learn`).
pub const LEARNED_FILE: &str = "learned.json";
/// A learned model this many commits behind HEAD is called stale.
const STALE_COMMITS: usize = 1000;

/// `--model default` names the embedded model, bypassing `.deepspark/model`.
pub const DEFAULT_MODEL: &str = "default";

pub fn model_files(dir: Option<&Path>) -> Result<ModelFiles> {
    match dir {
        Some(d) if d != Path::new(DEFAULT_MODEL) => Ok(ModelFiles::read_dir(d)?),
        _ => ModelFiles::embedded().ok_or_else(|| {
            anyhow::anyhow!("this build has no embedded model (weights/ was empty when it was built); pass --model DIR")
        }),
    }
}

/// Colour: `--color always|never`, else NO_COLOR, else TERM=dumb, else whether the stream is a terminal.
pub fn use_color(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
                && is_terminal
        }
    }
}

/// The suggestion generator: the model directory's, if it has one, else the embedded one.
pub fn generator(dir: Option<&Path>) -> Result<Option<EditModel>> {
    if let Some(found) = dir.and_then(EditModel::read_dir) {
        return Ok(Some(found?));
    }
    EditModel::embedded().transpose().map_err(Into::into)
}

/// Flags over the config file over the defaults (see `suggest::Settings`).
pub fn suggest_settings(args: &SuggestArgs, cfg: &Config) -> suggest::Settings {
    let d = suggest::Settings::default();
    suggest::Settings {
        per_hunk: args.suggestions.or(cfg.suggestions).unwrap_or(d.per_hunk),
        above: args.suggest_above.or(cfg.suggest_above).map_or(d.above, |v| v as f32),
        margin: args
            .suggest_margin
            .or(cfg.suggest_margin)
            .map_or(d.margin, |v| v as f32),
        plausible: d.plausible,
    }
}

/// Everything that decides a review besides the change itself.
pub struct Settings {
    pub thresholds: Thresholds,
    pub fail_on: FailOn,
    pub rules: skip::Rules,
    pub model: Option<PathBuf>,
    pub device: DeviceChoice,
    /// Stop scoring after this long; the rest is reported as not reviewed.
    pub budget: Option<Duration>,
    pub context: u32,
    /// Reporting threshold for SARIF, GitHub and Markdown findings.
    pub min_risk: f32,
    pub suggest: suggest::Settings,
    /// Fingerprints of dismissed findings (`.deepspark/dismissed`), scored as no risk.
    pub dismissed: std::collections::HashSet<String>,
    /// How many recent commits a change is ranked against (0: none; see `history.rs`).
    pub history: usize,
    /// Whose calibration gives P(clean).
    pub calibration: CalibrationChoice,
}

impl Settings {
    /// Flags (and DEEPSPARK_* variables) over the config file over the defaults.
    pub fn resolve(args: &GateArgs, cfg: &Config) -> Result<Settings> {
        let lgtm = args.verdict.lgtm.or(cfg.lgtm).unwrap_or(crate::review::DEFAULT_LGTM);
        let reject = args
            .verdict
            .reject
            .or(cfg.reject)
            .unwrap_or(crate::review::DEFAULT_REJECT);
        let reject_rank = args
            .verdict
            .reject_rank
            .or(cfg.reject_rank)
            .unwrap_or(crate::review::DEFAULT_REJECT_RANK);
        if reject > lgtm {
            bail!("--reject ({reject}) must not be above --lgtm ({lgtm})");
        }
        let default_skips = !args.limits.no_default_skips && cfg.default_skips.unwrap_or(true);
        let mut patterns: Vec<String> = if default_skips {
            skip::DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect()
        } else {
            vec![]
        };
        patterns.extend(cfg.skip.iter().cloned());
        patterns.extend(args.limits.skip.iter().cloned());
        Ok(Settings {
            thresholds: Thresholds {
                lgtm,
                reject,
                reject_rank,
            },
            history: args.verdict.history.or(cfg.history).unwrap_or(super::history::HISTORY),
            calibration: args
                .verdict
                .calibration
                .or(cfg.calibration)
                .unwrap_or(CalibrationChoice::Repository),
            fail_on: args.fail_on.or(cfg.fail_on).unwrap_or(FailOn::Reject),
            rules: skip::Rules {
                patterns,
                max_file_lines: args.limits.max_file_lines.or(cfg.max_file_lines).unwrap_or(5000),
                max_change_lines: args.limits.max_change_lines.or(cfg.max_change_lines).unwrap_or(20000),
            },
            model: args.model.clone().or(cfg.model.clone()),
            device: args.device,
            budget: None,
            context: args.context.or(cfg.context).unwrap_or(3),
            min_risk: cfg.min_risk.unwrap_or(0.3) as f32,
            suggest: suggest_settings(&SuggestArgs::default(), cfg),
            dismissed: Default::default(),
        })
    }
}

/// The repository's settings file, if any (see `config.rs`); when neither it nor the
/// command line names a model, the repository's learned model (`.deepspark/model`), with a
/// warning on stderr when it is stale.
pub fn load_config(args: &GateArgs, repo: &git2::Repository) -> Result<Config> {
    let mut cfg = Config::load(args.config.as_deref(), repo.workdir())?.0;
    if args.model.is_none()
        && cfg.model.is_none()
        && let Some(dir) = repo.workdir().map(|w| w.join(LEARNED_DIR))
        && dir.join(crate::model::weights::CONFIG).is_file()
    {
        if let Some(msg) = staleness(repo, &dir) {
            eprintln!("deepspark: {msg}");
        }
        cfg.model = Some(dir);
    }
    Ok(cfg)
}

/// The `learned.json` beside a learned model in `dir`, when there is a readable one (it is
/// a file anyone can edit: every reader takes what it needs and ignores the rest).
fn learned_json(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(LEARNED_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The `at` commit a learned model records.
fn learned_at(dir: &Path) -> Option<String> {
    learned_json(dir)?["at"].as_str().map(str::to_string)
}

/// The date (unix seconds) of the commit a learned model in `dir` was learned at.
pub fn learned_at_date(dir: Option<&Path>) -> Option<i64> {
    learned_json(dir?)?["at_date"].as_i64()
}

/// The change risks of the repository's recent commits that `learn` stored with the model.
pub fn learned_history(dir: Option<&Path>) -> Vec<f32> {
    dir.and_then(learned_json)
        .and_then(|v| v["history"]["risks"].as_array().cloned())
        .map(|a| a.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect())
        .unwrap_or_default()
}

/// For reports: `, learned for this repository at <short id>` when the model was learned.
pub fn learned_note(dir: Option<&Path>) -> String {
    match dir.and_then(learned_at) {
        // learned.json can be edited by hand: take characters, never slice bytes.
        Some(at) => format!(
            ", learned for this repository at {}",
            crate::render::sanitize::clean(&at.chars().take(10).collect::<String>())
        ),
        None => String::new(),
    }
}

/// A warning when the learned model in `dir` is far behind HEAD or was learned elsewhere.
fn staleness(repo: &git2::Repository, dir: &Path) -> Option<String> {
    let at = git2::Oid::from_str(&learned_at(dir)?).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?.id();
    if repo.find_commit(at).is_err() || !(at == head || repo.graph_descendant_of(head, at).unwrap_or(false)) {
        return Some(format!(
            "the learned model in {LEARNED_DIR} was learned at {at}, which is not in HEAD's history; \
             run `deepspark learn` again (`--model default` uses the embedded model)"
        ));
    }
    let mut walk = repo.revwalk().ok()?;
    walk.push(head).ok()?;
    walk.hide(at).ok()?;
    let behind = walk.take(STALE_COMMITS + 1).count();
    (behind > STALE_COMMITS).then(|| {
        format!(
            "the learned model in {LEARNED_DIR} is more than {STALE_COMMITS} commits behind HEAD: \
             run `deepspark learn` again (`--model default` uses the embedded model)"
        )
    })
}

/// skip -> tokens -> model -> verdict, for files read from git; also the loaded model
/// (none when there was nothing to score). [`rank`] then places it in the history.
pub fn score_files(mut files: Vec<FileDiff>, settings: &Settings) -> Result<(Review, Option<RiskModel>)> {
    let start = Instant::now();
    skip::apply(&mut files, &settings.rules);
    let mut scores: Vec<Vec<HunkScore>> = vec![Vec::new(); files.len()];
    let to_score: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].skip.is_none() && !files[i].hunks.is_empty())
        .collect();
    if to_score.is_empty() {
        return Ok((judge(files, scores, 0.0, settings.thresholds, None), None));
    }
    let dev = device(settings.device)?;
    let model = RiskModel::load(&model_files(settings.model.as_deref())?, &dev)?;
    let total: usize = to_score.iter().map(|&i| files[i].hunks.len()).sum();
    let change = crate::tokenize::ChangeStats::of(&files);
    let bar = progress_bar(total);
    let mut out_of_time = Vec::new();
    for &i in &to_score {
        if let Some(budget) = settings.budget
            && start.elapsed() > budget
        {
            out_of_time.push(i);
            continue;
        }
        let f = &files[i];
        let inputs: Vec<ScoreInput> = f
            .hunks
            .iter()
            .map(|h| ScoreInput {
                path: f.display_path(),
                hunk: h,
                change,
            })
            .collect();
        scores[i] = model.score(&inputs)?;
        bar.inc(inputs.len() as u64);
    }
    bar.finish_and_clear();
    let dismissed = dismiss(&files, &mut scores, &settings.dismissed);
    for i in out_of_time {
        let seconds = settings.budget.map_or(0, |b| b.as_secs());
        files[i].skip = Some(Skip::TimeBudget { seconds });
        files[i].hunks.clear();
    }
    let syntax = crate::syntax::read(&files, &[]);
    let production = crate::review::production_scores(&syntax, &scores, &dismissed);
    let production_risk = match production.is_empty() {
        true => None,
        false => Some(model.change_risk(&production)?),
    };
    let risk = Calibration::DEFAULT.risk(production_risk);
    let describe = model.describe() + &learned_note(settings.model.as_deref());
    let mut review = judge(files, scores, risk, settings.thresholds, Some(describe));
    review.dismissed = dismissed;
    review.syntax = syntax;
    review.production_risk = production_risk;
    Ok((review, Some(model)))
}

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
) -> Memory {
    let mut memory = Memory {
        min_risk: settings.min_risk,
        ..Memory::default()
    };
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
    memory
}

/// Replaces the scores of dismissed hunks (see `commands::dismiss`) and says which they are.
pub fn dismiss(
    files: &[FileDiff],
    scores: &mut [Vec<HunkScore>],
    dismissed: &std::collections::HashSet<String>,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if dismissed.is_empty() {
        return out;
    }
    for (fi, (f, s)) in files.iter().zip(scores.iter_mut()).enumerate() {
        for (hi, (h, score)) in f.hunks.iter().zip(s.iter_mut()).enumerate() {
            if dismissed.contains(&crate::review::hunk_fingerprint(f.display_path(), h)) {
                *score = crate::review::dismissed_score(h.lines.len());
                out.push((fi, hi));
            }
        }
    }
    out
}

/// Adds verified suggestions to the review for hunks at or above the threshold, and returns
/// the reviewed contents of the files (for --apply and --patch). With an assistant, the
/// language model first rewrites the riskiest of those hunks (see `suggest::suggest`).
fn add_suggestions(
    review: &mut Review,
    model: &RiskModel,
    repo: &git2::Repository,
    new_side: git::Side,
    settings: &Settings,
    assistant: Option<&mut Assistant>,
) -> Result<Vec<Option<String>>> {
    let s = &settings.suggest;
    let mut contents: Vec<Option<String>> = vec![None; review.files.len()];
    let wanted = |f: usize| review.scores[f].iter().any(|h| h.risk >= s.above);
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
    let targets = suggest::targets(&review.files, &review.scores, &contents);
    let mut written = Vec::new();
    if let Some(a) = assistant {
        for (k, t) in suggest::chosen(&targets, s).into_iter().enumerate() {
            let target = &targets[t];
            if k >= MAX_LM_SUGGESTIONS {
                a.skip(format!("suggestion for {} {}", target.path, target.hunk_ref.header()));
                continue;
            }
            if let Some(edits) = a.rewrite(target.path, target.hunk_ref) {
                written.push((t, edits));
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
        if let Some(c) = a.comment(path, hunk) {
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

fn progress_bar(total: usize) -> indicatif::ProgressBar {
    if total < 256 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template("scoring [{bar:30}] {pos}/{len} hunks ({eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    b
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
    let (mut review, mut model) = score_files(change.files, &settings)?;
    let memory = rank(&repo, &mut review, &settings, &mut model);
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
        Some(m) => add_suggestions(&mut review, m, &repo, change.new_side, &settings, assistant.as_mut())?,
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
