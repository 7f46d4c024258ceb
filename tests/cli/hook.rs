//! The pre-push hook: safe install/uninstall, chaining, and pushes through it.

use crate::common::*;
use predicates::prelude::*;
use predicates::str::contains;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A work repository with a bare `origin`, one commit pushed.
struct Remote {
    work: Repo,
    _bare_parent: tempfile::TempDir,
    bare: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args([
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("DEEPSPARK_MODEL", tiny_model())
        .env_remove("DEEPSPARK_LGTM")
        .env_remove("DEEPSPARK_REJECT")
        .env_remove("DEEPSPARK_FAIL_ON");
    c
}

fn ok(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn remote() -> Remote {
    let work = two_commits();
    let bare_parent = tempfile::tempdir().unwrap();
    let bare = bare_parent.path().join("origin.git");
    git2::Repository::init_bare(&bare).unwrap();
    ok(&mut git(
        work.path(),
        &["remote", "add", "origin", bare.to_str().unwrap()],
    ));
    ok(&mut git(work.path(), &["push", "-q", "origin", "main"]));
    Remote {
        work,
        _bare_parent: bare_parent,
        bare,
    }
}

fn hooks(r: &Repo) -> PathBuf {
    r.path().join(".git/hooks")
}

fn change_and_commit(r: &Repo) {
    r.write("b.rs", "fn b() {\n    let x = 1;\n}\n");
    r.commit("third");
}

#[test]
fn gate_blocks_the_push_and_a_clean_change_passes() {
    let rm = remote();
    rm.work
        .cmd()
        .args(["hook", "install"])
        .assert()
        .success()
        .stdout(contains("installed"));
    change_and_commit(&rm.work);
    // Everything is REJECT: the push is blocked and says how to bypass.
    let out = git(rm.work.path(), &["push", "origin", "main"])
        .env("DEEPSPARK_LGTM", "1")
        .env("DEEPSPARK_REJECT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blocked") && err.contains("--no-verify"), "{err}");
    assert!(err.contains("b.rs"), "the report names the pushed file: {err}");
    let remote_head = git2::Repository::open_bare(&rm.bare)
        .unwrap()
        .refname_to_id("refs/heads/main")
        .unwrap();
    assert_ne!(
        remote_head,
        rm.work.repo.head().unwrap().target().unwrap(),
        "nothing was pushed"
    );
    // Everything is LGTM: the push goes through.
    ok(git(rm.work.path(), &["push", "-q", "origin", "main"])
        .env("DEEPSPARK_LGTM", "0")
        .env("DEEPSPARK_REJECT", "0"));
    let remote_head = git2::Repository::open_bare(&rm.bare)
        .unwrap()
        .refname_to_id("refs/heads/main")
        .unwrap();
    assert_eq!(remote_head, rm.work.repo.head().unwrap().target().unwrap());
}

#[test]
fn deletions_and_nothing_to_push_need_no_model() {
    let rm = remote();
    rm.work.cmd().args(["hook", "install"]).assert().success();
    ok(git(rm.work.path(), &["push", "-q", "origin", "main:gone"])
        .env("DEEPSPARK_LGTM", "0")
        .env("DEEPSPARK_REJECT", "0"));
    // No model can load here: a deletion must not need one.
    ok(git(rm.work.path(), &["push", "-q", "origin", ":gone"]).env("DEEPSPARK_MODEL", "/no/such/model"));
    rm.work
        .cmd()
        .args(["hook", "run", "pre-push", "origin", "url"])
        .env("DEEPSPARK_MODEL", "/no/such/model")
        .write_stdin("")
        .assert()
        .code(0);
}

#[test]
fn a_new_branch_reviews_only_the_commits_not_on_the_remote() {
    let rm = remote();
    ok(&mut git(rm.work.path(), &["checkout", "-q", "-b", "topic"]));
    rm.work.write("topic.rs", "fn topic() {}\n");
    ok(&mut git(rm.work.path(), &["add", "."]));
    ok(&mut git(rm.work.path(), &["commit", "-q", "-m", "topic"]));
    let local = rm.work.repo.refname_to_id("refs/heads/topic").unwrap();
    let input = format!("refs/heads/topic {local} refs/heads/topic {}\n", "0".repeat(40));
    let out = rm
        .work
        .cmd()
        .args([
            "hook",
            "run",
            "pre-push",
            "origin",
            "url",
            "--color",
            "never",
            "--fail-on",
            "never",
        ])
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("topic.rs"), "{err}");
    assert!(
        !err.contains("a.rs"),
        "commits already on origin are not reviewed again: {err}"
    );
}

#[test]
fn install_chains_an_existing_hook_and_uninstall_restores_it_exactly() {
    let rm = remote();
    let dir = hooks(&rm.work);
    std::fs::create_dir_all(&dir).unwrap();
    let log = rm.work.path().join("user-hook-saw");
    let user_hook = format!("#!/bin/sh\ncat > '{}'\nexit ${{USER_HOOK_EXIT:-0}}\n", log.display());
    std::fs::write(dir.join("pre-push"), &user_hook).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("pre-push"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // An earlier moved-aside hook is never overwritten.
    std::fs::write(dir.join("pre-push.deepspark-chained"), "earlier").unwrap();
    rm.work
        .cmd()
        .args(["hook", "install"])
        .assert()
        .success()
        .stdout(contains("pre-push.deepspark-chained.1"));
    rm.work
        .cmd()
        .args(["hook", "install"])
        .assert()
        .success()
        .stdout(contains("already installed"));
    assert_eq!(
        std::fs::read_to_string(dir.join("pre-push.deepspark-chained")).unwrap(),
        "earlier"
    );
    rm.work
        .cmd()
        .args(["hook", "status"])
        .assert()
        .success()
        .stdout(contains("chaining"));

    change_and_commit(&rm.work);
    // The user's hook runs first, sees git's stdin, and its failure blocks the push.
    let out = git(rm.work.path(), &["push", "origin", "main"])
        .env("USER_HOOK_EXIT", "3")
        .env("DEEPSPARK_LGTM", "0")
        .env("DEEPSPARK_REJECT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(std::fs::read_to_string(&log).unwrap().starts_with("refs/heads/main "));
    ok(git(rm.work.path(), &["push", "-q", "origin", "main"])
        .env("DEEPSPARK_LGTM", "0")
        .env("DEEPSPARK_REJECT", "0"));

    rm.work
        .cmd()
        .args(["hook", "uninstall"])
        .assert()
        .success()
        .stdout(contains("restored"));
    assert_eq!(std::fs::read_to_string(dir.join("pre-push")).unwrap(), user_hook);
    assert_eq!(
        std::fs::read_to_string(dir.join("pre-push.deepspark-chained")).unwrap(),
        "earlier"
    );
    assert!(!dir.join("pre-push.deepspark-chained.1").exists());
    rm.work
        .cmd()
        .args(["hook", "uninstall"])
        .assert()
        .code(2)
        .stderr(contains("not deepspark's hook"));
}

#[test]
fn worktrees_share_the_hook_and_hooks_path_is_refused() {
    let r = two_commits();
    let parent = tempfile::tempdir().unwrap();
    let wt = parent.path().join("wt");
    r.repo.worktree("wt", &wt, None).unwrap();
    cmd_in(&wt).args(["hook", "install"]).assert().success();
    assert!(
        std::fs::read_to_string(hooks(&r).join("pre-push"))
            .unwrap()
            .contains("deepspark-hook")
    );
    cmd_in(&wt).args(["hook", "uninstall"]).assert().success();
    assert!(!hooks(&r).join("pre-push").exists());

    r.repo
        .config()
        .unwrap()
        .set_str("core.hooksPath", "shared-hooks")
        .unwrap();
    r.cmd()
        .args(["hook", "install"])
        .assert()
        .code(2)
        .stderr(contains("core.hooksPath").and(contains("--allow-hooks-path")));
    assert!(!r.path().join("shared-hooks").exists());
    r.cmd()
        .args(["hook", "install", "--allow-hooks-path"])
        .assert()
        .success();
    assert!(r.path().join("shared-hooks/pre-push").exists());
}

#[test]
fn a_missing_binary_fails_closed() {
    let rm = remote();
    rm.work.cmd().args(["hook", "install"]).assert().success();
    let hook = hooks(&rm.work).join("pre-push");
    let script = std::fs::read_to_string(&hook).unwrap();
    let exe = assert_cmd::cargo::cargo_bin("deepspark");
    std::fs::write(&hook, script.replace(exe.to_str().unwrap(), "/nonexistent/deepspark")).unwrap();
    change_and_commit(&rm.work);
    let out = git(rm.work.path(), &["push", "origin", "main"])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn a_spent_time_budget_reports_what_was_not_reviewed() {
    let rm = remote();
    change_and_commit(&rm.work);
    let local = rm.work.repo.refname_to_id("refs/heads/main").unwrap();
    let remote_tip = git2::Repository::open_bare(&rm.bare)
        .unwrap()
        .refname_to_id("refs/heads/main")
        .unwrap();
    let input = format!("refs/heads/main {local} refs/heads/main {remote_tip}\n");
    let out = rm
        .work
        .cmd()
        .args([
            "hook", "run", "pre-push", "origin", "url", "--budget", "0", "--color", "never",
        ])
        .write_stdin(input)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "not reviewed is reported, not a silent block: {err}"
    );
    assert!(
        err.contains("b.rs") && err.contains("NOT REVIEWED: the time budget"),
        "{err}"
    );
    assert!(!err.contains("LGTM  "), "an unreviewed change is never LGTM: {err}");
}

/// The pre-commit framework, when this machine has it: `DEEPSPARK_PRE_COMMIT` (set by
/// `.ci/run`, which installs it; then it must work) or `pre-commit` on PATH.
fn pre_commit() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DEEPSPARK_PRE_COMMIT") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "DEEPSPARK_PRE_COMMIT={} does not exist", p.display());
        return Some(p);
    }
    let found = Command::new("pre-commit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "skipped: the pre-commit framework is not installed (pip install pre-commit, or set DEEPSPARK_PRE_COMMIT)"
        );
    }
    found.then(|| PathBuf::from("pre-commit"))
}

