//! Hostile and unusual repositories: huge diffs, odd paths, symlinks, submodules,
//! unborn branches, held locks. Each must give a clear result, never a panic.

use crate::common::*;

fn json(r: &Repo, args: &[&str]) -> serde_json::Value {
    review_json(r, args).0
}

#[test]
fn a_100000_line_diff_hits_the_limits_and_is_reported_not_reviewed() {
    let r = Repo::new();
    r.write("small.rs", "fn a() {}\n");
    r.commit("one");
    let huge: String = (0..100_000).map(|i| format!("x{i} = {i}\n")).collect();
    r.write("huge.py", huge);
    r.write("small.rs", "fn a() { b() }\n");
    r.commit("two");
    let v = json(&r, &["HEAD~1..HEAD", "--lgtm", "0", "--reject", "0"]);
    assert_eq!(file(&v, "huge.py")["skipped"]["reason"], "file-too-large");
    assert!(file(&v, "huge.py")["hunks"].as_array().unwrap().is_empty());
    assert_eq!(file(&v, "small.rs")["skipped"], serde_json::Value::Null);
    assert_eq!(
        v["verdict"], "needs-work",
        "a change with unreviewed parts is never LGTM"
    );
    // The change-wide limit: the second file over it is not reviewed either.
    let v = json(
        &r,
        &[
            "HEAD~1..HEAD",
            "--max-file-lines",
            "200000",
            "--max-change-lines",
            "1000",
        ],
    );
    assert_eq!(file(&v, "huge.py")["skipped"]["reason"], "change-too-large");
}

#[test]
fn odd_paths_round_trip_into_json_and_are_escaped_on_the_terminal() {
    let r = Repo::new();
    r.write("keep.txt", "x\n");
    r.commit("one");
    let names = ["with space.rs", "tab\there.rs", "quote\"and'.rs", "ünïcødé/файл.rs"];
    for n in names {
        r.write(n, "fn f() {}\n");
    }
    r.commit("two");
    let v = json(&r, &["HEAD~1..HEAD"]);
    let mut got = paths(&v);
    got.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    let out = r
        .cmd()
        .args(["review", "HEAD~1..HEAD", "--color", "never"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ünïcødé/файл.rs") && text.contains("quote\"and'.rs"));
}

#[cfg(unix)]
#[test]
fn symlinks_are_listed_never_followed() {
    let r = Repo::new();
    r.write("real.rs", "fn real() {}\n");
    r.commit("one");
    std::os::unix::fs::symlink("/etc/passwd", r.path().join("link.rs")).unwrap();
    r.commit("two");
    let v = json(&r, &["HEAD~1..HEAD"]);
    assert_eq!(file(&v, "link.rs")["skipped"]["reason"], "symlink");
}

#[test]
fn submodule_pointer_changes_are_skipped() {
    let r = Repo::new();
    r.write("a.rs", "fn a() {}\n");
    let c1 = r.commit("one");
    // A gitlink entry pointing at some commit, as a submodule would add.
    let mut index = r.repo.index().unwrap();
    let entry = git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o160000,
        uid: 0,
        gid: 0,
        file_size: 0,
        id: c1,
        flags: 0,
        flags_extended: 0,
        path: b"sub".to_vec(),
    };
    index.add(&entry).unwrap();
    index.write().unwrap();
    let tree = r.repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::new("T", "t@example.com", &git2::Time::new(1_700_000_500, 0)).unwrap();
    let parent = r.repo.find_commit(c1).unwrap();
    r.repo
        .commit(Some("HEAD"), &sig, &sig, "sub", &tree, &[&parent])
        .unwrap();
    let v = json(&r, &["HEAD~1..HEAD"]);
    assert_eq!(file(&v, "sub")["skipped"]["reason"], "submodule");
}

#[test]
fn unborn_branch_reviews_staged_files_against_the_empty_tree() {
    let r = Repo::new();
    r.write("first.rs", "fn first() {}\n");
    r.stage_all();
    let v = json(&r, &["--staged"]);
    assert_eq!(paths(&v), ["first.rs"]);
    assert_eq!(file(&v, "first.rs")["status"], "added");
}

