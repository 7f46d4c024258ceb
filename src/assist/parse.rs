//! Model answer -> something deepspark may show or verify: a comment tied to a line of the
//! hunk, a short text (explanation, REJECT note), a fenced block of replacement lines turned
//! into line edits of the hunk's added lines, or SEARCH/REPLACE blocks of a fix.
//!
//! Everything here treats the answer as untrusted data: control and bidirectional-override
//! characters are escaped (see `render::sanitize`), lengths are capped, repeated sentences
//! dropped, and an answer that is empty, malformed or reaches outside what it was asked
//! about is refused with a reason ([`Refused`]). Pure: no model, no I/O. It does not check an
//! edit against the file on disk (see `suggest::verify`).

use crate::diff::{Hunk, LineKind};
use crate::model::LineEdit;

/// A comment or note is cut to this many characters (at a sentence end when there is one).
pub const MAX_COMMENT_CHARS: usize = 300;
/// Explanations and notes are cut to this many characters.
pub const MAX_TEXT_CHARS: usize = 600;

/// Why a model answer was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the answer is empty")]
    Empty,
    #[error("the answer says there is nothing to report")]
    Nothing,
    #[error("the answer repeats itself")]
    Repetitive,
    #[error("the answer quotes code instead of saying something about it")]
    QuotesCode,
    #[error("the answer has no complete fenced code block")]
    NoBlock,
    #[error("the answer changes a line the change did not add")]
    OutsideHunk,
    #[error("the answer changes nothing")]
    NoOp,
    #[error("the answer writes a control or bidirectional-override character")]
    BadText,
    #[error("the answer rewrites most of the file instead of fixing it")]
    Rewritten,
    #[error("the answer has no complete SEARCH/REPLACE block")]
    NoEdit,
    #[error("a SEARCH block is not found exactly once in {0}")]
    NotFound(String),
    #[error("the answer names a file it was not shown: {0}")]
    OtherFile(String),
}

/// A comment of the model on one line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineComment {
    /// New-side line number (the hunk's first added line when the answer names none of its lines).
    pub line: u32,
    pub text: String,
}

/// Text safe for every report: hidden characters escaped, whitespace runs (line breaks
/// included) collapsed to one space, Markdown emphasis markers left as they are.
pub fn clean_text(s: &str) -> String {
    let escaped = crate::render::sanitize::clean_with(s, true);
    escaped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The answer cut to at most `max_sentences` sentences and `max_chars` characters, with a
/// sentence that repeats an earlier one dropped (small models loop).
pub fn sentences(answer: &str, max_sentences: usize, max_chars: usize) -> Result<String, Refused> {
    // A fence or numbered diff lines (`-28 | code`, as the prompt shows them) is the prompt
    // echoed back, not prose.
    if answer.contains("```") || answer.contains("~~~") || quotes_numbered_lines(answer) {
        return Err(Refused::QuotesCode);
    }
    let text = clean_text(answer);
    let mut out: Vec<&str> = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() && out.len() < max_sentences {
        let end = rest
            .char_indices()
            .find(|&(i, c)| {
                matches!(c, '.' | '!' | '?') && rest[i + 1..].starts_with(' ') || i + c.len_utf8() == rest.len()
            })
            .map_or(rest.len(), |(i, c)| i + c.len_utf8());
        let s = rest[..end].trim();
        rest = rest[end..].trim_start();
        if !s.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(s)) {
            out.push(s);
        }
    }
    let mut joined = String::new();
    if out.iter().any(|s| repetitive(s)) {
        return Err(Refused::Repetitive);
    }
    for s in out {
        let sep = usize::from(!joined.is_empty());
        if joined.chars().count() + sep + s.chars().count() > max_chars {
            if joined.is_empty() {
                joined = s.chars().take(max_chars.saturating_sub(1)).collect::<String>() + "…";
            }
            break;
        }
        if sep == 1 {
            joined.push(' ');
        }
        joined.push_str(s);
    }
    if joined.is_empty() {
        return Err(Refused::Empty);
    }
    Ok(joined)
}

