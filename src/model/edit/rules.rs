//! Edit rules: lexing a line into tokens that concatenate back to it, the smallest
//! token-level rule an edit teaches (what `train::edits` mines from fixes), and the index
//! of rules by key that the candidates look up. It applies no rule to a hunk (see `candidates`).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Key prefix of an insertion rule: "insert `new` before the token after this marker".
pub(super) const INSERT: char = '\u{1}';
/// The end of a line, as the anchor of an insertion.
pub(super) const EOL: &str = "\u{1}$";
/// Any word (identifier, keyword, number), as the anchor of an insertion.
pub const BEFORE_WORD: &str = "\u{1}\u{2}";
pub(super) const MAX_RULE_TOKENS: usize = 3;
pub(super) const MAX_RULE_CHARS: usize = 40;
/// Values tried per rule key (the most frequent first).
pub(super) const VALUES_PER_KEY: usize = 6;

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

pub(super) fn is_word(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '_')
}

pub(super) fn is_identifier(t: &str) -> bool {
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
    pub(super) fn allowed(&self, key: &str, value: &str, hunk_text: &str) -> bool {
        !self.local.contains(&(key.to_string(), value.to_string()))
            || lex(value)
                .iter()
                .filter(|t| is_identifier(t))
                .all(|t| hunk_text.contains(t))
    }

    pub(super) fn get(&self, key: &str) -> Option<&(u32, Vec<(String, u32)>)> {
        self.by_key.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
