//! `.deepspark.toml`: per-repository settings for reviews, hooks and CI.
//!
//! Read from `--config FILE` or the repository root. Unknown keys are an error that
//! names the key. Precedence: command-line flag, then DEEPSPARK_* variable, then this
//! file, then the built-in default. This module only parses and validates.

use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = ".deepspark.toml";

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub lgtm: Option<f64>,
    pub reject: Option<f64>,
    /// A REJECT needs the change riskier than this percentage of the recent history (0: off).
    pub reject_rank: Option<f64>,
    /// How many recent commits a change is ranked against (0: none).
    pub history: Option<usize>,
    /// `repository` (fitted on this repository's history) or `default` (the model's own).
    pub calibration: Option<crate::cli::CalibrationChoice>,
    pub fail_on: Option<crate::cli::FailOn>,
    pub context: Option<u32>,
    pub max_file_lines: Option<usize>,
    pub max_change_lines: Option<usize>,
    /// Extra skip globs, added to the defaults.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Set to false to review generated, vendored and lock files too.
    pub default_skips: Option<bool>,
    /// Model directory, relative to the repository root.
    pub model: Option<PathBuf>,
    pub min_risk: Option<f64>,
    /// Seconds the pre-push hook may spend scoring.
    pub hook_budget: Option<u64>,
    /// Suggestions shown per risky hunk (0: none).
    pub suggestions: Option<usize>,
    /// Hunks with at least this risk get suggestions.
    pub suggest_above: Option<f64>,
    /// A suggestion must lower its hunk's risk by at least this much.
    pub suggest_margin: Option<f64>,
    /// The language model `review` uses when no `--lm` is given (a spec as `--lm` takes; a
    /// relative `.gguf` path is relative to the repository root).
    pub lm: Option<String>,
    /// Seconds the language model may spend per review.
    pub lm_budget: Option<f64>,
    /// How `deepspark mine` reads the history (`[mine]` table).
    #[serde(default)]
    pub mine: MineConfig,
}

/// The `[mine]` table: which messages mark bug fixes, and how long bugs take to be found.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MineConfig {
    /// Regular expressions: a commit whose message matches one is a bug fix (replaces the defaults).
    pub fix: Option<Vec<String>>,
    /// Regular expressions: a subject that matches one is not a bug fix (replaces the defaults).
    pub not_fix: Option<Vec<String>>,
    /// Commits younger than this many days before the mined revision are not labelled clean.
    pub grace_days: Option<u32>,
    /// An issue tracker's export naming bug reports (see `mine --bug-reports`), relative
    /// to the settings file.
    pub bug_reports: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
}

impl Config {
    /// The explicit file, else `<root>/.deepspark.toml` when it exists, else defaults.
    pub fn load(explicit: Option<&Path>, root: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match (explicit, root) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(r)) if r.join(FILE_NAME).is_file() => r.join(FILE_NAME),
            _ => return Ok((Config::default(), None)),
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: shown.clone(),
            source,
        })?;
        let cfg = Self::parse(&text).map_err(|msg| ConfigError::Invalid { path: shown, msg })?;
        let base = path.parent().map(Path::to_path_buf);
        let cfg = Config {
            model: cfg.model.map(|m| base.as_deref().map_or(m.clone(), |b| b.join(&m))),
            lm: cfg.lm.map(|spec| match base.as_deref() {
                Some(b) if spec.ends_with(".gguf") && Path::new(&spec).is_relative() && !spec.contains(':') => {
                    b.join(&spec).display().to_string()
                }
                _ => spec,
            }),
            mine: MineConfig {
                bug_reports: cfg
                    .mine
                    .bug_reports
                    .map(|f| base.as_deref().map_or(f.clone(), |b| b.join(&f))),
                ..cfg.mine
            },
            ..cfg
        };
        Ok((cfg, Some(path)))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.message().to_string())?;
        for (name, v) in [("lgtm", cfg.lgtm), ("reject", cfg.reject), ("min_risk", cfg.min_risk)] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return Err(format!("{name} = {v} is not a probability in [0, 1]"));
            }
        }
        if let Some(r) = cfg.reject_rank
            && !(0.0..=100.0).contains(&r)
        {
            return Err(format!("reject_rank = {r} is not a percentage in [0, 100]"));
        }
        if let Some(b) = cfg.lm_budget
            && !(b.is_finite() && b >= 0.0)
        {
            return Err(format!("lm_budget = {b} must be zero or more seconds"));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_unknown_keys() {
        let c = Config::parse("lgtm = 0.9\nfail_on = \"needs-work\"\nskip = [\"docs/\"]\n").unwrap();
        assert_eq!(c.lgtm, Some(0.9));
        assert_eq!(c.fail_on, Some(crate::cli::FailOn::NeedsWork));
        assert_eq!(c.skip, ["docs/"]);
        let e = Config::parse("lgtn = 0.9\n").unwrap_err();
        assert!(e.contains("lgtn"), "{e}");
        assert!(Config::parse("reject = 2.0").unwrap_err().contains("probability"));
        assert!(Config::parse("fail_on = \"sometimes\"").is_err());
        let m = Config::parse("[mine]\nfix = [\"(?i)oops\"]\ngrace_days = 30\n")
            .unwrap()
            .mine;
        assert_eq!(m.fix.as_deref(), Some(&["(?i)oops".to_string()][..]));
        assert_eq!(m.grace_days, Some(30));
        assert!(Config::parse("[mine]\ngrace = 30\n").unwrap_err().contains("grace"));
    }
}
