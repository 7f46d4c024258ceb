//! One file per subcommand; each has a `run` that returns the exit code.
pub mod completions;
pub mod dismiss;
pub mod eval;
pub mod eval_pairs;
pub mod eval_suggest;
pub mod fix;
pub mod history;
pub mod hook;
pub mod learn;
pub mod man;
pub mod mine;
pub mod model;
pub mod review;
pub mod scan;
pub mod score;
pub mod scoring;
pub mod settings;
pub mod train;

use crate::git::GitError;
use crate::model::weights::LoadError;

/// What to do next, for the errors where deepspark can say.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    if let Some(g) = err.downcast_ref::<GitError>() {
        return Some(match g {
            GitError::NotARepo(_) => "run deepspark inside a git repository, or pass -C PATH".into(),
            GitError::PastFirstCommit(_) => "`deepspark review --commit REV` reviews a commit against its \
                 parent, or against nothing for the first commit"
                .into(),
            GitError::BadRevision { .. } => {
                "check the revision with `git rev-parse --verify REV`; see `deepspark review --help` for the forms"
                    .into()
            }
            GitError::Bare(_) => "in a bare repository, use `deepspark review A..B`".into(),
            GitError::Shallow { .. } => "run `git fetch --unshallow` (in GitHub Actions: `fetch-depth: 0`)".into(),
            _ => return None,
        });
    }
    if let Some(crate::hook::HookError::HooksPath(_)) = err.downcast_ref() {
        return Some("pass --allow-hooks-path to install there anyway, or unset core.hooksPath".into());
    }
    if err.downcast_ref::<crate::config::ConfigError>().is_some() {
        return Some("see README.md, section \"Configuration\", for the keys .deepspark.toml accepts".into());
    }
    if let Some(fetch) = err
        .downcast_ref::<crate::lm::source::SourceError>()
        .and_then(|e| e.fetch_hint())
    {
        return Some(fetch.to_string());
    }
    if let Some(crate::lm::source::SourceError::BadSpec(_)) = err.downcast_ref() {
        return Some(
            "see `deepspark model --help` for the forms of SPEC; `deepspark model list` shows what is cached".into(),
        );
    }
    if err.downcast_ref::<LoadError>().is_some() {
        return Some("pass --model DIR with config.json, model.safetensors and tokenizer.json, or omit it to use the embedded model".into());
    }
    None
}
