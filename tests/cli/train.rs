//! `deepspark train` and `deepspark eval` on a small hand-made data set.

use crate::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// 40 commits of project "p", one a minute. Every third commit is buggy; its first hunk
/// is labelled 1 and adds three lines, its second is ambiguous (-1). Clean commits'
/// hunks add one line. So on any split the added-lines baseline has AUC exactly 1.
fn write_data(dir: &Path) -> Vec<PathBuf> {
    let hunks_path = dir.join("p.hunks.jsonl.gz");
    let commits_path = dir.join("p.commits.jsonl");
    let mut hunks = flate2::write::GzEncoder::new(std::fs::File::create(&hunks_path).unwrap(), Default::default());
    let mut commits = std::fs::File::create(&commits_path).unwrap();
    for i in 0..40 {
        let buggy = i % 3 == 0;
        let id = format!("{i:040x}");
        let c = serde_json::json!({"commit_id": id, "project": "p", "buggy": buggy, "fix": false,
            "author_date": 1_600_000_000 + i * 60, "subject": "s", "diff": "", "fixed_by": []});
        writeln!(commits, "{c}").unwrap();
        for k in 0..2 {
            let (label, body, header) = match (buggy, k) {
                (true, 0) => (
                    1,
                    format!("-x = {i}\n+y = {i}\n+z = y / 0\n+w = z[{i}]"),
                    "@@ -1,1 +1,3 @@",
                ),
                (true, _) => (-1, format!("+q = {i}"), "@@ -0,0 +1,1 @@"),
                (false, _) => (0, format!("-# a {i}\n+# b {i}"), "@@ -1,1 +1,1 @@"),
            };
            let h = serde_json::json!({"commit_id": id, "project": "p", "file": format!("m{k}.py"),
                "hunk_header": header, "hunk": body, "commit_buggy": buggy, "hunk_label": label});
            writeln!(hunks, "{h}").unwrap();
        }
    }
    hunks.finish().unwrap();
    vec![hunks_path, commits_path]
}

/// `deepspark train --base BASE` on `data` into `out` (seed 5), run in `dir`.
fn train_on_base(dir: &Path, data: &[PathBuf], base: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    cmd_in(dir)
        .arg("train")
        .arg("--data")
        .args(data)
        .arg("--base")
        .arg(base)
        .arg("--out")
        .arg(out)
        .args(["--seed", "5"])
        .args(extra)
        .assert()
}

fn train(data: &[PathBuf], out: &Path) {
    train_with(data, out, &[]);
}

fn train_with(data: &[PathBuf], out: &Path, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    cmd_in(dir.path())
        .arg("train")
        .arg("--data")
        .args(data)
        .arg("--out")
        .arg(out)
        .args([
            "--d-model",
            "16",
            "--layers",
            "1",
            "--heads",
            "2",
            "--d-ff",
            "32",
            "--max-len",
            "32",
        ])
        .args(["--vocab", "300", "--epochs", "2", "--batch", "8", "--seed", "5"])
        .args(extra)
        .assert()
        .success();
}

#[test]
fn train_writes_a_loadable_deterministic_model_and_eval_measures_it() {
    let d = tempfile::tempdir().unwrap();
    let data = write_data(d.path());
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    train(&data, &a);
    for f in ["config.json", "model.safetensors", "tokenizer.json", "metrics.json"] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    train(&data, &b);
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap(),
        "same seed, same model"
    );
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["test"]["split"], "test");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["wide"], true, "the wide path is trained by default");

    let out = cmd_in(d.path())
        .arg("eval")
        .arg("--data")
        .args(&data)
        .arg("--model")
        .arg(&a)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&out);
    // Test split: commits 32..39 (the latest 20%); buggy ones are 33, 36, 39.
    // Labelled hunks: 5 clean commits x 2 + 3 buggy x 1 (the -1 hunks are left out).
    assert_eq!(v["n"], 13);
    assert_eq!(v["positives"], 3);
    assert_eq!(v["baseline_auc"], 1.0);
    assert_eq!(v["commit_n"], 8);
    for k in [
        "auc",
        "pr_auc",
        "ece",
        "brier",
        "auc_added",
        "baseline_auc_added",
        "commit_auc",
        "commit_baseline_auc",
    ] {
        let x = v[k].as_f64().unwrap_or_else(|| panic!("{k} missing"));
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    // --scores writes one line per measured hunk, and never over an existing file.
    let scores = d.path().join("scores.jsonl");
    let eval_scores = || {
        cmd_in(d.path())
            .arg("eval")
            .arg("--data")
            .args(&data)
            .arg("--model")
            .arg(&a)
            .arg("--scores")
            .arg(&scores)
            .assert()
    };
    eval_scores().success();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&scores)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every hunk of the split, the 3 unlabelled (-1) ones included; 13 labelled as above.
    assert_eq!(lines.len(), 16);
    assert_eq!(lines.iter().filter(|l| l["label"].as_i64().unwrap() >= 0).count(), 13);
    assert!(lines.iter().all(|l| (0.0..=1.0).contains(&l["risk"].as_f64().unwrap())));
    eval_scores()
        .failure()
        .stderr(predicates::str::contains("must not exist yet"));
    // The trained model reviews a real repository.
    let r = two_commits();
    r.cmd()
        .args(["review", "HEAD~1", "--format", "json"])
        .arg("--model")
        .arg(&a)
        .assert()
        .code(predicates::ord::lt(2));
}

