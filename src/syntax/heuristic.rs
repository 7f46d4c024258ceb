//! The heuristic reading of a hunk, for files without a grammar or whose text is not at
//! hand: a small lexer that knows each language's comments and string quotes, over the
//! hunk's own lines (and over the reviewed file, when given, for Rust's
//! `#[cfg(test)] mod tests`). It tells code from comments and reformats; it knows no
//! functions and finds no syntax errors (`tree.rs` does, where a grammar parses the file).

use super::{Kind, Role};
use crate::diff::{Hunk, LineKind};

/// A hunk's kind. `tests_from`: the first line (new side) of a source file's test module.
pub fn kind(role: Role, language: Option<&str>, hunk: &Hunk, tests_from: Option<u32>) -> Kind {
    let lexer = Lexer::for_language(language);
    let old = lexer.code_of(hunk, |k| k != LineKind::Added);
    let new = lexer.code_of(hunk, |k| k != LineKind::Removed);
    let changed = |side: &[(LineKind, String, bool)], k: LineKind| -> Vec<String> {
        side.iter()
            .filter(|(kind, _, _)| *kind == k)
            .map(|(_, c, _)| c.clone())
            .collect()
    };
    let old_code = changed(&old, LineKind::Removed);
    let new_code = changed(&new, LineKind::Added);
    let squash = |lines: &[String]| lexer.squash(lines);
    if role == Role::Docs {
        return Kind::Comments;
    }
    let same_code = squash(&old_code) == squash(&new_code);
    if same_code {
        return super::no_code_change(hunk);
    }
    if role == Role::Test {
        return Kind::Test;
    }
    let first_changed = hunk
        .lines
        .iter()
        .find(|l| l.kind != LineKind::Context)
        .and_then(|l| l.lineno.new.or(l.lineno.old));
    if let (Some(from), Some(at)) = (tests_from, first_changed)
        && at >= from
    {
        return Kind::Test;
    }
    Kind::Code
}

/// Whether `new` lines differ from `old` ones in their code tokens, not only in spacing or
/// comments: a suggestion that does not is never shown.
pub fn changes_code(language: Option<&str>, old: &[&str], new: &[&str]) -> bool {
    let lexer = Lexer::for_language(language);
    // Where a line may end a statement without one, a `;` there is spelling, not code
    // (`f(x);` and `f(x)` in JavaScript, TypeScript, Go and Python).
    let optional_semicolon = matches!(language, Some("javascript" | "typescript" | "go" | "python"));
    let code = |lines: &[&str]| -> Vec<String> {
        lexer
            .code_of_lines(lines.iter().map(|l| (LineKind::Added, *l)).collect())
            .into_iter()
            .map(|(_, c, _)| match c.trim_end().strip_suffix(';') {
                Some(bare) if optional_semicolon => bare.to_string(),
                _ => c,
            })
            .collect()
    };
    // Spacing inside a string literal counts here too: a suggestion that only moves it is
    // as much noise as one that moves spacing in code.
    let plain = |lines: &[&str]| lexer.squash(&code(lines)).replace('\u{1f}', "");
    plain(old) != plain(new)
}

/// The first line of a Rust file's `#[cfg(test)]` module, which by convention runs to the
/// end of the file; `None` for other languages or when there is none.
pub(super) fn test_module_start(text: &str, language: Option<&str>) -> Option<u32> {
    if language != Some("rust") {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    lines.iter().enumerate().find_map(|(i, l)| {
        let next = lines.get(i + 1).map(|n| n.trim_start()).unwrap_or("");
        (l.trim() == "#[cfg(test)]" && next.starts_with("mod ") && next.trim_end().ends_with('{'))
            .then_some(i as u32 + 1)
    })
}

/// Comment and string syntax of a language, enough to tell code from comments.
struct Lexer {
    line: &'static [&'static str],
    block: Option<(&'static str, &'static str)>,
    /// Triple-quoted strings (Python docstrings): a statement that is only one is documentation.
    docstrings: bool,
    single_quote_strings: bool,
    indentation_matters: bool,
}

