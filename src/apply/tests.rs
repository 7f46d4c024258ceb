//! Tests of `apply`: the checks before writing, the atomic writes, the index update and
//! the patch text (also against `git apply`). The code under test is in `mod.rs`.

use super::*;
use proptest::prelude::*;
use std::process::{Command, Stdio};

fn repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    let mut config = repo.config().unwrap();
    config.set_str("user.name", "Test").unwrap();
    config.set_str("user.email", "test@example.com").unwrap();
    (dir, repo)
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn edit(path: &str, old: &[u8], new: &[u8]) -> FileEdit {
    FileEdit {
        path: path.into(),
        old: old.to_vec(),
        new: new.to_vec(),
    }
}

fn stage(repo: &Repository, rel: &str) {
    let mut index = repo.index().unwrap();
    index.add_path(Path::new(rel)).unwrap();
    index.write().unwrap();
}

/// Runs the real git in `dir` with no user or system config; `None` when git is not installed.
fn git(dir: &Path, args: &[&str], stdin: &[u8]) -> Option<std::process::Output> {
    let empty = dir.join(".git").join("test-empty-config");
    fs::write(&empty, "").unwrap();
    let child = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", &empty)
        .args(["-c", "core.autocrlf=false"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running git: {e}"),
    };
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    Some(child.wait_with_output().unwrap())
}

/// Applies `patch` with `git apply --check` then `git apply` in `dir`; false when git is missing.
fn git_apply(dir: &Path, patch: &str) -> bool {
    for args in [&["apply", "--check", "-"][..], &["apply", "-"][..]] {
        let Some(out) = git(dir, args, patch.as_bytes()) else {
            eprintln!("skipping the `git apply` part: git is not on PATH");
            return false;
        };
        assert!(
            out.status.success(),
            "git {args:?} failed: {}\npatch:\n{patch}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    true
}

fn no_temp_files(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().contains(".deepspark-"), "left behind: {name:?}");
    }
}

#[test]
fn safe_path_refuses_paths_that_leave_the_work_tree_or_enter_git() {
    let (dir, _repo) = repo();
    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        ".git/config",
        "sub/.git/hooks/pre-push",
        ".GIT/config",
        ".git /config",
        ".git./config",
        "GIT~1/config",
        ".g\u{200c}it/config",
        "a\\b",
        "",
        "a//b",
        "a/",
        "./a",
        "a\0b",
    ] {
        let err = safe_path(dir.path(), bad).expect_err(bad);
        assert!(matches!(err, ApplyError::UnsafePath { .. }), "{bad:?}: {err}");
    }
    assert_eq!(
        safe_path(dir.path(), "src/a.rs").unwrap(),
        dir.path().join("src").join("a.rs")
    );
    assert!(safe_path(dir.path(), "dir with space/ü.rs").is_ok());
    assert!(safe_path(dir.path(), ".gitignore").is_ok());
    assert!(safe_path(dir.path(), "a/.github/x.yml").is_ok());
}

#[cfg(unix)]
#[test]
fn safe_path_refuses_to_write_through_a_symlink() {
    let (dir, _repo) = repo();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("f"), "secret\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("file-link")).unwrap();
    for bad in ["link/f", "link", "file-link", "link/missing/deeper"] {
        let err = safe_path(dir.path(), bad).expect_err(bad);
        assert!(err.to_string().contains("symbolic link"), "{bad}: {err}");
    }
}

#[test]
fn apply_writes_new_bytes_and_leaves_no_temp_files() {
    let (dir, repo) = repo();
    write(dir.path(), "src/a.rs", b"fn a() {}\n");
    let n = apply(
        &repo,
        &[edit("src/a.rs", b"fn a() {}\n", b"fn a() -> u8 { 0 }\n")],
        false,
    )
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(fs::read(dir.path().join("src/a.rs")).unwrap(), b"fn a() -> u8 { 0 }\n");
    no_temp_files(&dir.path().join("src"));
}

#[cfg(unix)]
#[test]
fn apply_keeps_the_executable_bit() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, repo) = repo();
    write(dir.path(), "run.sh", b"#!/bin/sh\necho hi\n");
    let path = dir.path().join("run.sh");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    apply(
        &repo,
        &[edit("run.sh", b"#!/bin/sh\necho hi\n", b"#!/bin/sh\necho bye\n")],
        false,
    )
    .unwrap();
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(fs::read(&path).unwrap(), b"#!/bin/sh\necho bye\n");
    no_temp_files(dir.path());
}