#[test]
fn eval_without_dates_uses_all_hunks_and_bad_files_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let data = write_data(d.path());
    let out = cmd_in(d.path())
        .arg("eval")
        .arg("--data")
        .arg(&data[0])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["split"], "all");
    assert_eq!(
        v["n"],
        14 + 26 * 2,
        "14 buggy commits with one labelled hunk, 26 clean with two"
    );
    let bad = d.path().join("bad.hunks.jsonl");
    std::fs::write(&bad, "{\"not\": \"a hunk\"}\n").unwrap();
    cmd_in(d.path())
        .arg("eval")
        .arg("--data")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bad.hunks.jsonl"));
}

/// Fix commits in two projects, each changing `<` to `<=` in a loop (plus a one-line
/// deletion now and then), one a minute.
fn write_fixes(dir: &Path) -> PathBuf {
    let path = dir.join("f.commits.jsonl");
    let mut out = std::fs::File::create(&path).unwrap();
    for i in 0..60 {
        let project = if i % 2 == 0 { "p" } else { "q" };
        let diff = format!(
            "diff --git a/src/x{i}.c b/src/x{i}.c\nindex 1..2 100644\n--- a/src/x{i}.c\n+++ b/src/x{i}.c\n\
             @@ -10,3 +10,3 @@ int f{i}(void) {{\n   int s{i} = 0;\n-  for (i = 0; i < n{i}; i++) {{\n\
             +  for (i = 0; i <= n{i}; i++) {{\n     s{i} += i;\n"
        );
        let c = serde_json::json!({"commit_id": format!("{i:040x}"), "project": project, "buggy": false,
            "fix": true, "author_date": 1_600_000_000 + i * 60, "subject": "fix", "diff": diff, "fixed_by": []});
        writeln!(out, "{c}").unwrap();
    }
    path
}

