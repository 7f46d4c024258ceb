//! The change as deepspark sees it: files, hunks and lines, with old/new pairs.
//!
//! This module only holds data and parses the textual hunk format (`@@ -a,b +c,d @@`
//! plus ` `/`+`/`-`/`\` lines) used by the training data. It does not read git (see
//! `git.rs`), decide what to skip (see `skip.rs`) or score anything.

use serde::Serialize;

/// One value for each side of a change. Used everywhere instead of ad-hoc tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct OldNew<T> {
    pub old: T,
    pub new: T,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    Context,
    Added,
    Removed,
}

impl LineKind {
    pub fn sigil(self) -> char {
        match self {
            LineKind::Context => ' ',
            LineKind::Added => '+',
            LineKind::Removed => '-',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub kind: LineKind,
    /// The line's text without its line terminator (a trailing `\r` is kept: CRLF files stay visible).
    pub text: String,
    /// Line number on each side (1-based), absent on the side the line does not exist on.
    pub lineno: OldNew<Option<u32>>,
    /// The line has no newline at the end of its file (git's `\ No newline at end of file`).
    pub no_newline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hunk {
    /// First line and line count on each side, as in `@@ -old.start,old.count +new.start,new.count @@`.
    pub start: OldNew<u32>,
    pub count: OldNew<u32>,
    pub lines: Vec<Line>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("malformed hunk header {0:?}")]
    Header(String),
    #[error("line {0} of the hunk starts with {1:?}, expected ' ', '+', '-' or '\\'")]
    Line(usize, char),
}

impl Hunk {
    pub fn added(&self) -> usize {
        self.lines.iter().filter(|l| l.kind == LineKind::Added).count()
    }

    pub fn removed(&self) -> usize {
        self.lines.iter().filter(|l| l.kind == LineKind::Removed).count()
    }

    pub fn header(&self) -> String {
        format!(
            "@@ -{},{} +{},{} @@",
            self.start.old, self.count.old, self.start.new, self.count.new
        )
    }

    /// Parses a hunk in unified-diff text form: the `@@` header and the body lines.
    /// Never panics on any input (property-tested).
    pub fn parse(header: &str, body: &str) -> Result<Hunk, ParseError> {
        let (start, count) = parse_header(header).ok_or_else(|| ParseError::Header(header.to_string()))?;
        let overflow = || ParseError::Header(header.to_string());
        let mut lines: Vec<Line> = Vec::new();
        let mut next = start;
        for (i, raw) in body.split('\n').enumerate() {
            if raw.is_empty() {
                // An empty trailing piece after the last '\n'; an empty context line would be " ".
                continue;
            }
            let mut chars = raw.chars();
            let sigil = chars.next().unwrap_or(' ');
            let text = chars.as_str().to_string();
            let (kind, lineno) = match sigil {
                ' ' => {
                    let n = OldNew {
                        old: Some(next.old),
                        new: Some(next.new),
                    };
                    next.old = next.old.checked_add(1).ok_or_else(overflow)?;
                    next.new = next.new.checked_add(1).ok_or_else(overflow)?;
                    (LineKind::Context, n)
                }
                '+' => {
                    let n = OldNew {
                        old: None,
                        new: Some(next.new),
                    };
                    next.new = next.new.checked_add(1).ok_or_else(overflow)?;
                    (LineKind::Added, n)
                }
                '-' => {
                    let n = OldNew {
                        old: Some(next.old),
                        new: None,
                    };
                    next.old = next.old.checked_add(1).ok_or_else(overflow)?;
                    (LineKind::Removed, n)
                }
                '\\' => {
                    if let Some(last) = lines.last_mut() {
                        last.no_newline = true;
                    }
                    continue;
                }
                other => return Err(ParseError::Line(i + 1, other)),
            };
            lines.push(Line {
                kind,
                text,
                lineno,
                no_newline: false,
            });
        }
        Ok(Hunk { start, count, lines })
    }
}

/// `@@ -a[,b] +c[,d] @@ ...` -> (start, count). A missing count means 1, as in git.
fn parse_header(header: &str) -> Option<(OldNew<u32>, OldNew<u32>)> {
    let rest = header.strip_prefix("@@ -")?;
    let (ranges, _) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let range = |s: &str| -> Option<(u32, u32)> {
        match s.split_once(',') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => Some((s.parse().ok()?, 1)),
        }
    };
    let (os, oc) = range(old)?;
    let (ns, nc) = range(new)?;
    // git writes start 0 for an empty side; line numbers of a non-empty side start at 1.
    let fix = |s: u32, c: u32| if c == 0 { s.checked_add(1) } else { Some(s.max(1)) };
    Some((
        OldNew {
            old: fix(os, oc)?,
            new: fix(ns, nc)?,
        },
        OldNew { old: oc, new: nc },
    ))
}

/// One file of a patch in `git diff` text form: its paths (`None` for `/dev/null`) and hunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchFile {
    pub path: OldNew<Option<String>>,
    pub hunks: Vec<Hunk>,
}

