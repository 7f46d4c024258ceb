//! What kind of code a change touches, read before any model sees it: each file's
//! [`Role`] (source, test, docs, build, generated), each hunk's [`Kind`] (code, test,
//! comments, reformat) and [`Context`] (the function, method or class it sits in), and a
//! syntax error the change introduces. `syntax::read` is the stage's one verb; beside it,
//! [`breaks`] tells the suggestion stage whether an edited file is worse than the file it
//! edits (a syntax error, or a declaration removed that the code or other files use).
//!
//! Where a tree-sitter grammar exists (Rust, Python, Java, JavaScript, TypeScript, Go, C,
//! C++: `tree.rs`) both sides of the file are parsed; elsewhere, or when a side is too large,
//! times out or does not parse, the heuristics read the hunk's own lines (`heuristic.rs`) and
//! the JSON's `syntax` says why. Roles come from paths (`role`). It does not score, and it
//! never reads the repository itself: the caller hands it the texts.

mod heuristic;
#[cfg(test)]
mod tests;
pub mod tree;

use crate::diff::{FileDiff, Hunk, LineKind, OldNew, Skip, is_code_language, is_test_path};
pub use heuristic::changes_code;
use heuristic::{kind, test_module_start};
use serde::Serialize;
use std::collections::HashMap;

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Source,
    Test,
    Docs,
    Build,
    Generated,
}

/// What a hunk changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Production code.
    Code,
    /// Test code: in a test file, or a test module of a source file.
    Test,
    /// Comments, docstrings, documentation and blank lines only.
    Comments,
    /// The same code tokens on both sides: only spacing or line breaks moved.
    Reformat,
}

/// How a file's kinds were read (the JSON's `syntax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// Both sides parsed (the reviewed one without errors).
    Parsed,
    NoGrammar,
    /// The reviewed side does not parse: the heuristics read the hunks.
    ParseError,
    Timeout,
    TooLarge,
    /// The file's text was not at hand (binary, not UTF-8, or not asked for).
    NoText,
}

impl Parse {
    pub fn label(self) -> &'static str {
        match self {
            Parse::Parsed => "parsed",
            Parse::NoGrammar => "no grammar",
            Parse::ParseError => "parse error",
            Parse::Timeout => "timeout",
            Parse::TooLarge => "too large",
            Parse::NoText => "no text",
        }
    }
}

/// The function, method, class or other definition a hunk sits in (the innermost one
/// around its first changed line, on the new side; on the old side for a deletion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Context {
    /// `function`, `method`, `constructor`, `class`, `interface`, `struct`, `enum`, `trait`,
    /// `impl`, `module`, `namespace` or `type`.
    pub kind: &'static str,
    pub name: String,
    /// Its first and last line, on the side named above.
    pub start: u32,
    pub end: u32,
}

impl Context {
    /// "the function `send_file` (lines 454-656)", as the reports and prompts say it.
    pub fn describe(&self) -> String {
        format!("the {} `{}` (lines {}-{})", self.kind, self.name, self.start, self.end)
    }
}

/// A syntax error the change brings: the reviewed side does not parse where the old one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The new-side line where the parser first fails.
    pub line: u32,
    /// What it found there (`unexpected `...``, `missing `;``).
    pub what: String,
    /// The hunk that holds that line.
    pub hunk: usize,
}

/// The stage's reading of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSyntax {
    pub role: Role,
    /// One per hunk of the file, in order.
    pub hunks: Vec<Kind>,
    /// One per hunk: where it sits, when a grammar says.
    pub contexts: Vec<Option<Context>>,
    pub parse: Parse,
    pub error: Option<SyntaxError>,
}

impl FileSyntax {
    /// Whether hunk `h` is production code: a source file's code, neither test nor comment
    /// nor reformat. Only such hunks carry a change's risk.
    pub fn is_production(&self, h: usize) -> bool {
        self.role == Role::Source && self.hunks.get(h) == Some(&Kind::Code)
    }
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Code => "code",
            Kind::Test => "test",
            Kind::Comments => "comments",
            Kind::Reformat => "reformat",
        }
    }
}

/// A file's two texts, as the caller read them (`None` where the file is absent or not text).
pub type Texts = OldNew<Option<String>>;

