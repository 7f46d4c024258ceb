//! Facts about the code a change touches, from the bug fixes of the repository's history:
//! "3 bug fixes changed this file in the last year (latest 1a2b3c4 'fix …')", and "2 of them
//! changed the function `parse`" where the grammars read which functions each fix changed
//! (`commands/history.rs` reads them from the fixes' own diffs). Only what was mined, with
//! the fixes' full ids as evidence. Pure.

use crate::reason::{Reason, ReasonKind};
use serde::{Deserialize, Serialize};

/// A year, in seconds.
pub const YEAR: i64 = 365 * 24 * 3600;
/// How many fixes a reason names.
const NAMED: usize = 3;

/// A bug fix of the history, as `mine::label` found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    pub id: String,
    /// Author date, unix seconds.
    pub date: i64,
    pub subject: String,
    /// The source files (paths before the fix) whose code lines it changed.
    pub paths: Vec<String>,
}

/// The fixes that changed `path`, newest first, and how many of them fall in the year
/// before `now`.
pub fn fixes_of<'a>(fixes: &'a [Fix], path: &str, now: i64) -> (Vec<&'a Fix>, usize) {
    let mut of: Vec<&Fix> = fixes
        .iter()
        .filter(|f| f.date <= now && f.paths.iter().any(|p| p == path))
        .collect();
    of.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.id.cmp(&b.id)));
    let recent = of.iter().filter(|f| f.date > now - YEAR).count();
    (of, recent)
}

/// The functions each fix changed in one file: (fix id, path before the fix) -> names.
pub type FunctionsFixed = std::collections::HashMap<(String, String), Vec<String>>;

/// How many of a file's fixes of the year are read for the functions they changed.
pub const FUNCTION_FIXES_READ: usize = 20;

/// The history reason for a function or class `name` of `path`, when fixes of the year
/// before `now` changed it (as `changed` says; a fix it does not list was not read).
pub fn function_reason(
    fixes: &[Fix],
    changed: &FunctionsFixed,
    path: &str,
    kind: &str,
    name: &str,
    now: i64,
) -> Option<Reason> {
    let (of, _) = fixes_of(fixes, path, now);
    let hit: Vec<&Fix> = of
        .into_iter()
        .filter(|f| f.date > now - YEAR)
        .take(FUNCTION_FIXES_READ)
        .filter(|f| {
            changed
                .get(&(f.id.clone(), path.to_string()))
                .is_some_and(|names| names.iter().any(|n| n == name))
        })
        .collect();
    let latest = hit.first()?;
    let short: String = latest.id.chars().take(10).collect();
    let subject: String = latest.subject.chars().take(80).collect();
    let days = ((now - latest.date).max(0) / 86_400) as u64;
    let n = hit.len();
    Some(Reason {
        kind: ReasonKind::History,
        text: format!(
            "{} changed the {kind} `{name}` in {path} in the last year; the latest, {days} days ago: {short} \"{subject}\"",
            if n == 1 {
                "1 bug fix".to_string()
            } else {
                format!("{n} bug fixes")
            }
        ),
        evidence: hit.iter().take(NAMED).map(|f| f.id.clone()).collect(),
    })
}

/// Who wrote the lines a hunk modifies or deletes, as blame at the change's old side says:
/// each line's commit and that commit's date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    pub origins: Vec<(String, i64)>,
}

/// Lines written this recently are "fresh": a change that rewrites them is churn.
pub const FRESH: i64 = 30 * 24 * 3600;