#[test]
fn the_generator_learns_from_fixes_and_eval_suggest_measures_it() {
    let d = tempfile::tempdir().unwrap();
    let data = write_fixes(d.path());
    let out = d.path().join("m");
    cmd_in(d.path())
        .args(["train", "--generator-only", "--generator-epochs", "20", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(predicates::str::contains("generator:"));
    for f in ["generator.json", "generator.safetensors", "generator_metrics.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Same seed, same generator.
    let again = d.path().join("again");
    cmd_in(d.path())
        .args(["train", "--generator-only", "--generator-epochs", "20", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&again)
        .assert()
        .success();
    assert_eq!(
        std::fs::read(out.join("generator.safetensors")).unwrap(),
        std::fs::read(again.join("generator.safetensors")).unwrap()
    );
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("generator.json")).unwrap()).unwrap();
    assert!(
        cfg["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["old"] == "<" && r["new"] == "<="),
        "the fixes' rule was mined"
    );
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(tiny_model().join(f), out.join(f)).unwrap();
    }
    let res = cmd_in(d.path())
        .args(["eval-suggest", "--format", "json", "--split", "test", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(&out)
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let v = json_of(&res);
    // Test split: the latest 20% of the 60 commits, one hunk each.
    assert_eq!(v["n"], 12);
    assert_eq!(v["small"]["n"], 12);
    assert_eq!(v["rewritable"], 12, "every test fix replaces a line");
    for k in [
        "top1",
        "top5",
        "coverage",
        "applies",
        "top1_generator",
        "reachable",
        "eligible",
        "first_deletes",
    ] {
        let x = v[k].as_f64().unwrap_or_else(|| panic!("{k} missing"));
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    assert_eq!(v["reachable"], 1.0, "every test fix is among the candidates");
    assert!(v["eligible"].as_f64().unwrap() <= v["reachable"].as_f64().unwrap());
    assert!(v["top1"].as_f64().unwrap() <= v["eligible"].as_f64().unwrap(), "{v}");
    assert!(v["top1_generator"].as_f64().unwrap() >= 0.5, "{v}");
    if v["coverage"].as_f64().unwrap() > 0.0 {
        assert_eq!(v["applies"], 1.0);
    }
}

#[test]
fn the_wide_path_fits_on_a_base_model_and_keeps_its_transformer() {
    let d = tempfile::tempdir().unwrap();
    let data = write_data(d.path());
    let (base, out) = (d.path().join("base"), d.path().join("out"));
    train_with(&data, &base, &["--no-wide"]);
    let config = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
    };
    assert!(config(&base).get("wide").is_none());
    // The base keeps its generator (here the shipped one) and may hold F16 weights.
    for f in ["generator.json", "generator.safetensors"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(f),
            base.join(f),
        )
        .unwrap();
    }
    let f32_weights =
        candle_core::safetensors::load(base.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let half: std::collections::HashMap<String, candle_core::Tensor> = f32_weights
        .iter()
        .map(|(k, t)| (k.clone(), t.to_dtype(candle_core::DType::F16).unwrap()))
        .collect();
    let half_base = d.path().join("half");
    std::fs::create_dir(&half_base).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "generator.json",
        "generator.safetensors",
    ] {
        std::fs::copy(base.join(f), half_base.join(f)).unwrap();
    }
    candle_core::safetensors::save(&half, half_base.join("model.safetensors")).unwrap();
    let on_base = |base: &Path, out: &Path, extra: &[&str]| train_on_base(d.path(), &data, base, out, extra);
    on_base(&base, &out, &[])
        .success()
        .stderr(predicates::str::contains("generator kept"));
    assert_eq!(config(&out)["wide"], true);
    assert_eq!(
        std::fs::read(base.join("generator.json")).unwrap(),
        std::fs::read(out.join("generator.json")).unwrap()
    );
    on_base(&half_base, &d.path().join("from_half"), &[]).success();
    // A base whose generator is corrupt is refused before any training, and --out stays empty.
    std::fs::write(half_base.join("generator.safetensors"), b"not safetensors").unwrap();
    on_base(&half_base, &d.path().join("y"), &[])
        .failure()
        .stderr(predicates::str::contains("suggestion generator of --base"));
    assert!(!d.path().join("y").exists());
    // What --base would ignore, or overwrite, is refused before any work.
    on_base(&base, &d.path().join("x"), &["--d-model", "32"])
        .failure()
        .stderr(predicates::str::contains("--d-model"));
    on_base(&base, &base, &[])
        .failure()
        .stderr(predicates::str::contains("is the --base model itself"));
    assert!(!d.path().join("x").exists());
    assert_eq!(
        std::fs::read(base.join("tokenizer.json")).unwrap(),
        std::fs::read(out.join("tokenizer.json")).unwrap()
    );
    let load =
        |dir: &Path| candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let (before, after) = (load(&base), load(&out));
    for (name, t) in &before {
        let u = &after[name];
        let (t, u) = (
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            u.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(t, u, "{name} changed");
    }
    let wide: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(wide.len(), 4, "{wide:?}");
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["base"].as_str().unwrap().ends_with("base"));
    // Boosting (the wide path first, the transformer on top) gives a different transformer.
    let boosted = d.path().join("boosted");
    train_with(&data, &boosted, &["--boost"]);
    assert_eq!(config(&boosted)["wide"], true);
    assert_ne!(
        load(&boosted)["tok.weight"].to_vec2::<f32>().unwrap(),
        before["tok.weight"].to_vec2::<f32>().unwrap()
    );
    cmd_in(d.path())
        .arg("eval")
        .arg("--data")
        .args(&data)
        .arg("--model")
        .arg(&out)
        .assert()
        .success();
}

#[test]
fn eval_with_a_language_model_stacks_its_surprisal_deterministically() {
    let d = tempfile::tempdir().unwrap();
    let data = write_data(d.path());
    let lm = d.path().join("tiny.gguf");
    deepspark::lm::tiny::Tiny::default().write(&lm).unwrap();
    let eval = |extra: &[&str]| {
        let out = cmd_in(d.path())
            .arg("eval")
            .arg("--data")
            .args(&data)
            .arg("--model")
            .arg(tiny_model())
            .args(["--format", "json", "--lm"])
            .arg(&lm)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json_of(&out)
    };
    let v = eval(&[]);
    // The usual report is there, unchanged by --lm.
    assert_eq!(v["n"], 13);
    let s = &v["lm_stacking"];
    // Calibration: commits 28..31 (one buggy, 30); test: 32..39 (three buggy). Labelled hunks
    // with an added line: the buggy commits' first hunks, both hunks of the clean ones.
    assert_eq!(
        (s["calib_hunks"].as_u64(), s["calib_positives"].as_u64()),
        (Some(7), Some(1)),
        "{s}"
    );
    assert_eq!(
        (s["test_hunks"].as_u64(), s["test_positives"].as_u64()),
        (Some(13), Some(3)),
        "{s}"
    );
    assert_eq!(
        (s["skipped"].as_u64(), s["max_added_lines"].as_u64()),
        (Some(0), Some(40))
    );
    for k in ["risk_auc", "surprisal_auc", "stacked_auc", "stacked_tokens_auc"] {
        let x = s[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {s}"));
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    for k in ["stacked_gain_ci95", "stacked_tokens_gain_ci95"] {
        let ci: Vec<f64> = s[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert!(
            ci.len() == 2 && -1.0 <= ci[0] && ci[0] <= ci[1] && ci[1] <= 1.0,
            "{k}: {ci:?}"
        );
    }
    assert_eq!(s["stacked_weights"].as_array().unwrap().len(), 3);
    assert_eq!(s["stacked_tokens_weights"].as_array().unwrap().len(), 4);
    assert_eq!(eval(&[]), v, "the same numbers on every run");
    // --limit: as many risky as clean hunks where there are enough.
    let small = eval(&["--limit", "4"]);
    let s = &small["lm_stacking"];
    assert_eq!(
        (s["calib_hunks"].as_u64(), s["calib_positives"].as_u64()),
        (Some(4), Some(1)),
        "{s}"
    );
    assert_eq!(
        (s["test_hunks"].as_u64(), s["test_positives"].as_u64()),
        (Some(4), Some(2)),
        "{s}"
    );
    assert_eq!(eval(&["--limit", "4"]), small);
    // --limit means nothing without --lm, and says so.
    cmd_in(d.path())
        .arg("eval")
        .arg("--data")
        .args(&data)
        .args(["--limit", "4"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--lm"));
}

/// 40 fix commits of project "q", one a minute: each guards a division (`x / n` becomes
/// `n ? x / n : 0`), so the guard's tokens mark every fixed version.
fn write_guard_fixes(dir: &Path) -> PathBuf {
    write_guard_fixes_of(dir, "q")
}

fn write_guard_fixes_of(dir: &Path, project: &str) -> PathBuf {
    let path = dir.join(format!("{project}.commits.jsonl"));
    let mut out = std::fs::File::create(&path).unwrap();
    for i in 0..40 {
        let diff = format!(
            "diff --git a/src/d{i}.c b/src/d{i}.c\nindex 1..2 100644\n--- a/src/d{i}.c\n+++ b/src/d{i}.c\n\
             @@ -10,3 +10,3 @@ int f{i}(int x, int n) {{\n   int s = {i};\n-  return x / n;\n+  return n ? x / n : 0;\n }}\n"
        );
        let c = serde_json::json!({"commit_id": format!("{:040x}", 1000 + i), "project": project, "buggy": false,
            "fix": true, "author_date": 1_600_000_000 + i * 60, "subject": "fix", "diff": diff, "fixed_by": []});
        writeln!(out, "{c}").unwrap();
    }
    path
}

/// `eval-pairs --format json --split all` of `model` on `data`, which must succeed.
fn eval_pairs_json(dir: &Path, model: &Path, data: &Path) -> serde_json::Value {
    let out = cmd_in(dir)
        .args(["eval-pairs", "--format", "json", "--split", "all", "--model"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json_of(&out)
}

/// The labelled data plus the guarded-division fixes, and a base model (no wide path) trained
/// on them in `dir/base`, for the pair-path tests to fit on.
fn base_with_guard_fixes(dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let mut data = write_data(dir);
    data.push(write_guard_fixes(dir));
    let base = dir.join("base");
    train_with(&data, &base, &["--no-wide"]);
    (data, base)
}

#[test]
fn the_pair_path_learns_from_fixes_leaves_the_risk_alone_and_is_kept_by_a_later_base() {
    let d = tempfile::tempdir().unwrap();
    let (data, base) = base_with_guard_fixes(d.path());
    let on_base = |base: &Path, out: &Path, extra: &[&str]| {
        train_on_base(d.path(), &data, base, out, extra).success();
    };
    let (plain, paired, again) = (d.path().join("plain"), d.path().join("paired"), d.path().join("again"));
    on_base(&base, &plain, &[]);
    on_base(&base, &paired, &["--pair-path"]);
    on_base(&paired, &again, &[]);
    let config = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
    };
    assert!(config(&plain).get("pair").is_none());
    assert_eq!(
        (config(&paired)["pair"].clone(), config(&again)["pair"].clone()),
        (true.into(), true.into())
    );
    let load =
        |dir: &Path| candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let (plain_t, paired_t, again_t) = (load(&plain), load(&paired), load(&again));
    let values = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // Every tensor of the risk is what the same run without the pair path wrote.
    for (name, t) in &plain_t {
        assert_eq!(values(t), values(&paired_t[name]), "{name} changed");
    }
    assert_eq!(paired_t.len(), plain_t.len() + 1);
    assert_eq!(values(&paired_t["pair.tokens"]), values(&again_t["pair.tokens"]));
    // It tells each guarded division from the bare one, where the risk need not.
    let v = eval_pairs_json(d.path(), &paired, &data[2]);
    assert_eq!(v["n"], 40, "{v}");
    assert_eq!(v["pair_path_accuracy"], 1.0, "{v}");
    assert!(
        eval_pairs_json(d.path(), &plain, &data[2])
            .get("pair_path_accuracy")
            .is_none()
    );
}

#[test]
fn pair_bigrams_are_saved_read_and_kept_by_a_later_base() {
    let d = tempfile::tempdir().unwrap();
    let (data, base) = base_with_guard_fixes(d.path());
    let (bigram, again) = (d.path().join("bigram"), d.path().join("again"));
    train_on_base(
        d.path(),
        &data,
        &base,
        &bigram,
        &["--pair-path", "--pair-bigrams", "256"],
    )
    .success();
    train_on_base(d.path(), &data, &bigram, &again, &[]).success();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bigram.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["pair_bigrams"], 256, "{config}");
    let load =
        |dir: &Path| candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let values = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (bigram_t, again_t) = (load(&bigram), load(&again));
    let weights = values(&bigram_t["pair.bigrams"]);
    assert_eq!(weights.len(), 3 * 256);
    assert!(weights.iter().any(|&w| w != 0.0));
    assert_eq!(weights, values(&again_t["pair.bigrams"]));
    assert_eq!(eval_pairs_json(d.path(), &again, &data[2])["pair_path_accuracy"], 1.0);
    // Bigram buckets without the pair path would fit nothing.
    train_on_base(
        d.path(),
        &data,
        &base,
        &d.path().join("alone"),
        &["--pair-bigrams", "256"],
    )
    .code(2)
    .stderr(predicates::str::contains("--pair-path"));
}

#[test]
fn pair_data_feeds_only_the_pair_path_and_refuses_a_project_of_data() {
    let d = tempfile::tempdir().unwrap();
    let mut data = write_data(d.path());
    data.push(write_guard_fixes(d.path()));
    let more = write_guard_fixes_of(d.path(), "r");
    // As `deepspark mine` writes them: hunk records among the commit records.
    let hunk = serde_json::json!({"commit_id": format!("{:040x}", 1000), "project": "r", "file": "src/d0.c",
        "hunk_header": "@@ -11 +11 @@", "hunk": "-  return x / n;\n+  return n ? x / n : 0;", "hunk_label": 0});
    std::fs::OpenOptions::new()
        .append(true)
        .open(&more)
        .map(|mut f| writeln!(f, "{hunk}"))
        .unwrap()
        .unwrap();
    let base = d.path().join("base");
    train_with(&data, &base, &["--no-wide"]);
    let (paired, fed) = (d.path().join("paired"), d.path().join("fed"));
    train_on_base(d.path(), &data, &base, &paired, &["--pair-path"]).success();
    let more_arg = more.to_str().unwrap();
    let out = train_on_base(d.path(), &data, &base, &fed, &["--pair-path", "--pair-data", more_arg]).success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("(40 of them from --pair-data)"), "{stderr}");
    let load =
        |dir: &Path| candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let values = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (paired_t, fed_t) = (load(&paired), load(&fed));
    for (name, t) in &paired_t {
        if name != "pair.tokens" {
            assert_eq!(values(t), values(&fed_t[name]), "{name} changed");
        }
    }
    assert_ne!(values(&paired_t["pair.tokens"]), values(&fed_t["pair.tokens"]));
    // The same project in --data and --pair-data would put its test fixes into training.
    train_on_base(
        d.path(),
        &data,
        &base,
        &d.path().join("leak"),
        &["--pair-path", "--pair-data", data[2].to_str().unwrap()],
    )
    .code(2)
    .stderr(predicates::str::contains("a project of --data"));
    // Without the pair path there is nothing for the pairs to feed.
    train_on_base(
        d.path(),
        &data,
        &base,
        &d.path().join("alone"),
        &["--pair-data", more_arg],
    )
    .code(2)
    .stderr(predicates::str::contains("--pair-path"));
}

#[test]
fn with_the_repository_eval_suggest_tries_names_from_the_rest_of_the_file() {
    // The fix returns the error constant the other function uses: a name the hunk lacks.
    let r = Repo::new();
    let before = "int alloc_fail(void *p) {\n  if(!p)\n    return CURLE_OUT_OF_MEMORY;\n  return CURLE_OK;\n}\n\n\
                  int g(void *q) {\n  if(!q)\n    return CURLE_OK;\n  return CURLE_OK;\n}\n";
    r.write("lib/x.c", before);
    r.commit("add g");
    r.write(
        "lib/x.c",
        before.replacen("    return CURLE_OK;", "    return CURLE_OUT_OF_MEMORY;", 1),
    );
    let fix = r.commit("fix: g reports the failed allocation");
    let diff = "diff --git a/lib/x.c b/lib/x.c\nindex 1..2 100644\n--- a/lib/x.c\n+++ b/lib/x.c\n\
                @@ -6,6 +6,6 @@\n \n int g(void *q) {\n   if(!q)\n-    return CURLE_OK;\n+    return CURLE_OUT_OF_MEMORY;\n\
                \x20  return CURLE_OK;\n }\n";
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("p.commits.jsonl");
    let rec = serde_json::json!({"commit_id": fix.to_string(), "project": "p", "buggy": false, "fix": true,
        "author_date": 1_700_000_120, "subject": "fix", "diff": diff, "fixed_by": []});
    std::fs::write(&data, format!("{rec}\n")).unwrap();
    let eval = |repo: Option<&Path>| {
        let mut c = cmd_in(d.path());
        c.args(["eval-suggest", "--format", "json", "--split", "all", "--data"])
            .arg(&data)
            .arg("--model")
            .arg(suggest_model());
        if let Some(p) = repo {
            c.arg("--repo").arg(p);
        }
        c.output().unwrap()
    };
    let with = eval(Some(r.path()));
    assert!(with.status.success(), "{}", String::from_utf8_lossy(&with.stderr));
    assert!(String::from_utf8_lossy(&with.stderr).contains("for 1 of 1 fix hunks"));
    let v = json_of(&with);
    assert_eq!((v["n"].as_u64(), v["with_file"].as_u64()), (Some(1), Some(1)), "{v}");
    assert_eq!(v["reachable"], 1.0, "the file's name gives the fix: {v}");
    let v = json_of(&eval(None));
    assert_eq!(v["with_file"], 0);
    assert_eq!(v["reachable"], 0.0, "the hunk alone does not hold the name: {v}");
    // A path that is not a repository is a clear error.
    let bad = eval(Some(&d.path().join("nowhere")));
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("nowhere"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