/// Parses `git diff` / `git show` text into files and hunks. Text outside file sections
/// (a commit header, a message) is ignored; each hunk body is read by the line counts of
/// its header, so message lines that look like context are never taken for hunk lines.
/// Malformed hunks end their file section. Never panics on any input (fuzzed).
pub fn parse_patch(text: &str) -> Vec<PatchFile> {
    let mut files: Vec<PatchFile> = Vec::new();
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("diff --git ") {
            files.push(PatchFile {
                path: OldNew { old: None, new: None },
                hunks: Vec::new(),
            });
        } else if let (Some(f), Some(p)) = (files.last_mut(), line.strip_prefix("--- ")) {
            f.path.old = patch_path(p, "a/");
        } else if let (Some(f), Some(p)) = (files.last_mut(), line.strip_prefix("+++ ")) {
            f.path.new = patch_path(p, "b/");
        } else if let (Some(f), true) = (files.last_mut(), line.starts_with("@@ -")) {
            let Some((_, count)) = parse_header(line) else {
                continue;
            };
            let mut body = String::new();
            let (mut old, mut new) = (count.old, count.new);
            while old > 0 || new > 0 || lines.peek().is_some_and(|l| l.starts_with('\\')) {
                let Some(l) = lines.next() else { break };
                match l.as_bytes().first() {
                    Some(b' ') => {
                        old = old.saturating_sub(1);
                        new = new.saturating_sub(1);
                    }
                    Some(b'-') => old = old.saturating_sub(1),
                    Some(b'+') => new = new.saturating_sub(1),
                    Some(b'\\') => {}
                    // git writes an empty context line as " ", but some tools strip it.
                    None => {
                        old = old.saturating_sub(1);
                        new = new.saturating_sub(1);
                        body.push_str(" \n");
                        continue;
                    }
                    _ => break,
                }
                body.push_str(l);
                body.push('\n');
            }
            if let Ok(h) = Hunk::parse(line, &body) {
                f.hunks.push(h);
            }
        }
    }
    files
}

/// `a/path`, `"a/quoted\\tpath"` or `/dev/null` (-> None), with any trailing tab-separated timestamp dropped.
fn patch_path(raw: &str, prefix: &str) -> Option<String> {
    let raw = raw.split('\t').next().unwrap_or(raw);
    if raw == "/dev/null" {
        return None;
    }
    let unquoted = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(q) => unquote_c(q),
        None => raw.to_string(),
    };
    Some(unquoted.strip_prefix(prefix).map(str::to_string).unwrap_or(unquoted))
}

