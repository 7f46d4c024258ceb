//! `deepspark dismiss`: a dismissed finding is recorded in `.deepspark/dismissed`, raised in
//! no format again, weighs nothing in the verdict, and comes back with `--undo`.

use crate::common::{review_json, two_commits};

#[test]
fn a_dismissed_finding_is_gone_from_every_format_until_undone() {
    let r = two_commits();
    let (before, _) = review_json(&r, &["HEAD~1", "--min-risk", "0"]);
    let hunk = &before["files"][0]["hunks"][0];
    let fp = hunk["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fp.len(), 16);
    assert_eq!(hunk["dismissed"], false);
    let sarif = |r: &crate::common::Repo| {
        let out = r
            .cmd()
            .args(["review", "HEAD~1", "--format", "sarif", "--min-risk", "0"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(
        sarif(&r).contains(&fp),
        "SARIF names the finding by the same fingerprint"
    );

    let out = r
        .cmd()
        .args(["dismiss", &fp, "--reason", "generated test data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let file = std::fs::read_to_string(r.path().join(".deepspark/dismissed")).unwrap();
    assert!(
        file.lines()
            .any(|l| l.starts_with(&fp) && l.ends_with("generated test data")),
        "{file}"
    );
    // Twice is once.
    r.cmd().args(["dismiss", &fp]).assert().success();
    assert_eq!(
        std::fs::read_to_string(r.path().join(".deepspark/dismissed")).unwrap(),
        file
    );

    let (after, _) = review_json(&r, &["HEAD~1", "--min-risk", "0"]);
    let hunk = &after["files"][0]["hunks"][0];
    assert_eq!(hunk["dismissed"], true);
    assert_eq!(hunk["risk"], 0.0);
    assert!(after["p_clean"].as_f64().unwrap() >= before["p_clean"].as_f64().unwrap());
    assert!(!sarif(&r).contains(&fp), "no SARIF result for a dismissed finding");
    for format in ["github", "markdown"] {
        let out = r
            .cmd()
            .args(["review", "HEAD~1", "--format", format, "--min-risk", "0"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains("a.rs"),
            "{format} still points at the dismissed hunk:\n{text}"
        );
    }
    let out = r.cmd().args(["review", "HEAD~1", "--color", "never"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 dismissed"));

    r.cmd().args(["dismiss", &fp, "--undo"]).assert().success();
    let (undone, _) = review_json(&r, &["HEAD~1", "--min-risk", "0"]);
    assert_eq!(undone["files"][0]["hunks"][0]["dismissed"], false);
    assert_eq!(undone["p_clean"], before["p_clean"]);
}

#[test]
fn dismiss_refuses_what_is_not_a_fingerprint() {
    let r = two_commits();
    let out = r.cmd().args(["dismiss", "not-a-fingerprint"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("16 hex digits"));
    assert!(!r.path().join(".deepspark").exists());
}