#[test]
fn apply_writes_nothing_when_any_file_changed_since_review() {
    let (dir, repo) = repo();
    write(dir.path(), "a.txt", b"a\n");
    write(dir.path(), "b.txt", b"b edited meanwhile\n");
    let edits = [edit("a.txt", b"a\n", b"A\n"), edit("b.txt", b"b\n", b"B\n")];
    let err = apply(&repo, &edits, false).unwrap_err();
    assert!(matches!(&err, ApplyError::Changed { path } if path == "b.txt"), "{err}");
    assert_eq!(err.to_string(), "b.txt changed since it was reviewed; review again");
    assert_eq!(fs::read(dir.path().join("a.txt")).unwrap(), b"a\n");
    assert_eq!(fs::read(dir.path().join("b.txt")).unwrap(), b"b edited meanwhile\n");
    no_temp_files(dir.path());
}

#[test]
fn check_refuses_missing_files_folders_duplicates_and_bare_repositories() {
    let (dir, repo) = repo();
    write(dir.path(), "a.txt", b"a\n");
    fs::create_dir(dir.path().join("folder")).unwrap();
    let err = check(&repo, &[edit("gone.txt", b"x\n", b"y\n")], false).unwrap_err();
    assert!(matches!(err, ApplyError::Changed { .. }), "{err}");
    let err = check(&repo, &[edit("folder", b"", b"y\n")], false).unwrap_err();
    assert!(matches!(err, ApplyError::NotRegular { .. }), "{err}");
    let twice = [edit("a.txt", b"a\n", b"b\n"), edit("a.txt", b"a\n", b"c\n")];
    let err = check(&repo, &twice, false).unwrap_err();
    assert!(matches!(err, ApplyError::Duplicate { .. }), "{err}");
    assert!(matches!(patch(&twice), Err(ApplyError::Duplicate { .. })));

    let bare_dir = tempfile::tempdir().unwrap();
    let bare = Repository::init_bare(bare_dir.path()).unwrap();
    let err = apply(&bare, &[edit("a.txt", b"a\n", b"b\n")], false).unwrap_err();
    assert!(matches!(err, ApplyError::Bare(_)), "{err}");
}

#[test]
fn apply_with_index_stages_the_new_blob() {
    let (dir, repo) = repo();
    write(dir.path(), "src/a.rs", b"old\n");
    stage(&repo, "src/a.rs");
    apply(&repo, &[edit("src/a.rs", b"old\n", b"new\n")], true).unwrap();
    let reopened = Repository::open(dir.path()).unwrap();
    let entry = reopened.index().unwrap().get_path(Path::new("src/a.rs"), 0).unwrap();
    assert_eq!(reopened.find_blob(entry.id).unwrap().content(), b"new\n");
    assert_eq!(entry.file_size, 4);
    assert_eq!(entry.mode, 0o100644);
}

#[test]
fn apply_with_index_refuses_when_the_index_differs_from_the_work_tree() {
    let (dir, repo) = repo();
    write(dir.path(), "a.txt", b"staged\n");
    stage(&repo, "a.txt");
    write(dir.path(), "a.txt", b"work tree\n");
    write(dir.path(), "untracked.txt", b"u\n");
    let index_before = fs::read(dir.path().join(".git/index")).unwrap();
    for path in ["a.txt", "untracked.txt"] {
        let old = fs::read(dir.path().join(path)).unwrap();
        let err = apply(&repo, &[edit(path, &old, b"new\n")], true).unwrap_err();
        assert!(matches!(err, ApplyError::IndexMismatch { .. }), "{path}: {err}");
        assert_eq!(fs::read(dir.path().join(path)).unwrap(), old);
    }
    assert_eq!(fs::read(dir.path().join(".git/index")).unwrap(), index_before);
}

#[test]
fn apply_without_index_leaves_the_index_byte_for_byte() {
    let (dir, repo) = repo();
    write(dir.path(), "a.txt", b"a\n");
    stage(&repo, "a.txt");
    let before = fs::read(dir.path().join(".git/index")).unwrap();
    apply(&repo, &[edit("a.txt", b"a\n", b"b\n")], false).unwrap();
    assert_eq!(fs::read(dir.path().join(".git/index")).unwrap(), before);
}

#[test]
fn patch_refuses_non_utf8_and_unsafe_paths() {
    let err = patch(&[edit("a.bin", b"\xff\xfe\n", b"x\n")]).unwrap_err();
    assert!(matches!(err, ApplyError::NotText { .. }), "{err}");
    let err = patch(&[edit("a.txt", b"x\n", b"\xc3\n")]).unwrap_err();
    assert!(matches!(err, ApplyError::NotText { .. }), "{err}");
    let err = patch(&[edit("../a.txt", b"x\n", b"y\n")]).unwrap_err();
    assert!(matches!(err, ApplyError::UnsafePath { .. }), "{err}");
    assert_eq!(patch(&[edit("same.txt", b"x\n", b"x\n")]).unwrap(), "");
}