/// The `entry` of our `.pre-commit-hooks.yaml`, read from the file so the test follows it.
fn published_entry() -> String {
    let yaml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml")).unwrap();
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("entry:"))
        .expect("an entry line")
        .trim()
        .to_string()
}

/// PATH with the built binary first, as a user's shell would find an installed deepspark.
fn path_with_deepspark() -> std::ffi::OsString {
    let bin_dir = assert_cmd::cargo::cargo_bin("deepspark")
        .parent()
        .unwrap()
        .to_path_buf();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(&rest))).unwrap()
}

/// The environment `git(...)` gives, plus PATH and the framework's own store in the repository.
fn framework_env(c: &mut Command, work: &Path) {
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", work)
        .env("DEEPSPARK_MODEL", tiny_model())
        .env("PATH", path_with_deepspark())
        .env("PRE_COMMIT_HOME", work.join(".git/pre-commit-store"))
        .env_remove("PRE_COMMIT_FROM_REF")
        .env_remove("PRE_COMMIT_TO_REF")
        .env_remove("DEEPSPARK_FAIL_ON");
}

/// A repository with a bare origin whose `.pre-commit-config.yaml` runs our published entry
/// as a local system hook.
fn with_pre_commit(tool: &Path) -> (Remote, impl Fn(&[&str]) -> Command) {
    let rm = remote();
    let config = format!(
        "repos:\n- repo: local\n  hooks:\n  - id: deepspark\n    name: deepspark review\n    entry: {}\n    language: system\n    pass_filenames: false\n    always_run: true\n    stages: [pre-push]\n",
        published_entry()
    );
    rm.work.write(".pre-commit-config.yaml", config);
    ok(&mut git(rm.work.path(), &["add", "."]));
    ok(&mut git(rm.work.path(), &["commit", "-q", "-m", "pre-commit config"]));
    ok(&mut git(rm.work.path(), &["push", "-q", "origin", "main"]));
    let work = rm.work.path().to_path_buf();
    let tool = tool.to_path_buf();
    let run = move |args: &[&str]| {
        let mut c = Command::new(&tool);
        c.current_dir(&work).args(args);
        framework_env(&mut c, &work);
        c
    };
    (rm, run)
}