/// A sentence where one word comes back four times in a row, one with more than twelve
/// words of which under a third are distinct, or one where a phrase of three words comes
/// back three times: what a small model writes when it loops.
fn repetitive(s: &str) -> bool {
    let words: Vec<&str> = s.split_whitespace().collect();
    let run = words.windows(4).any(|w| w.iter().all(|x| *x == w[0]));
    let distinct: std::collections::HashSet<&&str> = words.iter().collect();
    let mut phrases: std::collections::HashMap<&[&str], usize> = std::collections::HashMap::new();
    let looped = words.windows(3).any(|w| {
        let n = phrases.entry(w).or_default();
        *n += 1;
        *n >= 3
    });
    run || looped || (words.len() > 12 && distinct.len() * 3 < words.len())
}

/// Whether the text holds a line reference as `prompt::numbered` writes them (`+  12 | `,
/// `-28 | `): the model copying the hunk it was shown.
fn quotes_numbered_lines(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len()).any(|i| {
        if !matches!(b[i], b'+' | b'-') || i > 0 && !b[i - 1].is_ascii_whitespace() {
            return false;
        }
        let rest = s[i + 1..].trim_start_matches(' ');
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].trim_start_matches(' ').starts_with('|')
    })
}

/// A comment answer (`LINE <n>: <text>`, see `prompt::comment`) tied to a line of `hunk`.
/// A line number that is not on the hunk's new side falls back to the first added line;
/// `NONE` (or `LINE 0`) means the model found nothing.
pub fn comment(answer: &str, hunk: &Hunk) -> Result<LineComment, Refused> {
    let new_lines: Vec<u32> = hunk
        .lines
        .iter()
        .filter(|l| l.kind != LineKind::Removed)
        .filter_map(|l| l.lineno.new)
        .collect();
    let first_added = hunk
        .lines
        .iter()
        .find(|l| l.kind == LineKind::Added)
        .and_then(|l| l.lineno.new)
        .or_else(|| new_lines.first().copied())
        .unwrap_or(hunk.start.new.max(1));
    let trimmed = answer.trim().trim_start_matches(['`', '*', '-', ' ']);
    let upper: String = trimmed.chars().take(8).collect::<String>().to_ascii_uppercase();
    if upper.starts_with("NONE") {
        return Err(Refused::Nothing);
    }
    let (line, body) = match strip_line_label(trimmed) {
        Some((0, _)) => return Err(Refused::Nothing),
        Some((n, body)) => (if new_lines.contains(&n) { n } else { first_added }, body),
        None => (first_added, trimmed),
    };
    let text = sentences(body, 2, MAX_COMMENT_CHARS)?;
    Ok(LineComment { line, text })
}

/// `LINE 12: text` (any case, `Line 12 -`, `line 12.`) -> (12, "text").
fn strip_line_label(s: &str) -> Option<(u32, &str)> {
    let head = s.get(..4)?;
    if !head.eq_ignore_ascii_case("line") {
        return None;
    }
    let rest = s[4..].trim_start();
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let n: u32 = rest[..digits].parse().ok()?;
    let body = rest[digits..].trim_start_matches([':', '-', '.', ')', ' ']);
    Some((n, body))
}

/// The lines of the first complete fenced block (``` or ~~~, any info string, any fence
/// length of at least three); `None` when there is none or it is not closed (the answer ran
/// out of tokens).
pub fn fenced_block(answer: &str) -> Option<Vec<String>> {
    let mut lines = answer.lines();
    let (fence_char, fence_len) = loop {
        let l = lines.next()?.trim_start();
        let c = l.chars().next().unwrap_or(' ');
        let n = l.chars().take_while(|&x| x == c).count();
        if (c == '`' || c == '~') && n >= 3 {
            break (c, n);
        }
    };
    let mut body = Vec::new();
    for l in lines {
        let t = l.trim();
        if t.len() >= fence_len && t.chars().all(|c| c == fence_char) {
            return Some(body);
        }
        body.push(l.to_string());
    }
    None
}

