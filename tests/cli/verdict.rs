//! The verdict in a repository's own terms: its calibration (fitted on its history,
//! cached, rebuilt when it cannot be trusted, never from after HEAD), changes that touch no
//! production code, and a reason for every NEEDS WORK and REJECT in every format.

use crate::common::*;
use predicates::str::contains;

/// A repository of 300 commits to ten source files, with a README edited now and then,
/// and `fixed` of its older commits later fixed by a commit that says so.
fn history(fixed: usize) -> Repo {
    let r = Repo::new();
    for m in 0..10 {
        r.write(
            &format!("src/m{m}.rs"),
            format!("pub fn base{m}() -> u32 {{\n    {m}\n}}\n"),
        );
    }
    r.write("README.md", "# project\n");
    r.commit("start");
    let body = |k: usize, v: usize| format!("pub fn f{k}() -> u32 {{\n    {v}\n}}\n");
    let mut files: Vec<String> = (0..10)
        .map(|m| format!("pub fn base{m}() -> u32 {{\n    {m}\n}}\n"))
        .collect();
    for k in 1..=260 {
        if k % 13 == 0 {
            r.write("README.md", format!("# project\n\nNote {k}.\n"));
            r.commit(&format!("document {k}"));
            continue;
        }
        files[k % 10].push_str(&body(k, k));
        r.write(&format!("src/m{}.rs", k % 10), &files[k % 10]);
        r.commit(&format!("add f{k}"));
    }
    // The fixes land in the newer half; the commits they blame are in the older half.
    for k in (1..130).filter(|k| k % 13 != 0).take(fixed) {
        files[k % 10] = files[k % 10].replace(&body(k, k), &body(k, k + 1));
        r.write(&format!("src/m{}.rs", k % 10), &files[k % 10]);
        r.commit(&format!("fix wrong value in f{k}"));
    }
    r
}

/// One more production commit and one docs-only commit on top; their ids.
fn new_work(r: &Repo) -> (git2::Oid, git2::Oid) {
    let mut text = std::fs::read_to_string(r.path().join("src/m3.rs")).unwrap();
    text.push_str("pub fn late() -> u32 {\n    7\n}\n");
    r.write("src/m3.rs", text);
    let code = r.commit("add late");
    r.write("README.md", "# project\n\nHow to use it.\n");
    let docs = r.commit("document usage");
    (code, docs)
}

#[test]
fn a_mostly_clean_history_gets_more_lgtms_after_calibrating() {
    let r = history(8);
    let (code, _) = new_work(&r);
    let code = code.to_string();
    let args = |cal: &'static str| ["--commit", "PLACEHOLDER", "--lgtm", "0.85", "--calibration", cal];
    let run = |cal: &'static str| {
        let mut a = args(cal).to_vec();
        a[1] = &code;
        review_json(&r, &a).0
    };
    let before = run("default");
    let after = run("repository");
    assert_eq!(before["calibration"]["source"], "default");
    assert_eq!(after["calibration"]["source"], "repository", "{}", after["calibration"]);
    let text = after["calibration"]["text"].as_str().unwrap();
    assert!(text.contains("calibrated on this repository's last"), "{text}");
    assert!(
        after["p_clean"].as_f64() > before["p_clean"].as_f64(),
        "{} vs {}",
        after["p_clean"],
        before["p_clean"]
    );
    assert_ne!(before["verdict"], "lgtm");
    assert_eq!(
        after["verdict"], "lgtm",
        "8 fixes in ~130 labelled commits: this history is mostly clean"
    );
    // The fit is cached beside the history's scores.
    assert!(r.path().join(".git/deepspark/memory.json").is_file());
}

#[test]
fn a_docs_only_commit_is_lgtm_and_says_why() {
    let r = history(8);
    let (_, docs) = new_work(&r);
    let (v, code) = review_json(&r, &["--commit", &docs.to_string()]);
    assert_eq!(code, 0);
    assert_eq!(v["verdict"], "lgtm", "{v}");
    let reasons = v["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|x| x["kind"] == "change" && x["text"].as_str().unwrap().contains("no production code")),
        "{reasons:?}"
    );
    let f = file(&v, "README.md");
    assert_eq!(f["role"], "docs");
    assert_eq!(f["hunks"][0]["kind"], "comments");
}

