//! `deepspark fix --issue TEXT [PATH...]`: a reported problem in words -> the language model's
//! SEARCH/REPLACE edits -> a verified patch -> shown, and written only with `--apply` or
//! `--patch`.
//!
//! Verified means: every edit is in one of the files the model was shown, its SEARCH text is
//! found exactly once there as whole lines, it writes no control or bidirectional-override
//! character, the result differs from the file, and the patch deepspark writes from old and
//! new text, parsed back and applied strictly, gives exactly the new text. Nothing is written
//! without `--apply` (work tree, through `apply.rs`, with its checks) or `--patch`. When no
//! verified patch comes out it says why and exits 0: a fix not found is an answer, not an
//! error. It does not run the project's tests.

use crate::assist::{Assistant, Budget, parse};
use crate::cli::{FixArgs, FixFormat};
use crate::model::device::device;
use crate::render::sanitize::clean;
use crate::{exit, git};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Files larger than this are not shown to the model (a small model's context and a 2-core
/// prefill both run out first); the error says to name a smaller file.
const MAX_FILE_CHARS: usize = 16_000;
/// Files shown to the model at most.
const MAX_FILES: usize = 4;
const DEFAULT_BUDGET: f64 = 300.0;

#[derive(Serialize)]
struct Report<'a> {
    issue: &'a str,
    files: Vec<&'a str>,
    /// The verified patch in `git diff` format; `null` when none was found.
    patch: Option<&'a str>,
    /// What was checked, or why no patch is given.
    verified: Verified<'a>,
    applied: bool,
    lm: &'a crate::assist::LmReport,
}

#[derive(Serialize)]
struct Verified<'a> {
    ok: bool,
    checks: &'static [&'static str],
    /// Why there is no verified patch.
    reason: Option<&'a str>,
    edits: usize,
}

const CHECKS: &[&str] = &[
    "edits only the files shown to the model",
    "each SEARCH text found exactly once, as whole lines",
    "no control or bidirectional-override characters written",
    "changes the file",
    "the patch applies strictly and gives exactly the new text",
];

fn issue_text(arg: &str) -> Result<String> {
    let text = super::model::text_arg(arg).context("cannot read the issue")?;
    if text.trim().is_empty() {
        bail!("the issue text is empty: say what is wrong (--issue TEXT or --issue @FILE)");
    }
    Ok(text)
}

/// The repository's files the issue names: a tracked path written in full, or a file name
/// that only one tracked file has.
fn named_files(repo: &git2::Repository, issue: &str) -> Result<Vec<String>> {
    let index = repo.index().context("cannot read the index")?;
    let tracked: Vec<String> = index.iter().filter_map(|e| String::from_utf8(e.path).ok()).collect();
    let mut out: Vec<String> = Vec::new();
    for word in issue.split(|c: char| c.is_whitespace() || "`'\"(),;<>[]".contains(c)) {
        let word = word.trim_end_matches(['.', ':', '!', '?']);
        let word = word.split(':').next().unwrap_or(word); // path:line
        if word.len() < 3 || !word.contains('.') {
            continue;
        }
        let hit = if tracked.iter().any(|t| t == word) {
            Some(word.to_string())
        } else {
            let by_name: Vec<&String> = tracked
                .iter()
                .filter(|t| t.rsplit('/').next() == Some(word) || t.ends_with(&format!("/{word}")))
                .collect();
            (by_name.len() == 1).then(|| by_name[0].clone())
        };
        if let Some(h) = hit
            && !out.contains(&h)
        {
            out.push(h);
        }
    }
    Ok(out)
}

/// A path the user typed, as a path relative to the work tree.
fn relative(repo: &git2::Repository, path: &std::path::Path) -> Result<String> {
    let workdir = repo
        .workdir()
        .context("deepspark fix needs a work tree (this repository is bare)")?;
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let abs = abs
        .canonicalize()
        .with_context(|| format!("cannot find {}", path.display()))?;
    let root = workdir.canonicalize()?;
    let rel = abs
        .strip_prefix(&root)
        .with_context(|| format!("{} is outside the repository", path.display()))?;
    rel.to_str()
        .map(|s| s.replace('\\', "/"))
        .with_context(|| format!("{} is not a UTF-8 path", path.display()))
}

