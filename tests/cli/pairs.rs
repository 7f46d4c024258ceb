//! `deepspark eval-pairs`: bug/fix pairs read from commit records, scored end to end, with
//! and without a language model (a tiny random one, and the real SmolLM2 when present).

use crate::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// 50 fix commits of one project, one a minute. Each fixes a comparison (one line for one
/// line) and bumps the copyright year of the file's header (no pair); every fifth also
/// replaces two lines with one.
fn write_fixes(dir: &Path) -> PathBuf {
    let path = dir.join("p.commits.jsonl");
    let mut out = std::fs::File::create(&path).unwrap();
    for i in 0..50 {
        let mut diff = format!(
            "diff --git a/src/x{i}.c b/src/x{i}.c\nindex 1..2 100644\n--- a/src/x{i}.c\n+++ b/src/x{i}.c\n\
             @@ -1,3 +1,3 @@\n /*\n- * Copyright 2019 The Authors\n+ * Copyright 2020 The Authors\n */\n\
             @@ -10,3 +10,3 @@ int f{i}(void) {{\n   int s = 0;\n-  for (i = 0; i < n; i++) {{\n\
             +  for (i = 0; i <= n; i++) {{\n     s += i;\n"
        );
        if i % 5 == 0 {
            diff.push_str(
                "@@ -30,4 +30,3 @@\n   int t = 0;\n-  t = g(s);\n-  t += 1;\n+  t = g(s) + 1;\n   return t;\n",
            );
        }
        let c = serde_json::json!({"commit_id": format!("{i:040x}"), "project": "p", "buggy": false,
            "fix": true, "author_date": 1_600_000_000 + i * 60, "subject": "fix", "diff": diff, "fixed_by": []});
        writeln!(out, "{c}").unwrap();
    }
    path
}

