//! Patch suggestions end to end: shown, written as a patch git accepts, applied safely.

use crate::common::*;
use predicates::str::contains;
use std::process::Command as Std;

const BEFORE: &str = "int f(int n) {\n  int s = 0;\n  return s;\n}\n";
const AFTER: &str = "int f(int n) {\n  int s = 0;\n  for (int i = 0; i < n; i++) s += i;\n  return s;\n}\n";

/// A repository whose work tree adds a loop with `<`; the test generator proposes `<=`.
fn repo_with_loop(before: &str, after: &str) -> Repo {
    let r = Repo::new();
    r.write("a.c", before);
    r.commit("one");
    r.write("a.c", after);
    r
}

fn cmd(r: &Repo) -> assert_cmd::Command {
    let mut c = r.cmd();
    c.env("DEEPSPARK_MODEL", suggest_model());
    c
}

fn git(r: &Repo, args: &[&str]) -> std::process::Output {
    Std::new("git")
        .current_dir(r.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", r.path())
        .args(["-c", "core.autocrlf=false"])
        .args(args)
        .output()
        .expect("git runs")
}

fn has_git() -> bool {
    Std::new("git").arg("--version").output().is_ok()
}

#[test]
fn a_suggestion_is_shown_in_the_terminal_and_in_json() {
    let r = repo_with_loop(BEFORE, AFTER);
    let out = cmd(&r)
        .args(["review", "--suggest-margin", "0", "--color", "never"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("suggestion: risk"), "{text}");
    assert!(text.contains("+  for (int i = 0; i <= n; i++) s += i;"), "{text}");
    let (v, _) = review_json_with(&r, &["--suggest-margin", "0"]);
    let s = &file(&v, "a.c")["hunks"][0]["suggestions"][0];
    assert!(
        s["diff"]
            .as_str()
            .unwrap()
            .contains("+  for (int i = 0; i <= n; i++) s += i;")
    );
    assert_eq!(s["edits"][0]["line"], 3);
    assert!(s["risk_after"].as_f64().unwrap() <= s["risk_before"].as_f64().unwrap());
    // The default margin hides a suggestion that does not lower the risk.
    let (v, _) = review_json_with(&r, &[]);
    assert!(
        file(&v, "a.c")["hunks"][0]["suggestions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // --suggestions 0 turns them off.
    let (v, _) = review_json_with(&r, &["--suggest-margin", "0", "--suggestions", "0"]);
    assert!(
        file(&v, "a.c")["hunks"][0]["suggestions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

fn review_json_with(r: &Repo, extra: &[&str]) -> (serde_json::Value, i32) {
    review_json_by(cmd(r), extra)
}

#[test]
fn a_deletion_that_lowers_the_risk_passes_the_default_margin() {
    // Two added lines: deleting one lowers this model's risk (it counts added lines).
    let r = repo_with_loop(
        BEFORE,
        "int f(int n) {\n  int s = 0;\n  s += n;\n  s -= 1;\n  return s;\n}\n",
    );
    let (v, _) = review_json_with(&r, &[]);
    let s = &file(&v, "a.c")["hunks"][0]["suggestions"][0];
    assert!(
        s["risk_before"].as_f64().unwrap() - s["risk_after"].as_f64().unwrap() >= 0.02,
        "{s}"
    );
    assert!(s["edits"][0]["text"].is_null(), "a deletion: {s}");
}

#[test]
fn the_patch_applies_with_git_and_apply_writes_the_same_bytes() {
    if !has_git() {
        eprintln!("skipped: git is not installed");
        return;
    }
    for (name, before, after) in [
        ("lf", BEFORE.to_string(), AFTER.to_string()),
        ("crlf", BEFORE.replace('\n', "\r\n"), AFTER.replace('\n', "\r\n")),
        (
            "no final newline",
            BEFORE.trim_end().to_string(),
            AFTER.trim_end().to_string(),
        ),
    ] {
        let r = repo_with_loop(&before, &after);
        let patch = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        std::fs::remove_file(&patch).unwrap();
        cmd(&r)
            .args(["review", "--suggest-margin", "0", "--patch"])
            .arg(&patch)
            .assert()
            .stderr(contains("wrote the suggestions for 1 file"));
        let check = git(&r, &["apply", "--check", patch.to_str().unwrap()]);
        assert!(
            check.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert!(git(&r, &["apply", patch.to_str().unwrap()]).status.success());
        let by_git = std::fs::read(r.path().join("a.c")).unwrap();
        assert_ne!(by_git, after.as_bytes(), "{name}: the patch changed something");
        r.write("a.c", &after);
        cmd(&r)
            .args(["review", "--suggest-margin", "0", "--apply"])
            .assert()
            .stderr(contains("applied suggestions to 1 file"));
        let by_us = std::fs::read(r.path().join("a.c")).unwrap();
        assert_eq!(by_us, by_git, "{name}: --apply and git apply differ");
        let text = String::from_utf8(by_us).unwrap();
        assert!(text.contains("i <= n"), "{name}");
        if name == "crlf" {
            assert!(
                text.split_inclusive('\n').all(|l| l.ends_with("\r\n")),
                "{name}: {text:?}"
            );
        }
        if name == "no final newline" {
            assert!(!text.ends_with('\n'), "{name}: {text:?}");
        }
    }
}

#[test]
fn the_patch_file_is_never_overwritten() {
    let r = repo_with_loop(BEFORE, AFTER);
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("s.diff");
    std::fs::write(&patch, "precious").unwrap();
    cmd(&r)
        .args(["review", "--suggest-margin", "0", "--patch"])
        .arg(&patch)
        .assert()
        .code(2)
        .stderr(contains("must not exist"));
    assert_eq!(std::fs::read_to_string(&patch).unwrap(), "precious");
}

#[test]
fn apply_refuses_when_the_new_side_is_not_the_work_tree() {
    let r = repo_with_loop(BEFORE, AFTER);
    r.commit("two");
    r.write("a.c", AFTER.replace("s += i", "s += 2 * i"));
    let before = snapshot(r.path());
    for args in [
        vec!["review", "HEAD~1", "HEAD", "--apply"],
        vec!["review", "HEAD~1..HEAD", "--apply"],
        vec!["review", "--commit", "HEAD", "--apply"],
        vec!["review", "--staged", "--apply"],
    ] {
        cmd(&r)
            .args(&args)
            .args(["--suggest-margin", "0"])
            .assert()
            .code(2)
            .stderr(contains("--apply writes to the work tree"));
        assert_eq!(snapshot(r.path()), before, "{args:?} changed the repository");
    }
}

#[test]
fn apply_with_index_stages_the_result_and_without_it_leaves_the_index() {
    let r = repo_with_loop(BEFORE, AFTER);
    r.stage_all();
    let index = std::fs::read(r.path().join(".git/index")).unwrap();
    cmd(&r)
        .args(["review", "--suggest-margin", "0", "--apply", "--fail-on", "never"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(r.path().join(".git/index")).unwrap(),
        index,
        "index untouched"
    );
    r.write("a.c", AFTER);
    cmd(&r)
        .args([
            "review",
            "--suggest-margin",
            "0",
            "--apply",
            "--index",
            "--fail-on",
            "never",
        ])
        .assert()
        .success();
    let repo = git2::Repository::open(r.path()).unwrap();
    let entry = repo.index().unwrap().get_path(std::path::Path::new("a.c"), 0).unwrap();
    let blob = repo.find_blob(entry.id).unwrap();
    assert_eq!(blob.content(), std::fs::read(r.path().join("a.c")).unwrap());
    assert!(String::from_utf8_lossy(blob.content()).contains("i <= n"));
}

#[test]
fn review_with_suggestions_but_without_apply_changes_nothing() {
    let r = repo_with_loop(BEFORE, AFTER);
    let before = snapshot(r.path());
    let outside = tempfile::tempdir().unwrap();
    for extra in [
        vec![],
        vec!["--format", "json"],
        vec!["--format", "sarif"],
        vec!["--format", "markdown"],
        vec!["--patch", outside.path().join("p.diff").to_str().unwrap()],
    ] {
        cmd(&r)
            .args(["review", "--suggest-margin", "0", "--suggestions", "3"])
            .args(&extra)
            .assert()
            .code(predicates::ord::lt(2));
        assert_eq!(snapshot(r.path()), before, "{extra:?} changed the repository");
    }
}

#[test]
fn sarif_and_markdown_carry_the_suggestion() {
    let r = repo_with_loop(BEFORE, AFTER);
    let report = |format: &str| {
        let out = cmd(&r)
            .args(["review", "--suggest-margin", "0", "--min-risk", "0", "--format", format])
            .output()
            .unwrap();
        out.stdout
    };
    let v: serde_json::Value = serde_json::from_slice(&report("sarif")).unwrap();
    let fix = &v["runs"][0]["results"][0]["fixes"][0];
    let rep = &fix["artifactChanges"][0]["replacements"][0];
    assert_eq!(rep["deletedRegion"]["startLine"], 3);
    assert_eq!(
        rep["insertedContent"]["text"],
        "  for (int i = 0; i <= n; i++) s += i;\n"
    );
    crate::ci::assert_valid_sarif(&v);
    let md = String::from_utf8(report("markdown")).unwrap();
    assert!(md.contains("A possible change"), "{md}");
    assert!(md.contains("+  for (int i = 0; i <= n; i++) s += i;"), "{md}");
}

#[test]
fn interrupting_apply_leaves_every_file_old_or_new() {
    // Many files, so that SIGINT lands in the middle of writing them.
    let make = || {
        let r = Repo::new();
        for i in 0..150 {
            r.write(&format!("f{i:03}.c"), BEFORE);
        }
        r.commit("one");
        for i in 0..150 {
            r.write(&format!("f{i:03}.c"), AFTER);
        }
        r
    };
    // The expected new bytes, from an uninterrupted run.
    let done = make();
    cmd(&done)
        .args(["review", "--suggest-margin", "0", "--apply", "--fail-on", "never"])
        .assert()
        .success();
    let new = std::fs::read(done.path().join("f000.c")).unwrap();
    assert_ne!(new, AFTER.as_bytes());
    for delay_ms in [5u64, 40, 120, 250, 500] {
        let r = make();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("deepspark"))
            .current_dir(r.path())
            .env("DEEPSPARK_MODEL", suggest_model())
            .args(["review", "--suggest-margin", "0", "--apply"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = Std::new("kill").args(["-INT", &child.id().to_string()]).status();
        let _ = child.wait();
        for i in 0..150 {
            let got = std::fs::read(r.path().join(format!("f{i:03}.c"))).unwrap();
            assert!(
                got == AFTER.as_bytes() || got == new,
                "f{i:03}.c is neither old nor new after SIGINT at {delay_ms} ms"
            );
        }
    }
}

#[test]
fn with_autocrlf_no_suggestion_is_offered_and_nothing_is_written() {
    // git stores LF and checks out CRLF: the diff deepspark reviews (LF) is not the bytes of
    // the work tree (CRLF), so every candidate fails verification rather than being applied
    // to text that is not the file's.
    if !has_git() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let r = Repo::new();
    assert!(git(&r, &["config", "core.autocrlf", "true"]).status.success());
    r.write("a.c", BEFORE.replace('\n', "\r\n"));
    r.commit("one");
    let stored = git(&r, &["show", "HEAD:a.c"]);
    let after = AFTER.replace('\n', "\r\n");
    r.write("a.c", &after);
    let (v, _) = review_json_with(&r, &["--suggest-margin", "0"]);
    let hunks = file(&v, "a.c")["hunks"].as_array().unwrap().clone();
    assert!(!hunks.is_empty(), "{v}");
    assert_eq!(stored.stdout, BEFORE.as_bytes(), "git stores LF");
    // The diff is git's filtered view: one added LF line, not every line rewritten.
    let added = |h: &serde_json::Value| {
        h["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["kind"] == "added")
            .count()
    };
    assert_eq!(hunks.iter().map(added).sum::<usize>(), 1, "{hunks:?}");
    for h in &hunks {
        assert!(h["suggestions"].as_array().unwrap().is_empty(), "{h}");
    }
    let patch = r.path().join("s.patch");
    cmd(&r)
        .args(["review", "--suggest-margin", "0", "--apply", "--patch"])
        .arg(&patch)
        .assert()
        .code(predicates::ord::lt(2));
    assert_eq!(std::fs::read(r.path().join("a.c")).unwrap(), after.as_bytes());
    assert!(!patch.exists(), "no suggestion, no patch file");
}
