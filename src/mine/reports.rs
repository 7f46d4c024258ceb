//! Bug reports from an issue tracker's export, so that a commit naming a bug report is a
//! fix the way issue-linked SZZ finds it (ApacheJIT's labels come from JIRA links), beside
//! the message keywords of `Patterns`.
//!
//! Reads three exports, told apart by their first character:
//! - GitHub's JSON, as `gh issue list --label bug --state closed --json number,title,closedAt`
//!   writes it: every issue listed is a bug report (`#12`); with a `labels` field, only
//!   those with a label naming "bug" are;
//! - JIRA's JSON (a search result `{"issues": [...]}` or a list), keys from `key`, types
//!   from `fields.issuetype.name`, `issuetype` or `type`;
//! - JIRA's CSV export, with an `Issue key` column and, optionally, `Issue Type`.
//!
//! An export that gives types names the other issues too: a commit that names only those
//! (an improvement, a task) is not a fix, whatever its words. It reads the export only; it
//! does not reach a tracker.

use regex::Regex;
use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct ReportsError {
    pub path: String,
    pub msg: String,
}

/// The issues of an export: which are bug reports, and which are known to be something else.
#[derive(Debug, Default, Clone)]
pub struct BugReports {
    bugs: HashSet<String>,
    others: HashSet<String>,
}

/// `#12`, `GH-12`, `…/issues/12`: a GitHub issue number.
static GITHUB: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:(?:^|[^\w&/])#|\bgh-|/issues/)(\d+)\b").expect("static pattern"));
/// `KAFKA-1234` (any case): a JIRA key.
static JIRA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b([A-Za-z][A-Za-z0-9_]*-\d+)\b").expect("static pattern"));

impl BugReports {
    /// Reads an export file (see the module's text for the formats).
    pub fn read(path: &Path) -> Result<BugReports, ReportsError> {
        let err = |msg: String| ReportsError {
            path: path.display().to_string(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
        let reports = BugReports::parse(&text).map_err(err)?;
        if reports.bugs.is_empty() {
            return Err(err(format!(
                "names no bug report ({} other issues): for GitHub, export with `--label bug`; for JIRA, include the Issue Type column",
                reports.others.len()
            )));
        }
        Ok(reports)
    }

    /// Parses an export's text: JSON when it starts with `[` or `{`, else CSV.
    pub fn parse(text: &str) -> Result<BugReports, String> {
        let text = text.trim_start_matches('\u{feff}');
        match text.trim_start().chars().next() {
            Some('[' | '{') => BugReports::parse_json(text),
            Some(_) => BugReports::parse_csv(text),
            None => Err("empty file".into()),
        }
    }

    fn parse_json(text: &str) -> Result<BugReports, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let items = match &value {
            serde_json::Value::Array(a) => a,
            serde_json::Value::Object(o) => match o.get("issues") {
                Some(serde_json::Value::Array(a)) => a,
                _ => return Err("a JSON object without an `issues` list".into()),
            },
            _ => return Err("neither a list of issues nor an object with `issues`".into()),
        };
        let mut reports = BugReports::default();
        for (n, item) in items.iter().enumerate() {
            let id = if let Some(key) = item.get("key").and_then(|k| k.as_str()) {
                key.trim().to_uppercase()
            } else if let Some(number) = item.get("number").and_then(|k| k.as_u64()) {
                format!("#{number}")
            } else {
                return Err(format!("issue {} has neither a `key` nor a `number`", n + 1));
            };
            let kind = item
                .pointer("/fields/issuetype/name")
                .or_else(|| item.pointer("/issuetype/name"))
                .or_else(|| item.get("issuetype"))
                .or_else(|| item.get("type"))
                .and_then(|t| t.as_str());
            let bug = match (kind, item.get("labels")) {
                (Some(kind), _) => is_bug_type(kind),
                (None, Some(serde_json::Value::Array(labels))) => labels.iter().any(|l| {
                    l.get("name")
                        .and_then(|n| n.as_str())
                        .or_else(|| l.as_str())
                        .is_some_and(|n| n.to_lowercase().contains("bug"))
                }),
                // `gh issue list --label bug`: the list is the bug reports.
                (None, _) => true,
            };
            reports.add(id, bug);
        }
        Ok(reports)
    }

    fn parse_csv(text: &str) -> Result<BugReports, String> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let header = reader.headers().map_err(|e| format!("not valid CSV: {e}"))?.clone();
        let column = |names: &[&str]| {
            header
                .iter()
                .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
        };
        let key = column(&["Issue key", "Key", "Issue"])
            .ok_or("CSV without an `Issue key` column (JIRA's export has one)")?;
        let kind = column(&["Issue Type", "Type", "IssueType"]);
        let mut reports = BugReports::default();
        for (n, row) in reader.records().enumerate() {
            let row = row.map_err(|e| format!("CSV row {}: {e}", n + 2))?;
            let Some(id) = row.get(key).map(str::trim).filter(|k| !k.is_empty()) else {
                continue;
            };
            let bug = kind.is_none_or(|k| row.get(k).is_some_and(is_bug_type));
            reports.add(id.to_uppercase(), bug);
        }
        Ok(reports)
    }

