//! The README and the CLI agree: every flag `deepspark review --help` prints is in the
//! README's table of review flags, and the table names no flag that `--help` lacks.

use crate::common::*;
use std::collections::BTreeSet;

/// The flags (`-C`, `--repo`) and visible aliases (`--cached`) of a `--help` text. A flag
/// line is indented 2 (`  -C, --repo <PATH>`) or 6 (`      --staged`) spaces; descriptions
/// and their lists ("- json: ...") are indented 10.
fn help_flags(help: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for line in help.lines() {
        let text = line.trim_start();
        let indent = line.len() - text.len();
        if (indent == 2 || indent == 6) && text.starts_with('-') {
            let names = text.split(" <").next().unwrap();
            flags.extend(names.split(", ").map(|f| f.trim().to_string()));
        } else if let Some(aliases) = text
            .strip_prefix("[alias: ")
            .or_else(|| text.strip_prefix("[aliases: "))
        {
            flags.extend(aliases.trim_end_matches(']').split(", ").map(|f| f.trim().to_string()));
        }
    }
    flags
}

/// The flags named in the first column of the table under the README's heading "Flags of
/// `review`": every backquoted word there that starts with `-` (`` `--repo PATH` `` gives `--repo`).
fn readme_flags(readme: &str) -> BTreeSet<String> {
    let section = readme
        .split("\n#")
        .find(|s| s.trim_start_matches('#').trim_start().starts_with("Flags of `review`"))
        .expect("README.md has a section \"Flags of `review`\"");
    let mut flags = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let first = row.split('|').nth(1).unwrap_or_default();
        for quoted in first.split('`').skip(1).step_by(2) {
            if let Some(flag) = quoted.split(' ').next().filter(|w| w.starts_with('-')) {
                flags.insert(flag.to_string());
            }
        }
    }
    flags
}

#[test]
fn readme_lists_every_flag_of_review_help_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd_in(dir.path())
        .args(["review", "--help"])
        .assert()
        .success()
        .get_output()
        .clone();
    let mut help = help_flags(&String::from_utf8(out.stdout).unwrap());
    // clap's own flag, the same for every command: the README does not list it.
    help.remove("-h");
    help.remove("--help");
    assert!(
        help.contains("--staged") && help.contains("--cached") && help.contains("-C"),
        "{help:?}"
    );

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let readme = readme_flags(&readme);
    let missing: Vec<_> = help.difference(&readme).collect();
    let stale: Vec<_> = readme.difference(&help).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md's \"Flags of `review`\" table and `deepspark review --help` disagree:\n\
         in --help, not in README: {missing:?}\nin README, not in --help: {stale:?}"
    );
}

#[test]
fn the_help_parser_sees_a_flag_added_to_clap() {
    // The comparison above can only fail if a new flag is seen: a help text with one more
    // flag than the README must give one more name.
    let help = "Options:\n      --staged\n          Compare\n          [alias: --cached]\n  -C, --repo <PATH>\n          Repo\n          - json: not a flag\n      --new-flag <N>\n          New\n";
    let names: Vec<String> = help_flags(help).into_iter().collect();
    assert_eq!(names, ["--cached", "--new-flag", "--repo", "--staged", "-C"]);
}

/// The README's JSON schema: the block under "## JSON output".
fn readme_schema() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## JSON output").expect("README has a JSON output section");
    let block = &readme[start..];
    let open = block.find("```").expect("the schema is a code block") + 3;
    let close = open + block[open..].find("```").expect("the block ends");
    block[open..close].to_string()
}

#[test]
fn readme_json_schema_names_every_key_a_review_writes() {
    // A review with a finding, a suggestion, a history-free calibration and a skipped file, so
    // that the keys of each level are there to read.
    let r = two_commits();
    r.write("Cargo.lock", "# lock\n");
    r.commit("third");
    let (v, _) = review_json(&r, &["HEAD~2..HEAD"]);
    let schema = readme_schema();
    let mut missing = BTreeSet::new();
    let mut check = |level: &str, obj: &serde_json::Value| {
        for k in obj.as_object().unwrap().keys() {
            if !schema.contains(&format!("\"{k}\"")) {
                missing.insert(format!("{level}.{k}"));
            }
        }
    };
    check("", &v);
    for f in v["files"].as_array().unwrap() {
        check("files[]", f);
        for h in f["hunks"].as_array().unwrap() {
            check("hunks[]", h);
            for l in h["lines"].as_array().unwrap() {
                check("lines[]", l);
            }
        }
        if f["skipped"].is_object() {
            check("skipped", &f["skipped"]);
        }
    }
    check("calibration", &v["calibration"]);
    check("summary", &v["summary"]);
    assert!(
        missing.is_empty(),
        "keys a review writes that README.md's JSON schema does not name: {missing:?}"
    );
}
