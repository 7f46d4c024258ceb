//! `deepspark mine`: SZZ labels on scripted histories whose answers are known, `--at`,
//! determinism, and records that `train`/`eval` read as they are.

use crate::common::Repo;
use serde_json::Value;
use std::collections::BTreeMap;

const PARSE_V1: &str =
    "int parse(int n) {\n    int i;\n    for (i = 1; i < n; i++) {\n        use(i);\n    }\n    return 0;\n}\n";
const PARSE_V2: &str =
    "int parse(int n) {\n    int i;\n    for (i = 0; i < n; i++) {\n        use(i);\n    }\n    return 0;\n}\n";
const HELPER: &str = "int helper(int *p) {\n    return *p + 1;\n}\n";
const HELPER_FIXED: &str = "int helper(int *p) {\n    return p ? *p + 1 : 0;\n}\n";

/// What each commit of the scripted history is.
struct History {
    r: Repo,
    bug: String,
    helper: String,
    comment: String,
    old_clean: String,
    fix: String,
    cosmetic_fix: String,
    rename: String,
    helper_fix: String,
    recent: String,
}

/// Day 0: a bug (`i = 1`), a helper with a missing null check, a comment, a clean change.
/// Day 400: the bug fixed, a cosmetic "fix" of the comment, the helper renamed, then its
/// null check fixed in the new place, and one recent clean commit.
fn history() -> History {
    let r = Repo::new();
    r.write("src/parse.c", PARSE_V1);
    let bug = r.commit("Add the parser").to_string();
    r.write("src/util.c", HELPER);
    let helper = r.commit("Add a helper").to_string();
    r.write("src/notes.c", "// How the input is walked\nint notes = 1;\n");
    let comment = r.commit("Add notes").to_string();
    r.write("src/other.c", "int other(void) {\n    return 2;\n}\n");
    let old_clean = r.commit("Add other").to_string();
    r.advance_days(400);
    r.write("src/parse.c", PARSE_V2);
    let fix = r.commit("Fix off-by-one in the parse loop").to_string();
    r.write("src/notes.c", "// How all of the input is walked\nint notes = 1;\n");
    let cosmetic_fix = r.commit("Fix the wording of a note").to_string();
    r.remove("src/util.c");
    r.write("src/helpers.c", HELPER);
    let rename = r.commit("Move the helper").to_string();
    r.write("src/helpers.c", HELPER_FIXED);
    let helper_fix = r.commit("Fix a crash on a null pointer in helper").to_string();
    r.write("src/more.c", "int more(void) {\n    return 3;\n}\n");
    let recent = r.commit("Add more").to_string();
    History {
        r,
        bug,
        helper,
        comment,
        old_clean,
        fix,
        cosmetic_fix,
        rename,
        helper_fix,
        recent,
    }
}

/// Commit id -> (commit record, its hunk records), from `deepspark mine --jsonl ARGS`.
fn mine(r: &Repo, args: &[&str]) -> BTreeMap<String, (Value, Vec<Value>)> {
    let out = r.cmd().args(["mine", "--jsonl"]).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut by: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    let mut last = None;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let id = v["commit_id"].as_str().unwrap().to_string();
        if v.get("hunk_label").is_some() {
            assert_eq!(last.as_ref(), Some(&id), "hunk records follow their commit record");
            by.get_mut(&id).unwrap().1.push(v);
        } else {
            assert!(by.insert(id.clone(), (v, vec![])).is_none(), "one record per commit");
            last = Some(id);
        }
    }
    by
}