    fn add(&mut self, id: String, bug: bool) {
        if bug {
            self.others.remove(&id);
            self.bugs.insert(id);
        } else if !self.bugs.contains(&id) {
            self.others.insert(id);
        }
    }

    /// How many bug reports, and how many other issues, the export names.
    pub fn counts(&self) -> (usize, usize) {
        (self.bugs.len(), self.others.len())
    }

    /// What the export says of a commit message: `Some(true)` when it names a bug report,
    /// `Some(false)` when it names issues the export knows and none is a bug report, `None`
    /// when it names none the export knows (the message patterns decide).
    pub fn judge(&self, message: &str) -> Option<bool> {
        let mut known = false;
        for id in references(message) {
            if self.bugs.contains(&id) {
                return Some(true);
            }
            known |= self.others.contains(&id);
        }
        known.then_some(false)
    }
}

/// A JIRA type that is a bug report (`Bug`, and what some trackers call it).
fn is_bug_type(kind: &str) -> bool {
    matches!(kind.trim().to_lowercase().as_str(), "bug" | "defect" | "bug report")
}

/// The issue ids a message names: `#12` for GitHub's forms, upper-cased JIRA keys.
fn references(message: &str) -> impl Iterator<Item = String> + '_ {
    let github = GITHUB.captures_iter(message).map(|c| format!("#{}", &c[1]));
    let jira = JIRA.captures_iter(message).map(|c| c[1].to_uppercase());
    github.chain(jira)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_export_lists_bug_reports_and_commits_name_them_in_several_forms() {
        let r = BugReports::parse(r#"[{"number":12,"title":"crash","closedAt":"2024-01-01T00:00:00Z"}]"#).unwrap();
        assert_eq!(r.counts(), (1, 0));
        for message in [
            "Handle empty input\n\nCloses #12",
            "parser: empty input (GH-12)",
            "See https://github.com/o/r/issues/12",
        ] {
            assert_eq!(r.judge(message), Some(true), "{message}");
        }
        for message in ["Closes #120", "Closes #1", "issue&#12;", "Add an option"] {
            assert_eq!(r.judge(message), None, "{message}");
        }
    }

    #[test]
    fn github_export_with_labels_keeps_only_bugs() {
        let r = BugReports::parse(
            r#"[{"number":1,"labels":[{"name":"type: bug"}]},{"number":2,"labels":[{"name":"enhancement"}]}]"#,
        )
        .unwrap();
        assert_eq!(r.counts(), (1, 1));
        assert_eq!(r.judge("fix #1"), Some(true));
        assert_eq!(r.judge("Fix the option (#2)"), Some(false));
    }

    #[test]
    fn jira_json_and_csv_give_types() {
        let json = r#"{"issues":[{"key":"KAFKA-7","fields":{"issuetype":{"name":"Bug"}}},
            {"key":"KAFKA-8","fields":{"issuetype":{"name":"Improvement"}}}]}"#;
        let csv =
            "Summary,Issue key,Issue id,Issue Type\n\"NPE, in consumer\",KAFKA-7,1,Bug\nFaster,KAFKA-8,2,Improvement\n";
        for text in [json, csv] {
            let r = BugReports::parse(text).unwrap();
            assert_eq!(r.counts(), (1, 1));
            assert_eq!(r.judge("kafka-7; consumer drops records"), Some(true));
            assert_eq!(
                r.judge("KAFKA-8: fix the slow path"),
                Some(false),
                "an improvement, whatever its words"
            );
            assert_eq!(r.judge("KAFKA-8, KAFKA-7: two at once"), Some(true));
            assert_eq!(r.judge("UTF-8 handling"), None, "not a key the export knows");
        }
    }

    #[test]
    fn bad_exports_say_what_is_wrong() {
        assert!(BugReports::parse("").unwrap_err().contains("empty"));
        assert!(BugReports::parse("{").unwrap_err().contains("JSON"));
        assert!(BugReports::parse(r#"[{"title":"x"}]"#).unwrap_err().contains("number"));
        assert!(
            BugReports::parse("Summary,Status\nx,Open\n")
                .unwrap_err()
                .contains("Issue key")
        );
        assert!(BugReports::parse(r#"{"total":0}"#).unwrap_err().contains("issues"));
    }

    #[test]
    fn an_export_without_bugs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issues.csv");
        std::fs::write(&path, "Issue key,Issue Type\nX-1,Task\n").unwrap();
        let err = BugReports::read(&path).unwrap_err().to_string();
        assert!(err.contains("names no bug report"), "{err}");
    }
}
