//! Candidates: every rule of the index that applies to a hunk's added lines, plus similar
//! identifiers from the hunk and from the rest of its file, off-by-one integers and line
//! deletions, each with the features the ranker sees. Context and removed lines are never
//! touched; the file is only read for its names. It neither ranks (see `ranker`) nor checks a
//! candidate against the file (see `suggest/`).

use super::rules::{BEFORE_WORD, EOL, INSERT, MAX_RULE_TOKENS, RuleIndex, VALUES_PER_KEY, is_identifier, is_word, lex};
use crate::diff::{Hunk, LineKind};
use serde::Serialize;
use std::collections::HashMap;

/// The features of a candidate that the ranker sees (see `enumerate` for each one).
pub const N_EDIT_FEATURES: usize = 22;
/// Hunks adding at most this many lines may get "delete them" as a suggestion.
const MAX_REVERT_LINES: usize = 2;
/// Identifiers from the hunk tried in place of a word, per word.
const COPIES_PER_WORD: usize = 6;
/// Identifiers found in the file but not in the hunk tried in place of a word, per word
/// (the most similar; a fix often names the right constant or field of the same file).
const FILE_COPIES_PER_WORD: usize = 6;
/// The file's most frequent identifiers considered, at most, and the bytes of it read.
const MAX_FILE_NAMES: usize = 4000;
const MAX_FILE_BYTES: usize = 1 << 20;
/// Added lines edited per hunk at most; beyond that only deletions are proposed.
const MAX_EDIT_LINES: usize = 30;
/// Lines longer than this (characters or tokens) are only ever deleted, never edited: a
/// minified or encoded line would otherwise give candidates by the thousand.
const MAX_EDIT_CHARS: usize = 400;
const MAX_EDIT_TOKENS: usize = 120;
/// Names from the hunk compared with each word, at most (the first in sorted order).
const MAX_NAMES: usize = 200;
/// Candidates per hunk, at most.
const MAX_PROPOSALS: usize = 4000;
/// One line of a hunk rewritten (`Some`) or deleted (`None`); `line` indexes `Hunk::lines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineEdit {
    pub line: usize,
    pub new: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    DeleteLine,
    Replace,
    ReplaceAll,
    Insert,
    /// A word replaced by a similar identifier found elsewhere in the hunk or in its file.
    Copy,
    /// An integer literal off by one.
    Number,
}

/// A candidate before ranking: its edits and the features the ranker sees.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub op: Op,
    pub edits: Vec<LineEdit>,
    pub features: [f32; N_EDIT_FEATURES],
}

