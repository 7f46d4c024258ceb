//! The default suggestion generator: learned edit rules proposed in place, ranked by a
//! small candle network.
//!
//! Bug fixes are mostly small edits: a token replaced (`<` for `<=`), a token inserted
//! (`!`), a line deleted. `train::edits` mines such rules from real fixes (the commits
//! with `fix: true`), keeping those seen at least twice; this module enumerates every
//! rule that applies to a hunk's added lines, plus line deletions, describes each
//! candidate by a few features (the rule's frequency, how specific it is, what kind of
//! edit it is) and ranks them with a two-layer network trained on which candidate the
//! human fix actually was (softmax over a hunk's candidates). The result is a
//! probability per candidate.
//!
//! It only ever edits or deletes the hunk's added lines: context and removed lines are
//! never touched, and no line is invented. It does not check that a candidate applies
//! to the file, re-score it or rank it by risk (see `suggest.rs`).
//!
//! Files: `generator.json` (the rules and the network's sizes) and
//! `generator.safetensors` (the network), embedded from `weights/` like the risk model.

use crate::diff::{Hunk, LineKind};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const CONFIG: &str = "generator.json";
pub const WEIGHTS: &str = "generator.safetensors";
pub const N_EDIT_FEATURES: usize = 20;

/// Key prefix of an insertion rule: "insert `new` before the token after this marker".
const INSERT: char = '\u{1}';
/// The end of a line, as the anchor of an insertion.
const EOL: &str = "\u{1}$";
/// Any word (identifier, keyword, number), as the anchor of an insertion.
pub const BEFORE_WORD: &str = "\u{1}\u{2}";
/// Hunks adding at most this many lines may get "delete them" as a suggestion.
const MAX_REVERT_LINES: usize = 2;
/// Identifiers from the hunk tried in place of a word, per word.
const COPIES_PER_WORD: usize = 6;
const MAX_RULE_TOKENS: usize = 3;
const MAX_RULE_CHARS: usize = 40;
/// Values tried per rule key (the most frequent first).
const VALUES_PER_KEY: usize = 6;
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
const MAX_CONFIG_BYTES: u64 = 16 << 20;
const MAX_RULES: usize = 200_000;
const MAX_HIDDEN: usize = 1024;

/// A learned rewrite: `old` (one to three tokens, or an insertion anchor) becomes `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub old: String,
    pub new: String,
    pub count: u32,
    /// In how many projects it was seen: a rule from one project is used only where the
    /// names it writes already occur in the hunk.
    pub projects: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditConfig {
    pub version: u32,
    pub n_features: usize,
    pub hidden: usize,
    /// Where the rules were mined (for `describe`).
    pub trained_on: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum EditLoadError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: invalid generator: {msg}")]
    Invalid { path: String, msg: String },
}

impl EditConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!("version {} (this build reads version 1)", self.version));
        }
        if self.n_features != N_EDIT_FEATURES {
            return Err(format!("n_features {} (expected {N_EDIT_FEATURES})", self.n_features));
        }
        if self.hidden == 0 || self.hidden > MAX_HIDDEN {
            return Err(format!("hidden {} (1..={MAX_HIDDEN})", self.hidden));
        }
        if self.rules.len() > MAX_RULES {
            return Err(format!("{} rules (at most {MAX_RULES})", self.rules.len()));
        }
        for r in &self.rules {
            if r.old.is_empty() || r.old.chars().count() > MAX_RULE_CHARS + 2 || r.new.chars().count() > MAX_RULE_CHARS
            {
                return Err(format!("rule {:?} -> {:?} is empty or too long", r.old, r.new));
            }
            // Tab too: a rule writes a few tokens within a line, never its layout.
            if r.new.chars().any(|c| c == '\t' || crate::chars::is_hidden(c)) {
                return Err(format!(
                    "rule {:?} -> {:?} would write a line break or marker",
                    r.old, r.new
                ));
            }
        }
        Ok(())
    }
}

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
    /// A word replaced by a similar identifier found elsewhere in the hunk.
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

/// Splits a line into tokens that concatenate back to it exactly: words, runs of
/// whitespace, known multi-character operators, and single characters.
pub fn lex(line: &str) -> Vec<&str> {
    const OPS: [&str; 24] = [
        "<<=", ">>=", "===", "!==", "...", "->", "=>", "::", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "+=",
        "-=", "*=", "/=", "<<", ">>", "?.", "??",
    ];
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let len = if c.is_alphanumeric() || c == '_' {
            rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())
        } else if c.is_whitespace() {
            rest.find(|c: char| !c.is_whitespace()).unwrap_or(rest.len())
        } else if let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) {
            op.len()
        } else {
            c.len_utf8()
        };
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    out
}