/// A rewrite of the hunk's new side (context and added lines, in order, without markers) ->
/// edits of its added lines. Lines the rewrite inserts join the added line before them (or
/// after them, at the start of a run); a context line changed, dropped or moved refuses the
/// whole answer. When the hunk adds one run of lines, an answer that rewrites only that run
/// (with or without the context around it) is taken too, if it replaces or deletes lines of
/// the run without adding any: models often answer that way. A
/// CRLF hunk's line endings are kept.
pub fn rewrite_edits(hunk: &Hunk, rewrite: &[String]) -> Result<Vec<LineEdit>, Refused> {
    // (index in hunk.lines, text) of the new side.
    let new_side: Vec<(usize, &str)> = hunk
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind != LineKind::Removed)
        .map(|(i, l)| (i, l.text.strip_suffix('\r').unwrap_or(&l.text)))
        .collect();
    let cr = hunk.lines.iter().any(|l| l.text.ends_with('\r'));
    let wanted: Vec<&str> = rewrite.iter().map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    if wanted.iter().any(|l| l.chars().any(crate::chars::is_hidden)) {
        return Err(Refused::BadText);
    }
    let old: Vec<&str> = new_side.iter().map(|(_, t)| *t).collect();
    let added: Vec<bool> = new_side
        .iter()
        .map(|(i, _)| hunk.lines[*i].kind == LineKind::Added)
        .collect();
    let (lines, becomes) = match align(&old, &added, &wanted) {
        Ok(b) => (new_side.iter().map(|(i, _)| *i).collect::<Vec<_>>(), b),
        Err(Refused::OutsideHunk) => {
            let run: Vec<usize> = (0..old.len()).filter(|&k| added[k]).collect();
            let (first, last) = match (run.first(), run.last()) {
                (Some(&f), Some(&l)) if l - f + 1 == run.len() => (f, l),
                _ => return Err(Refused::OutsideHunk),
            };
            // Context the answer repeated around the run (the longest tail of the context
            // before it that the answer starts with, and the longest head of the context after
            // it that the answer ends with) is not part of the rewrite.
            let (before, after) = (&old[..first], &old[last + 1..]);
            let lead = (0..=before.len().min(wanted.len()))
                .rev()
                .find(|&n| wanted[..n] == before[before.len() - n..])
                .unwrap_or(0);
            let w = &wanted[lead..];
            let trail = (0..=after.len().min(w.len()))
                .rev()
                .find(|&n| w[w.len() - n..] == after[..n])
                .unwrap_or(0);
            let w = &w[..w.len() - trail];
            // Without the context to align on, an extra line could be a changed context line:
            // such answers may only replace or delete lines of the run.
            if w.len() > run.len() {
                return Err(Refused::OutsideHunk);
            }
            let b = align(&old[first..=last], &vec![true; run.len()], w)?;
            (run.iter().map(|&k| new_side[k].0).collect(), b)
        }
        Err(e) => return Err(e),
    };
    let eol = if cr { "\r" } else { "" };
    let mut edits = Vec::new();
    for (k, now) in becomes.iter().enumerate() {
        let line = lines[k];
        let was = hunk.lines[line]
            .text
            .strip_suffix('\r')
            .unwrap_or(&hunk.lines[line].text);
        if now.len() == 1 && now[0] == was {
            continue;
        }
        let new = (!now.is_empty()).then(|| now.iter().map(|t| format!("{t}{eol}")).collect::<Vec<_>>().join("\n"));
        edits.push(LineEdit { line, new });
    }
    if edits.is_empty() {
        return Err(Refused::NoOp);
    }
    Ok(edits)
}

