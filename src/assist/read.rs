//! Hunk -> how natural its added lines are to a language model: the mean negative
//! log-likelihood per token (nats) of the added lines, each run of added lines read after
//! the file's path and the hunk's new-side lines before it. One forward pass per run, no
//! generation. Does not decide what the number means for risk (see `commands::eval_pairs`
//! and `train::stack`).

use crate::diff::{Hunk, LineKind};
use crate::lm::{LanguageModel, LmError};
use serde::Serialize;

/// Added lines the measurements (`eval-pairs --lm`, `eval --lm`) read per hunk, at most: on
/// the shared data this is half the reading time of all of them (the mean labelled hunk adds 16
/// lines, one in twenty more than 70), and a fix hunk of hundreds of lines would otherwise
/// take minutes on a CPU.
pub const MAX_ADDED_LINES: usize = 40;

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
    surprisal_within(lm, path, hunk, usize::MAX)
}

/// [`surprisal`] of the first `max_added` added lines only (the lines after them are not read):
/// a bound on the time a large hunk takes (on a CPU, reading is about linear in the lines).
/// `None` for a hunk without added lines or for `max_added` 0.
pub fn surprisal_within(
    lm: &mut dyn LanguageModel,
    path: &str,
    hunk: &Hunk,
    max_added: usize,
) -> Result<Option<Surprisal>, LmError> {
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
    let mut added = 0;
    for line in &hunk.lines {
        match line.kind {
            LineKind::Added if added == max_added => break,
            LineKind::Added => {
                added += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::{ChatRequest, Completion, GgufModel, LoadOptions, TokenLogprob, WeightFormat, tiny::Tiny};

    fn hunk(body: &str) -> Hunk {
        let n = body.lines().count() as u32;
        Hunk::parse(&format!("@@ -1,{n} +1,{n} @@"), body).unwrap()
    }

    /// Records what it is asked to read; each character of a text is one token of log-probability -1.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<(String, String)>,
    }

    impl LanguageModel for Recorder {
        fn describe(&self) -> String {
            "recorder".into()
        }
        fn chat(&mut self, _: &ChatRequest) -> Result<Completion, LmError> {
            Err(LmError::Unsupported("no chat".into()))
        }
        fn logprobs(&mut self, context: &str, text: &str) -> Result<Vec<TokenLogprob>, LmError> {
            self.calls.push((context.into(), text.into()));
            Ok(text
                .chars()
                .map(|c| TokenLogprob {
                    id: 0,
                    token: c.to_string(),
                    logprob: if c == 'x' { -3.0 } else { -1.0 },
                })
                .collect())
        }
    }

    #[test]
    fn each_run_of_added_lines_is_read_after_the_new_side_before_it() {
        let h = hunk(" a\n-gone\n+bx\n c\n+d\n+e\n f\n");
        let mut lm = Recorder::default();
        let s = surprisal(&mut lm, "src/m.rs", &h).unwrap().unwrap();
        assert_eq!(
            lm.calls,
            vec![
                ("// src/m.rs\na\n".to_string(), "bx\n".to_string()),
                ("// src/m.rs\na\nbx\nc\n".to_string(), "d\ne\n".to_string()),
            ],
            "removed lines are never read; context and earlier added lines are"
        );
        // Seven tokens, one of them costing 3 nats.
        assert_eq!(s.tokens, 7);
        assert!((s.mean - 9.0 / 7.0).abs() < 1e-6, "{s:?}");
    }

    #[test]
    fn within_reads_only_the_first_added_lines() {
        let h = hunk(" a\n+b\n c\n+d\n+e\n");
        let mut lm = Recorder::default();
        let s = surprisal_within(&mut lm, "m.py", &h, 2).unwrap().unwrap();
        assert_eq!(lm.calls.last().map(|c| c.1.as_str()), Some("d\n"));
        assert_eq!(s.tokens, 4);
        assert_eq!(
            surprisal_within(&mut lm, "m.py", &h, 3).unwrap(),
            surprisal(&mut lm, "m.py", &h).unwrap()
        );
        assert_eq!(surprisal_within(&mut lm, "m.py", &h, 0).unwrap(), None);
        assert_eq!(
            surprisal(&mut lm, "m.py", &hunk(" a\n-b\n")).unwrap(),
            None,
            "no added line"
        );
    }

    #[test]
    fn a_tiny_model_reads_a_hunk_the_same_way_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        Tiny::default().write(&path).unwrap();
        let options = LoadOptions {
            weights: WeightFormat::AsStored,
            ..LoadOptions::default()
        };
        let mut lm = GgufModel::load(&path, &options).unwrap();
        let h = hunk(" fn f() {\n-    g(1)\n+    g(2)\n }\n");
        let a = surprisal(&mut lm, "a.rs", &h).unwrap().unwrap();
        let b = surprisal(&mut lm, "a.rs", &h).unwrap().unwrap();
        assert_eq!(a, b);
        assert!(a.tokens > 0 && a.mean.is_finite() && a.mean > 0.0, "{a:?}");
        // Longer than its 128-token context: a clear error, for callers to skip.
        let long = hunk(&format!(" a\n+{}\n", "word ".repeat(200)));
        assert!(matches!(
            surprisal(&mut lm, "a.rs", &long),
            Err(LmError::TooLong { .. })
        ));
    }
}