/// Git's C-style path quoting undone: `\\t`, `\\n`, `\\"`, `\\\\` and octal bytes (`\\303\\251`).
fn unquote_c(q: &str) -> String {
    let b = q.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let c = b[i + 1];
            let oct = |k: usize| b.get(k).filter(|d| (b'0'..=b'7').contains(d)).map(|d| d - b'0');
            if let (Some(x), Some(y), Some(z)) = (oct(i + 1), oct(i + 2), oct(i + 3)) {
                out.push(x.wrapping_mul(64).wrapping_add(y * 8 + z));
                i += 4;
                continue;
            }
            out.push(match c {
                b't' => b'\t',
                b'n' => b'\n',
                b'r' => b'\r',
                b'a' => 7,
                b'b' => 8,
                b'f' => 12,
                b'v' => 11,
                other => other,
            });
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileStatus {
    Added,
    Deleted,
    Modified,
    Renamed,
    Copied,
    ModeOnly,
    TypeChanged,
}

/// Why a file was not sent to the model. Skipped files are always listed in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Skip {
    Binary,
    Submodule,
    /// `.gitattributes` marks it `-diff` or `binary`.
    Attributes,
    /// Matched a generated/vendored/lock-file pattern (the pattern is named).
    Generated {
        pattern: String,
    },
    /// A symlink: its target is text, not code.
    Symlink,
    /// Its diff exceeds `--max-file-lines`: not reviewed, and the change cannot be LGTM.
    FileTooLarge {
        lines: usize,
        limit: usize,
    },
    /// The change as a whole exceeded `--max-change-lines` before this file: not reviewed.
    ChangeTooLarge {
        limit: usize,
    },
    /// The time budget (pre-push hook) ran out before this file was scored: not reviewed.
    TimeBudget {
        seconds: u64,
    },
}

impl Skip {
    /// Whether skipping this file means part of the change went unreviewed (so no LGTM).
    pub fn is_unreviewed(&self) -> bool {
        matches!(
            self,
            Skip::FileTooLarge { .. } | Skip::ChangeTooLarge { .. } | Skip::TimeBudget { .. }
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Skip::Binary => "binary file".into(),
            Skip::Submodule => "submodule pointer change".into(),
            Skip::Attributes => "marked binary or -diff in .gitattributes".into(),
            Skip::Generated { pattern } => format!("generated, vendored or lock file ({pattern})"),
            Skip::Symlink => "symbolic link".into(),
            Skip::FileTooLarge { lines, limit } => {
                format!("NOT REVIEWED: {lines} changed lines exceed the per-file limit of {limit}")
            }
            Skip::ChangeTooLarge { limit } => {
                format!("NOT REVIEWED: the change exceeds the limit of {limit} changed lines")
            }
            Skip::TimeBudget { seconds } => format!("NOT REVIEWED: the time budget of {seconds}s ran out"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    /// Repository-relative paths with `/` separators; `None` on the side where the file does not exist.
    pub path: OldNew<Option<String>>,
    pub status: FileStatus,
    pub mode: OldNew<Option<u32>>,
    pub language: Option<&'static str>,
    pub hunks: Vec<Hunk>,
    pub skip: Option<Skip>,
}

impl FileDiff {
    /// The path that names this file in reports: the new path, or the old one for deletions.
    pub fn display_path(&self) -> &str {
        self.path.new.as_deref().or(self.path.old.as_deref()).unwrap_or("")
    }

    pub fn changed_lines(&self) -> usize {
        self.hunks.iter().map(|h| h.added() + h.removed()).sum()
    }
}

/// The programming language of a path, from its extension (or well-known file name).
pub fn language_of(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name {
        "Makefile" | "GNUmakefile" => return Some("make"),
        "Dockerfile" => return Some("docker"),
        "CMakeLists.txt" => return Some("cmake"),
        _ => {}
    }
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "rs" => "rust",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => "cpp",
        "java" => "java",
        "scala" => "scala",
        "kt" | "kts" => "kotlin",
        "go" => "go",
        "py" | "pyi" => "python",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "tsx" | "mts" | "cts" => "typescript",
        "rb" => "ruby",
        "php" => "php",
        "cs" => "csharp",
        "swift" => "swift",
        "m" | "mm" => "objc",
        "sh" | "bash" | "zsh" => "shell",
        "pl" | "pm" => "perl",
        "lua" => "lua",
        "hs" => "haskell",
        "ml" | "mli" => "ocaml",
        "ex" | "exs" => "elixir",
        "erl" => "erlang",
        "clj" => "clojure",
        "sql" => "sql",
        "html" | "htm" => "html",
        "css" | "scss" | "less" => "css",
        "json" => "json",
        "yml" | "yaml" => "yaml",
        "toml" => "toml",
        "xml" => "xml",
        "md" | "markdown" => "markdown",
        "proto" => "protobuf",
        "gradle" => "gradle",
        _ => return None,
    })
}

/// A test file by common conventions (directory or name), for the model's features.
pub fn is_test_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower
        .split('/')
        .any(|seg| matches!(seg, "test" | "tests" | "testing" | "__tests__" | "spec" | "testdata"))
        || {
            let name = lower.rsplit('/').next().unwrap_or(&lower);
            name.starts_with("test_")
                || name.contains("_test.")
                || name.contains(".test.")
                || name.contains(".spec.")
                || (name.contains("test") && (name.ends_with(".java") || name.ends_with(".scala")))
        }
}