fn output_of(mut c: Command) -> (i32, String) {
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_pre_commit_framework_runs_the_published_entry_for_set_refs() {
    // Regression: the entry was `sh -c '... "${PRE_COMMIT_FROM_REF:-@{upstream}}..."'`, which
    // left a stray `}` after the ref and failed every push with exit 2.
    let Some(tool) = pre_commit() else { return };
    let (rm, pc) = with_pre_commit(&tool);
    let from = rm.work.repo.head().unwrap().target().unwrap().to_string();
    change_and_commit(&rm.work);
    let to = rm.work.repo.head().unwrap().target().unwrap().to_string();
    let args = ["run", "--hook-stage", "pre-push", "--from-ref", &from, "--to-ref", &to];
    let mut blocked = pc(&args);
    blocked.env("DEEPSPARK_LGTM", "1").env("DEEPSPARK_REJECT", "1");
    let (code, text) = output_of(blocked);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("exit code: 1") && !text.contains("deepspark: error"),
        "the gate, not an error: {text}"
    );
    assert!(
        text.contains("b.rs") && !text.contains("a.rs"),
        "reviews from..to only: {text}"
    );
    let mut passed = pc(&args);
    passed.env("DEEPSPARK_LGTM", "0").env("DEEPSPARK_REJECT", "0");
    let (code, text) = output_of(passed);
    assert_eq!(code, 0, "{text}");
    // No refs at all (`--all-files`, as pre-commit runs a push that includes a root commit):
    // HEAD against its upstream, never an error.
    let mut no_refs = pc(&["run", "--hook-stage", "pre-push", "--all-files"]);
    no_refs.env("DEEPSPARK_LGTM", "0").env("DEEPSPARK_REJECT", "0");
    let (code, text) = output_of(no_refs);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn pushes_through_the_pre_commit_framework_follow_the_native_hooks_rules() {
    let Some(tool) = pre_commit() else { return };
    let (rm, pc) = with_pre_commit(&tool);
    let (code, text) = output_of(pc(&["install", "--hook-type", "pre-push"]));
    assert_eq!(code, 0, "{text}");
    let push = |args: &[&str], lgtm: &str| {
        let mut c = git(rm.work.path(), args);
        framework_env(&mut c, rm.work.path());
        c.env("DEEPSPARK_LGTM", lgtm).env("DEEPSPARK_REJECT", lgtm);
        output_of(c)
    };
    // A new branch: only its own commit is reviewed, and the gate blocks it.
    ok(&mut git(rm.work.path(), &["checkout", "-q", "-b", "topic"]));
    rm.work.write("topic.rs", "fn topic() {}\n");
    ok(&mut git(rm.work.path(), &["add", "."]));
    ok(&mut git(rm.work.path(), &["commit", "-q", "-m", "topic"]));
    let (code, text) = push(&["push", "origin", "topic"], "1");
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("topic.rs") && !text.contains("deepspark: error"),
        "{text}"
    );
    assert!(
        !text.contains("a.rs"),
        "commits on origin are not reviewed again: {text}"
    );
    let (code, text) = push(&["push", "origin", "topic"], "0");
    assert_eq!(code, 0, "{text}");
    // Set refs: an update of an existing branch.
    change_and_commit(&rm.work);
    let (code, text) = push(&["push", "origin", "topic"], "0");
    assert_eq!(code, 0, "{text}");
    // A deletion needs no review (and no model).
    let mut c = git(rm.work.path(), &["push", "origin", ":topic"]);
    c.env("DEEPSPARK_MODEL", "/no/such/model");
    let (code, text) = output_of(c);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn the_pre_commit_mode_reads_an_all_zero_from_ref_as_a_new_branch() {
    let rm = remote();
    ok(&mut git(rm.work.path(), &["checkout", "-q", "-b", "topic"]));
    rm.work.write("topic.rs", "fn topic() {}\n");
    ok(&mut git(rm.work.path(), &["add", "."]));
    ok(&mut git(rm.work.path(), &["commit", "-q", "-m", "topic"]));
    let zero = "0".repeat(40);
    let out = rm
        .work
        .cmd()
        .args(["hook", "run", "pre-commit", "--color", "never", "--fail-on", "never"])
        .env("PRE_COMMIT_FROM_REF", &zero)
        .env("PRE_COMMIT_TO_REF", "topic")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("topic.rs") && !err.contains("a.rs"), "{err}");
    // An all-zero to-ref is a deletion: nothing to review, no model needed.
    rm.work
        .cmd()
        .args(["hook", "run", "pre-commit"])
        .env("PRE_COMMIT_FROM_REF", "main")
        .env("PRE_COMMIT_TO_REF", &zero)
        .env("DEEPSPARK_MODEL", "/no/such/model")
        .assert()
        .code(0);
    // A ref that does not exist is a clear error.
    rm.work
        .cmd()
        .args(["hook", "run", "pre-commit"])
        .env("PRE_COMMIT_FROM_REF", "main")
        .env("PRE_COMMIT_TO_REF", "no-such-branch")
        .assert()
        .code(2)
        .stderr(contains("pre-commit"));
}
