//! Facts about the code a change touches, from the bug fixes of the repository's history:
//! "3 bug fixes changed this file in the last year (latest 1a2b3c4 'fix …')". Only what
//! was mined, with the fixes' full ids as evidence. Pure.

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
}
