//! `review --lm`, `--explain` and `deepspark fix`: a tiny random model proves that model
//! output never changes a verdict and is sanitised in every format; the real SmolLM2 (when
//! `.ci/run` has fetched it) produces a comment, an explanation, a verified suggestion and a
//! fix end to end.

use crate::common::*;
use deepspark::lm::tiny::Tiny;
use predicates::str::contains;

/// A repository whose last commit adds an off-by-one slice.
fn off_by_one() -> Repo {
    let r = Repo::new();
    r.write("t.py", "def tail(values, n):\n    return values\n");
    r.commit("init");
    r.write(
        "t.py",
        "def tail(values, n):\n    return values[len(values) - n + 1:]\n",
    );
    r.commit("tail");
    r
}

#[test]
fn explain_and_fix_without_a_language_model_say_what_is_missing() {
    let r = off_by_one();
    r.cmd()
        .args(["review", "--commit", "HEAD", "--explain"])
        .assert()
        .code(2)
        .stderr(contains("--explain needs a language model"));
    r.cmd()
        .args(["fix", "--issue", "t.py is wrong"])
        .assert()
        .code(2)
        .stderr(contains("needs a language model"));
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    Tiny::default().write(&model).unwrap();
    r.cmd()
        .args(["fix", "--issue", "something is wrong", "--lm"])
        .arg(&model)
        .assert()
        .code(2)
        .stderr(contains("names no file"));
}

#[test]
fn a_random_model_changes_no_verdict_and_its_text_is_sanitised_everywhere() {
    let r = off_by_one();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    Tiny::default().write(&model).unwrap();
    let (plain, plain_code) = review_json(&r, &["--commit", "HEAD", "--min-risk", "0"]);
    let lm = model.to_str().unwrap();
    let (with, code) = review_json(
        &r,
        &[
            "--commit",
            "HEAD",
            "--min-risk",
            "0",
            "--suggest-above",
            "0",
            "--explain",
            "--lm",
            lm,
        ],
    );
    assert_eq!((with["verdict"].clone(), code), (plain["verdict"].clone(), plain_code));
    assert_eq!(with["p_clean"], plain["p_clean"]);
    let lm = &with["lm"];
    assert!(lm["calls"].as_u64().unwrap() >= 3, "{lm}");
    assert!(lm["model"].as_str().unwrap().contains("tiny"), "{lm}");
    assert!(plain["lm"].is_null());
    let hunk = &file(&with, "t.py")["hunks"][0];
    assert!(hunk["surprisal"]["tokens"].as_u64().unwrap() > 0, "{hunk}");
    // Whatever the random model wrote, no report carries a control character from it.
    for format in ["terminal", "sarif", "github", "markdown"] {
        let out = r
            .cmd()
            .args([
                "review",
                "--commit",
                "HEAD",
                "--min-risk",
                "0",
                "--explain",
                "--color",
                "never",
                "--format",
                format,
            ])
            .arg("--lm")
            .arg(&model)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{format}: {text}"
        );
    }
}

#[test]
fn the_language_model_budget_is_kept_and_what_it_missed_is_listed() {
    let r = off_by_one();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    Tiny::default().write(&model).unwrap();
    let lm = model.to_str().unwrap();
    let (v, _) = review_json(
        &r,
        &[
            "--commit",
            "HEAD",
            "--min-risk",
            "0",
            "--explain",
            "--lm-budget",
            "0",
            "--lm",
            lm,
        ],
    );
    assert_eq!(v["lm"]["calls"], 0, "{}", v["lm"]);
    let missed: Vec<&str> = v["lm"]["not_reached"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(missed.iter().any(|m| m.starts_with("comment on t.py")), "{missed:?}");
    assert!(
        missed.iter().any(|m| m.starts_with("explanation of t.py")),
        "{missed:?}"
    );
}

#[test]
fn smollm2_comments_explains_suggests_and_fixes_end_to_end() {
    let Some(model) = smollm2() else { return };
    let r = off_by_one();
    let lm = model.to_str().unwrap();
    let (v, _) = review_json(
        &r,
        &[
            "--commit",
            "HEAD",
            "--min-risk",
            "0",
            "--suggest-above",
            "0",
            "--explain",
            // What a 135M model suggests here hangs on how its weights are rounded: held as
            // Q8_0 it writes an edit the checks let through (a wrong one: this test is about
            // the path, not the model's judgement); as stored, one that changes nothing, which
            // is refused. Its fix below hangs on it too (and on its keys and values held as
            // f16), so it is asked with the same weights.
            "--lm-weights",
            "q8_0",
            "--lm",
            lm,
        ],
    );
    let hunk = &file(&v, "t.py")["hunks"][0];
    assert_eq!(hunk["comment"]["line"], 2, "{hunk}");
    assert!(!hunk["comment"]["text"].as_str().unwrap().is_empty());
    assert!(
        v["explanation"]["whole"].as_str().is_some_and(|w| !w.is_empty()),
        "{} {}",
        v["explanation"],
        v["lm"]
    );
    assert_eq!(file(&v, "t.py")["explanation"], v["explanation"]["whole"]);
    let by_model: Vec<&serde_json::Value> = hunk["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["by"] == "language-model")
        .collect();
    assert_eq!(by_model.len(), 1, "a verified suggestion written by the model: {hunk}");
    assert!(
        by_model[0]["diff"]
            .as_str()
            .unwrap()
            .starts_with("diff --git a/t.py b/t.py")
    );
    // The comment reaches every format.
    for (format, marker) in [
        ("sarif", "Language model on line 2"),
        ("github", "Language model on line 2"),
        ("markdown", "**Language model** on line 2"),
        ("terminal", "language model: line 2"),
    ] {
        r.cmd()
            .args([
                "review",
                "--commit",
                "HEAD",
                "--min-risk",
                "0",
                "--suggestions",
                "0",
                "--color",
                "never",
                "--format",
                format,
            ])
            .arg("--lm")
            .arg(&model)
            .assert()
            .stdout(contains(marker));
    }
    // A fix, verified, shown, and written only with --apply.
    let before = std::fs::read(r.path().join("t.py")).unwrap();
    let out = r
        .cmd()
        .args([
            "fix",
            "--format",
            "json",
            "--issue",
            "t.py: replace 'n + 1' with 'n' in the slice.",
            "--lm-weights",
            "q8_0",
        ])
        .arg("--lm")
        .arg(&model)
        .assert()
        .success()
        .get_output()
        .clone();
    let fix = json_of(&out);
    assert_eq!(fix["verified"]["ok"], true, "{fix}");
    assert!(fix["patch"].as_str().unwrap().contains("+++ b/t.py"));
    assert_eq!(
        std::fs::read(r.path().join("t.py")).unwrap(),
        before,
        "nothing written without --apply"
    );
    r.cmd()
        .args([
            "fix",
            "--apply",
            "--issue",
            "t.py: replace 'n + 1' with 'n' in the slice.",
            "--lm-weights",
            "q8_0",
        ])
        .arg("--lm")
        .arg(&model)
        .assert()
        .success()
        .stderr(contains("applied the fix to 1 file"));
    assert_ne!(std::fs::read(r.path().join("t.py")).unwrap(), before);
}