pub fn run(args: FixArgs) -> Result<u8> {
    let repo = git::open(args.repo.as_deref())?;
    let issue = issue_text(&args.issue)?;
    let cfg = crate::config::Config::load(None, repo.workdir())?.0;
    let lm_args = super::model::lm_or_config(&args.lm, &cfg);
    if lm_args.lm.is_none() {
        bail!(
            "deepspark fix needs a language model: pass --lm SPEC (see `deepspark model list`) or set `lm` in .deepspark.toml"
        );
    }
    let paths: Vec<String> = if args.paths.is_empty() {
        named_files(&repo, &issue)?
    } else {
        args.paths.iter().map(|p| relative(&repo, p)).collect::<Result<_>>()?
    };
    if paths.is_empty() {
        bail!(
            "the issue names no file of this repository: name the files to fix, `deepspark fix --issue TEXT PATH...`"
        );
    }
    if paths.len() > MAX_FILES {
        bail!(
            "{} files named; a fix may look at {MAX_FILES} at most: name fewer",
            paths.len()
        );
    }
    let mut contents = Vec::new();
    for p in &paths {
        let bytes = git::read_new(&repo, git::Side::WorkTree, p)?
            .with_context(|| format!("{p} is not a file in the work tree"))?;
        let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{p} is not UTF-8 text"))?;
        if text.chars().count() > MAX_FILE_CHARS {
            bail!(
                "{p} has {} characters; deepspark fix shows the model files of at most {MAX_FILE_CHARS}",
                text.chars().count()
            );
        }
        contents.push(text);
    }
    eprintln!("deepspark: loading the language model...");
    let mut lm = super::model::open(&lm_args, &device(args.device)?)?.context("no language model named")?;
    let budget = Budget::new(Some(Duration::from_secs_f64(args.lm_budget.unwrap_or(DEFAULT_BUDGET))));
    let mut assistant = Assistant::new(lm.as_mut(), budget);
    let shown: Vec<(&str, &str)> = paths
        .iter()
        .map(String::as_str)
        .zip(contents.iter().map(String::as_str))
        .collect();
    eprintln!(
        "deepspark: asking the language model for a fix of {}...",
        paths.join(", ")
    );
    let outcome = assistant
        .fix(&issue, &shown)
        .and_then(|blocks| verify(&paths, &contents, &blocks));
    let report = assistant.finish();
    let (edits, reason) = match outcome {
        Ok(edits) => (edits, None),
        Err(why) => (Vec::new(), Some(why)),
    };
    let patch = if edits.is_empty() {
        None
    } else {
        Some(crate::apply::patch(&edits)?)
    };
    let mut applied = false;
    if let (Some(_), Some(file)) = (&patch, &args.patch) {
        super::review::write_patch(file, &edits)?;
        eprintln!("deepspark: wrote the patch to {}", file.display());
    }
    if patch.is_some() && args.apply {
        let n = crate::apply::apply(&repo, &edits, args.index)?;
        applied = true;
        eprintln!("deepspark: applied the fix to {n} file(s)");
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match args.format {
        FixFormat::Json => {
            let doc = Report {
                issue: &issue,
                files: paths.iter().map(String::as_str).collect(),
                patch: patch.as_deref(),
                verified: Verified {
                    ok: patch.is_some(),
                    checks: CHECKS,
                    reason: reason.as_deref(),
                    edits: edits.len(),
                },
                applied,
                lm: &report,
            };
            serde_json::to_writer_pretty(&mut out, &doc)
                .map_err(std::io::Error::other)
                .and_then(|_| writeln!(out))
        }
        FixFormat::Terminal => {
            let color = super::settings::use_color(args.color, std::io::stdout().is_terminal());
            write_terminal(&mut out, patch.as_deref(), reason.as_deref(), &report, color)
        }
    }
    .and_then(|_| out.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(exit::PASS),
        Err(e) => Err(e).context("cannot write the report"),
        Ok(()) => Ok(exit::PASS),
    }
}

/// The model's edits, applied to each file and checked (see the module doc).
fn verify(
    paths: &[String],
    contents: &[String],
    blocks: &[parse::SearchReplace],
) -> Result<Vec<crate::apply::FileEdit>, String> {
    let mut edits = Vec::new();
    let mut texts: Vec<(&str, String)> = Vec::new();
    for (path, content) in paths.iter().zip(contents) {
        let mine: Vec<&parse::SearchReplace> = blocks.iter().filter(|b| &b.path == path).collect();
        if mine.is_empty() {
            continue;
        }
        let new = parse::apply_search_replace(content, path, &mine).map_err(|e| e.to_string())?;
        edits.push(crate::apply::FileEdit {
            path: path.clone(),
            old: content.clone().into_bytes(),
            new: new.clone().into_bytes(),
        });
        texts.push((content, new));
    }
    if edits.is_empty() {
        return Err(parse::Refused::NoEdit.to_string());
    }
    for (e, (old, new)) in edits.iter().zip(&texts) {
        if !crate::suggest::patch_round_trips(&e.path, old, new) {
            return Err(format!("the patch of {} does not apply back exactly", e.path));
        }
    }
    Ok(edits)
}

fn write_terminal(
    out: &mut impl Write,
    patch: Option<&str>,
    reason: Option<&str>,
    lm: &crate::assist::LmReport,
    color: bool,
) -> std::io::Result<()> {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    match patch {
        Some(p) => {
            writeln!(
                out,
                "{}",
                paint("1;35", "a fix written by the language model, verified (not tested):")
            )?;
            for line in p.lines() {
                let code = match line.chars().next() {
                    Some('+') if !line.starts_with("+++") => "32",
                    Some('-') if !line.starts_with("---") => "31",
                    Some('@') => "36",
                    _ => "1",
                };
                writeln!(out, "{}", paint(code, &clean(line)))?;
            }
            writeln!(
                out,
                "\n(`--apply` writes it to the work tree, `--patch FILE` to a file)"
            )?;
        }
        None => writeln!(
            out,
            "no verified patch: {}",
            clean(reason.unwrap_or("the model gave no usable answer"))
        )?,
    }
    writeln!(out, "\n{}", paint("2", &crate::render::terminal::lm_line(lm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fix_is_verified_before_it_is_shown() {
        let paths = vec!["a.py".to_string(), "b.py".to_string()];
        let contents = vec!["x = v[1:]\nreturn x\n".to_string(), "y = 1\n".to_string()];
        let block = |path: &str, search: &str, replace: &str| parse::SearchReplace {
            path: path.into(),
            search: search.into(),
            replace: replace.into(),
        };
        let ok = verify(&paths, &contents, &[block("a.py", "x = v[1:]", "x = v[0:]")]).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].new, b"x = v[0:]\nreturn x\n");
        assert!(verify(&paths, &contents, &[block("a.py", "missing", "x")]).is_err());
        assert!(
            verify(&paths, &contents, &[block("c.py", "y = 1", "y = 2")]).is_err(),
            "a file not shown"
        );
    }
}
