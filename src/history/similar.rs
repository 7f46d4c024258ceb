//! Similar past bugs: a change that adds back a line which a bug fix of this repository took
//! out of the same file ("it adds back `if (n <= len)`, which the bug fix 1a2b3c4 'fix
//! off-by-one' removed from src/buf.c 40 days ago"), and, where the change adds back all
//! the lines that fix replaced, what that fix put in their place, as a suggestion candidate.
//!
//! Why it is a reason (`python3 benches/readded_lines.py`: the nine projects' labelled hunks,
//! fixes strictly before the change, same file, lines of at least [`MIN_CHARS`] characters of
//! code, not imports, that the fix did not put back elsewhere and the file did not hold any
//! more): 256 of 77,709 hunks add back such a line; 57.8% of them were later fixed again
//! against 34.0% of hunks of the same size, and half of those (75 of 148) were fixed by
//! putting back the same replacement (most on ripgrep and curl), which is why the fix's
//! replacement is offered (README).
//!
//! It matches whole lines, whitespace collapsed: nothing fuzzy, so every fact can be checked
//! by reading the fix. Pure: `mine::label` reads the fixes' hunks from git and
//! `commands/history.rs` caches them; the review asks here.

use crate::diff::{Hunk, LineKind, is_cosmetic};
use crate::model::LineEdit;
use crate::reason::{Reason, ReasonKind};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A line shorter than this (whitespace collapsed) says too little to be matched: `return
/// nil;` is re-added everywhere.
pub const MIN_CHARS: usize = 20;
/// A fix hunk that removed more lines than this is a rewrite, not a fix of a few lines: it
/// is not kept.
pub const MAX_REMOVED: usize = 12;
/// A fix's replacement longer than this is not offered as a suggestion.
pub const MAX_REPLACEMENT: usize = 8;

/// The lines one hunk of a bug fix took out of a source file, and what it put in their place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedHunk {
    /// The fix's full id and author date (unix seconds).
    pub fix: String,
    pub date: i64,
    /// The file's path after the fix.
    pub path: String,
    /// The hunk's removed lines, as they were.
    pub removed: Vec<String>,
    /// Those of them a change can be matched on: [`telling`], whitespace collapsed
    /// ([`normal`]), and not put back anywhere in the file by the fix (a moved line was
    /// not what it fixed).
    pub lines: Vec<String>,
    /// Its added lines, when there are at most [`MAX_REPLACEMENT`].
    pub added: Option<Vec<String>>,
}

impl FixedHunk {
    /// The hunk of a fix worth keeping: at most [`MAX_REMOVED`] removed lines, one of them
    /// [`telling`] and not among `put_back` (the [`normal`] lines the fix added anywhere
    /// in the file).
    pub fn of(
        (fix, date): (String, i64),
        path: String,
        removed: Vec<String>,
        added: Vec<String>,
        put_back: &HashSet<String>,
        language: Option<&str>,
    ) -> Option<FixedHunk> {
        if removed.len() > MAX_REMOVED {
            return None;
        }
        let lines: Vec<String> = removed
            .iter()
            .filter(|l| telling(l, language))
            .map(|l| normal(l))
            .filter(|l| !put_back.contains(l))
            .collect();
        if lines.is_empty() {
            return None;
        }
        let added = (added.len() <= MAX_REPLACEMENT).then_some(added);
        Some(FixedHunk {
            fix,
            date,
            path,
            removed,
            lines,
            added,
        })
    }
}

