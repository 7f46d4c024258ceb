//! Hunk -> how natural its added lines are to a language model: the mean negative
//! log-likelihood per token (nats) of the added lines, each run of added lines read after
//! the file's path and the hunk's new-side lines before it. One forward pass per run, no
//! generation. Does not decide what the number means for risk (see `commands::eval_pairs`).

use crate::diff::{Hunk, LineKind};
use crate::lm::{LanguageModel, LmError};
use serde::Serialize;

/// Surprisal of a hunk's added lines.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Surprisal {
    /// Mean negative log-probability per token, in nats.
    pub mean: f32,
    /// Tokens it is the mean of.
    pub tokens: usize,
}

/// The surprisal of the added lines of `hunk` in `path`; `None` for a hunk without added lines.
pub fn surprisal(lm: &mut dyn LanguageModel, path: &str, hunk: &Hunk) -> Result<Option<Surprisal>, LmError> {
    let mut context = format!("// {path}\n");
    let mut run = String::new();
    let (mut sum, mut tokens) = (0f64, 0usize);
    let mut flush = |context: &mut String, run: &mut String, lm: &mut dyn LanguageModel| -> Result<(), LmError> {
        if run.is_empty() {
            return Ok(());
        }
        for t in lm.logprobs(context, run)? {
            sum -= f64::from(t.logprob);
            tokens += 1;
        }
        context.push_str(run);
        run.clear();
        Ok(())
    };
    for line in &hunk.lines {
        match line.kind {
            LineKind::Added => {
                run.push_str(&line.text);
                run.push('\n');
            }
            LineKind::Context => {
                flush(&mut context, &mut run, lm)?;
                context.push_str(&line.text);
                context.push('\n');
            }
            LineKind::Removed => {}
        }
    }
    flush(&mut context, &mut run, lm)?;
    Ok((tokens > 0).then(|| Surprisal {
        mean: (sum / tokens as f64) as f32,
        tokens,
    }))
}
