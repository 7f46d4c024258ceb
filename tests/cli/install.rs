//! What a user installs beside the binary: shell completions, the man page, and a
//! `--version` that names the embedded model.

use crate::common::*;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command as Process;

const SUBCOMMANDS: [&str; 9] = [
    "review",
    "train",
    "eval",
    "eval-suggest",
    "eval-pairs",
    "scan",
    "hook",
    "completions",
    "man",
];

/// `deepspark ARGS`, run in an empty temporary directory.
fn deepspark(args: &[&str]) -> assert_cmd::assert::Assert {
    let dir = tempfile::tempdir().unwrap();
    cmd_in(dir.path()).args(args).assert()
}

fn stdout_of(args: &[&str]) -> String {
    String::from_utf8(deepspark(args).success().stderr("").get_output().stdout.clone()).unwrap()
}

/// Runs `program ARGS FILE` on `text` written to FILE, asserts that it succeeds, and
/// returns its stdout.
fn check_with(program: &str, args: &[&str], env: &[(&str, &str)], text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input");
    std::fs::write(&file, text).unwrap();
    let out = Process::new(program)
        .args(args)
        .arg(&file)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} rejects it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `program` can be started here (tests that need it skip with a message otherwise).
fn have(program: &str, probe: &str) -> bool {
    let found = Process::new(program)
        .arg(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: `{program}` is not installed");
    }
    found
}

#[test]
fn bash_completion_is_valid_bash_and_knows_every_subcommand() {
    let script = stdout_of(&["completions", "bash"]);
    for sub in SUBCOMMANDS {
        assert!(script.contains(sub), "bash completion does not name {sub}");
    }
    if !have("bash", "--version") {
        return;
    }
    check_with("bash", &["-n"], &[], &script);
}

#[test]
fn every_shell_gets_a_script_that_names_the_subcommands() {
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(!script.trim().is_empty(), "{shell}: empty completion script");
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completion does not name {sub}");
        }
        // The review flags come from the same clap definition as `--help`.
        assert!(
            script.contains("suggest-margin"),
            "{shell} completion lacks review's flags"
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    deepspark(&["completions", "tcsh"])
        .code(2)
        .stdout("")
        .stderr(contains("tcsh"));
}

/// The lines before `.TH`: clap_mangen's definition of the apostrophe string (`\*(Aq`), the
/// one thing roff needs before the title.
fn assert_starts_with_title(page: &str, title: &str) {
    let (before, rest) = page.split_once(".TH ").expect("a man page has a .TH line");
    for line in before.lines() {
        assert!(
            line.starts_with(".ie ") || line.starts_with(".el "),
            "{line:?} before .TH"
        );
    }
    assert!(rest.starts_with(&format!("{title} 1 ")), ".TH {rest:.40}");
}

fn render_with_man(page: &str) -> Option<String> {
    if !have("man", "--version") {
        return None;
    }
    let env = [("MANPAGER", "cat"), ("MANWIDTH", "80"), ("LC_ALL", "C.UTF-8")];
    Some(check_with("man", &["-l"], &env, page))
}

#[test]
fn man_page_is_roff_that_man_renders() {
    let page = stdout_of(&["man"]);
    assert_starts_with_title(&page, "deepspark");
    if let Some(text) = render_with_man(&page) {
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "SUBCOMMANDS"] {
            assert!(text.contains(section), "rendered page lacks {section}:\n{text}");
        }
        for sub in SUBCOMMANDS {
            assert!(
                text.contains(&format!("deepspark-{sub}(1)")),
                "rendered page lacks {sub}:\n{text}"
            );
        }
    }
}

#[test]
fn a_subcommand_has_its_own_man_page() {
    let page = stdout_of(&["man", "review"]);
    assert_starts_with_title(&page, "deepspark-review");
    if let Some(text) = render_with_man(&page) {
        for flag in ["--suggest-margin", "--fail-on", "--staged"] {
            assert!(text.contains(flag), "review's page lacks {flag}:\n{text}");
        }
    }
    deepspark(&["man", "nope"])
        .code(2)
        .stdout("")
        .stderr(contains("no subcommand \"nope\"").and(contains("review")));
}

#[test]
fn version_names_the_embedded_weights_by_their_sha256() {
    let weights = |name: &str| std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(name)).unwrap();
    let hex = |bytes: &[u8]| -> String { Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect() };
    let model = weights("model.safetensors");
    let generator = weights("generator.safetensors");

    let long = stdout_of(&["--version"]);
    let model_line = format!(
        "model: weights/model.safetensors sha256:{} (safetensors, {} bytes)",
        hex(&model),
        model.len()
    );
    assert!(long.contains(&model_line), "{long}");
    let generator_line = format!(
        "generator: weights/generator.safetensors sha256:{} (safetensors, {} bytes)",
        hex(&generator),
        generator.len()
    );
    assert!(long.contains(&generator_line), "{long}");

    let short = stdout_of(&["-V"]);
    let expected = format!(
        "deepspark {} (model sha256:{})\n",
        env!("CARGO_PKG_VERSION"),
        &hex(&model)[..12]
    );
    assert_eq!(short, expected);
    assert!(long.starts_with(&expected), "{long}");
}