/// Whether [`read`] would parse this file: the texts worth reading for it.
pub fn wants_text(f: &FileDiff) -> bool {
    f.skip.is_none() && !f.hunks.is_empty() && tree::grammar(f.display_path(), f.language).is_some()
}

/// What a suggestion must keep of the file it edits: whether the file parses without a syntax
/// error (`None` where no grammar says so reliably: C and C++ before their preprocessor) and
/// the names it declares and uses. `None` where no grammar reads it (no grammar, too large,
/// timed out).
#[derive(Debug, Clone, PartialEq)]
pub struct Outline {
    pub clean: Option<bool>,
    /// Whether the parser met an error anywhere (where it cannot read names reliably).
    pub error: bool,
    /// A TypeScript declaration file (`.d.ts`): it describes a package's API for other files,
    /// so what it declares is used elsewhere. Not C or C++ headers: removing a stale
    /// prototype is a fix their projects make (three of the fixes `eval-suggest` matched).
    pub api: bool,
    pub names: tree::Names,
}

/// Reads the [`Outline`] of a whole file.
pub fn outline(path: &str, language: Option<&str>, text: &str) -> Option<Outline> {
    let (error, names) = tree::outline(path, language, text).ok()?;
    let clean = (!matches!(language, Some("c" | "cpp"))).then_some(!error);
    let lower = path.to_ascii_lowercase();
    let api = [".d.ts", ".d.cts", ".d.mts"].iter().any(|e| lower.ends_with(e));
    Some(Outline {
        clean,
        error,
        api,
        names,
    })
}

/// Why an edited file is worse than the file it edits, if it is: it has a syntax error where
/// the file parsed; it strands a name (the file declared it, the edit removed every
/// declaration of it, and the code still uses it: a deleted field, variable, parameter or
/// import the rest of the file reads, which would not compile or would fail when run); it
/// stops a JavaScript or TypeScript module exporting a name (other modules may import it); in
/// a TypeScript declaration file, it removes a declaration, a signature or a union's member
/// (other files use them).
/// A suggestion that breaks its file is never shown (`suggest::suggest`).
pub fn breaks(old: &Outline, new: &Outline) -> Option<String> {
    if old.clean == Some(true) && new.clean == Some(false) {
        return Some("a syntax error".to_string());
    }
    // Names read through a parser's error recovery (a C macro, a file that did not parse)
    // are no evidence.
    if old.error || new.error {
        return None;
    }
    let declared = (&old.names.declared, &new.names.declared);
    if let Some(n) = first_gone(declared, |n| new.names.used.contains_key(n)) {
        return Some(format!("`{}` used but no longer declared", n.trim_start_matches('.')));
    }
    if old.api
        && let Some(n) = first_gone(declared, |_| true)
    {
        return Some(format!(
            "`{}` no longer declared, in a file other files read it from",
            n.trim_start_matches('.')
        ));
    }
    if let Some(n) = first_gone((&old.names.exported, &new.names.exported), |_| true) {
        return Some(format!("`{n}` no longer exported: other modules may import it"));
    }
    if old.api && new.names.members < old.names.members {
        return Some("removes a signature or a union's member from a declaration file".to_string());
    }
    None
}

/// The first name, in sorted order, of the old side's map that the new side's lacks and that
/// `also` accepts.
fn first_gone<'a>(
    (old, new): (&'a HashMap<String, usize>, &HashMap<String, usize>),
    also: impl Fn(&str) -> bool,
) -> Option<&'a String> {
    old.keys().filter(|n| !new.contains_key(*n) && also(n)).min()
}

/// Reads every file of a change; `texts[i]`, when present, holds file `i`'s old and new text
/// (see [`wants_text`]); without it the heuristics read the hunks.
pub fn read(files: &[FileDiff], texts: &[Texts]) -> Vec<FileSyntax> {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| read_file(f, texts.get(i)))
        .collect()
}