fn eval_pairs(dir: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    cmd_in(dir)
        .arg("eval-pairs")
        .args(args)
        .arg("--model")
        .arg(tiny_model())
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn eval_pairs_scores_code_pairs_and_leaves_licence_headers_out() {
    let d = tempfile::tempdir().unwrap();
    let data = write_fixes(d.path());
    let out = eval_pairs(d.path(), &data, &["--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&out);
    // The test split is the latest 10 commits (40..49): 10 one-line fixes, and the
    // two-for-one fixes of commits 40 and 45; no copyright bump counts.
    assert_eq!(v["split"], "test");
    assert_eq!(v["n"], 12, "{v}");
    assert_eq!(v["n_same_length"], 10);
    // The added-lines baseline ties the same-length pairs and is right on the two others.
    let baseline = v["baseline_pair_accuracy"].as_f64().unwrap();
    assert!((baseline - (10.0 * 0.5 + 2.0) / 12.0).abs() < 1e-9, "{v}");
    assert_eq!(v["baseline_pair_accuracy_same_length"], 0.5);
    for k in ["pair_accuracy", "pair_accuracy_same_length"] {
        let x = v[k].as_f64().unwrap_or_else(|| panic!("{k} missing"));
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    assert_eq!(v["projects"]["p"]["n"], 12);

    let all = json_of(&eval_pairs(d.path(), &data, &["--format", "json", "--split", "all"]));
    assert_eq!(all["n"], 60, "{all}");

    let text = eval_pairs(d.path(), &data, &[]);
    assert!(text.status.success());
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(stdout.starts_with("bug/fix pairs (test split): 12 pairs"), "{stdout}");
}

#[test]
fn eval_pairs_without_fixes_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("none.commits.jsonl");
    let c = serde_json::json!({"commit_id": "a", "project": "p", "buggy": false, "fix": false,
        "author_date": 1, "subject": "s", "diff": "", "fixed_by": []});
    std::fs::write(&path, format!("{c}\n")).unwrap();
    let out = eval_pairs(d.path(), &path, &["--split", "all"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no bug/fix pairs"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// A tiny random language model in `dir` (128 tokens of context: the pairs above fit).
fn tiny_lm(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    deepspark::lm::tiny::Tiny::default().write(&path).unwrap();
    path
}

fn in_unit(v: &serde_json::Value, k: &str) -> f64 {
    let x = v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {v}"));
    assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    x
}

#[test]
fn a_language_model_reads_every_pair_the_same_way_twice() {
    let d = tempfile::tempdir().unwrap();
    let data = write_fixes(d.path());
    let lm = tiny_lm(d.path());
    let lm = lm.to_str().unwrap();
    let out = eval_pairs(d.path(), &data, &["--format", "json", "--lm", lm]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&out);
    assert_eq!((v["n"].as_u64(), v["lm_pairs"].as_u64()), (Some(12), Some(12)), "{v}");
    assert_eq!(
        (v["lm_pairs_same_length"].as_u64(), v["lm_skipped"].as_u64()),
        (Some(10), Some(0))
    );
    let accuracy = in_unit(&v, "lm_pair_accuracy");
    in_unit(&v, "lm_pair_accuracy_same_length");
    // A tie counts half, so twelve pairs give a multiple of 1/24.
    assert!(((accuracy * 24.0).round() - accuracy * 24.0).abs() < 1e-9, "{accuracy}");
    for k in ["lm_mean_surprisal_buggy", "lm_mean_surprisal_fixed"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0 && x.is_finite()), "{k}: {v}");
    }
    assert!(v["language_model"].as_str().unwrap().contains("tiny"), "{v}");
    assert_eq!(v["projects"]["p"]["lm_pairs"], 12);
    assert!(String::from_utf8_lossy(&out.stderr).contains("read 12 pairs"));
    // The same numbers again, and the risk model's figures are those without --lm.
    let again = json_of(&eval_pairs(d.path(), &data, &["--format", "json", "--lm", lm]));
    assert_eq!(again, v);
    let without = json_of(&eval_pairs(d.path(), &data, &["--format", "json"]));
    assert_eq!(without["pair_accuracy"], v["pair_accuracy"]);
    assert!(without.get("lm_pair_accuracy").is_none() && without.get("language_model").is_none());

    let text = eval_pairs(d.path(), &data, &["--lm", lm]);
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(stdout.starts_with("language model: "), "{stdout}");
    assert!(stdout.contains("buggy version more surprising in"), "{stdout}");
}

#[test]
fn limit_measures_the_same_sample_on_every_run() {
    let d = tempfile::tempdir().unwrap();
    let data = write_fixes(d.path());
    let lm = tiny_lm(d.path());
    let args = ["--format", "json", "--limit", "5", "--lm", lm.to_str().unwrap()];
    let v = json_of(&eval_pairs(d.path(), &data, &args));
    assert_eq!((v["n"].as_u64(), v["lm_pairs"].as_u64()), (Some(5), Some(5)), "{v}");
    assert_eq!(json_of(&eval_pairs(d.path(), &data, &args)), v);
    // Without --lm the limit applies to the risk model alike; a large one changes nothing.
    assert_eq!(
        json_of(&eval_pairs(d.path(), &data, &["--format", "json", "--limit", "5"]))["n"],
        5
    );
    let all = json_of(&eval_pairs(d.path(), &data, &["--format", "json", "--limit", "1000"]));
    assert_eq!(all["n"], 12);
    // A missing model is named before any data is read.
    let out = eval_pairs(d.path(), &data, &["--lm", "no/such.gguf", "--offline"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such.gguf"));
}

/// SmolLM2-135M-Instruct as `.ci/run` fetches it; `None` (and a message) when absent.
fn smollm2() -> Option<PathBuf> {
    let path = std::env::var_os("DEEPSPARK_TEST_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("skipped: no {} (`.ci/run` fetches it)", path.display());
        None
    }
}

#[test]
fn smollm2_reads_real_code_pairs() {
    let Some(model) = smollm2() else { return };
    let d = tempfile::tempdir().unwrap();
    let data = write_fixes(d.path());
    let started = std::time::Instant::now();
    let args = ["--format", "json", "--limit", "3", "--lm", model.to_str().unwrap()];
    let out = eval_pairs(d.path(), &data, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["lm_pairs"], 3, "{v}");
    in_unit(&v, "lm_pair_accuracy");
    // Real code after its real context: a few nats per token, not the ~10 of a uniform guess
    // over 49,152 tokens.
    for k in ["lm_mean_surprisal_buggy", "lm_mean_surprisal_fixed"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0 && x < 6.0), "{k}: {v}");
    }
    assert!(v["language_model"].as_str().unwrap().contains("llama"), "{v}");
    eprintln!("smollm2 read 3 pairs in {:.1}s", started.elapsed().as_secs_f64());
}
