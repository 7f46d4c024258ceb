//! SARIF 2.1.0 for code scanning (GitHub and others). One run, three rules:
//! DS001 risky hunk, DS002 file not reviewed (size or time limits), DS003 bidirectional
//! override. Locations are repository-relative URIs with `uriBaseId` SRCROOT; every
//! result has a `partialFingerprints` entry computed from the path and the added lines
//! (not line numbers), so a finding keeps its identity when code above it moves.
//! Validated against the official schema in the tests.

use crate::review::{Review, Verdict};
use serde_json::{Value, json};

const RULES: [(&str, &str, &str, &str); 3] = [
    (
        "DS001",
        "RiskyHunk",
        "This change is likely to need a fix later.",
        "deepspark's model estimates the probability that the lines this hunk adds will later be changed by a bug fix. Look closely at the highlighted lines, add tests, or split the change.",
    ),
    (
        "DS002",
        "NotReviewed",
        "Part of the change was not reviewed.",
        "The file exceeded a size or time limit and was not scored; the change cannot get an LGTM until it is reviewed.",
    ),
    (
        "DS003",
        "BidiOverride",
        "Invisible bidirectional-override character.",
        "Bidirectional-override characters can make code read differently from how it runs (\"trojan source\"). Remove them unless they are intended.",
    ),
];

pub use crate::review::fingerprint;

/// Percent-encodes a repository path as a relative URI reference.
pub fn uri(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn location(path: &str, start: u32, end: u32) -> Value {
    json!([{ "physicalLocation": {
        "artifactLocation": { "uri": uri(path), "uriBaseId": "SRCROOT" },
        "region": { "startLine": start.max(1), "endLine": end.max(start.max(1)) }
    }}])
}

/// The finding's suggestions as SARIF fixes: each edit replaces whole lines (a deletion
/// inserts nothing).
fn fixes(r: &Review, f: &crate::review::Finding) -> Value {
    let path = f.file.display_path();
    let list: Vec<Value> = r
        .suggestions_for(f.index.0, f.index.1)
        .map(|sg| {
            let replacements: Vec<Value> = sg
                .edits
                .iter()
                .filter_map(|e| {
                    let line = f.hunk.lines.get(e.line)?;
                    let n = line.lineno.new?;
                    let text = e.new.as_deref().map(|t| format!("{t}\n")).unwrap_or_default();
                    Some(json!({
                        "deletedRegion": { "startLine": n, "startColumn": 1, "endLine": n + 1, "endColumn": 1 },
                        "insertedContent": { "text": text },
                    }))
                })
                .collect();
            json!({
                "description": { "text": format!("deepspark suggestion: risk {:.0}% -> {:.0}% if applied.",
                    sg.risk.old * 100.0, sg.risk.new * 100.0) },
                "artifactChanges": [{
                    "artifactLocation": { "uri": uri(path), "uriBaseId": "SRCROOT" },
                    "replacements": replacements,
                }],
            })
        })
        .collect();
    Value::Array(list)
}

pub fn write(r: &Review, min_risk: f32, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|(id, name, short, full)| {
            json!({ "id": id, "name": name, "shortDescription": { "text": short },
                    "fullDescription": { "text": full }, "help": { "text": full },
                    "defaultConfiguration": { "level": if *id == "DS001" { "warning" } else { "error" } } })
        })
        .collect();
    let mut results = Vec::new();
    for f in r.findings(min_risk) {
        let (start, end) = f.lines();
        let path = f.file.display_path();
        let level = if f.score.risk >= 0.6 {
            "error"
        } else if f.score.risk >= 0.3 {
            "warning"
        } else {
            "note"
        };
        results.push(json!({
            "ruleId": "DS001", "ruleIndex": 0, "level": level,
            "message": { "text": format!("{:.0}% risk that this hunk will need a fix (deepspark verdict for the change: {}).{}{}",
                f.score.risk * 100.0, r.verdict.label(), r.why_suffix(f.index), r.assist.comment_suffix(f.index)) },
            "locations": location(path, start, end),
            "partialFingerprints": { "deepsparkHunk/v1": crate::review::hunk_fingerprint(path, f.hunk) },
            "properties": { "risk": f.score.risk },
            "fixes": fixes(r, &f),
        }));
    }
    for f in r
        .files
        .iter()
        .filter(|f| f.skip.as_ref().is_some_and(|s| s.is_unreviewed()))
    {
        let path = f.display_path();
        let why = f.skip.as_ref().map(|s| s.describe()).unwrap_or_default();
        results.push(json!({
            "ruleId": "DS002", "ruleIndex": 1, "level": "error",
            "message": { "text": why },
            "locations": location(path, 1, 1),
            "partialFingerprints": { "deepsparkFile/v1": fingerprint(&[path, "not-reviewed"]) },
        }));
    }
    for w in &r.warnings {
        let line = w.line.unwrap_or(1);
        results.push(json!({
            "ruleId": "DS003", "ruleIndex": 2, "level": "error",
            "message": { "text": w.message },
            "locations": location(&w.path, line, line),
            "partialFingerprints": { "deepsparkBidi/v1": fingerprint(&[&w.path, &line.to_string()]) },
        }));
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "deepspark", "version": env!("CARGO_PKG_VERSION"),
                                  "informationUri": "https://crates.io/crates/deepspark", "rules": rules } },
            "results": results,
            "properties": { "verdict": match r.verdict { Verdict::Lgtm => "lgtm", Verdict::NeedsWork => "needs-work", Verdict::Reject => "reject" },
                            "pClean": r.p_clean, "calibration": r.calibration.text, "reasons": r.reasons },
        }]
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_percent_encoded_and_fingerprints_stable() {
        assert_eq!(uri("src/a b/ü.rs"), "src/a%20b/%C3%BC.rs");
        assert_eq!(fingerprint(&["a", "b"]), fingerprint(&["a", "b"]));
        assert_ne!(fingerprint(&["ab"]), fingerprint(&["a", "b"]));
    }
}