/// The smallest token-level edit from `old` to `new` as a rule (old key, new text), if it
/// is small: at most three tokens on each side, not whitespace only.
pub fn edit_rule(old: &str, new: &str) -> Option<(String, String)> {
    let (a, b) = (lex(old), lex(new));
    let mut p = 0;
    while p < a.len() && p < b.len() && a[p] == b[p] {
        p += 1;
    }
    let mut s = 0;
    while s < a.len() - p && s < b.len() - p && a[a.len() - 1 - s] == b[b.len() - 1 - s] {
        s += 1;
    }
    let (old_mid, new_mid) = (&a[p..a.len() - s], &b[p..b.len() - s]);
    if old_mid.is_empty() && new_mid.is_empty() {
        return None;
    }
    if old_mid.len() > MAX_RULE_TOKENS || new_mid.len() > MAX_RULE_TOKENS {
        return None;
    }
    let (o, n) = (old_mid.concat(), new_mid.concat());
    if o.trim().is_empty() && n.trim().is_empty() {
        return None;
    }
    if o.chars().count() > MAX_RULE_CHARS || n.chars().count() > MAX_RULE_CHARS {
        return None;
    }
    let key = if old_mid.is_empty() {
        match a.get(p) {
            Some(next) => format!("{INSERT}{next}"),
            None => EOL.to_string(),
        }
    } else {
        o
    };
    Some((key, n))
}

fn is_word(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '_')
}

fn is_identifier(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') && t.len() > 1
}

/// The rules an edit teaches: the exact one, and for an insertion before a word also the
/// same insertion before any word.
pub fn edit_rules(old: &str, new: &str) -> Vec<(String, String)> {
    let Some((key, value)) = edit_rule(old, new) else {
        return Vec::new();
    };
    let general = key
        .strip_prefix(INSERT)
        .filter(|next| is_word(next))
        .map(|_| (BEFORE_WORD.to_string(), value.clone()));
    std::iter::once((key, value)).chain(general).collect()
}