/// What each of `old` becomes (itself, nothing, or several lines) so that the lines read
/// `wanted`, changing only lines marked `added`; inserted lines join a neighbouring added line.
fn align<'a>(old: &[&'a str], added: &[bool], wanted: &[&'a str]) -> Result<Vec<Vec<&'a str>>, Refused> {
    let mut becomes: Vec<Vec<&str>> = old.iter().map(|t| vec![*t]).collect();
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, old, wanted);
    for op in ops {
        use similar::DiffOp::*;
        match op {
            Equal { .. } => {}
            Delete { old_index, old_len, .. } => {
                for k in old_index..old_index + old_len {
                    if !added[k] {
                        return Err(Refused::OutsideHunk);
                    }
                    becomes[k].clear();
                }
            }
            Insert {
                old_index,
                new_index,
                new_len,
            } => {
                let text = &wanted[new_index..new_index + new_len];
                if old_index > 0 && added[old_index - 1] {
                    becomes[old_index - 1].extend_from_slice(text);
                } else if old_index < old.len() && added[old_index] {
                    let mut v = text.to_vec();
                    v.append(&mut becomes[old_index]);
                    becomes[old_index] = v;
                } else {
                    return Err(Refused::OutsideHunk);
                }
            }
            Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                if (old_index..old_index + old_len).any(|k| !added[k]) {
                    return Err(Refused::OutsideHunk);
                }
                // Line for line where both sides have one; extra new lines join the last.
                let paired = old_len.min(new_len);
                for j in 0..old_len {
                    becomes[old_index + j] = if j < paired {
                        vec![wanted[new_index + j]]
                    } else {
                        Vec::new()
                    };
                }
                becomes[old_index + paired - 1].extend_from_slice(&wanted[new_index + paired..new_index + new_len]);
            }
        }
    }
    Ok(becomes)
}

/// One edit of a fix: replace the only occurrence of `search` in `path` by `replace`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SearchReplace {
    pub path: String,
    pub search: String,
    pub replace: String,
}

/// The SEARCH/REPLACE blocks of a fix answer (see `prompt::fix`), each preceded by a line
/// naming its file (one of `paths`; a lone file needs no name).
pub fn search_replace(answer: &str, paths: &[&str]) -> Result<Vec<SearchReplace>, Refused> {
    let mut out = Vec::new();
    let mut path: Option<String> = (paths.len() == 1).then(|| paths[0].to_string());
    let mut lines = answer.lines().peekable();
    while let Some(l) = lines.next() {
        let t = l.trim();
        if t.starts_with("<<<<<<<") && t.contains("SEARCH") {
            let mut search = Vec::new();
            let mut replace = Vec::new();
            let mut in_replace = false;
            let mut closed = false;
            for l in lines.by_ref() {
                let t = l.trim();
                if !in_replace && t.starts_with("=======") && t.chars().all(|c| c == '=') {
                    in_replace = true;
                } else if in_replace && t.starts_with(">>>>>>>") {
                    closed = true;
                    break;
                } else if in_replace {
                    replace.push(l);
                } else {
                    search.push(l);
                }
            }
            if !closed {
                break;
            }
            let Some(p) = path.clone() else {
                return Err(Refused::OtherFile("(no file named)".into()));
            };
            let (search, replace) = (search.join("\n"), replace.join("\n"));
            if search
                .chars()
                .chain(replace.chars())
                .any(|c| c != '\n' && crate::chars::is_hidden(c))
            {
                return Err(Refused::BadText);
            }
            if search.trim().is_empty() || search == replace {
                continue;
            }
            out.push(SearchReplace {
                path: p,
                search,
                replace,
            });
        } else if !t.is_empty() && !t.starts_with("```") {
            let name = t.trim_matches(|c: char| c == '`' || c == '*' || c == ':' || c.is_whitespace());
            if let Some(p) = paths.iter().find(|p| **p == name || name.ends_with(&format!("/{p}"))) {
                path = Some(p.to_string());
            } else if looks_like_path(name) && lines.peek().is_some_and(|n| n.trim().starts_with("<<<<<<<")) {
                return Err(Refused::OtherFile(clean_text(name)));
            }
        }
    }
    if out.is_empty() {
        return Err(Refused::NoEdit);
    }
    Ok(out)
}