/// Character similarity of two names in [0, 1]: shared prefix and suffix over the longer length.
fn name_similarity(a: &str, b: &str) -> f32 {
    if a.is_ascii() && b.is_ascii() {
        return similarity_of(a.as_bytes(), b.as_bytes());
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    similarity_of(&a, &b)
}

fn similarity_of<T: PartialEq>(a: &[T], b: &[T]) -> f32 {
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let s = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
        .min(a.len().min(b.len()) - p);
    (p + s) as f32 / a.len().max(b.len()).max(1) as f32
}

/// A line's text without its `\r` (CRLF files), and the terminator to put back.
fn split_cr(text: &str) -> (&str, &str) {
    match text.strip_suffix('\r') {
        Some(t) => (t, "\r"),
        None => (text, ""),
    }
}

fn is_comment_or_blank(text: &str) -> bool {
    let t = text.trim_start();
    t.is_empty() || ["//", "#", "/*", "*", "--", ";"].iter().any(|p| t.starts_with(p))
}

/// What the text around a hunk (its file, else the hunk) tells a candidate: its identifiers
/// with their counts, most frequent first (at most `MAX_FILE_NAMES`), and the pairs of
/// neighbouring tokens on its lines (blanks left out): a name that replaces a word and then
/// stands beside the same neighbours as elsewhere reads like the file's own code. Read from the
/// first `MAX_FILE_BYTES`; over-long lines are passed over.
struct Vocabulary<'a> {
    names: Vec<(&'a str, usize)>,
    pairs: std::collections::HashSet<(&'a str, &'a str)>,
}

fn vocabulary(text: &str) -> Vocabulary<'_> {
    let mut end = text.len().min(MAX_FILE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut pairs = std::collections::HashSet::new();
    for line in text[..end].lines().filter(|l| l.len() <= MAX_EDIT_CHARS) {
        let toks: Vec<&str> = lex(line).into_iter().filter(|t| !t.trim().is_empty()).collect();
        for t in toks.iter().filter(|t| is_identifier(t)) {
            *counts.entry(t).or_default() += 1;
        }
        pairs.extend(toks.windows(2).map(|w| (w[0], w[1])));
    }
    let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    names.truncate(MAX_FILE_NAMES);
    Vocabulary { names, pairs }
}

/// Every candidate edit of the hunk's added lines, deduplicated by result. `file`, the text of
/// the file the added lines are in, when known, adds its names as replacements for a word.
pub fn enumerate(hunk: &Hunk, rules: &RuleIndex, file: Option<&str>) -> Vec<Proposal> {
    let added: Vec<usize> = (0..hunk.lines.len())
        .filter(|&i| hunk.lines[i].kind == LineKind::Added)
        .collect();
    if added.is_empty() {
        return Vec::new();
    }
    let n_added = added.len() as f32;
    let all_text: String = hunk
        .lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out: Vec<Proposal> = Vec::new();
    let base = |op: Op, lines_changed: usize| {
        let mut f = [0f32; N_EDIT_FEATURES];
        f[match op {
            Op::DeleteLine => 1,
            Op::Replace => 2,
            Op::ReplaceAll => 3,
            Op::Insert => 4,
            Op::Copy => 16,
            Op::Number => 17,
        }] = 1.0;
        f[12] = lines_changed as f32 / n_added;
        f[13] = (1.0 + n_added).ln();
        f
    };
    // Deleting every added line reverts the hunk rather than fixing it: proposed only for
    // small hunks (a stray call, a debug line), where that is what fixes often do.
    if added.len() <= MAX_REVERT_LINES {
        let mut f = base(Op::DeleteLine, added.len());
        f[0] = 1.0;
        f[14] = added
            .iter()
            .filter(|&&i| is_comment_or_blank(&hunk.lines[i].text))
            .count() as f32
            / n_added;
        out.push(Proposal {
            op: Op::DeleteLine,
            edits: added.iter().map(|&i| LineEdit { line: i, new: None }).collect(),
            features: f,
        });
    }
    if added.len() > 1 {
        for &i in &added {
            let mut f = base(Op::DeleteLine, 1);
            f[14] = is_comment_or_blank(&hunk.lines[i].text) as u8 as f32;
            f[15] = (1.0 + lex(&hunk.lines[i].text).len() as f32).ln();
            out.push(Proposal {
                op: Op::DeleteLine,
                edits: vec![LineEdit { line: i, new: None }],
                features: f,
            });
        }
    }
    let rule_features =
        |f: &mut [f32; N_EDIT_FEATURES], key: &str, total: u32, rank: usize, value: &str, count: u32| {
            f[5] = (1.0 + count as f32).ln();
            f[6] = count as f32 / total.max(1) as f32;
            f[7] = rank as f32 / VALUES_PER_KEY as f32;
            f[8] = (1.0 + total as f32).ln();
            f[9] = (!value.trim().is_empty() && all_text.contains(value.trim())) as u8 as f32;
            let k = key.trim_start_matches(INSERT);
            f[10] = !k.chars().any(|c| c.is_alphanumeric()) as u8 as f32;
            f[11] = (!k.is_empty() && k.chars().all(|c| c.is_ascii_digit())) as u8 as f32;
        };
    let mut names: HashMap<&str, usize> = HashMap::new();
    for l in &hunk.lines {
        for t in lex(split_cr(&l.text).0) {
            if is_identifier(t) {
                *names.entry(t).or_default() += 1;
            }
        }
    }
    // Names of the file not in the hunk, by first and by last byte: a name shares neither
    // with a word has similarity 0 to it and is never proposed.
    let around = vocabulary(file.unwrap_or(&all_text));
    let mut by_end: HashMap<(bool, u8), Vec<(&str, usize)>> = HashMap::new();
    for &(n, c) in &around.names {
        if names.contains_key(n) {
            continue;
        }
        let (first, last) = (n.as_bytes()[0], n.as_bytes()[n.len() - 1]);
        by_end.entry((true, first)).or_default().push((n, c));
        if last != first {
            by_end.entry((false, last)).or_default().push((n, c));
        }
    }
    let mut names: Vec<(&str, usize)> = names.into_iter().collect();
    names.sort();
    names.truncate(MAX_NAMES);
    let mut file_similar: HashMap<&str, Vec<(f32, &str, usize)>> = HashMap::new();
    let mut single_tokens: HashMap<&str, usize> = HashMap::new();
    for &i in added.iter().take(MAX_EDIT_LINES) {
        let (text, cr) = split_cr(&hunk.lines[i].text);
        if text.len() > MAX_EDIT_CHARS || out.len() >= MAX_PROPOSALS {
            continue;
        }
        let toks = lex(text);
        if toks.len() > MAX_EDIT_TOKENS {
            continue;
        }
        let line_len = (1.0 + toks.len() as f32).ln();
        // Whether the new text, put in place of toks[from..to], has on its left and on its right
        // the neighbours it has somewhere in the file (or the hunk): the edit reads like code
        // the file already holds.
        let fits = |f: &mut [f32; N_EDIT_FEATURES], from: usize, to: usize, new: &str| {
            let before = toks[..from].iter().rev().find(|t| !t.trim().is_empty()).copied();
            let after = toks[to..].iter().find(|t| !t.trim().is_empty()).copied();
            let new: Vec<&str> = lex(new).into_iter().filter(|t| !t.trim().is_empty()).collect();
            let (first, last) = match (new.first(), new.last()) {
                (Some(a), Some(b)) => (Some(*a), Some(*b)),
                _ => (after, before),
            };
            let seen =
                |a: Option<&str>, b: Option<&str>| a.zip(b).is_some_and(|p| around.pairs.contains(&p)) as u8 as f32;
            f[20] = seen(before, first);
            f[21] = seen(last, after);
        };
        let offsets: Vec<usize> = toks
            .iter()
            .scan(0, |o, t| {
                let at = *o;
                *o += t.len();
                Some(at)
            })
            .collect();
        for j in 0..toks.len() {
            if toks[j].chars().any(|c| c.is_alphanumeric() || c == '_') {
                *single_tokens.entry(toks[j]).or_default() += 1;
            }
            for w in 1..=MAX_RULE_TOKENS.min(toks.len() - j) {
                let key = toks[j..j + w].concat();
                let Some((total, values)) = rules.get(&key) else {
                    continue;
                };
                let (start, end) = (offsets[j], offsets[j] + key.len());
                for (rank, (value, count)) in values.iter().enumerate() {
                    if !rules.allowed(&key, value, &all_text) {
                        continue;
                    }
                    let mut f = base(Op::Replace, 1);
                    rule_features(&mut f, &key, *total, rank, value, *count);
                    f[15] = line_len;
                    fits(&mut f, j, j + w, value);
                    out.push(Proposal {
                        op: Op::Replace,
                        edits: vec![LineEdit {
                            line: i,
                            new: Some(format!("{}{value}{}{cr}", &text[..start], &text[end..])),
                        }],
                        features: f,
                    });
                }
            }
        }
        for j in 0..toks.len() {
            let replace = |new: &str| {
                format!(
                    "{}{new}{}{cr}",
                    &text[..offsets[j]],
                    &text[offsets[j] + toks[j].len()..]
                )
            };
            if is_identifier(toks[j]) {
                let mut similar: Vec<(f32, &str, usize)> = names
                    .iter()
                    .filter(|(n, _)| *n != toks[j])
                    .map(|&(n, c)| (name_similarity(toks[j], n), n, c))
                    .collect();
                similar.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.2.cmp(&a.2)).then(a.1.cmp(b.1)));
                similar.truncate(COPIES_PER_WORD);
                let word = toks[j];
                let from_file = file_similar.entry(word).or_insert_with(|| {
                    let (first, last) = (word.as_bytes()[0], word.as_bytes()[word.len() - 1]);
                    let mut s: Vec<(f32, &str, usize)> = [(true, first), (false, last)]
                        .iter()
                        .filter_map(|k| by_end.get(k))
                        .flatten()
                        .filter(|(n, _)| *n != word)
                        .map(|&(n, c)| (name_similarity(word, n), n, c))
                        .filter(|s| s.0 > 0.0)
                        .collect();
                    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.2.cmp(&a.2)).then(a.1.cmp(b.1)));
                    s.dedup_by(|a, b| a.1 == b.1);
                    s.truncate(FILE_COPIES_PER_WORD);
                    s
                });
                let in_hunk = similar
                    .into_iter()
                    .enumerate()
                    .map(|(r, s)| (r, s, COPIES_PER_WORD, true));
                let in_file = from_file
                    .iter()
                    .copied()
                    .enumerate()
                    .map(|(r, s)| (r, s, FILE_COPIES_PER_WORD, false));
                for (rank, (sim, name, count), per_word, seen) in in_hunk.chain(in_file) {
                    let mut f = base(Op::Copy, 1);
                    f[7] = rank as f32 / per_word as f32;
                    // Whether the name occurs in the hunk (else only elsewhere in the file).
                    f[9] = seen as u8 as f32;
                    f[15] = line_len;
                    f[18] = sim;
                    f[19] = (1.0 + count as f32).ln();
                    fits(&mut f, j, j + 1, name);
                    out.push(Proposal {
                        op: Op::Copy,
                        edits: vec![LineEdit {
                            line: i,
                            new: Some(replace(name)),
                        }],
                        features: f,
                    });
                }
            }
            if let Ok(n) = toks[j].parse::<u32>()
                && toks[j].len() <= 6
            {
                for m in [n.checked_add(1), n.checked_sub(1)].into_iter().flatten() {
                    let mut f = base(Op::Number, 1);
                    f[15] = line_len;
                    f[18] = (n == 0 || m == 0) as u8 as f32;
                    fits(&mut f, j, j + 1, &m.to_string());
                    out.push(Proposal {
                        op: Op::Number,
                        edits: vec![LineEdit {
                            line: i,
                            new: Some(replace(&m.to_string())),
                        }],
                        features: f,
                    });
                }
            }
        }
        for j in 0..=toks.len() {
            let mut keys = vec![match toks.get(j) {
                Some(t) => format!("{INSERT}{t}"),
                None => EOL.to_string(),
            }];
            if toks.get(j).is_some_and(|t| is_word(t)) {
                keys.push(BEFORE_WORD.to_string());
            }
            let at = offsets.get(j).copied().unwrap_or(text.len());
            for key in keys {
                let Some((total, values)) = rules.get(&key) else {
                    continue;
                };
                for (rank, (value, count)) in values.iter().enumerate() {
                    if !rules.allowed(&key, value, &all_text) {
                        continue;
                    }
                    let mut f = base(Op::Insert, 1);
                    rule_features(&mut f, &key, *total, rank, value, *count);
                    f[15] = line_len;
                    f[18] = (key == BEFORE_WORD) as u8 as f32;
                    fits(&mut f, j, j, value);
                    out.push(Proposal {
                        op: Op::Insert,
                        edits: vec![LineEdit {
                            line: i,
                            new: Some(format!("{}{value}{}{cr}", &text[..at], &text[at..])),
                        }],
                        features: f,
                    });
                }
            }
        }
    }
    // A token renamed everywhere it occurs in the added lines (a wrong variable used twice).
    let mut repeated: Vec<(&str, usize)> = single_tokens.into_iter().filter(|&(_, n)| n > 1).collect();
    repeated.sort();
    for (tok, n) in repeated {
        if out.len() >= MAX_PROPOSALS {
            break;
        }
        let Some((total, values)) = rules.get(tok) else {
            continue;
        };
        for (rank, (value, count)) in values.iter().enumerate() {
            if !rules.allowed(tok, value, &all_text) {
                continue;
            }
            let edits: Vec<LineEdit> = added
                .iter()
                .take(MAX_EDIT_LINES)
                .filter_map(|&i| {
                    let (text, cr) = split_cr(&hunk.lines[i].text);
                    if text.len() > MAX_EDIT_CHARS {
                        return None;
                    }
                    let toks = lex(text);
                    toks.contains(&tok).then(|| LineEdit {
                        line: i,
                        new: Some(
                            toks.iter()
                                .map(|t| if *t == tok { value.as_str() } else { t })
                                .collect::<String>()
                                + cr,
                        ),
                    })
                })
                .collect();
            let mut f = base(Op::ReplaceAll, edits.len());
            rule_features(&mut f, tok, *total, rank, value, *count);
            f[15] = (1.0 + n as f32).ln();
            out.push(Proposal {
                op: Op::ReplaceAll,
                edits,
                features: f,
            });
        }
    }
    out.truncate(MAX_PROPOSALS);
    dedup(hunk, out)
}

