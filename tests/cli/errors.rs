//! Errors are clear, exit 2, and leave the repository exactly as it was.

use crate::common::*;
use predicates::str::contains;

#[test]
fn invalid_and_hostile_revisions_exit_2_with_a_hint() {
    let r = two_commits();
    for rev in [
        "nope",
        "HEAD~99",
        "HEAD@{-1}x",
        "a..b..c",
        "...nope",
        "\u{1b}[31m",
        ":/no such message",
    ] {
        r.cmd()
            .args(["review", rev])
            .assert()
            .code(2)
            .stdout("")
            .stderr(contains("deepspark: error:"));
    }
    r.cmd()
        .args(["review", "nope"])
        .assert()
        .code(2)
        .stderr(contains("hint:"));
    r.cmd()
        .args(["review", "a", "b", "c"])
        .assert()
        .code(2)
        .stderr(contains("too many revisions"));
}

#[test]
fn outside_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    cmd_in(dir.path())
        .env("GIT_CEILING_DIRECTORIES", dir.path().parent().unwrap())
        .args(["review"])
        .assert()
        .code(2)
        .stderr(contains("not inside a git repository"));
}

#[test]
fn usage_errors_exit_2() {
    let r = two_commits();
    r.cmd().args(["review", "--lgtm", "1.5"]).assert().code(2);
    r.cmd().args(["review", "--format", "xml"]).assert().code(2);
    r.cmd()
        .args(["review", "--lgtm", "0.5", "--reject", "0.9"])
        .assert()
        .code(2)
        .stderr(contains("--reject"));
}

#[test]
fn review_never_changes_the_work_tree_index_refs_config_or_hooks() {
    let r = two_commits();
    r.write("a.rs", "fn main() { /* uncommitted */ }\n");
    r.write("new_untracked.rs", "fn x() {}\n");
    let before = snapshot(r.path());
    for args in [
        vec!["review"],
        vec!["review", "--staged"],
        vec!["review", "HEAD~1", "--format", "json"],
        vec!["review", "HEAD~1..HEAD", "--lgtm", "1", "--reject", "1"],
        vec!["review", "no-such-rev"],
        vec!["review", "--model", "/no/such/dir", "HEAD~1"],
        vec![
            "review",
            "--suggest-margin",
            "0",
            "--suggestions",
            "3",
            "--format",
            "sarif",
        ],
        vec!["scan", "--format", "json"],
        vec!["scan", "no-such-rev"],
        vec!["hook", "status"],
        vec!["eval", "--data", "/no/such/file.jsonl"],
        vec!["eval-suggest", "--data", "/no/such/file.jsonl"],
    ] {
        let _ = r.cmd().args(&args).output().unwrap();
        assert_eq!(
            snapshot(r.path()),
            before,
            "`deepspark {}` changed the repository",
            args.join(" ")
        );
    }
}

#[test]
fn broken_pipe_exits_quietly() {
    use std::process::{Command, Stdio};
    let r = Repo::new();
    let big: String = (0..3000).map(|i| format!("int v{i} = {i};\n")).collect();
    r.write("big.c", "");
    r.commit("one");
    r.write("big.c", big);
    r.commit("two");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("deepspark"))
        .current_dir(r.path())
        .env("DEEPSPARK_MODEL", tiny_model())
        .args(["review", "HEAD~1..HEAD", "--color", "never"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, like `| head -0`
    let out = child.wait_with_output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "status {:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shallow_clone_says_to_fetch_more_history() {
    let r = two_commits();
    r.write("a.rs", "fn main() {}\n");
    r.commit("third");
    let parent = tempfile::tempdir().unwrap();
    let shallow = parent.path().join("shallow");
    // libgit2's local transport cannot make shallow clones: use git itself.
    let url = format!("file://{}", r.path().display());
    let ok = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "1", &url])
        .arg(&shallow)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", parent.path())
        .status()
        .expect("git is installed");
    assert!(ok.success());
    cmd_in(&shallow)
        .args(["review", "--commit", "HEAD"])
        .assert()
        .code(2)
        .stderr(contains("shallow").and(contains("fetch")));
    cmd_in(&shallow)
        .args(["review", "HEAD~1"])
        .assert()
        .code(2)
        .stderr(contains("shallow"));
    // A scan stops at the boundary with a note instead of failing (depth 1: nothing to scan).
    cmd_in(&shallow)
        .args(["scan", "--fail-on", "never"])
        .assert()
        .code(0)
        .stdout("")
        .stderr(contains("shallow clone: stopping after 0 commits"));
}

use predicates::prelude::*;

#[test]
fn errors_reach_the_terminal_sanitised_by_main() {
    // The stages report paths raw; main escapes what it prints, so an escape sequence in a
    // path (here a --model directory, reported by the model loader) cannot reach the terminal.
    let r = two_commits();
    let hostile = r.path().join("models\u{1b}[2J\u{202e}x");
    let out = r
        .cmd()
        .args(["review", "HEAD~1", "--model"])
        .arg(&hostile)
        .assert()
        .code(2)
        .stdout("")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("deepspark: error:") && stderr.contains("models\\x1b[2J\\u{202e}x"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}') && !stderr.contains('\u{202e}'), "{stderr:?}");
}
