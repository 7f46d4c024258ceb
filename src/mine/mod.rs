//! SZZ over the repository's own history: labels each commit by whether a later bug fix
//! removed or changed lines it introduced, in the records of the training data.
//!
//! 1. **Fixes** are found by message (`Patterns::is_fix`), and by the bug reports they name
//!    when an issue tracker's export is given (`reports.rs`); merges, commits of a shallow
//!    clone's boundary and fixes touching more than `MAX_FIX_FILES` files are left out.
//! 2. **Blame**: the code lines each fix removes (changed lines show up as removed ones),
//!    except cosmetic ones (blank, lone braces and punctuation, comments), are blamed at
//!    the fix's parent, ignoring whitespace, by `blame`, which reads each file's history
//!    once for all the fixes that ask about it, one file per thread. Lines blamed on a
//!    commit of `.git-blame-ignore-revs` (mass reformatting) are not counted.
//! 3. **Labels**: a commit a fix implicates is buggy; its hunks whose added lines were
//!    blamed get `hunk_label` 1, its other hunks -1. Other commits are clean (label 0),
//!    except those younger than the grace period before `at`, which are not written at all:
//!    their bugs may not have been found yet (`Options::young_implicated`: nor the buggy
//!    ones among them).
//!
//! Output, oldest commit first, deterministic: each commit record followed by its hunk
//! records (source files only: no tests, vendored or generated files, as in the shared
//! data). It reads only commits that are `at` or its ancestors, so mining "as of" an old
//! revision sees nothing after it. It does not train or score anything.

use crate::diff::{FileDiff, Hunk, LineKind, is_code_language, is_cosmetic, is_test_path};
use crate::git::{self, GitError, HistoryCommit};
use crate::history::similar::{self, FixedHunk};
use crate::skip;
use git2::{Oid, Repository};
use rayon::prelude::*;
use regex::Regex;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

mod blame;
pub mod reports;

pub use reports::BugReports;