#[test]
fn the_first_commit_is_reviewed_against_the_empty_tree_and_going_past_it_says_how() {
    let r = Repo::new();
    r.write("first.rs", "fn first() {}\n");
    r.commit("first");
    r.cmd()
        .args(["review", "HEAD~1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("past the repository's first commit"))
        .stderr(predicates::str::contains("--commit REV"));
    let out = r.cmd().args(["review", "--commit", "HEAD"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("empty tree (first commit) -> HEAD"), "{text}");
    let v = json(&r, &["--commit", "HEAD"]);
    assert_eq!(file(&v, "first.rs")["status"], "added");
}

#[test]
fn a_held_index_lock_does_not_stop_a_review_and_is_left_alone() {
    let r = two_commits();
    r.write("a.rs", "fn main() { changed() }\n");
    let lock = r.path().join(".git/index.lock");
    std::fs::write(&lock, "held by another process").unwrap();
    let v = json(&r, &[]);
    assert_eq!(paths(&v), ["a.rs"]);
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), "held by another process");
}

#[test]
fn merge_commits_are_reviewed_against_their_first_parent() {
    let r = Repo::new();
    r.write("base.rs", "fn base() {}\n");
    let base = r.commit("base");
    r.write("ours.rs", "fn ours() {}\n");
    let ours = r.commit("ours");
    // A side branch that adds theirs.rs, merged back.
    let sig = git2::Signature::new("T", "t@example.com", &git2::Time::new(1_700_001_000, 0)).unwrap();
    let base_commit = r.repo.find_commit(base).unwrap();
    let mut tb = r.repo.treebuilder(Some(&base_commit.tree().unwrap())).unwrap();
    tb.insert("theirs.rs", r.repo.blob(b"fn theirs() {}\n").unwrap(), 0o100644)
        .unwrap();
    let theirs_tree = r.repo.find_tree(tb.write().unwrap()).unwrap();
    let theirs = r
        .repo
        .commit(None, &sig, &sig, "theirs", &theirs_tree, &[&base_commit])
        .unwrap();
    let mut tb = r
        .repo
        .treebuilder(Some(&r.repo.find_commit(ours).unwrap().tree().unwrap()))
        .unwrap();
    tb.insert("theirs.rs", r.repo.blob(b"fn theirs() {}\n").unwrap(), 0o100644)
        .unwrap();
    let merged = r.repo.find_tree(tb.write().unwrap()).unwrap();
    let parents = [&r.repo.find_commit(ours).unwrap(), &r.repo.find_commit(theirs).unwrap()];
    r.repo
        .commit(Some("HEAD"), &sig, &sig, "merge", &merged, &parents)
        .unwrap();
    let v = json(&r, &["--commit", "HEAD"]);
    assert_eq!(paths(&v), ["theirs.rs"], "first parent: the merge brings in theirs.rs");
}

#[test]
fn sparse_checkout_files_outside_the_cone_are_not_deleted() {
    // libgit2 ignores skip-worktree; deepspark must not report absent sparse files as deleted.
    let r = Repo::new();
    r.write("a/x.py", "x = 1\n");
    r.write("b/y.py", "y = 1\n");
    r.commit("one");
    r.write("a/x.py", "x = 2\n");
    r.commit("two");
    let status = std::process::Command::new("git")
        .current_dir(r.path())
        .args(["sparse-checkout", "set", "a"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", r.path())
        .status()
        .expect("git is installed");
    assert!(status.success());
    assert!(!r.path().join("b/y.py").exists());
    assert_eq!(paths(&json(&r, &[])), Vec::<String>::new());
    assert_eq!(paths(&json(&r, &["HEAD~1"])), ["a/x.py"]);
}

#[cfg(unix)]
#[test]
fn non_utf8_paths_are_reported_lossily_not_fatally() {
    use std::os::unix::ffi::OsStrExt;
    let r = Repo::new();
    r.write("keep.txt", "x\n");
    r.commit("one");
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.py");
    std::fs::write(r.path().join(name), "x = 1\n").unwrap();
    r.commit("two");
    let v = json(&r, &["HEAD~1..HEAD"]);
    assert_eq!(paths(&v), ["caf\u{fffd}.py"]);
    let out = r
        .cmd()
        .args(["review", "HEAD~1..HEAD", "--color", "never"])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)));
}
