//! `deepspark review`: revision forms, special files, output formats and exit codes.

use crate::common::*;

#[test]
fn last_commit_with_head_tilde_one() {
    let r = two_commits();
    let (v, code) = review_json(&r, &["HEAD~1"]);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(paths(&v), ["a.rs"]);
    let f = file(&v, "a.rs");
    assert_eq!(f["status"], "modified");
    assert_eq!(f["language"], "rust");
    let h = &f["hunks"][0];
    assert_eq!(h["header"], "@@ -1,3 +1,4 @@");
    let risk = h["risk"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&risk));
    // Exit status agrees with the report: 1 exactly when the gate tripped.
    assert_eq!(code == 1, v["gate_tripped"].as_bool().unwrap());
    assert!(["lgtm", "needs-work", "reject"].contains(&v["verdict"].as_str().unwrap()));
}

#[test]
fn commit_form_and_first_commit_against_the_empty_tree() {
    let r = Repo::new();
    r.write("lib.py", "def f():\n    return 1\n");
    r.commit("root");
    let (v, _) = review_json(&r, &["--commit", "HEAD"]);
    assert_eq!(paths(&v), ["lib.py"]);
    assert_eq!(file(&v, "lib.py")["status"], "added");
    assert_eq!(file(&v, "lib.py")["old_path"], serde_json::Value::Null);
}

#[test]
fn staged_versus_uncommitted() {
    let r = Repo::new();
    r.write("a.rs", "fn a() {}\n");
    r.write("b.rs", "fn b() {}\n");
    r.commit("one");
    r.write("a.rs", "fn a() { todo!() }\n");
    let mut index = r.repo.index().unwrap();
    index.add_path(std::path::Path::new("a.rs")).unwrap();
    index.write().unwrap();
    r.write("b.rs", "fn b() { panic!() }\n");
    let (staged, _) = review_json(&r, &["--staged"]);
    assert_eq!(paths(&staged), ["a.rs"]);
    let (all, _) = review_json(&r, &[]);
    assert_eq!(paths(&all), ["a.rs", "b.rs"]);
    assert_eq!(all["sides"]["new"], "work tree");
}

#[test]
fn two_dot_and_three_dot_ranges_follow_git_diff() {
    let r = Repo::new();
    r.write("base.rs", "fn base() {}\n");
    let base = r.commit("base");
    r.write("main_only.rs", "fn m() {}\n");
    let main_tip = r.commit("main moves on");
    r.repo
        .branch("feature", &r.repo.find_commit(base).unwrap(), false)
        .unwrap();
    r.repo.set_head("refs/heads/feature").unwrap();
    r.repo
        .checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .unwrap();
    r.write("feature.rs", "fn feat() {}\n");
    r.commit("feature work");
    let _ = main_tip;
    let (three, _) = review_json(&r, &["main...feature"]);
    assert_eq!(
        paths(&three),
        ["feature.rs"],
        "A...B is what B adds since the merge base"
    );
    let (two, _) = review_json(&r, &["main..feature"]);
    assert_eq!(
        paths(&two),
        ["feature.rs", "main_only.rs"],
        "A..B compares the two trees"
    );
    assert_eq!(file(&two, "main_only.rs")["status"], "deleted");
    let (pair, _) = review_json(&r, &["main", "feature"]);
    assert_eq!(paths(&pair), paths(&two));
}

