//! What decides a review besides the change itself: the settings (flags over the
//! repository's `.deepspark.toml` over the defaults), where the model comes from (named,
//! learned in `.deepspark/model`, or embedded), the generator, and colour. `review`, `scan`,
//! `score`, the hook, `learn` and the history all read their settings here; nothing here
//! scores or reviews.

use crate::cli::{CalibrationChoice, ColorChoice, FailOn, GateArgs, SuggestArgs};
use crate::config::Config;
use crate::model::EditModel;
use crate::model::device::DeviceChoice;
use crate::model::weights::ModelFiles;
use crate::review::Thresholds;
use crate::{skip, suggest};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// How the repository's history is labelled for its calibration (`[mine]`, as `mine`).
    pub mine: crate::config::MineConfig,
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
            history: args.verdict.history.or(cfg.history).unwrap_or(crate::review::HISTORY),
            calibration: args
                .verdict
                .calibration
                .or(cfg.calibration)
                .unwrap_or(CalibrationChoice::Repository),
            fail_on: args.fail_on.or(cfg.fail_on).unwrap_or(FailOn::Reject),
            rules: skip::Rules {
                patterns,
                markers: default_skips,
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
            mine: cfg.mine.clone(),
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