#[test]
fn a_history_fact_names_the_fixes_of_the_touched_file() {
    let r = history(8);
    let (code, _) = new_work(&r);
    // m3.rs: f3 and f23... are among the fixed; point at every hunk.
    let (v, _) = review_json(&r, &["--commit", &code.to_string(), "--lgtm", "1", "--min-risk", "0"]);
    let hunk = &file(&v, "src/m3.rs")["hunks"][0];
    let history: Vec<&serde_json::Value> = hunk["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "history")
        .collect();
    assert_eq!(history.len(), 1, "{hunk}");
    let text = history[0]["text"].as_str().unwrap();
    assert!(
        text.contains("bug fix") && text.contains("src/m3.rs") && text.contains("fix wrong value in f"),
        "{text}"
    );
    let evidence = history[0]["evidence"].as_array().unwrap();
    assert!(
        !evidence.is_empty() && evidence.iter().all(|e| e.as_str().unwrap().len() == 40),
        "{evidence:?}"
    );
}

#[test]
fn history_facts_name_the_fixes_of_the_touched_function_and_of_the_lines_it_changes() {
    let r = history(8);
    let (late, _) = new_work(&r);
    // f3 of src/m3.rs was fixed once ("fix wrong value in f3"); change it again.
    let text = std::fs::read_to_string(r.path().join("src/m3.rs")).unwrap();
    let fixed_f3 = "pub fn f3() -> u32 {\n    4\n}\n";
    assert!(text.contains(fixed_f3), "the history's fix of f3 is in place");
    r.write("src/m3.rs", text.replace(fixed_f3, "pub fn f3() -> u32 {\n    40\n}\n"));
    let again = r.commit("change f3");
    let function_facts = |id: git2::Oid| -> Vec<serde_json::Value> {
        let (v, _) = review_json(&r, &["--commit", &id.to_string(), "--lgtm", "1", "--min-risk", "0"]);
        let hunk = &file(&v, "src/m3.rs")["hunks"][0];
        hunk["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["kind"] == "history" && x["text"].as_str().unwrap().contains("the function"))
            .cloned()
            .collect()
    };
    let facts = function_facts(again);
    assert_eq!(facts.len(), 1, "{facts:?}");
    let text = facts[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("1 bug fix changed the function `f3` in src/m3.rs in the last year")
            && text.contains("fix wrong value in f3"),
        "{text}"
    );
    let fix = r
        .repo
        .revparse_single(":/fix wrong value in f3")
        .unwrap()
        .id()
        .to_string();
    assert_eq!(facts[0]["evidence"], serde_json::json!([fix]));
    // The line it changes is the one the fix wrote: blame at the old side says so.
    let (v, _) = review_json(&r, &["--commit", &again.to_string(), "--lgtm", "1", "--min-risk", "0"]);
    let written: Vec<&serde_json::Value> = file(&v, "src/m3.rs")["hunks"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "history" && x["text"].as_str().unwrap().contains("it changes"))
        .collect();
    assert_eq!(written.len(), 1, "{v}");
    assert!(
        written[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("1 line of the 1 line it changes was written by the bug fix"),
        "{}",
        written[0]["text"]
    );
    assert_eq!(written[0]["evidence"], serde_json::json!([fix]));
    // `late`, new in the same file, was never fixed: the file's fact only.
    assert!(function_facts(late).is_empty());
    // What each fix changed is cached beside the history.
    assert!(r.path().join(".git/deepspark/functions.json").is_file());
}

#[test]
fn a_change_that_adds_back_what_a_bug_fix_removed_says_so_and_offers_the_fix() {
    let r = history(8);
    let path = "src/m5.rs";
    let text = std::fs::read_to_string(r.path().join(path)).unwrap();
    let buggy = "pub fn total(values: &[u32], limit: usize) -> u32 {\n    values.iter().take(limit + 1).sum()\n}\n";
    let fixed = buggy.replace("take(limit + 1)", "take(limit)");
    r.write(path, format!("{text}{buggy}"));
    r.commit("add total");
    r.write(path, format!("{text}{fixed}"));
    let fix = r.commit("fix off-by-one in total").to_string();
    r.write("README.md", "# project\n\nTotals.\n");
    r.commit("document totals");
    // The change puts the fixed line back as it was.
    r.write(path, format!("{text}{buggy}"));
    let again = r.commit("simplify total").to_string();
    let (v, _) = review_json(
        &r,
        &[
            "--commit",
            &again,
            "--min-risk",
            "0",
            "--lgtm",
            "0.01",
            "--reject",
            "0.01",
        ],
    );
    assert_ne!(
        v["verdict"], "lgtm",
        "a line a fix removed is back: never LGTM, whatever the threshold"
    );
    let hunk = &file(&v, path)["hunks"][0];
    let back: Vec<&serde_json::Value> = hunk["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["text"].as_str().unwrap().starts_with("it adds back"))
        .collect();
    assert_eq!(back.len(), 1, "{hunk}");
    let said = back[0]["text"].as_str().unwrap();
    assert!(
        said.contains("`values.iter().take(limit + 1).sum()`")
            && said.contains(&fix[..10])
            && said.contains("\"fix off-by-one in total\"")
            && said.contains(path),
        "{said}"
    );
    assert_eq!(back[0]["kind"], "history");
    assert_eq!(back[0]["evidence"], serde_json::json!([fix]));
    // What the fix did is offered, first, and applies as the fix did.
    let first = &hunk["suggestions"][0];
    assert_eq!(first["by"], "history", "{hunk}");
    let diff = first["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    values.iter().take(limit + 1).sum()")
            && diff.contains("+    values.iter().take(limit).sum()"),
        "{diff}"
    );
    // The commit that added the line first, before any fix, is not told about the fix.
    let added = r.repo.revparse_single(":/add total").unwrap().id().to_string();
    let (v, _) = review_json(&r, &["--commit", &added, "--min-risk", "0"]);
    assert!(
        !v.to_string().contains("it adds back"),
        "a later fix is not evidence about an earlier change"
    );
}

#[test]
fn every_verdict_short_of_lgtm_says_why_in_every_format() {
    let r = history(8);
    let (code, _) = new_work(&r);
    let code = code.to_string();
    // LGTM is out of reach (--lgtm 1): NEEDS WORK or REJECT, each with its reasons.
    let (v, _) = review_json(&r, &["--commit", &code, "--lgtm", "1"]);
    assert_ne!(v["verdict"], "lgtm");
    assert!(!v["reasons"].as_array().unwrap().is_empty(), "{v}");
    let text = |format: &str| {
        let out = r
            .cmd()
            .args([
                "review",
                "--commit",
                &code,
                "--lgtm",
                "1",
                "--min-risk",
                "0",
                "--color",
                "never",
                "--format",
                format,
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(text("terminal").contains("why (change): production code: 1 hunk in 1 file"));
    assert!(text("markdown").contains("**Why:**"));
    assert!(text("github").contains("Why: production code"));
    let sarif: serde_json::Value = serde_json::from_str(&text("sarif")).unwrap();
    assert!(!sarif["runs"][0]["properties"]["reasons"].as_array().unwrap().is_empty());
}

#[test]
fn a_corrupt_cache_or_one_from_another_history_is_rebuilt() {
    let r = history(8);
    let (code, _) = new_work(&r);
    let code = code.to_string();
    let memory = r.path().join(".git/deepspark/memory.json");
    let (first, _) = review_json(&r, &["--commit", &code]);
    std::fs::write(&memory, "{ not json").unwrap();
    let (again, _) = review_json(&r, &["--commit", &code]);
    assert_eq!(first["p_clean"], again["p_clean"]);
    let cached: serde_json::Value = serde_json::from_slice(&std::fs::read(&memory).unwrap()).unwrap();
    let head = r.repo.head().unwrap().target().unwrap().to_string();
    assert_eq!(cached["at"], head.as_str(), "rewritten as of HEAD");
    // A cache from another history (its commit is not an ancestor of HEAD) is not trusted:
    // a fake fit that would approve everything must not be used.
    let mut forged = cached.clone();
    forged["at"] = serde_json::json!("1234567890123456789012345678901234567890");
    forged["fit"]["b"] = serde_json::json!(-40.0);
    std::fs::write(&memory, serde_json::to_vec(&forged).unwrap()).unwrap();
    let (third, _) = review_json(&r, &["--commit", &code]);
    assert_eq!(first["p_clean"], third["p_clean"]);
}

#[test]
fn a_commit_after_head_is_judged_with_heads_calibration() {
    let r = history(8);
    let (code, _) = new_work(&r);
    // Move HEAD back before the last four fixes: the calibration and the facts are as of there.
    let head = r.repo.revparse_single("HEAD~6").unwrap();
    r.repo.set_head_detached(head.id()).unwrap();
    let (v, _) = review_json(&r, &["--commit", &code.to_string(), "--lgtm", "1", "--min-risk", "0"]);
    let cached: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.path().join(".git/deepspark/memory.json")).unwrap()).unwrap();
    assert_eq!(cached["at"], head.id().to_string().as_str());
    let later: Vec<String> = {
        let mut walk = r.repo.revwalk().unwrap();
        walk.push(code).unwrap();
        walk.hide(head.id()).unwrap();
        walk.map(|id| id.unwrap().to_string()).collect()
    };
    let facts: Vec<&serde_json::Value> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["hunks"].as_array().unwrap())
        .flat_map(|h| h["reasons"].as_array().unwrap())
        .filter(|x| x["kind"] == "history")
        .collect();
    assert!(!facts.is_empty(), "f3's fix came before HEAD: {v}");
    for f in v["files"].as_array().unwrap() {
        for h in f["hunks"].as_array().unwrap() {
            for reason in h["reasons"].as_array().unwrap() {
                for e in reason["evidence"].as_array().unwrap() {
                    assert!(
                        !later.contains(&e.as_str().unwrap().to_string()),
                        "a fix after HEAD was used: {reason}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_shallow_clone_falls_back_to_the_default_and_says_so() {
    let r = history(8);
    new_work(&r);
    let parent = tempfile::tempdir().unwrap();
    let shallow = parent.path().join("shallow");
    let url = format!("file://{}", r.path().display());
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "150", &url, shallow.to_str().unwrap()])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    cmd_in(&shallow)
        .args([
            "review", "--commit", "HEAD~1", "--format", "terminal", "--color", "never", "--lgtm", "1",
        ])
        .assert()
        .stdout(contains(
            "the embedded model's calibration: this repository's history supports no fit (a shallow clone",
        ));
}

struct Quiet;
impl deepspark::mine::Progress for Quiet {
    fn phase(&self, _: &str, _: usize) {}
    fn step(&self) {}
}

#[test]
fn labelling_only_recent_history_leaves_older_commits_at_the_boundary() {
    // The review mines only the history it needs (`since`): a commit older than that is
    // never labelled, even when a later fix blames it, and the fixes of the kept history
    // still label the commits inside it.
    let r = history(8);
    let rules = deepspark::skip::Rules {
        patterns: vec![],
        markers: true,
        max_file_lines: 5000,
        max_change_lines: 20000,
    };
    let patterns = deepspark::mine::Patterns::default_patterns();
    let add = |k: usize| {
        let mut walk = r.repo.revwalk().unwrap();
        walk.push_head().unwrap();
        walk.map(|id| r.repo.find_commit(id.unwrap()).unwrap())
            .find(|c| c.summary().ok().flatten() == Some(format!("add f{k}").as_str()))
            .unwrap()
    };
    let all = deepspark::mine::label(&r.repo, "HEAD", &patterns, &rules, &Quiet, None).unwrap();
    assert!(all.fixed_by.contains_key(&add(1).id()) && all.fixed_by.contains_key(&add(8).id()));
    let since = add(5).time().seconds();
    let recent = deepspark::mine::label(&r.repo, "HEAD", &patterns, &rules, &Quiet, Some(since)).unwrap();
    assert!(
        !recent.fixed_by.contains_key(&add(1).id()),
        "add f1 is older than the history read"
    );
    assert!(recent.fixed_by.contains_key(&add(8).id()), "add f8 is inside it");
    assert!(recent.history.iter().all(|c| c.author_date >= since));
    let boundary = recent.history.iter().position(|c| c.id == add(5).id()).unwrap();
    assert!(
        !recent.mined.contains(&boundary),
        "the oldest kept commit stands at the boundary"
    );
}

#[test]
fn the_calibration_labels_fixes_as_the_settings_mine_table_says() {
    // `[mine]` decides which commits are fixes for `mine` and `learn`; the review's own
    // calibration reads the history the same way, and a change to the table re-labels it.
    let r = history(8);
    let (code, _) = new_work(&r);
    let memory = r.path().join(".git/deepspark/memory.json");
    let fixes = || {
        let cached: serde_json::Value = serde_json::from_slice(&std::fs::read(&memory).unwrap()).unwrap();
        cached["fixes"].as_array().unwrap().len()
    };
    review_json(&r, &["--commit", &code.to_string()]);
    assert_eq!(fixes(), 8);
    r.write(".deepspark.toml", "[mine]\nnot_fix = [\"wrong value\"]\n");
    review_json(&r, &["--commit", &code.to_string()]);
    assert_eq!(fixes(), 0, "these fixes are excluded by the table");
}