/// A line with its runs of whitespace collapsed to one space and trimmed.
pub fn normal(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a line says enough to be matched: code (not blank, punctuation or a comment) of
/// at least [`MIN_CHARS`] characters, and not an import: a fix drops an import it no longer
/// needs, and a later change that needs it again brings no bug back.
pub fn telling(text: &str, language: Option<&str>) -> bool {
    let t = text.trim_start();
    let import = [
        "import ",
        "from ",
        "#include",
        "use ",
        "package ",
        "using ",
        "extern crate ",
    ]
    .iter()
    .any(|p| t.starts_with(p));
    !import && !is_cosmetic(text, language) && normal(text).chars().count() >= MIN_CHARS
}

/// The fixes' removed lines by file and text, for matching a change's added lines.
pub struct Index<'a> {
    hunks: &'a [FixedHunk],
    by_line: HashMap<(&'a str, String), Vec<usize>>,
}

/// An added line of a hunk that a fix had removed from the same file.
#[derive(Debug, Clone, PartialEq)]
pub struct Readded {
    /// The line, as an index into `Hunk::lines`.
    pub line: usize,
    pub fixed: FixedHunk,
}

impl<'a> Index<'a> {
    pub fn new(hunks: &'a [FixedHunk]) -> Index<'a> {
        let mut by_line: HashMap<(&'a str, String), Vec<usize>> = HashMap::new();
        for (i, h) in hunks.iter().enumerate() {
            for l in &h.lines {
                let at = by_line.entry((h.path.as_str(), l.clone())).or_default();
                if at.last() != Some(&i) {
                    at.push(i);
                }
            }
        }
        Index { hunks, by_line }
    }

    /// The first added line of `hunk` (of the file `path`) that a fix authored before
    /// `before` had removed from that file; the latest such fix when there are several.
    /// Lines of `held` ([`normal`]: the file's old side, which holds what the change moves)
    /// are not matched: the file still had them, so they are not what the fix took out.
    pub fn readded(&self, path: &str, hunk: &Hunk, before: i64, held: &HashSet<String>) -> Option<Readded> {
        let language = crate::diff::language_of(path);
        hunk.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.kind == LineKind::Added && telling(&l.text, language))
            .find_map(|(i, l)| {
                let line = normal(&l.text);
                if held.contains(&line) {
                    return None;
                }
                let fixed = self
                    .by_line
                    .get(&(path, line))?
                    .iter()
                    .map(|&k| &self.hunks[k])
                    .filter(|h| h.date < before)
                    .max_by_key(|h| h.date)?;
                Some(Readded {
                    line: i,
                    fixed: fixed.clone(),
                })
            })
    }
}

/// The reason a re-added line gives: the line, the fix, its subject (from `subjects`, fix
/// id -> subject) and how long ago, with the fix's id as evidence.
pub fn reason(r: &Readded, hunk: &Hunk, subjects: &HashMap<&str, &str>, now: i64) -> Reason {
    let whole = normal(&hunk.lines[r.line].text);
    let line: String = match whole.chars().count() > 80 {
        true => whole.chars().take(79).chain(['…']).collect(),
        false => whole,
    };
    let short: String = r.fixed.fix.chars().take(10).collect();
    let subject = subjects
        .get(r.fixed.fix.as_str())
        .map(|s| format!(" \"{}\"", s.chars().take(80).collect::<String>()))
        .unwrap_or_default();
    let days = (now - r.fixed.date).max(0) / 86_400;
    Reason {
        kind: ReasonKind::History,
        text: format!(
            "it adds back `{line}`, which the bug fix {short}{subject} removed from {} {days} days ago",
            r.fixed.path
        ),
        evidence: vec![r.fixed.fix.clone()],
    }
}

/// What the fix did, as edits of `hunk`: where the hunk adds back every line of the fix's
/// hunk that was not blank (a contiguous run of its added lines, whitespace aside), those
/// lines become the fix's replacement, indented as the hunk indents them. `None` when the
/// hunk adds back only part of them, or the replacement was too long to keep.
pub fn candidate(r: &Readded, hunk: &Hunk) -> Option<Vec<LineEdit>> {
    let replacement = r.fixed.added.as_ref()?;
    let wanted: Vec<String> = r
        .fixed
        .removed
        .iter()
        .map(|l| normal(l))
        .filter(|l| !l.is_empty())
        .collect();
    // The hunk's added lines that are not blank, as (index in the hunk, text).
    let added: Vec<(usize, &str)> = hunk
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == LineKind::Added && !l.text.trim().is_empty())
        .map(|(i, l)| (i, l.text.as_str()))
        .collect();
    let start = (0..added.len().saturating_sub(wanted.len() - 1)).find(|&s| {
        added[s..s + wanted.len()]
            .iter()
            .zip(&wanted)
            .all(|((_, t), w)| normal(t) == *w)
    })?;
    let run = &added[start..start + wanted.len()];
    // A run broken by lines that are not added lines is not the fix's block.
    if run
        .windows(2)
        .any(|w| hunk.lines[w[0].0 + 1..w[1].0].iter().any(|l| l.kind != LineKind::Added))
    {
        return None;
    }
    let indent = |t: &str| t[..t.len() - t.trim_start().len()].to_string();
    let theirs = r
        .fixed
        .removed
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(|l| indent(l))
        .unwrap_or_default();
    let ours = indent(run[0].1);
    let text: Vec<String> = replacement
        .iter()
        .map(|l| match l.strip_prefix(theirs.as_str()) {
            Some(rest) if !l.trim().is_empty() => format!("{ours}{rest}"),
            _ => l.clone(),
        })
        .collect();
    let mut edits = vec![LineEdit {
        line: run[0].0,
        new: (!text.is_empty()).then(|| text.join("\n")),
    }];
    edits.extend(run[1..].iter().map(|&(i, _)| LineEdit { line: i, new: None }));
    Some(edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hunk(body: &str) -> Hunk {
        let new = body.lines().filter(|l| !l.starts_with('-')).count();
        let old = body.lines().filter(|l| !l.starts_with('+')).count();
        Hunk::parse(&format!("@@ -10,{old} +10,{new} @@"), body).unwrap()
    }

    fn fixed(date: i64, path: &str, removed: &[&str], added: &[&str]) -> FixedHunk {
        FixedHunk::of(
            (format!("{date:040}"), date),
            path.into(),
            removed.iter().map(|s| s.to_string()).collect(),
            added.iter().map(|s| s.to_string()).collect(),
            &HashSet::new(),
            crate::diff::language_of(path),
        )
        .expect("a telling fix hunk")
    }

    #[test]
    fn a_line_a_fix_removed_from_the_same_file_before_the_change_is_found() {
        let fixes = vec![
            fixed(
                100,
                "src/buf.c",
                &["    if (n <= buffer_len) {"],
                &["    if (n < len) {"],
            ),
            fixed(
                300,
                "src/buf.c",
                &["    if (n <= buffer_len) {"],
                &["    if (n + 1 < len) {"],
            ),
            fixed(100, "src/other.c", &["    total = compute(a, b);"], &[]),
        ];
        let index = Index::new(&fixes);
        let h = hunk(" int f(int n) {\n+\tif (n  <=  buffer_len) {\n+\t\treturn 1;\n }\n");
        let none = HashSet::new();
        let r = index.readded("src/buf.c", &h, 500, &none).expect("re-added");
        assert_eq!((r.line, r.fixed.date), (1, 300), "the latest fix before the change");
        assert_eq!(index.readded("src/buf.c", &h, 200, &none).unwrap().fixed.date, 100);
        assert!(
            index.readded("src/buf.c", &h, 100, &none).is_none(),
            "a fix from after the change is not evidence"
        );
        assert!(
            index.readded("src/other.c", &h, 500, &none).is_none(),
            "another file's fix"
        );
        let held = HashSet::from(["if (n <= buffer_len) {".to_string()]);
        assert!(
            index.readded("src/buf.c", &h, 500, &held).is_none(),
            "the file still held the line"
        );
        let subjects = HashMap::from([(fixes[1].fix.as_str(), "fix the bound")]);
        let reason = reason(&r, &h, &subjects, 300 + 40 * 86_400);
        assert_eq!(reason.kind, ReasonKind::History);
        assert_eq!(reason.evidence, vec![fixes[1].fix.clone()]);
        assert!(
            reason.text.contains("`if (n <= buffer_len) {`")
                && reason.text.contains("\"fix the bound\"")
                && reason.text.contains("40 days ago"),
            "{}",
            reason.text
        );
    }

    #[test]
    fn short_lines_comments_and_large_rewrites_are_not_matched() {
        assert!(!telling("return nil;", Some("go")));
        assert!(!telling("// this comment is long enough to match", Some("go")));
        assert!(telling("if err := w.Flush(); err != nil {", Some("go")));
        assert!(!telling(
            "import org.apache.kafka.common.errors.ProducerFencedException;",
            Some("java")
        ));
        assert!(!telling("#include <curl/curl_version_info.h>", Some("c")));
        let many: Vec<String> = (0..MAX_REMOVED + 1)
            .map(|i| format!("let value_{i} = compute({i});"))
            .collect();
        let none = HashSet::new();
        let of = |removed: Vec<String>, added: Vec<String>, put_back: &HashSet<String>| {
            FixedHunk::of(("f".into(), 1), "a.rs".into(), removed, added, put_back, Some("rust"))
        };
        assert!(of(many, vec![], &none).is_none());
        let long: Vec<String> = (0..MAX_REPLACEMENT + 1).map(|i| format!("x{i}();")).collect();
        let line = "    let total = compute(a, b);".to_string();
        let kept = of(vec![line.clone()], long, &none).unwrap();
        assert_eq!(kept.added, None, "kept as evidence, not as a suggestion");
        let moved = HashSet::from([normal(&line)]);
        assert!(
            of(vec![line], vec![], &moved).is_none(),
            "a line the fix put back elsewhere was moved, not fixed"
        );
    }

    #[test]
    fn the_fix_replacement_becomes_edits_of_the_re_added_block() {
        let fixes = vec![fixed(
            1,
            "a.py",
            &["        if count >= count_limit:", "            raise TooMany(count)"],
            &[
                "        if count > count_limit:",
                "            raise TooMany(count)",
                "        log(count)",
            ],
        )];
        let index = Index::new(&fixes);
        let h = hunk(
            " def f(count, count_limit):\n+    if count >= count_limit:\n+\n+        raise TooMany(count)\n+    return count\n",
        );
        let r = index.readded("a.py", &h, 2, &HashSet::new()).unwrap();
        let edits = candidate(&r, &h).expect("the whole block is back");
        assert_eq!(
            edits,
            vec![
                LineEdit {
                    line: 1,
                    new: Some("    if count > count_limit:\n        raise TooMany(count)\n    log(count)".into())
                },
                LineEdit { line: 3, new: None },
            ],
            "re-indented from the fix's 8 spaces to the hunk's 4"
        );
        // Only part of the block back: a fact, but no suggestion.
        let part = hunk(" def f(count, count_limit):\n+    if count >= count_limit:\n+        return None\n");
        let r = index.readded("a.py", &part, 2, &HashSet::new()).unwrap();
        assert_eq!(candidate(&r, &part), None);
        // The block split by a context line is not the fix's block.
        let split = hunk("+    if count >= count_limit:\n     pass\n+        raise TooMany(count)\n");
        let r = index.readded("a.py", &split, 2, &HashSet::new()).unwrap();
        assert_eq!(candidate(&r, &split), None);
    }

    #[test]
    fn a_fix_that_only_deleted_suggests_deleting() {
        let fixes = vec![fixed(1, "m.go", &["\tdefer conn.Close() // closes twice"], &[])];
        let index = Index::new(&fixes);
        let h = hunk("+\tdefer conn.Close() // closes twice\n \treturn nil\n");
        let r = index.readded("m.go", &h, 5, &HashSet::new()).unwrap();
        assert_eq!(candidate(&r, &h), Some(vec![LineEdit { line: 0, new: None }]));
    }
}