fn read_file(f: &FileDiff, texts: Option<&Texts>) -> FileSyntax {
    let path = f.display_path();
    let role = role(path, f.language, f.skip.as_ref());
    let heuristic = |parse: Parse, contexts: Vec<Option<Context>>, error: Option<SyntaxError>| {
        let tests_from = texts
            .and_then(|t| t.new.as_deref())
            .and_then(|t| test_module_start(t, f.language));
        FileSyntax {
            role,
            hunks: f.hunks.iter().map(|h| kind(role, f.language, h, tests_from)).collect(),
            contexts: if contexts.is_empty() {
                vec![None; f.hunks.len()]
            } else {
                contexts
            },
            parse,
            error,
        }
    };
    if tree::grammar(path, f.language).is_none() {
        return heuristic(Parse::NoGrammar, Vec::new(), None);
    }
    let Some(t) = texts.filter(|t| t.old.is_some() || t.new.is_some()) else {
        return heuristic(Parse::NoText, Vec::new(), None);
    };
    // The rows worth reading on each side: the changed lines (contexts are found at them too).
    let (mut old_rows, mut new_rows): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
    for h in &f.hunks {
        let (o, n) = changed_rows(h);
        old_rows.extend(o);
        new_rows.extend(n);
    }
    old_rows.sort_unstable();
    new_rows.sort_unstable();
    let side = |text: &Option<String>, rows: &[u32]| match text {
        Some(s) => tree::parse(path, f.language, s, rows).map(Some),
        None => Ok(None),
    };
    let (old, new) = match (side(&t.old, &old_rows), side(&t.new, &new_rows)) {
        (Ok(o), Ok(n)) => (o.unwrap_or_default(), n.unwrap_or_default()),
        (Err(e), _) | (_, Err(e)) => {
            let parse = match e {
                tree::NotParsed::NoGrammar => Parse::NoGrammar,
                tree::NotParsed::TooLarge => Parse::TooLarge,
                tree::NotParsed::Timeout => Parse::Timeout,
            };
            return heuristic(parse, Vec::new(), None);
        }
    };
    let contexts = f.hunks.iter().map(|h| context(h, &old, &new)).collect();
    // A syntax error of the change's own: on the reviewed side, in a hunk, where the old
    // side (if any) parsed clean. One the parser first sees outside the changed lines is
    // more likely the grammar's gap than the change's (measured: ripgrep's history).
    // C and C++ are read before their preprocessor runs: macros and `#if` inside an
    // expression read as errors to the grammar (half of curl's files), so no finding there.
    let preprocessed = matches!(f.language, Some("c" | "cpp"));
    let error = match (&new.error, &old.error) {
        (Some((line, what)), None) if t.new.is_some() && !preprocessed => f
            .hunks
            .iter()
            .position(|h| (h.start.new..h.start.new + h.count.new.max(1)).contains(line))
            .map(|hunk| SyntaxError {
                line: *line,
                what: what.clone(),
                hunk,
            }),
        _ => None,
    };
    if new.error.is_some() && t.new.is_some() {
        return heuristic(Parse::ParseError, contexts, error);
    }
    let hunks = f.hunks.iter().map(|h| parsed_kind(role, h, &old, &new)).collect();
    FileSyntax {
        role,
        hunks,
        contexts,
        parse: Parse::Parsed,
        error,
    }
}

/// The rows (0-based) of a hunk's removed lines on the old side and added lines on the new.
fn changed_rows(h: &Hunk) -> (Vec<u32>, Vec<u32>) {
    let rows = |k: LineKind, side: fn(&crate::diff::Line) -> Option<u32>| -> Vec<u32> {
        let mut r: Vec<u32> = h
            .lines
            .iter()
            .filter(|l| l.kind == k)
            .filter_map(side)
            .map(|n| n.saturating_sub(1))
            .collect();
        r.sort_unstable();
        r
    };
    (
        rows(LineKind::Removed, |l| l.lineno.old),
        rows(LineKind::Added, |l| l.lineno.new),
    )
}

/// A hunk's kind from both sides' trees: the same code tokens on its changed lines is a
/// reformat (only spacing moved) or a comment change; changed lines all in test code are
/// test code.
fn parsed_kind(role: Role, h: &Hunk, old: &tree::SideTree, new: &tree::SideTree) -> Kind {
    if role == Role::Docs {
        return Kind::Comments;
    }
    let (old_rows, new_rows) = changed_rows(h);
    if old.tokens_on(&old_rows) == new.tokens_on(&new_rows) {
        return no_code_change(h);
    }
    let in_tests =
        (old_rows.is_empty() || old.all_tests(&old_rows)) && (new_rows.is_empty() || new.all_tests(&new_rows));
    if role == Role::Test || in_tests {
        return Kind::Test;
    }
    Kind::Code
}

