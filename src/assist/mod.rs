//! What a language model does for a review, beside the embedded risk model: it reads a hunk
//! (surprisal of the added lines, `read.rs`), comments on risky hunks, explains the change,
//! proposes replacement lines, writes the REJECT note, and fixes a reported issue.
//!
//! Every answer is model output: it is parsed strictly (`parse.rs`), refused when malformed
//! or when it reaches outside the hunk it was asked about, sanitised before any report, and it
//! never changes a verdict. Prompts (`prompt.rs`) present the diff as data inside a fence the
//! diff cannot close. All of it runs under a time budget (`Budget`); what was not reached is
//! said in the report. `DEEPSPARK_LM_TRACE=1` prints every prompt and answer (sanitised) to
//! stderr, for tuning prompts to a model. This module never loads a model (see `commands::model::open`) and never
//! writes a file.

pub mod parse;
pub mod prompt;
pub mod read;

use crate::diff::{FileDiff, Hunk};
use crate::lm::{ChatRequest, LanguageModel};
use crate::model::LineEdit;
use crate::syntax::Context;
use serde::Serialize;
use std::time::{Duration, Instant};

/// A model's comment on a hunk of a review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HunkComment {
    /// Indices of the file in the review and of the hunk in that file.
    pub file: usize,
    pub hunk: usize,
    /// New-side line the comment is about.
    pub line: u32,
    pub text: String,
}

/// What a change does, as the model reads it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Explanation {
    /// The change as a whole (the one file's explanation when only one file changed).
    pub whole: Option<String>,
    pub files: Vec<FileExplanation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileExplanation {
    /// Index of the file in the review.
    pub file: usize,
    pub path: String,
    pub text: String,
}

/// What the language model did in a review: for the report, so that a reader knows what is
/// model output and what it did not reach.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LmReport {
    /// The model, as `LanguageModel::describe` says (sanitised).
    pub model: String,
    pub calls: usize,
    pub seconds: f64,
    /// `--lm-budget`, when one was set.
    pub budget_seconds: Option<f64>,
    /// Tasks left undone because the budget ran out, e.g. "comment on src/a.rs @@ -1,2 +1,3 @@".
    pub not_reached: Vec<String>,
    /// Answers that were not used, with the reason.
    pub refused: Vec<String>,
    /// Where the time went, one entry per kind of task in the order first met.
    pub phases: Vec<PhaseTime>,
}

/// The model's time on one kind of task ("reading", "comments", "suggestions",
/// "explanation", "reject note", "fix").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTime {
    pub phase: &'static str,
    pub calls: usize,
    pub seconds: f64,
}

/// Wall-clock limit on the model's work in one command. A call that starts before the limit
/// finishes (each call's tokens are bounded by its prompt builder); none starts after it.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    start: Instant,
    limit: Option<Duration>,
}

impl Budget {
    pub fn new(limit: Option<Duration>) -> Budget {
        Budget {
            start: Instant::now(),
            limit,
        }
    }

    pub fn spent(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn exhausted(&self) -> bool {
        self.limit.is_some_and(|l| self.spent() >= l)
    }
}

/// A language model put to work on one review or fix, under a [`Budget`].
pub struct Assistant<'m> {
    lm: &'m mut dyn LanguageModel,
    budget: Budget,
    report: LmReport,
}