/// The history reason for the lines a hunk changes: written by a bug fix (which, when:
/// one of the year before `now`, or an older one that wrote at least half of them), or else
/// all written in the last 30 days before `now`.
pub fn written_reason(w: &Written, fixes: &[Fix], now: i64) -> Option<Reason> {
    let n = w.origins.len();
    if n == 0 {
        return None;
    }
    let by_id: std::collections::HashMap<&str, &Fix> = fixes.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut by_fix: Vec<(&Fix, usize)> = Vec::new();
    for (id, _) in &w.origins {
        if let Some(f) = by_id.get(id.as_str()).filter(|f| f.date <= now) {
            match by_fix.iter_mut().find(|(g, _)| g.id == f.id) {
                Some((_, k)) => *k += 1,
                None => by_fix.push((f, 1)),
            }
        }
    }
    let lines = |k: usize| {
        if k == 1 {
            "1 line".to_string()
        } else {
            format!("{k} lines")
        }
    };
    let days = |t: i64| ((now - t).max(0) / 86_400) as u64;
    // A fix of long ago that wrote one line of many says little: keep the year's fixes,
    // and older ones that wrote at least half the lines.
    by_fix.retain(|(f, k)| f.date > now - YEAR || 2 * k >= n);
    if !by_fix.is_empty() {
        by_fix.sort_by(|a, b| b.0.date.cmp(&a.0.date).then_with(|| a.0.id.cmp(&b.0.id)));
        let written: usize = by_fix.iter().map(|(_, k)| k).sum();
        let (latest, _) = by_fix[0];
        let short: String = latest.id.chars().take(10).collect();
        let subject: String = latest.subject.chars().take(80).collect();
        let fixes_text = if by_fix.len() == 1 {
            "the bug fix".to_string()
        } else {
            format!("{} bug fixes, the latest", by_fix.len())
        };
        return Some(Reason {
            kind: ReasonKind::History,
            text: format!(
                "{} of the {} it changes {} written by {fixes_text} {short} \"{subject}\" ({} days ago)",
                lines(written),
                lines(n),
                if written == 1 { "was" } else { "were" },
                days(latest.date)
            ),
            evidence: by_fix.iter().take(NAMED).map(|(f, _)| f.id.clone()).collect(),
        });
    }
    let newest = w.origins.iter().map(|(_, t)| *t).max()?;
    let oldest = w.origins.iter().map(|(_, t)| *t).min()?;
    if now - oldest > FRESH || oldest > now {
        return None;
    }
    let mut ids: Vec<&str> = w.origins.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    Some(Reason {
        kind: ReasonKind::History,
        text: format!(
            "the {} it changes {} written in the last 30 days ({} commit{}, the latest {} days ago)",
            lines(n),
            if n == 1 { "was" } else { "were" },
            ids.len(),
            if ids.len() == 1 { "" } else { "s" },
            days(newest)
        ),
        evidence: ids.iter().take(NAMED).map(|s| s.to_string()).collect(),
    })
}