/// Drops no-ops and keeps the first proposal of each distinct result.
fn dedup(hunk: &Hunk, proposals: Vec<Proposal>) -> Vec<Proposal> {
    let mut seen = std::collections::HashSet::new();
    proposals
        .into_iter()
        .filter(|p| {
            let changes = p
                .edits
                .iter()
                .any(|e| e.new.as_deref() != Some(hunk.lines[e.line].text.as_str()));
            changes && seen.insert(format!("{:?}", p.edits))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::edit::Rule;

    fn hunk(body: &str) -> Hunk {
        let old = body.lines().filter(|l| !l.starts_with('+')).count();
        let new = body.lines().filter(|l| !l.starts_with('-')).count();
        Hunk::parse(&format!("@@ -1,{old} +1,{new} @@"), body).unwrap()
    }

    #[test]
    fn enumerates_rules_deletions_and_keeps_crlf() {
        let rules = RuleIndex::new(&[
            Rule {
                old: "<".into(),
                new: "<=".into(),
                count: 5,
                projects: 2,
            },
            Rule {
                old: "\u{1}x".into(),
                new: "!".into(),
                count: 3,
                projects: 2,
            },
        ]);
        let h = hunk(" ctx\n+if (a < n) {\r\n+  if (x) y();\r\n ctx");
        let p = enumerate(&h, &rules, None);
        let results: Vec<Vec<LineEdit>> = p.iter().map(|p| p.edits.clone()).collect();
        assert!(results.contains(&vec![LineEdit {
            line: 1,
            new: Some("if (a <= n) {\r".into())
        }]));
        assert!(results.contains(&vec![LineEdit {
            line: 2,
            new: Some("  if (!x) y();\r".into())
        }]));
        let reverts = |p: &[Proposal], n: usize| {
            p.iter()
                .any(|p| p.edits.len() == n && p.edits.iter().all(|e| e.new.is_none()))
        };
        assert!(reverts(&p, 2), "a two-line hunk may be deleted");
        let three = hunk(" ctx\n+a();\n+b();\n+c();");
        assert!(
            !reverts(&enumerate(&three, &rules, None), 3),
            "a larger hunk is never reverted whole"
        );
        assert_eq!(
            p.iter().filter(|p| p.op == Op::DeleteLine).count(),
            3,
            "two single lines and the pair"
        );
        // Context lines are never edited.
        assert!(
            p.iter()
                .all(|p| p.edits.iter().all(|e| h.lines[e.line].kind == LineKind::Added))
        );
    }

    #[test]
    fn a_huge_line_is_only_ever_deleted() {
        // Regression: one minified 200 KB line gave millions of candidates (out of memory).
        let rules = RuleIndex::new(&[Rule {
            old: "a".into(),
            new: "b".into(),
            count: 9,
            projects: 2,
        }]);
        let line: String = (0..40_000).map(|i| format!("a{} ", i % 97)).collect();
        let h = hunk(&format!(" ctx\n+{line}\n+x = a;"));
        let p = enumerate(&h, &rules, None);
        assert!(p.len() < 100, "{} candidates", p.len());
        assert!(p.iter().all(|p| p.edits.iter().all(|e| e.line != 1 || e.new.is_none())));
    }

    #[test]
    fn names_from_the_rest_of_the_file_replace_a_similar_word() {
        let h = hunk(" ctx\n+return CURLE_OK;\n ctx");
        let file = "int f(void) {\n  if(!p)\n    return CURLE_OUT_OF_MEMORY;\n  return CURLE_OK;\n}\nint zzz;\n";
        let results = |file| -> Vec<String> {
            enumerate(&h, &RuleIndex::new(&[]), file)
                .into_iter()
                .filter_map(|p| p.edits[0].new.clone())
                .collect()
        };
        let with = results(Some(file));
        assert!(with.contains(&"return CURLE_OUT_OF_MEMORY;".to_string()), "{with:?}");
        assert!(
            !with.iter().any(|t| t.contains("zzz")),
            "a name sharing neither end with the word is never tried: {with:?}"
        );
        let without = results(None);
        assert!(!without.iter().any(|t| t.contains("OUT_OF_MEMORY")), "{without:?}");
        // A name that then stands beside its usual neighbours reads like the file's code.
        let file = format!("{file}x = CURLE_AGAIN + 1;\n");
        let p = enumerate(&h, &RuleIndex::new(&[]), Some(&file));
        let fit = |name: &str| {
            p.iter()
                .find(|p| p.edits[0].new.as_deref() == Some(&format!("return {name};")[..]))
                .map(|p| (p.features[20], p.features[21]))
        };
        assert_eq!(fit("CURLE_OUT_OF_MEMORY"), Some((1.0, 1.0)));
        assert_eq!(fit("CURLE_AGAIN"), Some((0.0, 0.0)));
        // The two kinds of copy differ in the feature the ranker sees.
        let p = enumerate(
            &hunk(" x = alpha_one;\n+y = alpha_two;"),
            &RuleIndex::new(&[]),
            Some("alpha_six"),
        );
        let seen = |name: &str| {
            p.iter()
                .find(|p| p.op == Op::Copy && p.edits[0].new.as_deref() == Some(&format!("y = {name};")[..]))
                .map(|p| p.features[9])
        };
        assert_eq!(seen("alpha_one"), Some(1.0));
        assert_eq!(seen("alpha_six"), Some(0.0));
    }

    #[test]
    fn a_hunk_without_added_lines_gets_nothing() {
        assert!(enumerate(&hunk(" a\n-b\n c"), &RuleIndex::new(&[]), None).is_empty());
    }
}