#[test]
fn szz_labels_the_commits_a_later_fix_implicates() {
    let h = history();
    let m = mine(&h.r, &["--project", "demo"]);
    // The parser's bug: the fix's removed line is blamed on the commit that wrote it.
    let (bug, hunks) = &m[&h.bug];
    assert_eq!(bug["buggy"], true);
    assert_eq!(bug["fixed_by"], serde_json::json!([h.fix]));
    assert_eq!(bug["project"], "demo");
    assert_eq!(hunks.len(), 1);
    assert_eq!(hunks[0]["hunk_label"], 1);
    assert_eq!(hunks[0]["file"], "src/parse.c");
    assert_eq!(hunks[0]["commit_buggy"], true);
    // Renamed before it was fixed: blame follows the line to the commit that wrote it.
    let (helper, hunks) = &m[&h.helper];
    assert_eq!(helper["fixed_by"], serde_json::json!([h.helper_fix]), "{helper}");
    assert_eq!(hunks[0]["hunk_label"], 1);
    assert_eq!(hunks[0]["file"], "src/util.c");
    // A "fix" that only rewords a comment blames nothing.
    assert_eq!(m[&h.comment].0["buggy"], false);
    assert_eq!(m[&h.comment].1[0]["hunk_label"], 0);
    assert_eq!(m[&h.old_clean].0["buggy"], false);
    assert_eq!(m[&h.old_clean].0["fix"], false);
    // Younger than a year before HEAD and not implicated: not labelled, so not written.
    for young in [&h.fix, &h.cosmetic_fix, &h.rename, &h.helper_fix, &h.recent] {
        assert!(!m.contains_key(young), "{young} is inside the grace period");
    }
    // Commit records carry the diff, which `score --jsonl` reads back.
    assert!(bug["diff"].as_str().unwrap().contains("+    for (i = 1; i < n; i++) {"));
    assert_eq!(bug["author_date"], 1_700_000_060);
    assert_eq!(bug["subject"], "Add the parser");
}

#[test]
fn at_rev_sees_nothing_after_it() {
    let h = history();
    let m = mine(&h.r, &["--at", &h.fix]);
    assert_eq!(m[&h.bug].0["fixed_by"], serde_json::json!([h.fix]));
    // The helper's fix comes after REV: as of REV the helper is clean.
    assert_eq!(m[&h.helper].0["buggy"], false);
    assert_eq!(m[&h.helper].1[0]["hunk_label"], 0);
    for later in [&h.cosmetic_fix, &h.rename, &h.helper_fix, &h.recent] {
        assert!(!m.contains_key(later));
    }
    // With no grace period every commit up to REV is labelled, the fix itself too.
    let m = mine(&h.r, &["--at", &h.fix, "--grace-days", "0"]);
    assert_eq!(m[&h.fix].0["fix"], true);
    assert_eq!(m.len(), 5);
}

#[test]
fn mining_is_deterministic_and_writes_files_train_and_eval_read() {
    let h = history();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl.gz"));
    for p in [&a, &b] {
        let out =
            h.r.cmd()
                .args(["mine", "--grace-days", "0", "--out"])
                .arg(p)
                .output()
                .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("commits/s"));
        assert!(out.stdout.is_empty(), "--out writes nothing to stdout");
    }
    let plain = std::fs::read(&a).unwrap();
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&b).unwrap()),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(plain, unzipped, "same records, gzipped or not");
    let again =
        h.r.cmd()
            .args(["mine", "--grace-days", "0", "--jsonl"])
            .output()
            .unwrap();
    assert_eq!(again.stdout, plain, "two runs give the same bytes");
    // eval reads the mixed file as it is (hunks dated by their commit records).
    let out =
        h.r.cmd()
            .args(["eval", "--split", "all", "--format", "json", "--data"])
            .arg(&a)
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["n"], 8, "{report}");
    assert_eq!(report["positives"], 2);
}