/// Character similarity of two names in [0, 1]: shared prefix and suffix over the longer length.
fn name_similarity(a: &str, b: &str) -> f32 {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let p = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
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

/// Rules by key, most frequent value first, with each key's total count.
pub struct RuleIndex {
    by_key: HashMap<String, (u32, Vec<(String, u32)>)>,
    /// Rules seen in one project only (their new text must name something already in the hunk).
    local: std::collections::HashSet<(String, String)>,
}

impl RuleIndex {
    pub fn new(rules: &[Rule]) -> RuleIndex {
        let mut by_key: HashMap<String, (u32, Vec<(String, u32)>)> = HashMap::new();
        let local = rules
            .iter()
            .filter(|r| r.projects < 2)
            .map(|r| (r.old.clone(), r.new.clone()))
            .collect();
        for r in rules {
            let e = by_key.entry(r.old.clone()).or_default();
            e.0 = e.0.saturating_add(r.count);
            e.1.push((r.new.clone(), r.count));
        }
        for (_, vals) in by_key.values_mut() {
            vals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            vals.truncate(VALUES_PER_KEY);
        }
        RuleIndex { by_key, local }
    }

    /// A one-project rule applies only when every name it writes already occurs in the hunk.
    fn allowed(&self, key: &str, value: &str, hunk_text: &str) -> bool {
        !self.local.contains(&(key.to_string(), value.to_string()))
            || lex(value)
                .iter()
                .filter(|t| is_identifier(t))
                .all(|t| hunk_text.contains(t))
    }

    fn get(&self, key: &str) -> Option<&(u32, Vec<(String, u32)>)> {
        self.by_key.get(key)
    }
}

/// Every candidate edit of the hunk's added lines, deduplicated by result.
pub fn enumerate(hunk: &Hunk, rules: &RuleIndex) -> Vec<Proposal> {
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
    let mut names: Vec<(&str, usize)> = names.into_iter().collect();
    names.sort();
    names.truncate(MAX_NAMES);
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
                for (rank, (sim, name, count)) in similar.into_iter().take(COPIES_PER_WORD).enumerate() {
                    let mut f = base(Op::Copy, 1);
                    f[7] = rank as f32 / COPIES_PER_WORD as f32;
                    f[15] = line_len;
                    f[18] = sim;
                    f[19] = (1.0 + count as f32).ln();
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
            if let Ok(n) = toks[j].parse::<u32>() {
                if toks[j].len() <= 6 {
                    for m in [n.checked_add(1), n.checked_sub(1)].into_iter().flatten() {
                        let mut f = base(Op::Number, 1);
                        f[15] = line_len;
                        f[18] = (n == 0 || m == 0) as u8 as f32;
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

/// The ranker: features -> hidden (ReLU) -> score; probabilities are a softmax over a hunk's candidates.
pub struct Ranker {
    l1: Linear,
    l2: Linear,
}

impl Ranker {
    pub fn new(hidden: usize, vb: VarBuilder) -> candle_core::Result<Ranker> {
        Ok(Ranker {
            l1: linear(N_EDIT_FEATURES, hidden, vb.pp("l1"))?,
            l2: linear(hidden, 1, vb.pp("l2"))?,
        })
    }

    pub fn expected_tensors(hidden: usize) -> Vec<(String, Vec<usize>)> {
        vec![
            ("l1.bias".into(), vec![hidden]),
            ("l1.weight".into(), vec![hidden, N_EDIT_FEATURES]),
            ("l2.bias".into(), vec![1]),
            ("l2.weight".into(), vec![1, hidden]),
        ]
    }

    /// `features`: (n, N_EDIT_FEATURES) -> scores (n).
    pub fn forward(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.l2.forward(&self.l1.forward(features)?.relu()?)?.squeeze(1)
    }
}

pub fn features_tensor(proposals: &[Proposal], device: &Device) -> candle_core::Result<Tensor> {
    let flat: Vec<f32> = proposals.iter().flat_map(|p| p.features).collect();
    Tensor::from_vec(flat, (proposals.len(), N_EDIT_FEATURES), device)
}

/// A ranked candidate: its edits and the generator's probability that it is the fix.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub edits: Vec<LineEdit>,
    pub probability: f32,
}

pub struct EditModel {
    pub config: EditConfig,
    pub rules: RuleIndex,
    pub ranker: Ranker,
    origin: String,
}

#[cfg(has_default_generator)]
static DEFAULT: (&[u8], &[u8]) = (
    include_bytes!("../../weights/generator.json"),
    include_bytes!("../../weights/generator.safetensors"),
);

impl EditModel {
    pub fn from_parts(config: EditConfig, ranker: Ranker, origin: &str) -> EditModel {
        EditModel {
            rules: RuleIndex::new(&config.rules),
            config,
            ranker,
            origin: origin.into(),
        }
    }

    /// The raw files of the embedded generator (config, weights), if this build has one.
    pub fn embedded_bytes() -> Option<(&'static [u8], &'static [u8])> {
        #[cfg(has_default_generator)]
        {
            Some(DEFAULT)
        }
        #[cfg(not(has_default_generator))]
        None
    }

    /// The generator embedded from `weights/`, if this build has one.
    pub fn embedded() -> Option<Result<EditModel, EditLoadError>> {
        #[cfg(has_default_generator)]
        {
            Some(Self::from_bytes(
                DEFAULT.0,
                DEFAULT.1,
                "embedded default generator (weights/)",
            ))
        }
        #[cfg(not(has_default_generator))]
        None
    }

    /// The generator in a model directory (`--model DIR`), if the directory has one.
    pub fn read_dir(dir: &Path) -> Option<Result<EditModel, EditLoadError>> {
        let (c, w) = (dir.join(CONFIG), dir.join(WEIGHTS));
        if !c.exists() && !w.exists() {
            return None;
        }
        let read = |p: &Path, limit: u64| -> Result<Vec<u8>, EditLoadError> {
            let io = |source| EditLoadError::Io {
                path: p.display().to_string(),
                source,
            };
            let size = std::fs::metadata(p).map_err(io)?.len();
            if size > limit {
                return Err(EditLoadError::Invalid {
                    path: p.display().to_string(),
                    msg: format!("{size} bytes, more than the {limit} allowed"),
                });
            }
            std::fs::read(p).map_err(io)
        };
        Some((|| {
            let config = read(&c, MAX_CONFIG_BYTES)?;
            let weights = read(&w, MAX_CONFIG_BYTES)?;
            Self::from_bytes(&config, &weights, &dir.display().to_string())
        })())
    }

    /// Validates both files before building anything: strict config with bounded sizes,
    /// exact tensor names and shapes, finite values.
    pub fn from_bytes(config: &[u8], weights: &[u8], origin: &str) -> Result<EditModel, EditLoadError> {
        let bad = |file: &str, msg: String| EditLoadError::Invalid {
            path: format!("{origin}/{file}"),
            msg,
        };
        let cfg: EditConfig = serde_json::from_slice(config).map_err(|e| bad(CONFIG, e.to_string()))?;
        cfg.validate().map_err(|m| bad(CONFIG, m))?;
        let st = safetensors::SafeTensors::deserialize(weights).map_err(|e| bad(WEIGHTS, e.to_string()))?;
        let expected = Ranker::expected_tensors(cfg.hidden);
        if st.names().len() != expected.len() {
            return Err(bad(
                WEIGHTS,
                format!("holds {} tensors, expected {}", st.names().len(), expected.len()),
            ));
        }
        for (name, shape) in &expected {
            let view = st
                .tensor(name)
                .map_err(|_| bad(WEIGHTS, format!("missing tensor {name:?}")))?;
            if view.shape() != shape.as_slice() || view.dtype() != safetensors::Dtype::F32 {
                return Err(bad(
                    WEIGHTS,
                    format!(
                        "tensor {name:?} is {:?} {:?}, expected F32 {shape:?}",
                        view.dtype(),
                        view.shape()
                    ),
                ));
            }
        }
        let tensors =
            candle_core::safetensors::load_buffer(weights, &Device::Cpu).map_err(|e| bad(WEIGHTS, e.to_string()))?;
        for (name, t) in &tensors {
            let values = t
                .flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .map_err(|e| bad(WEIGHTS, e.to_string()))?;
            if !values.iter().all(|v| v.is_finite()) {
                return Err(bad(WEIGHTS, format!("tensor {name:?} holds NaN or infinite values")));
            }
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let ranker = Ranker::new(cfg.hidden, vb).map_err(|e| bad(WEIGHTS, e.to_string()))?;
        Ok(Self::from_parts(cfg, ranker, origin))
    }
}

impl super::Generator for EditModel {
    fn describe(&self) -> String {
        format!(
            "edit rules ({} mined from {}) ranked by a {}-unit network, {}",
            self.config.rules.len(),
            self.config.trained_on,
            self.config.hidden,
            self.origin
        )
    }

    fn propose(&self, hunk: &Hunk, max: usize) -> anyhow::Result<Vec<Candidate>> {
        let proposals = enumerate(hunk, &self.rules);
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        let scores = self
            .ranker
            .forward(&features_tensor(&proposals, &Device::Cpu)?)?
            .to_vec1::<f32>()?;
        let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f32 = scores.iter().map(|s| (s - top).exp()).sum();
        let mut ranked: Vec<Candidate> = proposals
            .into_iter()
            .zip(&scores)
            .map(|(p, s)| Candidate {
                edits: p.edits,
                probability: (s - top).exp() / z,
            })
            .collect();
        ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        ranked.truncate(max);
        Ok(ranked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hunk(body: &str) -> Hunk {
        let old = body.lines().filter(|l| !l.starts_with('+')).count();
        let new = body.lines().filter(|l| !l.starts_with('-')).count();
        Hunk::parse(&format!("@@ -1,{old} +1,{new} @@"), body).unwrap()
    }

    #[test]
    fn lexing_is_lossless() {
        for line in ["  if (a <= b && !c) {\r", "x->y::z", "", "é = ü + 1;", "\t// note"] {
            assert_eq!(lex(line).concat(), line);
        }
        assert_eq!(lex("a<=b"), vec!["a", "<=", "b"]);
    }

    #[test]
    fn minimal_rules() {
        assert_eq!(edit_rule("if (a < b)", "if (a <= b)"), Some(("<".into(), "<=".into())));
        assert_eq!(edit_rule("if (x)", "if (!x)"), Some(("\u{1}x".into(), "!".into())));
        assert_eq!(edit_rule("a  = 1", "a = 1"), None, "whitespace only");
        assert_eq!(edit_rule("same", "same"), None);
        assert_eq!(edit_rule("a b c d e", "v w x y z"), None, "too big");
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
        let p = enumerate(&h, &rules);
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
            !reverts(&enumerate(&three, &rules), 3),
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
        let p = enumerate(&h, &rules);
        assert!(p.len() < 100, "{} candidates", p.len());
        assert!(p.iter().all(|p| p.edits.iter().all(|e| e.line != 1 || e.new.is_none())));
    }

    #[test]
    fn a_hunk_without_added_lines_gets_nothing() {
        assert!(enumerate(&hunk(" a\n-b\n c"), &RuleIndex::new(&[])).is_empty());
    }

    #[test]
    fn hostile_configs_are_refused() {
        let cfg = |rules: Vec<Rule>, hidden| EditConfig {
            version: 1,
            n_features: N_EDIT_FEATURES,
            hidden,
            trained_on: "t".into(),
            rules,
        };
        assert!(cfg(vec![], 0).validate().is_err());
        assert!(cfg(vec![], 1 << 20).validate().is_err());
        let nl = Rule {
            old: "a".into(),
            new: "b\nc".into(),
            count: 1,
            projects: 1,
        };
        assert!(cfg(vec![nl], 8).validate().is_err());
        assert!(cfg(vec![], 8).validate().is_ok());
        let json = serde_json::to_vec(&cfg(vec![], 8)).unwrap();
        assert!(EditModel::from_bytes(&json, b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk", "mem").is_err());
        assert!(EditModel::from_bytes(b"{\"version\":1,\"surprise\":1}", &[], "mem").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        // Hostile generator files from a model directory: an error, never a panic.
        #[test]
        fn arbitrary_generator_files_never_panic(
            config in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            weights in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let _ = EditModel::from_bytes(&config, &weights, "mem");
        }
    }
}