/// A programming language, as opposed to documentation or data (markdown, JSON, YAML, ...).
pub fn is_code_language(language: &str) -> bool {
    !matches!(language, "markdown" | "json" | "yaml" | "toml" | "xml" | "html" | "css")
}

/// A line whose change cannot be a bug: blank, only braces and punctuation, or a comment.
/// Shared by `mine` (which removed lines to blame) and the fix pairs of `train::pairs`.
pub fn is_cosmetic(text: &str, language: Option<&str>) -> bool {
    let t = text.trim();
    if t.is_empty() || t.chars().all(|c| "{}()[];,".contains(c)) {
        return true;
    }
    let hash_comments = matches!(
        language,
        Some("python" | "shell" | "ruby" | "perl" | "yaml" | "toml" | "r" | "make" | "cmake" | "elixir")
    );
    let dash_comments = matches!(language, Some("sql" | "lua" | "haskell"));
    t.starts_with("//")
        || t.starts_with("/*")
        || t == "*"
        || t.starts_with("* ")
        || t.starts_with("*/")
        || (hash_comments && t.starts_with('#'))
        || (dash_comments && t.starts_with("--"))
        || (language == Some("python") && (t.starts_with("\"\"\"") || t.starts_with("'''")))
}

/// A line of a licence or copyright header, whatever comment syntax wraps it: fix commits
/// often bump the year in these, which would teach "the newer year is the fix".
pub fn is_licence(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "copyright",
        "spdx-license-identifier",
        "all rights reserved",
        "licensed under",
    ]
    .iter()
    .any(|w| t.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosmetic_lines() {
        assert!(is_cosmetic("   ", Some("rust")));
        assert!(is_cosmetic("    });", Some("rust")));
        assert!(is_cosmetic("  // note", Some("rust")));
        assert!(is_cosmetic("# note", Some("python")));
        assert!(!is_cosmetic("#include <x.h>", Some("c")), "a preprocessor line is code");
        assert!(!is_cosmetic("x = a[i - 1];", Some("c")));
        assert!(!is_cosmetic("*p = NULL;", Some("c")), "a dereference is code");
        assert!(is_cosmetic(" * a doc comment line", Some("c")));
    }

    #[test]
    fn licence_lines() {
        assert!(is_licence(" * Copyright (c) 2019-2024 The Authors"));
        assert!(is_licence("# SPDX-License-Identifier: MIT"));
        assert!(!is_licence("let right = copy(left);"));
    }

    #[test]
    fn line_numbers_that_would_overflow_are_an_error() {
        assert!(Hunk::parse("@@ -4294967295,0 +1 @@", "+a").is_err());
        assert!(Hunk::parse("@@ -4294967295 +1 @@", " a\n b").is_err());
        assert!(Hunk::parse("@@ -1 +4294967295 @@", "+a\n+b").is_err());
    }

    #[test]
    fn parses_a_patch_by_hunk_counts() {
        let text = "commit 1\n\n    message\n\ndiff --git a/x.c b/x.c\nindex 1..2 100644\n--- a/x.c\n+++ b/x.c\n\
@@ -1,2 +1,2 @@ f\n a\n-b\n+c\n\\ No newline at end of file\n    not a hunk line\n\
diff --git \"a/\\303\\251 t\" \"b/\\303\\251 t\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/\\303\\251 t\"\n@@ -0,0 +1 @@\n+z\n";
        let files = parse_patch(text);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path.new.as_deref(), Some("x.c"));
        let h = &files[0].hunks[0];
        assert_eq!((h.added(), h.removed(), h.lines.len()), (1, 1, 3));
        assert!(h.lines[2].no_newline);
        assert_eq!(files[1].path.old, None);
        assert_eq!(files[1].path.new.as_deref(), Some("\u{e9} t"));
        assert_eq!(files[1].hunks[0].lines[0].text, "z");
    }

    #[test]
    fn parses_a_hunk_with_line_numbers() {
        let h = Hunk::parse(
            "@@ -10,3 +10,4 @@ fn x()",
            " a\n-b\n+c\n+d\n e\n\\ No newline at end of file",
        )
        .unwrap();
        assert_eq!(h.added(), 2);
        assert_eq!(h.removed(), 1);
        assert_eq!(
            h.lines[1].lineno,
            OldNew {
                old: Some(11),
                new: None
            }
        );
        assert_eq!(
            h.lines[3].lineno,
            OldNew {
                old: None,
                new: Some(12)
            }
        );
        assert_eq!(
            h.lines[4].lineno,
            OldNew {
                old: Some(12),
                new: Some(13)
            }
        );
        assert!(h.lines[4].no_newline);
    }

    #[test]
    fn new_file_header_starts_at_line_one() {
        let h = Hunk::parse("@@ -0,0 +1,2 @@", "+a\n+b").unwrap();
        assert_eq!(h.lines[0].lineno.new, Some(1));
        assert_eq!(h.start.old, 1);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Hunk::parse("@@ nope", "+a").is_err());
        assert!(Hunk::parse("@@ -1 +1 @@", "xa").is_err());
    }

    #[test]
    fn languages_and_tests() {
        assert_eq!(language_of("src/a.rs"), Some("rust"));
        assert_eq!(language_of("x/Makefile"), Some("make"));
        assert_eq!(language_of("README"), None);
        assert!(is_test_path("src/test/java/FooTest.java"));
        assert!(is_test_path("pkg/foo_test.go"));
        assert!(!is_test_path("src/main.rs"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Untrusted diff text: parsing never panics, and what parses is consistent.
        #[test]
        fn hunk_parser_never_panics(header in "\\PC{0,40}", body in "\\PC{0,200}") {
            let _ = Hunk::parse(&header, &body);
        }

        #[test]
        fn patch_parser_never_panics(text in "(diff --git a/x b/x\n|--- a/x\n|\\+\\+\\+ \"b/\\\\30\"\n|@@ -1,2 \\+1 @@\n|[ +\\-\\\\]\\PC{0,8}\n){0,30}") {
            let _ = parse_patch(&text);
        }

        #[test]
        fn parsed_line_numbers_follow_the_header(start in 1u32..10_000, lines in proptest::collection::vec((0u8..3, "[a-z ]{0,12}"), 0..40)) {
            let body: String = lines.iter().map(|(k, t)| format!("{}{t}\n", [' ', '+', '-'][*k as usize])).collect();
            let old = lines.iter().filter(|(k, _)| *k != 1).count() as u32;
            let new = lines.iter().filter(|(k, _)| *k != 2).count() as u32;
            let h = Hunk::parse(&format!("@@ -{start},{old} +{start},{new} @@"), &body).unwrap();
            prop_assert_eq!(h.lines.len(), lines.len());
            prop_assert_eq!(h.added() as u32 + (old - h.removed() as u32), new);
            let last_new = h.lines.iter().filter_map(|l| l.lineno.new).max();
            if new > 0 { prop_assert_eq!(last_new, Some(h.start.new + new - 1)); }
        }
    }
}