impl Lexer {
    fn for_language(language: Option<&str>) -> Lexer {
        let c_like = Lexer {
            line: &["//"],
            block: Some(("/*", "*/")),
            docstrings: false,
            single_quote_strings: false,
            indentation_matters: false,
        };
        match language {
            Some("python") => Lexer {
                line: &["#"],
                block: None,
                docstrings: true,
                single_quote_strings: true,
                indentation_matters: true,
            },
            Some("shell" | "ruby" | "perl" | "yaml" | "toml" | "make" | "cmake" | "elixir" | "docker") => Lexer {
                line: &["#"],
                block: None,
                docstrings: false,
                single_quote_strings: true,
                indentation_matters: false,
            },
            Some("sql" | "lua" | "haskell") => Lexer {
                line: &["--"],
                block: None,
                ..c_like
            },
            Some("javascript" | "typescript" | "php") => Lexer {
                single_quote_strings: true,
                ..c_like
            },
            Some("html" | "xml" | "markdown") => Lexer {
                line: &[],
                block: Some(("<!--", "-->")),
                ..c_like
            },
            _ => c_like,
        }
    }

    /// Each line of one side of the hunk (`keep` picks the side's kinds) with its comments
    /// removed, and whether it was inside a comment or docstring at its start. A hunk that
    /// opens inside a block comment is seen by its first line starting with `*` or by a
    /// closing marker with no opener; a docstring's inner lines are only known when the
    /// hunk holds its opening quotes.
    fn code_of(&self, hunk: &Hunk, keep: impl Fn(LineKind) -> bool) -> Vec<(LineKind, String, bool)> {
        let lines: Vec<(LineKind, &str)> = hunk
            .lines
            .iter()
            .filter(|l| keep(l.kind))
            .map(|l| (l.kind, l.text.as_str()))
            .collect();
        self.code_of_lines(lines)
    }

    /// The code of lines with their comments removed: one string of tokens with the spacing
    /// between them gone (in Python, each line's indentation kept: it is code there).
    fn squash(&self, lines: &[String]) -> String {
        if self.indentation_matters {
            lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let indent = l.len() - l.trim_start().len();
                    format!("{indent}:{}", l.split_whitespace().collect::<String>())
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            lines.iter().flat_map(|l| l.split_whitespace()).collect()
        }
    }

    /// [`Lexer::code_of`] over lines given with their kinds.
    fn code_of_lines(&self, lines: Vec<(LineKind, &str)>) -> Vec<(LineKind, String, bool)> {
        let mut in_block = self.block.is_some_and(|(open, close)| {
            let first = lines.iter().map(|(_, t)| t.trim()).find(|t| !t.is_empty());
            first.is_some_and(|t| {
                ((t == "*" || t.starts_with("* ")) && open == "/*") || {
                    // A close before any open: the hunk began inside a comment.
                    let c = t.find(close);
                    c.is_some() && t.find(open).is_none_or(|o| Some(o) > c)
                }
            })
        });
        let mut in_doc: Option<&str> = None;
        let mut out = Vec::with_capacity(lines.len());
        for (kind, text) in lines {
            let started_inside = in_block || in_doc.is_some();
            let mut code = String::new();
            let mut rest = text;
            while !rest.is_empty() {
                if let Some(q) = in_doc {
                    match rest.find(q) {
                        Some(end) => {
                            rest = &rest[end + q.len()..];
                            in_doc = None;
                        }
                        None => rest = "",
                    }
                    continue;
                }
                if in_block {
                    let close = self.block.expect("in a block only with block comments").1;
                    match rest.find(close) {
                        Some(end) => {
                            rest = &rest[end + close.len()..];
                            in_block = false;
                        }
                        None => rest = "",
                    }
                    continue;
                }
                // `://` is a URL (often in a string the hunk began inside), not a comment.
                if self.line.iter().any(|m| rest.starts_with(m)) && !(rest.starts_with("//") && code.ends_with(':')) {
                    break;
                }
                if let Some((open, _)) = self.block
                    && rest.starts_with(open)
                {
                    in_block = true;
                    rest = &rest[open.len()..];
                    continue;
                }
                if self.docstrings
                    && code.trim().is_empty()
                    && let Some(q) = ["\"\"\"", "'''"].into_iter().find(|q| rest.starts_with(q))
                {
                    // A statement that is only a string: a docstring.
                    in_doc = Some(q);
                    rest = &rest[q.len()..];
                    continue;
                }
                let ch = rest.chars().next().expect("rest is not empty");
                if ch == '"' || (ch == '\'' && self.single_quote_strings) {
                    let end = string_end(rest, ch);
                    // Spacing inside a literal is data, not layout: keep it from the squash.
                    code.extend(
                        rest[..end]
                            .chars()
                            .map(|c| if c.is_whitespace() { '\u{1f}' } else { c }),
                    );
                    rest = &rest[end..];
                    continue;
                }
                code.push(ch);
                rest = &rest[ch.len_utf8()..];
            }
            out.push((kind, code, started_inside));
        }
        out
    }
}