/// The history reason for a file, when a fix changed it in the year before `now`.
pub fn file_reason(fixes: &[Fix], path: &str, now: i64) -> Option<Reason> {
    let (of, recent) = fixes_of(fixes, path, now);
    if recent == 0 {
        return None;
    }
    let latest = of[0];
    let short: String = latest.id.chars().take(10).collect();
    let subject: String = latest.subject.chars().take(80).collect();
    let days = ((now - latest.date).max(0) / 86_400) as u64;
    let times = |n: usize| {
        if n == 1 {
            "1 bug fix".to_string()
        } else {
            format!("{n} bug fixes")
        }
    };
    Some(Reason {
        kind: ReasonKind::History,
        text: format!(
            "{} changed {path} in the last year ({} in the history read); the latest, {days} days ago: {short} \"{subject}\"",
            times(recent),
            of.len()
        ),
        evidence: of.iter().take(NAMED).map(|f| f.id.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(id: char, days_ago: i64, path: &str) -> Fix {
        Fix {
            id: id.to_string().repeat(40),
            date: 1_000 * 86_400 - days_ago * 86_400,
            subject: format!("fix {id}"),
            paths: vec![path.to_string()],
        }
    }

    #[test]
    fn a_file_fixed_three_times_names_those_fixes() {
        let now = 1_000 * 86_400;
        let fixes = vec![
            fix('a', 10, "src/x.c"),
            fix('b', 100, "src/x.c"),
            fix('c', 300, "src/x.c"),
            fix('d', 500, "src/x.c"),
            fix('e', 5, "src/y.c"),
        ];
        let r = file_reason(&fixes, "src/x.c", now).unwrap();
        assert_eq!(r.kind, ReasonKind::History);
        assert!(
            r.text
                .starts_with("3 bug fixes changed src/x.c in the last year (4 in the history read)"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("10 days ago") && r.text.contains("\"fix a\""),
            "{}",
            r.text
        );
        assert_eq!(r.evidence, vec!["a".repeat(40), "b".repeat(40), "c".repeat(40)]);
        assert!(file_reason(&fixes, "src/z.c", now).is_none());
        // Nothing after `now` is used: as of 20 days ago, fix a had not happened.
        let r = file_reason(&fixes, "src/x.c", now - 20 * 86_400).unwrap();
        assert!(
            r.text.starts_with("2 bug fixes") && !r.evidence.contains(&"a".repeat(40)),
            "{}",
            r.text
        );
    }

    #[test]
    fn lines_a_fix_wrote_are_named_and_fresh_lines_are_churn() {
        let now = 1_000 * 86_400;
        let fixes = vec![fix('a', 40, "src/x.c"), fix('b', 5, "src/x.c")];
        let day = |d: i64| now - d * 86_400;
        let w = Written {
            origins: vec![
                ("a".repeat(40), day(40)),
                ("a".repeat(40), day(40)),
                ("c".repeat(40), day(400)),
            ],
        };
        let r = written_reason(&w, &fixes, now).unwrap();
        assert_eq!(
            r.text,
            format!(
                "2 lines of the 3 lines it changes were written by the bug fix {} \"fix a\" (40 days ago)",
                "a".repeat(10)
            )
        );
        assert_eq!(r.evidence, vec!["a".repeat(40)]);
        // As of 50 days ago fix a did not exist yet; the old line keeps it from being churn.
        assert!(written_reason(&w, &fixes, now - 50 * 86_400).is_none());
        // Fresh lines by ordinary commits: churn.
        let w = Written {
            origins: vec![("d".repeat(40), day(3)), ("e".repeat(40), day(12))],
        };
        let r = written_reason(&w, &fixes, now).unwrap();
        assert!(
            r.text.starts_with(
                "the 2 lines it changes were written in the last 30 days (2 commits, the latest 3 days ago)"
            ),
            "{}",
            r.text
        );
        assert!(written_reason(&Written::default(), &fixes, now).is_none());
        // A fix of two years ago that wrote 1 line of 4: not a fact worth a reason; of 2, it is.
        let old_fix = vec![fix('f', 730, "src/x.c")];
        let w = |n: usize| Written {
            origins: std::iter::once(("f".repeat(40), day(730)))
                .chain((1..n).map(|_| ("g".repeat(40), day(900))))
                .collect(),
        };
        assert!(written_reason(&w(4), &old_fix, now).is_none());
        assert!(
            written_reason(&w(2), &old_fix, now)
                .unwrap()
                .text
                .starts_with("1 line of the 2 lines")
        );
    }

    #[test]
    fn a_function_fixed_twice_names_those_fixes_and_no_other() {
        let now = 1_000 * 86_400;
        let fixes = vec![
            fix('a', 10, "src/x.c"),
            fix('b', 100, "src/x.c"),
            fix('c', 200, "src/x.c"),
            fix('d', 500, "src/x.c"),
        ];
        let key = |c: char| (c.to_string().repeat(40), "src/x.c".to_string());
        let changed: FunctionsFixed = [
            (key('a'), vec!["parse".to_string()]),
            (key('b'), vec!["emit".to_string(), "parse".to_string()]),
            (key('c'), vec!["emit".to_string()]),
            (key('d'), vec!["parse".to_string()]),
        ]
        .into_iter()
        .collect();
        let r = function_reason(&fixes, &changed, "src/x.c", "function", "parse", now).unwrap();
        assert!(
            r.text.starts_with(
                "2 bug fixes changed the function `parse` in src/x.c in the last year; the latest, 10 days ago"
            ),
            "{}",
            r.text
        );
        assert_eq!(
            r.evidence,
            vec!["a".repeat(40), "b".repeat(40)],
            "d is older than a year"
        );
        assert!(function_reason(&fixes, &changed, "src/x.c", "function", "other", now).is_none());
        // As of 50 days ago only b had happened.
        let r = function_reason(&fixes, &changed, "src/x.c", "function", "parse", now - 50 * 86_400).unwrap();
        assert!(r.text.starts_with("1 bug fix changed"), "{}", r.text);
        assert_eq!(r.evidence, vec!["b".repeat(40)]);
    }
}