/// The kind of a hunk whose code tokens did not change: a reformat when nothing but spacing
/// moved, else a comment change.
fn no_code_change(h: &Hunk) -> Kind {
    let text = |k: LineKind| -> String {
        h.lines
            .iter()
            .filter(|l| l.kind == k)
            .flat_map(|l| l.text.split_whitespace())
            .collect()
    };
    if text(LineKind::Removed) == text(LineKind::Added) {
        Kind::Reformat
    } else {
        Kind::Comments
    }
}

/// The innermost definition around a hunk's first changed line (new side; old side when
/// it only deletes).
fn context(h: &Hunk, old: &tree::SideTree, new: &tree::SideTree) -> Option<Context> {
    let first = h.lines.iter().find(|l| l.kind != LineKind::Context)?;
    let (side, line) = match (first.lineno.new, first.lineno.old, h.added()) {
        (Some(n), _, _) => (new, n),
        (None, Some(_), a) if a > 0 => {
            let n = h
                .lines
                .iter()
                .find_map(|l| (l.kind == LineKind::Added).then_some(l.lineno.new).flatten())?;
            (new, n)
        }
        (None, Some(o), _) => (old, o),
        _ => return None,
    };
    side.around(line).map(|d| Context {
        kind: d.kind,
        name: d.name.clone(),
        start: d.start,
        end: d.end,
    })
}

/// A file's role from its path (and its skip, for generated and vendored files).
pub fn role(path: &str, language: Option<&str>, skip: Option<&Skip>) -> Role {
    if matches!(skip, Some(Skip::Generated { .. })) {
        return Role::Generated;
    }
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let stem = name.split('.').next().unwrap_or(name);
    if is_test_path(path) {
        return Role::Test;
    }
    let docs_dir = lower
        .split('/')
        .rev()
        .skip(1)
        .any(|seg| matches!(seg, "doc" | "docs" | "documentation" | "man" | "examples" | "example"));
    let docs_ext = matches!(
        name.rsplit_once('.').map(|(_, e)| e),
        Some("md" | "markdown" | "rst" | "txt" | "adoc" | "asciidoc" | "1" | "3" | "texi" | "pod")
    );
    let docs_name = matches!(
        stem,
        "readme"
            | "changelog"
            | "changes"
            | "news"
            | "license"
            | "licence"
            | "copying"
            | "authors"
            | "contributors"
            | "contributing"
            | "notice"
            | "history"
            | "release-notes"
            | "security"
            | "code_of_conduct"
            | "thanks"
    );
    if docs_name || docs_ext || (docs_dir && !language.is_some_and(is_code_language)) {
        return Role::Docs;
    }
    let build_name = matches!(
        name,
        "cargo.toml"
            | "makefile"
            | "gnumakefile"
            | "cmakelists.txt"
            | "package.json"
            | "pom.xml"
            | "build.gradle"
            | "build.gradle.kts"
            | "settings.gradle"
            | "settings.gradle.kts"
            | "gradle.properties"
            | "go.mod"
            | "setup.py"
            | "setup.cfg"
            | "pyproject.toml"
            | "tox.ini"
            | "dockerfile"
            | "configure.ac"
            | "makefile.am"
            | "build.rs"
            | "build.sbt"
            | ".gitignore"
            | ".gitattributes"
            | ".editorconfig"
            | "tsconfig.json"
            | "rollup.config.js"
            | "webpack.config.js"
            | "karma.conf.js"
            | "gulpfile.js"
            | ".eslintrc.js"
            | "rustfmt.toml"
            | "clippy.toml"
            | "deny.toml"
            | "mkdocs.yml"
            | "codecov.yml"
            | ".travis.yml"
            | "appveyor.yml"
            | "requirements.txt"
    ) || name.starts_with("requirements")
        || name.starts_with(".eslintrc")
        || name.starts_with(".prettierrc")
        || name.starts_with(".babelrc");
    let build_dir = lower.starts_with(".github/")
        || lower.starts_with(".circleci/")
        || lower.starts_with("ci/")
        || lower.starts_with(".ci/")
        || lower.starts_with("gradle/")
        || lower.starts_with(".cargo/");
    let config_language = matches!(
        language,
        Some("yaml" | "toml" | "json" | "xml" | "make" | "cmake" | "docker" | "gradle")
    );
    if build_name || build_dir || config_language || name.ends_with(".am") || name.ends_with(".m4") {
        return Role::Build;
    }
    Role::Source
}