#[test]
fn mine_refuses_what_it_cannot_do() {
    let h = history();
    let out = h.r.cmd().args(["mine", "--jsonl", "--at", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = h.r.cmd().args(["mine"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "one of --out and --jsonl is required");
    h.r.write(".deepspark.toml", "[mine]\nfix = [\"(unclosed\"]\n");
    let out = h.r.cmd().args(["mine", "--jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(unclosed"));
}

#[test]
fn a_commit_whose_objects_are_missing_is_left_out_not_fatal() {
    // A pruned or partial snapshot: one blob gone from the object store.
    let h = history();
    let commit =
        h.r.repo
            .find_commit(git2::Oid::from_str(&h.old_clean).unwrap())
            .unwrap();
    let blob = commit
        .tree()
        .unwrap()
        .get_path(std::path::Path::new("src/other.c"))
        .unwrap()
        .id()
        .to_string();
    std::fs::remove_file(h.r.path().join(".git/objects").join(&blob[..2]).join(&blob[2..])).unwrap();
    let out =
        h.r.cmd()
            .args(["mine", "--jsonl", "--grace-days", "0"])
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("objects they need are missing"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(&h.old_clean), "the unreadable commit is left out");
    assert!(text.contains(&h.bug), "the others are mined");
}

/// Day 0: a parser with a bug and a helper. Day 400: the parser's bug fixed by a commit that
/// only says "Closes #12", and the helper changed by "Fix the slow path (#13)".
fn tracked_history() -> (Repo, [String; 4]) {
    let r = Repo::new();
    r.write("src/parse.c", PARSE_V1);
    let bug = r.commit("Add the parser").to_string();
    r.write("src/util.c", HELPER);
    let helper = r.commit("Add a helper").to_string();
    r.advance_days(400);
    r.write("src/parse.c", PARSE_V2);
    let closes = r
        .commit("Start the parse loop at the first item\n\nCloses #12")
        .to_string();
    r.write("src/util.c", HELPER_FIXED);
    let slow = r.commit("Fix the slow path of the helper (#13)").to_string();
    (r, [bug, helper, closes, slow])
}

#[test]
fn an_issue_export_makes_a_commit_naming_a_bug_report_a_fix_and_not_otherwise() {
    let (r, [bug, helper, closes, slow]) = tracked_history();
    let fixes = |m: &BTreeMap<String, (Value, Vec<Value>)>| {
        [&bug, &helper, &closes, &slow].map(|c| (m[c].0["fix"].clone(), m[c].0["fixed_by"].clone()))
    };
    // Words alone: "Closes #12" is not a fix; "Fix the slow path" is.
    let m = mine(&r, &["--grace-days", "0"]);
    assert_eq!(m[&closes].0["fix"], false);
    assert_eq!(m[&bug].0["buggy"], false);
    assert_eq!(m[&slow].0["fix"], true);
    assert_eq!(m[&helper].0["fixed_by"], serde_json::json!([slow]));
    let words = fixes(&m);

    // GitHub's export of bug reports (`gh issue list --label bug --json number,title,closedAt`):
    // #12 is a bug report, so the commit that closes it fixes the line the parser's commit wrote.
    let dir = tempfile::tempdir().unwrap();
    let bugs = dir.path().join("bugs.json");
    std::fs::write(
        &bugs,
        r#"[{"number":12,"title":"first item skipped","closedAt":"2024-01-01T00:00:00Z"}]"#,
    )
    .unwrap();
    let out = r
        .cmd()
        .args(["mine", "--jsonl", "--grace-days", "0", "--bug-reports"])
        .arg(&bugs)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 bug reports"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = mine(&r, &["--grace-days", "0", "--bug-reports", bugs.to_str().unwrap()]);
    assert_eq!(m[&closes].0["fix"], true);
    assert_eq!(m[&bug].0["buggy"], true);
    assert_eq!(m[&bug].0["fixed_by"], serde_json::json!([closes]));
    assert_eq!(m[&bug].1[0]["hunk_label"], 1);
    // #13 is not in it: the words still decide.
    assert_eq!(m[&slow].0["fix"], true);

    // An export that types its issues: #13 is an enhancement, so its commit is not a fix,
    // whatever its words. Read from `[mine] bug_reports`, relative to the repository root.
    r.write(
        "issues.json",
        r#"[{"number":12,"labels":[{"name":"bug"}]},{"number":13,"labels":[{"name":"enhancement"}]}]"#,
    );
    r.write(".deepspark.toml", "[mine]\nbug_reports = \"issues.json\"\n");
    let m = mine(&r, &["--grace-days", "0"]);
    assert_eq!(m[&closes].0["fix"], true);
    assert_eq!(m[&slow].0["fix"], false);
    assert_eq!(m[&helper].0["buggy"], false);
    assert_eq!(m[&helper].1[0]["hunk_label"], 0);
    // The flag names another export, and wins over the table.
    let m = mine(&r, &["--grace-days", "0", "--bug-reports", bugs.to_str().unwrap()]);
    assert_eq!(m[&slow].0["fix"], true);

    // A JIRA export without a bug report, or one that cannot be read: a clear error.
    std::fs::write(&bugs, "Issue key,Issue Type\nDEMO-1,Task\n").unwrap();
    let out = r
        .cmd()
        .args(["mine", "--jsonl", "--bug-reports"])
        .arg(&bugs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no bug report"));
    std::fs::remove_file(r.path().join("issues.json")).unwrap();
    let out = r.cmd().args(["mine", "--jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("issues.json"));
    // Without an export, the labels are the words' again.
    std::fs::remove_file(r.path().join(".deepspark.toml")).unwrap();
    assert_eq!(fixes(&mine(&r, &["--grace-days", "0"])), words);
}

/// Forty rounds, three days apart: a commit adds a function to `src/hot.c`, a fix changes the
/// line the previous round's added, and a clean commit adds a file of its own. Every hunk of
/// `hot.c` but the last round's is later fixed and its file has fixes behind it; no other file
/// ever has one.
fn hot_and_cold() -> Repo {
    let r = Repo::new();
    let mut hot = String::new();
    for i in 0..40 {
        r.advance_days(3);
        hot.push_str(&format!("int hot_{i}(void) {{\n    return {i};\n}}\n"));
        r.write("src/hot.c", &hot);
        r.commit(&format!("Add hot {i}"));
        if i > 0 {
            let before = format!("    return {};\n", i - 1);
            hot = hot.replace(&before, &format!("    return {} + 1;\n", i - 1));
            r.write("src/hot.c", &hot);
            r.commit(&format!("Fix hot {} returning the wrong value", i - 1));
        }
        r.write(
            &format!("src/cold_{i}.c"),
            format!("int cold_{i}(void) {{\n    return {i};\n}}\n"),
        );
        r.commit(&format!("Add cold {i}"));
    }
    r
}

#[test]
fn eval_with_the_repository_measures_what_its_fixes_add_and_says_so_without_it() {
    let r = hot_and_cold();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("h.jsonl");
    let out = r
        .cmd()
        .args(["mine", "--grace-days", "0", "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let eval = |extra: &[&std::ffi::OsStr], format: &str| {
        let out = r
            .cmd()
            .args(["eval", "--format", format, "--data"])
            .arg(&data)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let text = String::from_utf8(eval(&[], "text")).unwrap();
    assert!(text.contains("history features: not measured"), "{text}");
    let json: Value = serde_json::from_slice(&eval(&[], "json")).unwrap();
    assert!(json["history_stacking"].is_null(), "{json}");

    let report: Value = serde_json::from_slice(&eval(&["--repo".as_ref(), r.path().as_os_str()], "json")).unwrap();
    let h = &report["history_stacking"];
    assert_eq!(h["repositories"], 1, "{h}");
    assert_eq!(h["unmatched"], 0, "every record's commit is in the repository: {h}");
    assert!(h["fixes"].as_u64().unwrap() >= 30, "{h}");
    assert!(
        h["test_positives"].as_u64().unwrap() > 0 && h["calib_positives"].as_u64().unwrap() > 0,
        "{h}"
    );
    let auc = |k: &str| h[k].as_f64().unwrap_or_else(|| panic!("{k}: {h}"));
    // The tiny model cannot tell hot from cold; the fixes of the file can (the fixes' own
    // hunks, clean, are in hot.c too), and the stack learns it.
    assert!(auc("fixes_year_auc") > 0.6, "{h}");
    assert!(auc("stacked_auc") > auc("risk_auc") + 0.1, "{h}");
    assert!(h["stacked_gain_ci95"][0].as_f64().unwrap() > 0.0, "{h}");

    // A directory that is no repository fails before any scoring, naming the flag.
    let out = r
        .cmd()
        .args(["eval", "--data"])
        .arg(&data)
        .args(["--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--repo") && !err.contains("-C PATH"), "{err}");

    // A repository that holds none of the commits measures nothing, and says how many it left out.
    let other = Repo::new();
    other.write("a.c", "int a;\n");
    other.commit("Add a");
    let report: Value = serde_json::from_slice(&eval(&["--repo".as_ref(), other.path().as_os_str()], "json")).unwrap();
    let h = &report["history_stacking"];
    assert_eq!(h["test_hunks"], 0, "{h}");
    assert!(
        h["unmatched"].as_u64().unwrap() > 0 && h["stacked_auc"].is_null(),
        "{h}"
    );
}