#[test]
fn special_files_are_skipped_with_reasons() {
    let r = Repo::new();
    r.write(
        "old_name.rs",
        "fn stays() {\n    let a = 1;\n    let b = 2;\n    let c = 3;\n}\n",
    );
    r.write("gone.rs", "fn gone() {}\n");
    r.write("script.sh", "echo hi\n");
    r.commit("one");
    r.write("data.bin", [0u8, 1, 2, 3, 0, 255]);
    r.write(".gitattributes", "*.gen -diff\n");
    r.write("x.gen", "generated text\n");
    r.write("Cargo.lock", "# lock\n");
    r.write("vendor/lib/x.go", "package x\n");
    std::fs::rename(r.path().join("old_name.rs"), r.path().join("new_name.rs")).unwrap();
    r.remove("gone.rs");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(r.path().join("script.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    r.commit("two");
    let (v, _) = review_json(&r, &["HEAD~1..HEAD"]);
    let reason = |p: &str| file(&v, p)["skipped"]["reason"].clone();
    assert_eq!(reason("data.bin"), "binary");
    assert_eq!(reason("x.gen"), "attributes");
    assert_eq!(reason("Cargo.lock"), "generated");
    assert_eq!(reason("vendor/lib/x.go"), "generated");
    let renamed = file(&v, "new_name.rs");
    assert_eq!(renamed["status"], "renamed");
    assert_eq!(renamed["old_path"], "old_name.rs");
    assert_eq!(file(&v, "gone.rs")["status"], "deleted");
    #[cfg(unix)]
    assert_eq!(file(&v, "script.sh")["status"], "mode-only");
    // Skipped files never carry hunks to the model.
    assert!(file(&v, "data.bin")["hunks"].as_array().unwrap().is_empty());
    // The defaults can be turned off.
    let (v, _) = review_json(&r, &["HEAD~1..HEAD", "--no-default-skips"]);
    assert_eq!(file(&v, "Cargo.lock")["skipped"], serde_json::Value::Null);
}

#[test]
fn a_file_whose_first_lines_say_a_tool_generated_it_is_skipped_in_commits_and_the_work_tree() {
    // jq commits Bison's and flex's output beside the grammar it is made from.
    let bison = "/* A Bison parser, made by GNU Bison 3.8.2.  */\n\nint yyparse(void) {\n    return 0;\n}\n";
    let go = "// Code generated by protoc-gen-go. DO NOT EDIT.\n\npackage pb\n\nfunc A() int { return 1 }\n";
    let hand = "/* parser helpers, made by hand */\n\nint helper(void) {\n    return 0;\n}\n";
    let r = Repo::new();
    r.write("src/parser.c", bison);
    r.write("pb/a.go", go);
    r.write("src/helper.c", hand);
    r.write("src/old.c", bison);
    r.commit("one");
    r.write("src/parser.c", bison.replace("return 0", "return 1"));
    r.write("pb/a.go", go.replace("return 1", "return 2"));
    r.write("src/helper.c", hand.replace("return 0", "return 1"));
    r.remove("src/old.c");
    r.commit("two");
    let (v, _) = review_json(&r, &["HEAD~1..HEAD"]);
    let skipped = |v: &serde_json::Value, p: &str| file(v, p)["skipped"].clone();
    assert_eq!(skipped(&v, "src/parser.c")["reason"], "generated");
    assert_eq!(
        skipped(&v, "src/parser.c")["pattern"],
        "first lines: A Bison parser, made by GNU Bison"
    );
    assert_eq!(file(&v, "src/parser.c")["role"], "generated");
    assert_eq!(
        skipped(&v, "pb/a.go")["pattern"],
        "first lines: Code generated ... DO NOT EDIT"
    );
    // A deleted file is read on its old side.
    assert_eq!(skipped(&v, "src/old.c")["reason"], "generated");
    assert_eq!(skipped(&v, "src/helper.c"), serde_json::Value::Null);
    // The work tree: read from the file itself.
    r.write("src/parser.c", bison.replace("return 0", "return 2"));
    let (v, _) = review_json(&r, &[]);
    assert_eq!(skipped(&v, "src/parser.c")["reason"], "generated");
    // A default skip like the others: --no-default-skips reviews it.
    let (v, _) = review_json(&r, &["--no-default-skips"]);
    assert_eq!(skipped(&v, "src/parser.c"), serde_json::Value::Null);
    assert_eq!(file(&v, "src/parser.c")["role"], "source");
}

#[test]
fn works_from_a_subdirectory_on_a_detached_head_and_in_a_linked_worktree() {
    let r = two_commits();
    r.write("sub/dir/keep.txt", "x\n");
    let out = cmd_in(&r.path().join("sub/dir"))
        .args(["review", "HEAD~1..HEAD", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(paths(&json_of(&out)), ["a.rs"]);

    let head = r.repo.head().unwrap().target().unwrap();
    r.repo.set_head_detached(head).unwrap();
    let (v, _) = review_json(&r, &["HEAD~1"]);
    assert_eq!(
        paths(&v),
        ["a.rs", "sub/dir/keep.txt"].iter().take(1).cloned().collect::<Vec<_>>()
    );

    let wt_parent = tempfile::tempdir().unwrap();
    let wt_path = wt_parent.path().join("wt");
    r.repo.worktree("wt", &wt_path, None).unwrap();
    let out = cmd_in(&wt_path)
        .args(["review", "HEAD~1", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(paths(&json_of(&out)), ["a.rs"]);
}

#[test]
fn bare_repository_takes_ranges_and_refuses_work_tree_forms() {
    let r = two_commits();
    let bare_parent = tempfile::tempdir().unwrap();
    let bare = bare_parent.path().join("b.git");
    git2::build::RepoBuilder::new()
        .bare(true)
        .clone(r.path().to_str().unwrap(), &bare)
        .unwrap();
    let out = cmd_in(&bare)
        .args(["review", "HEAD~1..HEAD", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(paths(&json_of(&out)), ["a.rs"]);
    cmd_in(&bare)
        .args(["review", "HEAD~1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bare repository"));
}

#[test]
fn empty_change_is_a_valid_empty_report_and_exits_zero() {
    let r = two_commits();
    let (v, code) = review_json(&r, &[]);
    assert_eq!(code, 0);
    assert_eq!(v["verdict"], "lgtm");
    assert_eq!(v["files"].as_array().unwrap().len(), 0);
    assert_eq!(
        v["model"],
        serde_json::Value::Null,
        "no model is loaded when there is nothing to review"
    );
}

#[test]
fn exit_codes_follow_fail_on() {
    let r = two_commits();
    // Everything below P(clean) = 1 is REJECT with these thresholds.
    r.cmd()
        .args(["review", "HEAD~1", "--lgtm", "1", "--reject", "1"])
        .assert()
        .code(1);
    r.cmd()
        .args(["review", "HEAD~1", "--lgtm", "1", "--reject", "1", "--fail-on", "never"])
        .assert()
        .code(0);
    // Nothing is REJECT, everything is NEEDS WORK.
    r.cmd()
        .args(["review", "HEAD~1", "--lgtm", "1", "--reject", "0"])
        .assert()
        .code(0);
    r.cmd()
        .args([
            "review",
            "HEAD~1",
            "--lgtm",
            "1",
            "--reject",
            "0",
            "--fail-on",
            "needs-work",
        ])
        .assert()
        .code(1);
    // Everything is LGTM.
    r.cmd()
        .args([
            "review",
            "HEAD~1",
            "--lgtm",
            "0",
            "--reject",
            "0",
            "--fail-on",
            "needs-work",
        ])
        .assert()
        .code(0);
}

#[test]
fn size_limits_mark_files_not_reviewed_and_forbid_lgtm() {
    let r = two_commits();
    let (v, code) = review_json(
        &r,
        &[
            "HEAD~1",
            "--max-file-lines",
            "1",
            "--lgtm",
            "0",
            "--reject",
            "0",
            "--fail-on",
            "needs-work",
        ],
    );
    assert_eq!(file(&v, "a.rs")["skipped"]["reason"], "file-too-large");
    assert_eq!(v["summary"]["not_reviewed_files"], 1);
    assert_eq!(v["verdict"], "needs-work");
    assert_eq!(code, 1);
    let out = r
        .cmd()
        .args(["review", "HEAD~1", "--max-file-lines", "1", "--color", "never"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT REVIEWED"));
}

#[test]
fn terminal_output_is_sanitised_and_uncoloured_when_asked() {
    let r = Repo::new();
    r.write("x.py", "a = 1\n");
    r.commit("one");
    r.write("evil\x1b[2Jname.py", "print('\x1b]0;pwned\x07')\n");
    r.write("x.py", "a = 2  # \u{202e}hidden\n");
    r.commit("two");
    let out = r
        .cmd()
        .args(["review", "HEAD~1..HEAD", "--color", "always"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // Our own colour codes are SGR only: `ESC [ ... m`. Nothing else may reach the terminal.
    let stripped = regex_lite_strip_sgr(&text);
    assert!(!stripped.contains('\x1b'), "escape survived: {stripped:?}");
    assert!(!stripped.contains('\x07') && !stripped.contains('\u{202e}'));
    assert!(stripped.contains("evil\\x1b[2Jname.py"));
    assert!(
        stripped.contains("bidirectional-override"),
        "bidi is flagged: {stripped}"
    );
    let plain = r
        .cmd()
        .args(["review", "HEAD~1..HEAD", "--color", "never"])
        .output()
        .unwrap();
    assert!(!plain.stdout.contains(&0x1b));
    let auto_in_pipe = r.cmd().args(["review", "HEAD~1..HEAD"]).output().unwrap();
    assert!(
        !auto_in_pipe.stdout.contains(&0x1b),
        "no colour when stdout is not a terminal"
    );
    let no_color = r
        .cmd()
        .args(["review", "HEAD~1..HEAD", "--color", "auto"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!no_color.stdout.contains(&0x1b));
}

/// Removes `ESC [ digits/semicolons m` sequences.
fn regex_lite_strip_sgr(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            let rest: String = chars
                .clone()
                .skip(1)
                .take_while(|c| c.is_ascii_digit() || *c == ';')
                .collect();
            let after = chars.clone().nth(1 + rest.len());
            if after == Some('m') {
                for _ in 0..rest.len() + 2 {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[test]
fn terminal_report_snapshot() {
    let r = two_commits();
    let out = r
        .cmd()
        .args(["review", "HEAD~1..HEAD", "--color", "never"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    redact_scores().bind(|| insta::assert_snapshot!(text));
}

#[test]
fn crlf_non_utf8_and_no_trailing_newline() {
    let r = Repo::new();
    r.write("w.c", "int a;\r\nint b;\r\n");
    r.write("latin1.c", b"char *s = \"caf\xe9\";\n");
    r.write("tail.c", "int x;");
    r.commit("one");
    r.write("w.c", "int a;\r\nint c;\r\n");
    r.write("latin1.c", b"char *s = \"d\xe9j\xe0\";\n");
    r.write("tail.c", "int y;");
    r.commit("two");
    let (v, _) = review_json(&r, &["HEAD~1..HEAD"]);
    assert_eq!(v["summary"]["reviewed_files"], 3);
    let lines = &file(&v, "w.c")["hunks"][0]["lines"];
    assert!(lines.as_array().unwrap().iter().any(|l| l["text"] == "int c;\r"));
    let out = r
        .cmd()
        .args(["review", "HEAD~1..HEAD", "--color", "never"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("No newline at end of file"));
}

#[test]
fn scan_reviews_each_commit_with_one_line_each() {
    let r = two_commits();
    let before = snapshot(r.path());
    let out = r
        .cmd()
        .args(["scan", "--format", "json", "--fail-on", "never"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "two commits, newest first");
    assert_eq!(lines[0]["subject"], "second");
    assert_eq!(lines[1]["subject"], "first");
    for l in &lines {
        assert_eq!(l["calibration"], "default", "scan says whose probability it gives");
        assert!(l["p_clean"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)));
        assert!(l["hunks"].as_u64().unwrap() >= 1);
    }
    // The same commit scores the same as `review --commit`.
    let (v, _) = review_json(&r, &["--commit", "HEAD"]);
    assert!((v["p_clean"].as_f64().unwrap() - lines[0]["p_clean"].as_f64().unwrap()).abs() < 1e-6);
    let one = r.cmd().args(["scan", "--max", "1", "HEAD~1..HEAD"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&one.stdout).lines().count(), 1);
    r.cmd()
        .args(["scan", "nope"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown revision"));
    r.cmd().args(["scan", "HEAD~1...HEAD"]).assert().code(2);
    assert_eq!(snapshot(r.path()), before, "scan changed the repository");
}

/// A repository of `n` commits that each add one similar line to `a.rs`.
fn routine_history(n: usize) -> Repo {
    let r = Repo::new();
    let mut text = String::from("fn main() {\n}\n");
    for i in 0..n {
        text.insert_str(text.len() - 2, &format!("    let x{i:03} = compute({i:03});\n"));
        r.write("a.rs", &text);
        r.commit(&format!("step {i}"));
    }
    r
}

#[test]
fn a_reject_needs_the_change_to_be_unusual_for_its_repository() {
    let r = routine_history(130);
    // --reject 1: every change is a REJECT by probability; the change under review, in the
    // middle of 130 like it, ranks as an ordinary one and the verdict becomes NEEDS WORK.
    let (v, code) = review_json(&r, &["--commit", "HEAD~65", "--lgtm", "1", "--reject", "1"]);
    assert_eq!(v["verdict"], "needs-work", "{v}");
    assert_eq!(code, 0, "the gate does not trip on NEEDS WORK");
    assert_eq!(v["reject_tempered"], true);
    assert_eq!(v["thresholds"]["reject_rank"], 90.0);
    assert_eq!(
        v["history"]["commits"], 130,
        "ranked against the last 130 commits from HEAD: {v}"
    );
    let p = v["history"]["percentile"].as_f64().unwrap();
    assert!(p < 90.0, "a commit in the middle of its history ranks below 90%: {p}");
    let cache = r.path().join(".git/deepspark/history.json");
    assert!(cache.is_file(), "the scores are cached in the git directory");
    let cached = std::fs::read(&cache).unwrap();

    // The same review again reads the cache, and gives the same rank.
    let (again, _) = review_json(&r, &["--commit", "HEAD~65", "--lgtm", "1", "--reject", "1"]);
    assert_eq!(again["history"], v["history"]);
    assert_eq!(
        std::fs::read(&cache).unwrap(),
        cached,
        "nothing new to score, nothing rewritten"
    );

    // The terminal says why it is not a REJECT.
    let out = cmd_in(r.path())
        .args([
            "review", "--commit", "HEAD~65", "--lgtm", "1", "--reject", "1", "--color", "never",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("below the REJECT line") && text.contains("--reject-rank"),
        "{text}"
    );

    // --reject-rank 0 (or DEEPSPARK_REJECT_RANK, or reject_rank in the config): the probability alone.
    let (v, code) = review_json(
        &r,
        &[
            "--commit",
            "HEAD~65",
            "--lgtm",
            "1",
            "--reject",
            "1",
            "--reject-rank",
            "0",
        ],
    );
    assert_eq!((v["verdict"].as_str(), code), (Some("reject"), 1), "{v}");
    assert_eq!(v["reject_tempered"], false);
    r.write(".deepspark.toml", "reject_rank = 0\n");
    let (v, _) = review_json(&r, &["--commit", "HEAD~65", "--lgtm", "1", "--reject", "1"]);
    assert_eq!(v["verdict"], "reject");
    r.remove(".deepspark.toml");
    // --history 0: no rank at all.
    let (v, _) = review_json(
        &r,
        &["--commit", "HEAD~65", "--lgtm", "1", "--reject", "1", "--history", "0"],
    );
    assert_eq!(
        (v["verdict"].as_str(), v["history"].is_null()),
        (Some("reject"), true),
        "{v}"
    );
}

#[test]
fn a_short_history_gives_no_rank_and_writes_nothing() {
    let r = routine_history(20);
    let before = snapshot(r.path());
    let (v, code) = review_json(&r, &["--commit", "HEAD", "--lgtm", "1", "--reject", "1"]);
    assert_eq!(
        (v["verdict"].as_str(), code),
        (Some("reject"), 1),
        "20 commits are too few to rank: {v}"
    );
    assert!(v["history"].is_null());
    assert_eq!(
        snapshot(r.path()),
        before,
        "nothing cached for a history too short to use"
    );
}