#[test]
fn patch_quotes_paths_like_git() {
    assert_eq!(quote("a/", "src/a.rs"), "a/src/a.rs");
    assert_eq!(quote("a/", "dir with space/x"), "a/dir with space/x");
    assert_eq!(quote("a/", "tést"), r#""a/t\303\251st""#);
    assert_eq!(quote("b/", "a\"b\tc"), r#""b/a\"b\tc""#);
    let text = patch(&[edit("dir with space/x", b"a\n", b"b\n")]).unwrap();
    assert!(text.starts_with("diff --git a/dir with space/x b/dir with space/x\n--- a/dir with space/x\t\n"));
}

#[test]
fn patch_marks_a_missing_final_newline_like_git() {
    let text = patch(&[edit("a.txt", b"one\ntwo", b"one\nTWO\n")]).unwrap();
    assert_eq!(
        text,
        concat!(
            "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n",
            "@@ -1,2 +1,2 @@\n one\n-two\n\\ No newline at end of file\n+TWO\n",
        )
    );
}

/// Regression: CRLF files, a missing final newline, non-ASCII text and quoted paths must
/// round-trip through the real `git apply`, and `apply` must produce the same bytes.
#[test]
fn patch_applies_with_git_and_matches_apply() {
    let cases: [(&str, &[u8], &[u8]); 5] = [
        (
            "crlf.txt",
            b"one\r\ntwo\r\nthree\r\n",
            b"one\r\nTWO\r\nthree\r\nfour\r\n",
        ),
        ("no-eol.txt", b"one\ntwo\nthree", b"one\ntwo\nthree\nfour"),
        (
            "dir with space/ü.rs",
            "// café\nlet x = 1;\n".as_bytes(),
            "// café ☕\nlet x = 2;\n".as_bytes(),
        ),
        ("lone-cr.txt", b"a\rb\nc\n", b"a\rB\nc\r"),
        ("empty.txt", b"", b"now\nfull\n"),
    ];
    let edits: Vec<FileEdit> = cases.iter().map(|(p, old, new)| edit(p, old, new)).collect();
    let text = patch(&edits).unwrap();

    let (by_git, _r1) = repo();
    let (by_us, repo2) = repo();
    for e in &edits {
        write(by_git.path(), &e.path, &e.old);
        write(by_us.path(), &e.path, &e.old);
    }
    apply(&repo2, &edits, false).unwrap();
    if !git_apply(by_git.path(), &text) {
        return;
    }
    for e in &edits {
        let git_bytes = fs::read(by_git.path().join(&e.path)).unwrap();
        assert_eq!(git_bytes, e.new, "{}", e.path);
        assert_eq!(fs::read(by_us.path().join(&e.path)).unwrap(), git_bytes, "{}", e.path);
    }
}

/// A small text: lines from a tiny alphabet (one with a lone `\r` inside), each ended
/// by `\n` or `\r\n`, and maybe without the final `\n`.
fn text() -> impl Strategy<Value = Vec<u8>> {
    let line = (
        prop::sample::select(vec!["a", "b", "c", "", "é", "x\ry"]),
        any::<bool>(),
    );
    (prop::collection::vec(line, 0..8), any::<bool>()).prop_map(|(lines, cut)| {
        let mut out = Vec::new();
        for (line, crlf) in lines {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        if cut {
            out.pop();
        }
        out
    })
}

proptest! {
    #[test]
    fn apply_gives_exactly_new(old in text(), new in text()) {
        let (dir, repo) = repo();
        write(dir.path(), "f.txt", &old);
        let n = apply(&repo, &[edit("f.txt", &old, &new)], false).unwrap();
        prop_assert_eq!(n, usize::from(old != new));
        prop_assert_eq!(fs::read(dir.path().join("f.txt")).unwrap(), new);
        no_temp_files(dir.path());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn git_apply_of_patch_gives_exactly_new(old in text(), new in text()) {
        let text = patch(&[edit("f.txt", &old, &new)]).unwrap();
        if old == new {
            prop_assert_eq!(text, "");
            return Ok(());
        }
        let (dir, _repo) = repo();
        write(dir.path(), "f.txt", &old);
        if git_apply(dir.path(), &text) {
            prop_assert_eq!(fs::read(dir.path().join("f.txt")).unwrap(), new);
        }
    }
}