/// A whole corrected file (the answer's first fenced block) as one block replacing all of
/// `content`; refused when it keeps fewer than half of the file's lines (not a fix but a
/// different file) or changes nothing.
pub fn whole_file(answer: &str, path: &str, content: &str) -> Result<SearchReplace, Refused> {
    let lines = fenced_block(answer).ok_or(Refused::NoBlock)?;
    let old: Vec<&str> = content.lines().collect();
    let new: Vec<&str> = lines.iter().map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    if new.iter().any(|l| l.chars().any(crate::chars::is_hidden)) {
        return Err(Refused::BadText);
    }
    if new == old {
        return Err(Refused::NoOp);
    }
    let kept: usize = similar::capture_diff_slices(similar::Algorithm::Myers, &old, &new)
        .iter()
        .map(|op| match op {
            similar::DiffOp::Equal { len, .. } => *len,
            _ => 0,
        })
        .sum();
    if kept * 2 < old.len() {
        return Err(Refused::Rewritten);
    }
    Ok(SearchReplace {
        path: path.to_string(),
        search: old.join("\n"),
        replace: new.join("\n"),
    })
}

fn looks_like_path(s: &str) -> bool {
    !s.contains(' ') && s.contains('.') && s.len() < 200
}

/// `content` with each block applied in order; every SEARCH must occur exactly once, as
/// whole lines (a CRLF file's `\r` is matched and kept).
pub fn apply_search_replace(content: &str, path: &str, blocks: &[&SearchReplace]) -> Result<String, Refused> {
    let cr = content.contains("\r\n");
    let mut text = content.to_string();
    for b in blocks {
        let conv = |s: &str| if cr { s.replace('\n', "\r\n") } else { s.to_string() };
        let (search, replace) = (conv(&b.search), conv(&b.replace));
        let found: Vec<usize> = text.match_indices(&search).map(|(i, _)| i).collect();
        let whole_lines = |i: usize| {
            (i == 0 || text[..i].ends_with('\n'))
                && text[i + search.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == '\n' || c == '\r')
        };
        let found: Vec<usize> = found.into_iter().filter(|&i| whole_lines(i)).collect();
        if found.len() != 1 {
            return Err(Refused::NotFound(path.to_string()));
        }
        text.replace_range(found[0]..found[0] + search.len(), &replace);
    }
    if text == content {
        return Err(Refused::NoOp);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hunk(header: &str, body: &str) -> Hunk {
        Hunk::parse(header, body).unwrap()
    }

    #[test]
    fn a_comment_is_tied_to_a_line_of_the_hunk_and_cut_to_two_sentences() {
        let h = hunk("@@ -10,2 +10,3 @@", " a\n+b\n c");
        let c = comment("LINE 11: The slice is off by one. It drops the last item. Also x.", &h).unwrap();
        assert_eq!(c.line, 11);
        assert_eq!(c.text, "The slice is off by one. It drops the last item.");
        // A line outside the hunk falls back to its first added line.
        assert_eq!(comment("line 99 - bad", &h).unwrap().line, 11);
        assert_eq!(comment("No label here.", &h).unwrap().line, 11);
        assert_eq!(comment("NONE", &h), Err(Refused::Nothing));
        assert_eq!(comment("LINE 0: nothing", &h), Err(Refused::Nothing));
        assert_eq!(comment("   ", &h), Err(Refused::Empty));
        // Repetition is dropped and escapes are made visible.
        let c = comment("LINE 10: Bad. Bad. \x1b[2J\u{202e}x", &h).unwrap();
        assert_eq!(c.text, "Bad. \\x1b[2J\\u{202e}x");
        assert_eq!(comment(&"word ".repeat(500), &h), Err(Refused::Repetitive));
        assert_eq!(comment("LINE 11: the line `+ + + + + +", &h), Err(Refused::Repetitive));
        let long: String = (0..200).map(|i| format!("w{i} ")).collect();
        assert!(comment(&long, &h).unwrap().text.chars().count() <= MAX_COMMENT_CHARS);
    }

    #[test]
    fn an_explanation_that_loops_or_echoes_the_diff_is_refused() {
        // Both written by SmolLM2-135M for ripgrep's commit 020687a7.
        let looped = "The file crates/ignore/src/types.rs is a crate that contains a file crate that contains \
                      a file crate that contains a file crate that contains a file cr";
        assert_eq!(sentences(looped, 2, 400), Err(Refused::Repetitive));
        let echoed =
            "This change to crates/ignore/Cargo.toml: ```diff -28 | walkdir = \"2.4.0\" -29 | ``` The first line";
        assert_eq!(sentences(echoed, 2, 400), Err(Refused::QuotesCode));
        assert_eq!(
            sentences("It copies +  12 | let x = 1; back.", 2, 400),
            Err(Refused::QuotesCode)
        );
        let fine =
            "It raises the pool capacity from 8 to 64 in both crates. Lists of -1 or +2 items stay as they were.";
        assert_eq!(sentences(fine, 2, 400).unwrap(), fine);
    }

    #[test]
    fn only_a_closed_fence_counts() {
        assert_eq!(
            fenced_block("Here:\n```python\nx = 1\n  y\n```\nmore"),
            Some(vec!["x = 1".into(), "  y".into()])
        );
        assert_eq!(
            fenced_block("````\na\n```\nb\n````"),
            Some(vec!["a".into(), "```".into(), "b".into()])
        );
        assert_eq!(fenced_block("```\nx = 1\n"), None, "ran out of tokens");
        assert_eq!(fenced_block("no code"), None);
    }

    #[test]
    fn a_rewrite_may_change_only_added_lines() {
        let h = hunk("@@ -1,2 +1,4 @@", " a\n+b\n+c\n d");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let e = rewrite_edits(&h, &s(&["a", "B", "c", "d"])).unwrap();
        assert_eq!(
            e,
            vec![LineEdit {
                line: 1,
                new: Some("B".into())
            }]
        );
        let e = rewrite_edits(&h, &s(&["a", "c", "d"])).unwrap();
        assert_eq!(e, vec![LineEdit { line: 1, new: None }]);
        // An inserted line joins the added line before it.
        let e = rewrite_edits(&h, &s(&["a", "b", "c", "x", "d"])).unwrap();
        assert_eq!(
            e,
            vec![LineEdit {
                line: 2,
                new: Some("c\nx".into())
            }]
        );
        assert_eq!(rewrite_edits(&h, &s(&["A", "b", "c", "d"])), Err(Refused::OutsideHunk));
        assert!(
            rewrite_edits(&h, &s(&["a", "b", "c"])).is_err(),
            "a context line dropped"
        );
        assert_eq!(rewrite_edits(&h, &s(&["a", "b", "c", "d"])), Err(Refused::NoOp));
        assert_eq!(rewrite_edits(&h, &s(&["a", "b\x1b", "c", "d"])), Err(Refused::BadText));
        // An answer that rewrites only the added run, with or without its context.
        let e = rewrite_edits(&h, &s(&["B", "C"])).unwrap();
        assert_eq!(e.len(), 2);
        let e = rewrite_edits(&h, &s(&["a", "B", "C"])).unwrap();
        assert_eq!(
            e,
            vec![
                LineEdit {
                    line: 1,
                    new: Some("B".into())
                },
                LineEdit {
                    line: 2,
                    new: Some("C".into())
                }
            ]
        );
        // Two context lines on each side, repeated in order around a rewritten run.
        let wide = hunk("@@ -1,4 +1,5 @@", " p\n q\n+b\n r\n s");
        let e = rewrite_edits(&wide, &s(&["p", "q", "B"])).unwrap();
        assert_eq!(
            e,
            vec![LineEdit {
                line: 2,
                new: Some("B".into())
            }]
        );
        let e = rewrite_edits(&wide, &s(&["q", "B", "r"])).unwrap();
        assert_eq!(
            e,
            vec![LineEdit {
                line: 2,
                new: Some("B".into())
            }]
        );
        // Between two context lines there is no added line to attach to.
        let only_ctx = hunk("@@ -1,3 +1,4 @@", " a\n b\n+c\n d");
        assert_eq!(
            rewrite_edits(&only_ctx, &s(&["a", "x", "b", "c", "d"])),
            Err(Refused::OutsideHunk)
        );
        // CRLF is kept on every written line.
        let crlf = hunk("@@ -1,1 +1,2 @@", " a\r\n+b\r");
        let e = rewrite_edits(&crlf, &s(&["a", "B", "C"])).unwrap();
        assert_eq!(e[0].new.as_deref(), Some("B\r\nC\r"));
    }

    #[test]
    fn search_replace_blocks_apply_exactly_once_or_not_at_all() {
        let answer = "src/a.py\n<<<<<<< SEARCH\nx = v[1:]\n=======\nx = v[0:]\n>>>>>>> REPLACE\n";
        let b = search_replace(answer, &["src/a.py", "b.py"]).unwrap();
        assert_eq!(b[0].path, "src/a.py");
        let content = "def f(v):\n    x = v[1:]\n";
        // Whole lines only: the indented line does not match "x = v[1:]" at its start.
        assert_eq!(
            apply_search_replace(content, "src/a.py", &[&b[0]]),
            Err(Refused::NotFound("src/a.py".into()))
        );
        let content = "x = v[1:]\nreturn x\n";
        assert_eq!(
            apply_search_replace(content, "src/a.py", &[&b[0]]).unwrap(),
            "x = v[0:]\nreturn x\n"
        );
        let twice = "x = v[1:]\nx = v[1:]\n";
        assert!(apply_search_replace(twice, "src/a.py", &[&b[0]]).is_err());
        let crlf = "x = v[1:]\r\nreturn x\r\n";
        assert_eq!(
            apply_search_replace(crlf, "src/a.py", &[&b[0]]).unwrap(),
            "x = v[0:]\r\nreturn x\r\n"
        );
        assert_eq!(search_replace("no blocks", &["a"]), Err(Refused::NoEdit));
        assert_eq!(
            search_replace("<<<<<<< SEARCH\nx\n=======\n", &["a"]),
            Err(Refused::NoEdit),
            "unclosed"
        );
        assert!(matches!(
            search_replace(
                "/etc/passwd\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE",
                &["a.py", "b.py"]
            ),
            Err(Refused::OtherFile(_))
        ));
    }

    #[test]
    fn a_whole_file_answer_must_keep_most_of_the_file() {
        let content = "a\nb\nc\nd\n";
        let b = whole_file("```\na\nB\nc\nd\n```", "f", content).unwrap();
        assert_eq!(apply_search_replace(content, "f", &[&b]).unwrap(), "a\nB\nc\nd\n");
        assert_eq!(whole_file("```\nx\ny\n```", "f", content), Err(Refused::Rewritten));
        assert_eq!(whole_file("```\na\nb\nc\nd\n```", "f", content), Err(Refused::NoOp));
        assert_eq!(whole_file("no block", "f", content), Err(Refused::NoBlock));
    }

    proptest::proptest! {
        // Model output is hostile: no answer makes the parsers panic.
        #[test]
        fn parsers_never_panic(answer in "(?s).{0,400}") {
            let h = hunk("@@ -1,2 +1,3 @@", " a\n+b\n c");
            if let Ok(c) = comment(&answer, &h) {
                proptest::prop_assert!(!c.text.chars().any(crate::chars::is_hidden));
            }
            if let Ok(t) = sentences(&answer, 3, 50) {
                proptest::prop_assert!(!t.chars().any(crate::chars::is_hidden) && t.chars().count() <= 50);
            }
            if let Some(b) = fenced_block(&answer) {
                let _ = rewrite_edits(&h, &b);
            }
            if let Ok(blocks) = search_replace(&answer, &["a", "b"]) {
                let _ = apply_search_replace("a\nb\n", "a", &blocks.iter().collect::<Vec<_>>());
            }
        }
    }
}