impl<'m> Assistant<'m> {
    pub fn new(lm: &'m mut dyn LanguageModel, budget: Budget) -> Assistant<'m> {
        let model = crate::render::sanitize::clean(&lm.describe()).into_owned();
        Assistant {
            lm,
            budget,
            report: LmReport {
                model,
                budget_seconds: budget.limit.map(|l| l.as_secs_f64()),
                ..LmReport::default()
            },
        }
    }

    /// True when no more calls may start; `task` is then recorded as not reached.
    pub fn out_of_time(&mut self, task: impl FnOnce() -> String) -> bool {
        if self.budget.exhausted() {
            let task = crate::render::sanitize::clean(&task()).into_owned();
            self.report.not_reached.push(task);
            return true;
        }
        false
    }

    /// The model, as the report names it.
    pub fn describe_model(&self) -> String {
        self.report.model.clone()
    }

    /// Seconds since the assistant started.
    pub fn spent(&self) -> f64 {
        self.budget.spent().as_secs_f64()
    }

    /// Whether the budget is spent (no call would start).
    pub fn exhausted(&self) -> bool {
        self.budget.exhausted()
    }

    /// Records a task left undone for a limit other than time.
    pub fn skip(&mut self, task: String) {
        self.report
            .not_reached
            .push(crate::render::sanitize::clean(&task).into_owned());
    }

    fn refuse(&mut self, task: &str, why: impl std::fmt::Display) {
        let line = format!("{task}: {why}");
        self.report
            .refused
            .push(crate::render::sanitize::clean(&line).into_owned());
    }

    /// One chat call, unless the budget is spent (then `None`, recorded as not reached). A
    /// failed call is recorded as refused, not an error: the review goes on without it.
    fn ask(&mut self, phase: &'static str, task: &str, request: &ChatRequest) -> Option<String> {
        if self.out_of_time(|| task.to_string()) || self.would_overrun(phase, task) {
            return None;
        }
        let start = Instant::now();
        let trace = std::env::var_os("DEEPSPARK_LM_TRACE").is_some_and(|v| !v.is_empty());
        if trace {
            for m in &request.messages {
                eprintln!(
                    "--- {task}: {:?}\n{}",
                    m.role,
                    crate::render::sanitize::clean_with(&m.content, true)
                );
            }
        }
        let answer = self.lm.chat(request);
        self.record(phase, start);
        match answer {
            Ok(c) => {
                if trace {
                    eprintln!(
                        "--- {task}: answer\n{}",
                        crate::render::sanitize::clean_with(&c.text, true)
                    );
                }
                Some(c.text)
            }
            Err(e) => {
                self.refuse(task, e);
                None
            }
        }
    }

    /// What may be wrong with a hunk, tied to one of its lines.
    pub fn comment(&mut self, path: &str, context: Option<&Context>, hunk: &Hunk) -> Option<parse::LineComment> {
        let task = format!("comment on {path} {}", hunk.header());
        let answer = self.ask("comments", &task, &prompt::comment(path, context, hunk))?;
        match parse::comment(&answer, hunk) {
            Ok(c) => Some(c),
            Err(parse::Refused::Nothing) => None,
            Err(e) => {
                self.refuse(&task, e);
                None
            }
        }
    }

    /// Replacement lines for a hunk's added lines, as edits (checked against the file later,
    /// by `suggest::verify`).
    pub fn rewrite(&mut self, path: &str, context: Option<&Context>, hunk: &Hunk) -> Option<Vec<LineEdit>> {
        let task = format!("suggestion for {path} {}", hunk.header());
        let answer = self.ask("suggestions", &task, &prompt::rewrite(path, context, hunk))?;
        let parsed = parse::fenced_block(&answer)
            .ok_or(parse::Refused::NoBlock)
            .and_then(|lines| parse::rewrite_edits(hunk, &lines));
        match parsed {
            Ok(edits) => Some(edits),
            Err(e) => {
                self.refuse(&task, e);
                None
            }
        }
    }

    /// What each reviewed file's change does, and the change as a whole.
    pub fn explain(&mut self, files: &[FileDiff]) -> Explanation {
        let mut out = Explanation::default();
        for (i, f) in files.iter().enumerate() {
            if f.skip.is_some() || f.hunks.is_empty() {
                continue;
            }
            let task = format!("explanation of {}", f.display_path());
            let Some(answer) = self.ask("explanation", &task, &prompt::explain_file(f)) else {
                continue;
            };
            match parse::sentences(&answer, 2, parse::MAX_TEXT_CHARS) {
                Ok(text) => out.files.push(FileExplanation {
                    file: i,
                    path: f.display_path().to_string(),
                    text,
                }),
                Err(e) => self.refuse(&task, e),
            }
        }
        out.whole = match out.files.as_slice() {
            [] => None,
            [one] if files.iter().filter(|f| f.skip.is_none() && !f.hunks.is_empty()).count() == 1 => {
                Some(one.text.clone())
            }
            many => {
                let per_file: Vec<(&str, &str)> = many.iter().map(|e| (e.path.as_str(), e.text.as_str())).collect();
                let request = prompt::explain_change(&per_file);
                let task = "explanation of the whole change";
                self.ask("explanation", task, &request).and_then(|a| {
                    match parse::sentences(&a, 2, parse::MAX_TEXT_CHARS) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            self.refuse(task, e);
                            None
                        }
                    }
                })
            }
        };
        out
    }

    /// The REJECT note, written for this change; `None` when the model gave nothing usable
    /// (the report's template is used then).
    pub fn apologise(&mut self, p_clean: f64, concerns: &[String]) -> Option<String> {
        let task = "the REJECT note";
        let answer = self.ask("reject note", task, &prompt::apologise(p_clean, concerns))?;
        match parse::sentences(&answer, 3, parse::MAX_TEXT_CHARS) {
            Ok(t) => Some(t),
            Err(e) => {
                self.refuse(task, e);
                None
            }
        }
    }

    /// Edits for a reported problem over `files` (path, content): SEARCH/REPLACE blocks, or
    /// for one short file the whole corrected file, as one block that replaces all of it.
    pub fn fix(&mut self, issue: &str, files: &[(&str, &str)]) -> Result<Vec<parse::SearchReplace>, String> {
        let task = "fix";
        let whole = match files {
            [(path, content)] if content.lines().count() <= prompt::WHOLE_FILE_LINES => Some((*path, *content)),
            _ => None,
        };
        let request = match whole {
            Some((path, content)) => prompt::fix_whole(issue, path, content),
            None => prompt::fix(issue, files),
        };
        let answer = self.ask("fix", task, &request).ok_or_else(|| {
            self.report
                .refused
                .last()
                .cloned()
                .unwrap_or_else(|| "out of time".into())
        })?;
        let paths: Vec<&str> = files.iter().map(|(p, _)| *p).collect();
        let parsed = match (parse::search_replace(&answer, &paths), whole) {
            (Ok(blocks), _) => Ok(blocks),
            (Err(_), Some((path, content))) => parse::whole_file(&answer, path, content).map(|b| vec![b]),
            (Err(e), None) => Err(e),
        };
        parsed.map_err(|e| {
            self.refuse(task, &e);
            e.to_string()
        })
    }

    /// The surprisal of a hunk's added lines (see `read.rs`); `None` when out of time or failed.
    pub fn read(&mut self, path: &str, hunk: &Hunk) -> Option<read::Surprisal> {
        let task = format!("reading {path} {}", hunk.header());
        if self.out_of_time(|| task.clone()) || self.would_overrun("reading", &task) {
            return None;
        }
        let start = Instant::now();
        let read = read::surprisal(self.lm, path, hunk);
        self.record("reading", start);
        match read {
            Ok(s) => s,
            Err(e) => {
                self.refuse(&task, e);
                None
            }
        }
    }

    /// True when the calls of `phase` so far (or, before its first, all calls so far) took
    /// longer, on average, than what is left of the budget: that call would end past it, so it
    /// does not start (`task` is recorded as not reached). The first call of a review always
    /// starts while time is left.
    fn would_overrun(&mut self, phase: &str, task: &str) -> bool {
        let Some(limit) = self.budget.limit else {
            return false;
        };
        let phases = &self.report.phases;
        let (seconds, calls) = match phases.iter().find(|p| p.phase == phase) {
            Some(p) => (p.seconds, p.calls),
            None => phases.iter().fold((0.0, 0), |(s, c), p| (s + p.seconds, c + p.calls)),
        };
        if calls == 0 {
            return false;
        }
        let left = limit.as_secs_f64() - self.budget.spent().as_secs_f64();
        if seconds / calls as f64 > left {
            self.report
                .not_reached
                .push(crate::render::sanitize::clean(task).into_owned());
            return true;
        }
        false
    }

    /// Counts one call of `phase` that began at `start`.
    fn record(&mut self, phase: &'static str, start: Instant) {
        self.report.calls += 1;
        let seconds = start.elapsed().as_secs_f64();
        match self.report.phases.iter_mut().find(|p| p.phase == phase) {
            Some(p) => {
                p.calls += 1;
                p.seconds += seconds;
            }
            None => self.report.phases.push(PhaseTime {
                phase,
                calls: 1,
                seconds,
            }),
        }
    }

    /// What the model did, for the report.
    pub fn finish(mut self) -> LmReport {
        self.report.seconds = self.budget.spent().as_secs_f64();
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::{Completion, LmError, StopReason, TokenLogprob};

    /// Answers from a script, in order; each call takes `delay`.
    struct Scripted {
        answers: Vec<String>,
        prompts: Vec<String>,
        delay: Duration,
    }

    impl LanguageModel for Scripted {
        fn describe(&self) -> String {
            "scripted \x1b[31mmodel".into()
        }
        fn chat(&mut self, request: &ChatRequest) -> Result<Completion, LmError> {
            std::thread::sleep(self.delay);
            self.prompts
                .push(request.messages.iter().map(|m| m.content.clone()).collect());
            let text = if self.answers.is_empty() {
                String::new()
            } else {
                self.answers.remove(0)
            };
            Ok(Completion {
                text,
                stop: StopReason::EndOfText,
                prompt_tokens: 1,
                tokens: 1,
                prefill: Duration::ZERO,
                decode: Duration::ZERO,
            })
        }
        fn logprobs(&mut self, _: &str, text: &str) -> Result<Vec<TokenLogprob>, LmError> {
            Ok(text
                .chars()
                .map(|c| TokenLogprob {
                    id: c as u32,
                    token: c.to_string(),
                    logprob: -1.0,
                })
                .collect())
        }
    }

    fn scripted(answers: &[&str], delay_ms: u64) -> Scripted {
        Scripted {
            answers: answers.iter().map(|s| s.to_string()).collect(),
            prompts: Vec::new(),
            delay: Duration::from_millis(delay_ms),
        }
    }

    #[test]
    fn answers_are_parsed_and_a_hostile_one_is_refused() {
        let h = Hunk::parse("@@ -1,2 +1,3 @@", " a\n+b\n c").unwrap();
        let mut lm = scripted(
            &[
                "LINE 2: `b` is never defined.",
                "```\na\nB\nc\n```",
                "```\nrm -rf /\nB\nc\n```", // rewrites a context line: refused
                "Sure! ```\na\nB",          // no closed block: refused
            ],
            0,
        );
        let mut a = Assistant::new(&mut lm, Budget::new(None));
        let c = a.comment("x.py", None, &h).unwrap();
        assert_eq!((c.line, c.text.as_str()), (2, "`b` is never defined."));
        assert_eq!(
            a.rewrite("x.py", None, &h),
            Some(vec![LineEdit {
                line: 1,
                new: Some("B".into())
            }])
        );
        assert_eq!(a.rewrite("x.py", None, &h), None);
        assert_eq!(a.rewrite("x.py", None, &h), None);
        let r = a.finish();
        assert_eq!(r.calls, 4);
        assert_eq!(r.refused.len(), 2, "{:?}", r.refused);
        assert!(r.refused[0].contains("did not add"));
        assert_eq!(r.model, "scripted \\x1b[31mmodel", "the model's own name is sanitised");
        // The hunk is in the prompt, inside a fence, below the instruction not to obey it.
        assert!(lm.prompts[0].contains("+    2 | b"));
    }

    #[test]
    fn no_call_starts_after_the_budget_and_what_was_left_is_said() {
        let h = Hunk::parse("@@ -1,2 +1,3 @@", " a\n+b\n c").unwrap();
        let mut lm = scripted(&["LINE 2: x."; 10], 30);
        let mut a = Assistant::new(&mut lm, Budget::new(Some(Duration::from_millis(50))));
        let comments: Vec<_> = (0..10).filter_map(|_| a.comment("x.py", None, &h)).collect();
        let r = a.finish();
        // The call at 0 starts; after it 20 ms are left, less than a comment took, so no
        // other starts and the review ends inside its budget.
        assert_eq!(r.calls, 1);
        assert_eq!(comments.len(), 1);
        assert_eq!(r.not_reached.len(), 9);
        assert!(r.seconds < 0.05, "{}", r.seconds);
        assert!(r.not_reached[0].starts_with("comment on x.py @@ -1,2 +1,3 @@"));
        assert!(r.seconds < 1.0);
    }

    #[test]
    fn a_phase_not_timed_yet_is_judged_by_the_calls_before_it() {
        // Each call takes 30 ms. With 100 ms, a suggestion may follow a comment (70 ms left);
        // with 50 ms it would end past the budget, so it does not start and is said.
        let h = Hunk::parse("@@ -1,2 +1,3 @@", " a\n+b\n c").unwrap();
        let mut lm = scripted(&["LINE 2: x.", "```\na\nB\nc\n```"], 30);
        let mut a = Assistant::new(&mut lm, Budget::new(Some(Duration::from_millis(100))));
        assert!(a.comment("x.py", None, &h).is_some());
        assert!(a.rewrite("x.py", None, &h).is_some(), "70 ms left, calls take 30");
        assert_eq!(a.finish().calls, 2);
        let mut lm = scripted(&["LINE 2: x.", "```\na\nB\nc\n```"], 30);
        let mut a = Assistant::new(&mut lm, Budget::new(Some(Duration::from_millis(50))));
        assert!(a.comment("x.py", None, &h).is_some());
        assert!(a.rewrite("x.py", None, &h).is_none(), "20 ms left, calls take 30");
        let r = a.finish();
        assert_eq!(r.calls, 1);
        assert!(
            r.not_reached[0].starts_with("suggestion for x.py"),
            "{:?}",
            r.not_reached
        );
        assert!(r.seconds < 0.05, "{}", r.seconds);
    }

    #[test]
    fn the_time_is_told_per_phase() {
        let h = Hunk::parse("@@ -1,2 +1,3 @@", " a\n+b\n c").unwrap();
        let mut lm = scripted(&["LINE 2: x.", "LINE 2: y.", "```\na\nB\nc\n```"], 20);
        let mut a = Assistant::new(&mut lm, Budget::new(None));
        a.comment("x.py", None, &h);
        a.comment("x.py", None, &h);
        a.rewrite("x.py", None, &h);
        let r = a.finish();
        let phases: Vec<(&str, usize)> = r.phases.iter().map(|p| (p.phase, p.calls)).collect();
        assert_eq!(phases, [("comments", 2), ("suggestions", 1)]);
        assert_eq!(r.calls, 3);
        assert!(
            r.phases[0].seconds >= 0.04 && r.phases[1].seconds >= 0.02,
            "{:?}",
            r.phases
        );
        assert!(r.phases.iter().map(|p| p.seconds).sum::<f64>() <= r.seconds);
    }

    #[test]
    fn an_explanation_per_file_and_one_for_the_whole_change() {
        let file = |path: &str, body: &str| FileDiff {
            path: crate::diff::OldNew {
                old: Some(path.into()),
                new: Some(path.into()),
            },
            status: crate::diff::FileStatus::Modified,
            mode: Default::default(),
            language: Some("python"),
            hunks: vec![Hunk::parse("@@ -1 +1 @@", body).unwrap()],
            skip: None,
        };
        let mut files = vec![file("a.py", "-x\n+y"), file("b.py", "-p\n+q")];
        let mut lm = scripted(
            &["Renames x. Renames x.", "Renames p.", "Two renames.\n\nIgnore this."],
            0,
        );
        let mut a = Assistant::new(&mut lm, Budget::new(None));
        let e = a.explain(&files);
        assert_eq!(e.files.len(), 2);
        assert_eq!(e.files[0].text, "Renames x.", "a repeated sentence is dropped");
        assert_eq!(e.whole.as_deref(), Some("Two renames. Ignore this."));
        files.truncate(1);
        let mut lm = scripted(&["Renames x."], 0);
        let e = Assistant::new(&mut lm, Budget::new(None)).explain(&files);
        assert_eq!(
            e.whole.as_deref(),
            Some("Renames x."),
            "one file: its explanation is the whole"
        );
    }
}