/// The byte length of the string literal at the start of `s` (opened by `quote`), or all
/// of `s` when it does not close on this line.
fn string_end(s: &str, quote: char) -> usize {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            return i + c.len_utf8();
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Skip;
    use crate::syntax::role;

    fn hunk(body: &str) -> Hunk {
        let removed = body.lines().filter(|l| !l.starts_with('+')).count();
        let added = body.lines().filter(|l| !l.starts_with('-')).count();
        Hunk::parse(&format!("@@ -1,{removed} +1,{added} @@"), body).unwrap()
    }

    fn kind_of(path: &str, body: &str) -> Kind {
        let language = crate::diff::language_of(path);
        kind(role(path, language, None), language, &hunk(body), None)
    }

    #[test]
    fn roles_follow_path_conventions() {
        let r = |p: &str| role(p, crate::diff::language_of(p), None);
        assert_eq!(r("src/main.rs"), Role::Source);
        assert_eq!(r("lib/curl.c"), Role::Source);
        assert_eq!(r("tests/cli.rs"), Role::Test);
        assert_eq!(r("src/foo_test.go"), Role::Test);
        assert_eq!(r("flask/test_app.py"), Role::Test);
        assert_eq!(r("README.md"), Role::Docs);
        assert_eq!(r("docs/manual/intro.rst"), Role::Docs);
        assert_eq!(r("CHANGES"), Role::Docs);
        assert_eq!(r("Cargo.toml"), Role::Build);
        assert_eq!(r(".github/workflows/ci.yml"), Role::Build);
        assert_eq!(r("pom.xml"), Role::Build);
        assert_eq!(r("docs/conf.py"), Role::Source, "code under docs/ is still code");
        let generated = Skip::Generated {
            pattern: "**/Cargo.lock".into(),
        };
        assert_eq!(role("Cargo.lock", None, Some(&generated)), Role::Generated);
    }

    #[test]
    fn a_comment_only_change_is_comments_in_each_language() {
        assert_eq!(
            kind_of("a.rs", " fn f() {\n-    // old note\n+    // new note\n     g();\n }"),
            Kind::Comments
        );
        assert_eq!(
            kind_of("a.c", " int f() {\n-    g(); /* old */\n+    g(); /* new */\n }"),
            Kind::Comments
        );
        assert_eq!(
            kind_of(
                "a.py",
                " def f():\n-    \"\"\"Old doc.\"\"\"\n+    \"\"\"New doc.\n+\n+    More.\n+    \"\"\"\n     g()"
            ),
            Kind::Comments
        );
        assert_eq!(kind_of("a.py", " def f():\n+    # why\n     g()"), Kind::Comments);
        assert_eq!(kind_of("a.go", " /*\n- * old\n+ * new\n  */"), Kind::Comments);
        assert_eq!(kind_of("a.js", "-// a\n+// b\n x = 1;"), Kind::Comments);
        assert_eq!(
            kind_of("A.java", "  * text\n- * old\n+ * new\n  */"),
            Kind::Comments,
            "a hunk opening inside a javadoc"
        );
    }

    #[test]
    fn a_reformat_keeps_the_code_tokens() {
        assert_eq!(kind_of("a.rs", "-let x=y;\n+let x = y;"), Kind::Reformat);
        assert_eq!(kind_of("a.go", "-f(a,\n-  b)\n+f(a, b)"), Kind::Reformat);
        assert_eq!(
            kind_of("a.py", " if x:\n-    y()\n+y()"),
            Kind::Code,
            "in Python, indentation is code"
        );
        assert_eq!(
            kind_of("a.rs", "-let x = \"a b\";\n+let x = \"a  b\";"),
            Kind::Code,
            "spacing inside a string is data"
        );
    }

    #[test]
    fn spacing_and_comments_are_no_change_of_code() {
        // Regression: suggestions such as `let handle  =  spawn(...)` were shown.
        let rs = Some("rust");
        assert!(!changes_code(rs, &["let x = y;"], &["let x  =  y;"]));
        assert!(!changes_code(rs, &["let x = y; // a"], &["let x = y; // b"]));
        assert!(changes_code(rs, &["let x = y;"], &["let x = z;"]));
        // A hunk that begins inside a multi-line string: a URL there is not a comment.
        assert!(changes_code(
            rs,
            &["*file://{host}{file}* will emit"],
            &["*file://{host}{path}* will emit"]
        ));
        assert!(
            !changes_code(rs, &["let s = \"a:b\";"], &["let s = \"a : b\";"]),
            "nor inside a string"
        );
        assert!(changes_code(rs, &["let s = \"a:b\";"], &["let s = \"a:c\";"]));
        assert!(!changes_code(Some("python"), &["x = 1  # a"], &["x = 1"]));
        assert!(changes_code(Some("python"), &["    y()"], &["y()"]));
        // A line-ending semicolon where the language does not need one (axios's suggested
        // `setContentType(false) // Let the browser set it`): no change; where it does, one.
        let js = Some("javascript");
        assert!(!changes_code(js, &["  f(false); // a"], &["  f(false) // a"]));
        assert!(!changes_code(Some("go"), &["\tx := 1;"], &["\tx := 1"]));
        assert!(changes_code(js, &["  f(false);"], &["  f(true);"]));
        assert!(changes_code(js, &["  for (;;) {"], &["  for (;) {"]));
        assert!(changes_code(rs, &["    f(x);"], &["    f(x)"]));
        assert!(changes_code(Some("java"), &["    f(x);"], &["    f(x)"]));
    }

    #[test]
    fn code_and_tests_are_told_apart() {
        assert_eq!(kind_of("a.rs", "-let x = 1;\n+let x = 2;"), Kind::Code);
        assert_eq!(kind_of("a.c", "-if (n < len)\n+if (n <= len)"), Kind::Code);
        assert_eq!(kind_of("tests/t.rs", "-let x = 1;\n+let x = 2;"), Kind::Test);
        assert_eq!(
            kind_of("a.js", "-x = '// not a comment';\n+x = '// still not';"),
            Kind::Code
        );
        let text = "fn f() {}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n";
        assert_eq!(test_module_start(text, Some("rust")), Some(3));
        let h = Hunk::parse("@@ -5,1 +5,1 @@", "-    fn t() {}\n+    fn t() { assert!(true) }").unwrap();
        assert_eq!(kind(Role::Source, Some("rust"), &h, Some(3)), Kind::Test);
        let h = Hunk::parse("@@ -1,1 +1,1 @@", "-fn f() {}\n+fn f() { g() }").unwrap();
        assert_eq!(kind(Role::Source, Some("rust"), &h, Some(3)), Kind::Code);
    }
}