/// A fix that touches more files than this is a sweep (a rename, a licence update), not a
/// bug fix: its lines are not blamed.
pub const MAX_FIX_FILES: usize = 50;
/// A commit record's diff is cut at this many bytes (`diff_truncated`), as in the shared data.
pub const MAX_DIFF_BYTES: usize = 200_000;
/// Commits written per parallel step of the output phase.
const CHUNK: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum MineError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("git: {0}")]
    Git2(#[from] git2::Error),
    #[error("invalid fix pattern {pattern:?}: {msg}")]
    Pattern { pattern: String, msg: String },
    #[error("cannot write the records: {0}")]
    Write(#[from] std::io::Error),
}

/// Which commit messages mark bug fixes.
pub struct Patterns {
    fix: Vec<Regex>,
    not_fix: Vec<Regex>,
    /// An issue tracker's bug reports: what they say comes before the words.
    reports: Option<BugReports>,
}

/// Bug-fix keywords (B-SZZ's, with their inflections), case-insensitive, as whole words.
pub const DEFAULT_FIX: &[&str] =
    &[r"(?i)\b(fix|fixes|fixed|fixing|bugfix|bug|bugs|hotfix|defect|regression|crash|crashes|crashed)\b"];
/// Subjects that name a fix of something that is not code behaviour: words, documentation,
/// layout, and what a linter or formatter reported (by the tool's name, or a conventional
/// `style:` subject). Compiler and sanitizer warnings are left as fixes: they are often bugs.
pub const DEFAULT_NOT_FIX: &[&str] = &[
    r"(?i)\b(typos?|spelling|docs?|documentation|changelog|readme|whitespace|formatting|lint)\b",
    r"(?i)\b(linters?|lints|clippy|rustfmt|gofmt|golint|golangci|errcheck|eslint|prettier|checkstyle|findbugs|spotbugs)\b",
    r"(?i)^style(\([^)]*\))?!?:",
];

impl Patterns {
    pub fn new(fix: &[String], not_fix: &[String]) -> Result<Patterns, MineError> {
        let compile = |ps: &[String]| {
            ps.iter()
                .map(|p| {
                    Regex::new(p).map_err(|e| MineError::Pattern {
                        pattern: p.clone(),
                        msg: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Patterns {
            fix: compile(fix)?,
            not_fix: compile(not_fix)?,
            reports: None,
        })
    }

    pub fn default_patterns() -> Patterns {
        let own = |ps: &[&str]| ps.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Patterns::new(&own(DEFAULT_FIX), &own(DEFAULT_NOT_FIX)).expect("the default patterns compile")
    }

    /// These patterns, with an issue tracker's bug reports deciding first.
    pub fn with_reports(self, reports: Option<BugReports>) -> Patterns {
        Patterns { reports, ..self }
    }

    /// A fix: the message names a bug report of the export; or it names no issue the
    /// export knows, matches a fix pattern, and its subject no exclusion.
    pub fn is_fix(&self, message: &str) -> bool {
        if let Some(judged) = self.reports.as_ref().and_then(|r| r.judge(message)) {
            return judged;
        }
        let subject = message.lines().next().unwrap_or("");
        self.fix.iter().any(|r| r.is_match(message)) && !self.not_fix.iter().any(|r| r.is_match(subject))
    }
}

pub struct Options {
    /// Mine as if today were this revision: only it and its ancestors.
    pub at: String,
    /// The `project` field of every record.
    pub project: String,
    /// Clean-looking commits younger than this many seconds before `at` are not labelled.
    pub grace_secs: i64,
    /// Whether commits younger than the grace period that a fix implicates are written.
    /// `learn` leaves them out: inside the grace period only buggy commits would be
    /// there, and the newest history it calibrates and measures on would look riskier
    /// than it is.
    pub young_implicated: bool,
    pub patterns: Patterns,
    /// What is not source code (the review's default skip patterns, plus the user's).
    pub rules: skip::Rules,
}

/// What a run did, for the summary line.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Commits reachable from `at`.
    pub commits: usize,
    pub merges: usize,
    pub fixes: usize,
    /// Fixes not blamed: too many files.
    pub sweeps: usize,
    /// Commits left out because git could not read them (objects missing from the clone).
    pub unreadable: usize,
    /// Lines blamed to a commit that is mined.
    pub blamed_lines: usize,
    /// Commit records written, and how many of them are buggy.
    pub written: usize,
    pub buggy: usize,
    pub hunks: usize,
    /// Clean-looking commits inside the grace period, not written.
    pub unlabelled: usize,
    /// The walk stopped at a shallow clone's boundary.
    pub shallow: bool,
}

#[derive(Serialize)]
struct CommitRecord<'a> {
    commit_id: String,
    project: &'a str,
    buggy: bool,
    fix: bool,
    fixed_by: Vec<String>,
    author_date: i64,
    subject: &'a str,
    diff: String,
    diff_truncated: bool,
}

#[derive(Serialize)]
struct HunkRecord<'a> {
    commit_id: String,
    project: &'a str,
    file: &'a str,
    hunk_header: String,
    hunk: String,
    commit_buggy: bool,
    hunk_label: i8,
}

/// Progress callbacks: the number of steps of a phase, then one call per step.
pub trait Progress: Sync {
    fn phase(&self, name: &str, steps: usize);
    fn step(&self);
}

/// A worker thread's own handle on the repository (git2 handles are not shared across
/// threads), or the error that opening it gave.
fn opened(r: &Result<Repository, git2::Error>) -> Result<&Repository, MineError> {
    r.as_ref()
        .map_err(|e| MineError::Git2(git2::Error::from_str(e.message())))
}

/// What SZZ found in a history: the commits (oldest first), the fixes, and which commits
/// each fix implicates. `mine` writes records from it; the review's history stage
/// (`history/`) calibrates and gives reasons from it.
pub struct Labels {
    /// `at` and its ancestors, oldest first.
    pub history: Vec<HistoryCommit>,
    /// Indices into `history` of the commits that can be labelled: not merges, not the
    /// shallow boundary (whose parent is missing).
    pub mined: Vec<usize>,
    /// Indices into `history` of the fixes, and the source files (old paths) whose code
    /// lines each removed; empty for a sweep or an unreadable fix.
    pub fixes: Vec<(usize, Vec<String>)>,
    /// Introducing commit -> path there -> its lines a fix changed.
    pub lines: HashMap<Oid, HashMap<String, HashSet<u32>>>,
    /// Introducing commit -> the fixes that implicate it.
    pub fixed_by: HashMap<Oid, BTreeSet<String>>,
    /// The fixes' hunks that removed a telling code line (`history::similar`), oldest fix first.
    pub fixed_hunks: Vec<FixedHunk>,
    pub summary: Summary,
}

/// Finds the fixes of the history up to `at` and blames the code lines they changed.
/// `since` (unix seconds) reads only the commits authored since then: the oldest of them
/// stand at a boundary, as a shallow clone's do (not labelled; lines older than them are
/// blamed on nobody), which is what a review needs of a long history, at a fraction of
/// the time.
pub fn label(
    repo: &Repository,
    at: &str,
    patterns: &Patterns,
    rules: &skip::Rules,
    progress: &dyn Progress,
    since: Option<i64>,
) -> Result<Labels, MineError> {
    let (mut history, shallow) = git::history(repo, at)?;
    if let Some(since) = since {
        history.retain(|c| c.author_date >= since);
    }
    let mut summary = Summary {
        commits: history.len(),
        shallow,
        ..Summary::default()
    };
    let kept: HashSet<Oid> = history.iter().map(|c| c.id).collect();
    let boundary: HashSet<Oid> = if shallow || since.is_some() {
        history
            .iter()
            .filter(|c| c.parents.is_empty() || c.parents.iter().any(|p| !kept.contains(p)))
            .map(|c| c.id)
            .collect()
    } else {
        HashSet::new()
    };
    let mined: Vec<usize> = (0..history.len())
        .filter(|&i| history[i].parents.len() <= 1 && !boundary.contains(&history[i].id))
        .collect();
    summary.merges = history.iter().filter(|c| c.parents.len() > 1).count();
    let known: HashSet<Oid> = mined.iter().map(|&i| history[i].id).collect();
    let Some(tip) = history.last() else {
        return Ok(Labels {
            history,
            mined,
            fixes: Vec::new(),
            lines: HashMap::new(),
            fixed_by: HashMap::new(),
            fixed_hunks: Vec::new(),
            summary,
        });
    };
    let ignore = git::blame_ignore_revs(repo, tip.id)?;
    let fix_at: Vec<usize> = mined
        .iter()
        .copied()
        .filter(|&i| !history[i].parents.is_empty() && patterns.is_fix(&history[i].message))
        .collect();
    let fixes: Vec<&HistoryCommit> = fix_at.iter().map(|&i| &history[i]).collect();
    summary.fixes = fixes.len();

    let path = repo.path().to_path_buf();
    progress.phase("finding the lines fixes changed", fixes.len());
    let asked: Vec<Result<Option<Vec<Question>>, MineError>> = fixes
        .par_iter()
        .map_init(
            || Repository::open(&path),
            |r, fix| {
                let r = opened(r)?;
                let got = questions(r, fix, rules);
                progress.step();
                got
            },
        )
        .collect();
    let fixed_hunks: Vec<FixedHunk> = asked
        .iter()
        .flat_map(|a| match a {
            Ok(Some(qs)) => qs.iter().flat_map(|q| q.fixed.iter().cloned()).collect(),
            _ => Vec::new(),
        })
        .collect();
    let paths: Vec<Vec<String>> = asked
        .iter()
        .map(|a| match a {
            Ok(Some(qs)) => qs.iter().map(|q| q.path.clone()).collect(),
            _ => Vec::new(),
        })
        .collect();
    progress.phase("reading the history", history.len());
    let commits = blame::Commits::read(&path, &history, &|| progress.step())?;
    let blamed = blame_all(&path, &commits, &fixes, asked, progress)?;
    let mut lines: HashMap<Oid, HashMap<String, HashSet<u32>>> = HashMap::new();
    let mut fixed_by: HashMap<Oid, BTreeSet<String>> = HashMap::new();
    for (fix, origins) in fixes.iter().zip(blamed) {
        let origins = match origins {
            Blamed::Lines(o) => o,
            Blamed::Sweep => {
                summary.sweeps += 1;
                continue;
            }
            Blamed::Unreadable => {
                summary.unreadable += 1;
                continue;
            }
        };
        for o in origins {
            if !known.contains(&o.commit) || ignore.contains(&o.commit) || o.commit == fix.id {
                continue;
            }
            summary.blamed_lines += 1;
            lines
                .entry(o.commit)
                .or_default()
                .entry(o.path)
                .or_default()
                .insert(o.orig_line);
            fixed_by.entry(o.commit).or_default().insert(fix.id.to_string());
        }
    }
    Ok(Labels {
        fixes: fix_at.into_iter().zip(paths).collect(),
        history,
        mined,
        lines,
        fixed_by,
        fixed_hunks,
        summary,
    })
}

/// Mines the history of `repo` up to `opts.at` and writes the records to `out`.
pub fn mine(
    repo: &Repository,
    opts: &Options,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<Summary, MineError> {
    let Labels {
        history,
        mined,
        fixes,
        lines,
        fixed_by,
        mut summary,
        ..
    } = label(repo, &opts.at, &opts.patterns, &opts.rules, progress, None)?;
    let Some(at) = history.last() else {
        return Ok(summary);
    };
    let now = at.author_date;
    let mined: Vec<&HistoryCommit> = mined.iter().map(|&i| &history[i]).collect();
    let path = repo.path().to_path_buf();
    let fixes: Vec<&HistoryCommit> = fixes.iter().map(|(i, _)| &history[*i]).collect();

    let fix_ids: HashSet<Oid> = fixes.iter().map(|c| c.id).collect();
    let written: Vec<&HistoryCommit> = mined
        .iter()
        .copied()
        .filter(|c| (opts.young_implicated && fixed_by.contains_key(&c.id)) || c.author_date <= now - opts.grace_secs)
        .collect();
    summary.unlabelled = mined.len() - written.len();
    progress.phase("writing records", written.len());
    for chunk in written.chunks(CHUNK) {
        let texts: Vec<Result<(String, usize), MineError>> = chunk
            .par_iter()
            .map_init(
                || Repository::open(&path),
                |r, c| {
                    let r = opened(r)?;
                    let empty = HashMap::new();
                    let blamed = lines.get(&c.id).unwrap_or(&empty);
                    let fixers = fixed_by
                        .get(&c.id)
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default();
                    records(
                        r,
                        c,
                        &opts.project,
                        fix_ids.contains(&c.id),
                        fixers,
                        blamed,
                        &opts.rules,
                    )
                },
            )
            .collect();
        for (c, t) in chunk.iter().zip(texts) {
            let (text, hunks) = match t {
                Ok(t) => t,
                Err(MineError::Git(GitError::Git(e))) if missing(&e) => {
                    summary.unreadable += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            out.write_all(text.as_bytes())?;
            summary.written += 1;
            summary.hunks += hunks;
            summary.buggy += usize::from(fixed_by.contains_key(&c.id));
            progress.step();
        }
    }
    out.flush()?;
    Ok(summary)
}

/// An object the clone does not have (a partial or pruned snapshot): that commit is left
/// out and counted, instead of ending the run.
fn missing(e: &git2::Error) -> bool {
    e.code() == git2::ErrorCode::NotFound && e.class() == git2::ErrorClass::Odb
}

/// Lines to blame: the code lines a fix removed from one file, at the fix's parent; and the
/// fix's hunks of that file, for `history::similar`.
struct Question {
    path: String,
    lines: Vec<u32>,
    fixed: Vec<FixedHunk>,
}

/// What blaming one fix found.
enum Blamed {
    Lines(Vec<git::Origin>),
    /// Too many files: not blamed.
    Sweep,
    /// Git could not read some of its objects.
    Unreadable,
}

/// The questions of the code lines `fix` removes, per file, or `None` for a sweep (too
/// many files).
fn questions(repo: &Repository, fix: &HistoryCommit, rules: &skip::Rules) -> Result<Option<Vec<Question>>, MineError> {
    let mut files = git::diff_commits(repo, Some(fix.parents[0]), fix.id, 0)?;
    skip::apply(&mut files, rules);
    let files: Vec<&FileDiff> = files.iter().filter(|f| is_source(f)).collect();
    if files.len() > MAX_FIX_FILES {
        return Ok(None);
    }
    let mut out = Vec::new();
    for f in files {
        let Some(old_path) = f.path.old.as_deref() else {
            continue;
        };
        let language = f.language;
        let put_back: HashSet<String> = f
            .hunks
            .iter()
            .flat_map(|h| h.lines.iter())
            .filter(|l| l.kind == LineKind::Added)
            .map(|l| similar::normal(&l.text))
            .collect();
        let fixed = match f.path.new.as_deref() {
            Some(new_path) => f
                .hunks
                .iter()
                .filter_map(|h| {
                    let of = |k: LineKind| h.lines.iter().filter(move |l| l.kind == k).map(|l| l.text.clone());
                    FixedHunk::of(
                        (fix.id.to_string(), fix.author_date),
                        new_path.to_string(),
                        of(LineKind::Removed).collect(),
                        of(LineKind::Added).collect(),
                        &put_back,
                        language,
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        let lines: Vec<u32> = f
            .hunks
            .iter()
            .flat_map(|h| h.lines.iter())
            .filter(|l| l.kind == LineKind::Removed && !is_cosmetic(&l.text, language))
            .filter_map(|l| l.lineno.old)
            .collect();
        if !lines.is_empty() {
            out.push(Question {
                path: old_path.to_string(),
                lines,
                fixed,
            });
        }
    }
    Ok(Some(out))
}

/// The questions about one file: which fix (its index) asks about which of its lines.
type Asks = Vec<(usize, Vec<u32>)>;
/// One blamer's answers: the fix (its index) and where its lines came from.
type Answers = Vec<(usize, Result<Vec<git::Origin>, GitError>)>;

/// Answers every fix's questions, one file at a time per thread (a file's versions are
/// read once for all the fixes that ask about it), longest histories first.
fn blame_all(
    path: &Path,
    commits: &blame::Commits,
    fixes: &[&HistoryCommit],
    asked: Vec<Result<Option<Vec<Question>>, MineError>>,
    progress: &dyn Progress,
) -> Result<Vec<Blamed>, MineError> {
    let mut blamed = Vec::with_capacity(fixes.len());
    // File -> (fix, lines) of the questions about it.
    let mut by_file: HashMap<String, Asks> = HashMap::new();
    for (i, a) in asked.into_iter().enumerate() {
        match a {
            Ok(Some(qs)) => {
                for q in qs {
                    by_file.entry(q.path).or_default().push((i, q.lines));
                }
                blamed.push(Blamed::Lines(Vec::new()));
            }
            Ok(None) => blamed.push(Blamed::Sweep),
            Err(MineError::Git(GitError::Git(e))) if missing(&e) => blamed.push(Blamed::Unreadable),
            Err(e) => return Err(e),
        }
    }
    let mut files: Vec<(String, Asks)> = by_file.into_iter().collect();
    files.sort_by_cached_key(|(p, _)| (std::cmp::Reverse(commits.versions(p)), p.clone()));
    progress.phase("blaming fixes", files.len());
    let next = AtomicUsize::new(0);
    let answers: Vec<Result<Answers, MineError>> = (0..rayon::current_num_threads())
        .into_par_iter()
        .map(|_| {
            let mut b = blame::Blamer::new(Repository::open(path)?, commits);
            let mut out = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((file, asks)) = files.get(k) else {
                    return Ok(out);
                };
                for (i, lines) in asks {
                    out.push((*i, b.blame(fixes[*i].parents[0], file, lines)));
                }
                b.forget();
                progress.step();
            }
        })
        .collect();
    for answer in answers {
        for (i, got) in answer? {
            match (got, &mut blamed[i]) {
                (Ok(o), Blamed::Lines(all)) => all.extend(o),
                (Err(GitError::Git(e)), slot) if missing(&e) => *slot = Blamed::Unreadable,
                (Err(e), _) => return Err(e.into()),
                (Ok(_), _) => {}
            }
        }
    }
    Ok(blamed)
}

/// Source code that the records describe: a programming language (not documentation or
/// data), not a test, not skipped.
fn is_source(f: &FileDiff) -> bool {
    let code = f.language.is_some_and(is_code_language);
    f.skip.is_none() && code && !is_test_path(f.display_path())
}

/// The commit record and hunk records of one commit, as JSON lines, and the hunk count.
fn records(
    repo: &Repository,
    c: &HistoryCommit,
    project: &str,
    fix: bool,
    fixed_by: Vec<String>,
    blamed: &HashMap<String, HashSet<u32>>,
    rules: &skip::Rules,
) -> Result<(String, usize), MineError> {
    let mut files = git::diff_commits(repo, c.parents.first().copied(), c.id, 3)?;
    let mut diff = diff_text(&files);
    let diff_truncated = diff.len() > MAX_DIFF_BYTES;
    if diff_truncated {
        let mut end = MAX_DIFF_BYTES;
        while !diff.is_char_boundary(end) {
            end -= 1;
        }
        diff.truncate(end);
    }
    let buggy = !fixed_by.is_empty();
    let id = c.id.to_string();
    let record = CommitRecord {
        commit_id: id.clone(),
        project,
        buggy,
        fix,
        fixed_by,
        author_date: c.author_date,
        subject: c.subject(),
        diff,
        diff_truncated,
    };
    let mut out = serde_json::to_string(&record).expect("records serialise");
    out.push('\n');
    skip::apply(&mut files, rules);
    let mut n = 0;
    for f in files.iter().filter(|f| is_source(f)) {
        let path = f.display_path();
        let lines = blamed.get(path);
        for h in &f.hunks {
            let hit = lines.is_some_and(|ls| {
                h.lines
                    .iter()
                    .filter(|l| l.kind == LineKind::Added)
                    .any(|l| l.lineno.new.is_some_and(|n| ls.contains(&n)))
            });
            let hunk_label = match (buggy, hit) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => -1,
            };
            let rec = HunkRecord {
                commit_id: id.clone(),
                project,
                file: path,
                hunk_header: h.header(),
                hunk: body(h),
                commit_buggy: buggy,
                hunk_label,
            };
            out.push_str(&serde_json::to_string(&rec).expect("records serialise"));
            out.push('\n');
            n += 1;
        }
    }
    Ok((out, n))
}

/// A hunk's body in the data's form: ` `/`+`/`-` lines (and `\` markers) joined by `\n`.
fn body(h: &Hunk) -> String {
    let mut s = String::new();
    for (i, l) in h.lines.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push(l.kind.sigil());
        s.push_str(&l.text);
        if l.no_newline {
            s.push_str("\n\\ No newline at end of file");
        }
    }
    s
}

/// The files as `git diff` text, which `diff::parse_patch` (and `score --jsonl`) reads back.
fn diff_text(files: &[FileDiff]) -> String {
    let mut s = String::new();
    for f in files.iter().filter(|f| !f.hunks.is_empty()) {
        let name = |p: &Option<String>, prefix: &str| match p {
            Some(p) => quote(&format!("{prefix}{p}")),
            None => "/dev/null".to_string(),
        };
        let shown = f.display_path();
        s.push_str(&format!(
            "diff --git {} {}\n--- {}\n+++ {}\n",
            quote(&format!("a/{}", f.path.old.as_deref().unwrap_or(shown))),
            quote(&format!("b/{shown}")),
            name(&f.path.old, "a/"),
            name(&f.path.new, "b/")
        ));
        for h in &f.hunks {
            s.push_str(&h.header());
            s.push('\n');
            s.push_str(&body(h));
            s.push('\n');
        }
    }
    s
}

/// Git's C-style quoting, for paths with characters a diff header cannot hold plainly.
fn quote(p: &str) -> String {
    if !p.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return p.to_string();
    }
    let mut s = String::from("\"");
    for c in p.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\t' => s.push_str("\\t"),
            '\n' => s.push_str("\\n"),
            c if c.is_control() => {
                let mut b = [0u8; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    s.push_str(&format!("\\{byte:03o}"));
                }
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// `owner/name` from the `origin` remote's URL, else the repository folder's name.
pub fn project_name(repo: &Repository) -> String {
    let from_url = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(str::to_string))
        .and_then(|u| {
            let u = u.trim_end_matches('/').trim_end_matches(".git").to_string();
            let mut parts = u.rsplit(['/', ':']);
            let name = parts.next()?.to_string();
            let owner = parts.next()?.to_string();
            (!name.is_empty() && !owner.is_empty()).then(|| format!("{owner}/{name}"))
        });
    from_url.unwrap_or_else(|| {
        let root = repo.workdir().unwrap_or_else(|| repo.path());
        let root = if root.ends_with(".git") {
            root.parent().unwrap_or(root)
        } else {
            root
        };
        root.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repository".into())
    })
}

/// Opens the repository for mining (a bare one is fine: only history is read).
pub fn open(path: Option<&Path>) -> Result<Repository, GitError> {
    git::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_messages() {
        let p = Patterns::default_patterns();
        assert!(p.is_fix("Fix off-by-one in parser"));
        assert!(p.is_fix("parser: handle empty input\n\nThis fixes a crash on empty files."));
        assert!(!p.is_fix("Add a prefix option"), "prefix is not fix");
        assert!(!p.is_fix("Fix typo in README"));
        assert!(!p.is_fix("Add feature"));
        // What a linter or formatter reported is not a fix of behaviour; a warning a compiler
        // or a sanitizer gives may be, and a style that is code is.
        assert!(!p.is_fix("style: fix rust-analyzer lints in core"));
        assert!(!p.is_fix("style(router): fix import order"));
        assert!(!p.is_fix("Fix 'errcheck' linter warnings (#1739)"));
        assert!(!p.is_fix("fix some clippy lints (#288)"));
        assert!(!p.is_fix("KAFKA-4977: Fix findbugs issues in connect/runtime"));
        assert!(!p.is_fix("Reorder imports, fixing gofmt."));
        assert!(p.is_fix("Fix valgrind warning on aarch64/glibc 2.31"));
        assert!(p.is_fix("fix markdown render style (#943)"));
        assert!(p.is_fix("lib: fix style attribute parsing"));
    }

    #[test]
    fn quoting_round_trips_through_the_patch_reader() {
        let text = format!(
            "diff --git {} {}\n--- {}\n+++ {}\n@@ -1 +1 @@\n-a\n+b\n",
            quote("a/we\"ird\tname.rs"),
            quote("b/we\"ird\tname.rs"),
            quote("a/we\"ird\tname.rs"),
            quote("b/we\"ird\tname.rs")
        );
        let files = crate::diff::parse_patch(&text);
        assert_eq!(files[0].path.new.as_deref(), Some("we\"ird\tname.rs"));
    }
}
