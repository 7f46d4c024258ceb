//! `deepspark learn`: a scripted history whose risky commits the default model cannot know
//! (a project-specific call that is always fixed later), learned into `.deepspark/model`,
//! picked up by `review`, identical when learned twice, bypassed by `--model default`.

use crate::common::Repo;

/// 150 days of history: every third day a commit adds a `legacy_write` call that a "Fix"
/// commit two days later replaces; on the other days commits add `checked_write` calls.
fn project() -> Repo {
    let r = Repo::new();
    for day in 0..150 {
        r.advance_days(1);
        let f = format!("src/m{day}.c");
        if day % 3 == 0 {
            r.write(
                &f,
                format!("int m{day}(int *p) {{\n    legacy_write(p, {day});\n    return 0;\n}}\n"),
            );
            r.commit(&format!("Add m{day}"));
        } else {
            r.write(
                &f,
                format!("int m{day}(int *p) {{\n    checked_write(p, {day});\n    return 0;\n}}\n"),
            );
            r.commit(&format!("Add m{day}"));
        }
        if day % 3 == 2 {
            let old = day - 2;
            r.write(
                &format!("src/m{old}.c"),
                format!("int m{old}(int *p) {{\n    checked_write(p, {old});\n    return 0;\n}}\n"),
            );
            r.commit(&format!("Fix a crash in m{old}"));
        }
    }
    r
}

fn learn(r: &Repo, out: &std::path::Path) -> std::process::Output {
    r.cmd()
        .env_remove("DEEPSPARK_MODEL")
        .args(["learn", "--grace-days", "0", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn learn_writes_a_better_model_that_review_uses() {
    let r = project();
    let dir = r.path().join(".deepspark/model");
    let out = learn(&r, &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in ["default", "recalibrated", "refit"] {
        assert!(stdout.lines().any(|l| l.starts_with(row)), "no {row} row in:\n{stdout}");
    }
    assert!(stdout.contains("learned: the "), "{stdout}");
    let learned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("learned.json")).unwrap()).unwrap();
    let head = r.repo.head().unwrap().peel_to_commit().unwrap().id().to_string();
    assert_eq!(learned["at"], head);
    // The written model measured better than the default on the newest 20%.
    let models = learned["models"].as_array().unwrap();
    let brier = |name: &str| {
        models.iter().find(|m| m["name"] == name).unwrap()["test"]["brier"]
            .as_f64()
            .unwrap()
    };
    assert!(brier(learned["chosen"].as_str().unwrap()) < brier("default"));

    // review picks it up (no --model, no DEEPSPARK_MODEL) and says so; --model default does not.
    r.write(
        "src/new.c",
        "int n(int *p) {\n    legacy_write(p, 1);\n    return 0;\n}\n",
    );
    r.stage_all();
    let review = |extra: &[&str]| {
        let out = r
            .cmd()
            .env_remove("DEEPSPARK_MODEL")
            .args(["review", "--format", "json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        crate::common::json_of(&out)
    };
    let with = review(&[]);
    assert!(
        with["model"]
            .as_str()
            .unwrap()
            .contains("learned for this repository at"),
        "{}",
        with["model"]
    );
    let without = review(&["--model", "default"]);
    assert!(
        without["model"].as_str().unwrap().contains("embedded"),
        "{}",
        without["model"]
    );
    assert_ne!(with["p_clean"], without["p_clean"]);
}

#[test]
fn learning_twice_writes_the_same_files() {
    let r = project();
    let (a, b) = (r.path().join("a"), r.path().join("b"));
    for dir in [&a, &b] {
        let out = learn(&r, dir);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for f in ["config.json", "model.safetensors", "tokenizer.json", "learned.json"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn a_history_without_bugs_is_refused_clearly() {
    let r = Repo::new();
    for day in 0..20 {
        r.advance_days(1);
        r.write(
            &format!("src/f{day}.c"),
            format!("int f{day}(void) {{\n    return {day};\n}}\n"),
        );
        r.commit(&format!("Add f{day}"));
    }
    let out = learn(&r, &r.path().join(".deepspark/model"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to learn from"), "{err}");
    assert!(!r.path().join(".deepspark").exists(), "nothing written");
}

#[test]
fn a_learned_model_from_another_history_is_named_stale() {
    let r = crate::common::two_commits();
    let dir = r.path().join(".deepspark/model");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(crate::common::tiny_model().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("learned.json"), format!("{{\"at\": \"{}\"}}", "ab".repeat(20))).unwrap();
    let out = r
        .cmd()
        .env_remove("DEEPSPARK_MODEL")
        .args(["review", "HEAD~1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not in HEAD's history") && err.contains("deepspark learn"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("learned for this repository"));
    // learned.json is a file anyone can edit: a hand-written `at` is never a panic.
    std::fs::write(dir.join("learned.json"), "{\"at\": \"é\\u001b[31méééééééé\"}").unwrap();
    let out = r
        .cmd()
        .env_remove("DEEPSPARK_MODEL")
        .args(["review", "HEAD~1"])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
    // A model named on the command line is used as it is, without the learned one's warning.
    let out = r.cmd().args(["review", "HEAD~1"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("learned"));
}

#[test]
fn eval_after_learned_measures_the_commits_that_followed() {
    let r = project();
    // Learned 60 commits back, measured on what came after, labelled by mining at HEAD.
    let at = r.repo.revparse_single("HEAD~60").unwrap().peel_to_commit().unwrap();
    let dir = r.path().join("m");
    let out = r
        .cmd()
        .env_remove("DEEPSPARK_MODEL")
        .args(["learn", "--grace-days", "0", "--at", "HEAD~60", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mined = r.path().join("history.jsonl");
    let out = r
        .cmd()
        .args(["mine", "--grace-days", "0", "--out"])
        .arg(&mined)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The commits after `at` that have hunk records: what eval must measure.
    let text = std::fs::read_to_string(&mined).unwrap();
    let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let at_date = at.author().when().seconds();
    let with_hunks: std::collections::HashSet<&str> = records
        .iter()
        .filter(|v| v.get("hunk_label").is_some())
        .map(|v| v["commit_id"].as_str().unwrap())
        .collect();
    let after = records
        .iter()
        .filter(|v| v.get("hunk_label").is_none() && v["author_date"].as_i64().unwrap() > at_date)
        .filter(|v| with_hunks.contains(v["commit_id"].as_str().unwrap()))
        .count();
    assert!(after > 20, "{after}");
    let eval = |when: &str, model: &std::path::Path| {
        r.cmd()
            .args(["eval", "--format", "json", "--after", when, "--model"])
            .arg(model)
            .arg("--data")
            .arg(&mined)
            .output()
            .unwrap()
    };
    let by_date = eval(&at_date.to_string(), &dir);
    assert_eq!(
        by_date.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&by_date.stderr)
    );
    assert_eq!(crate::common::json_of(&by_date)["commit_n"], after);
    // `learned` reads the same date from learned.json.
    let learned = eval("learned", &dir);
    assert_eq!(crate::common::json_of(&learned), crate::common::json_of(&by_date));
    // Without a learned.json there is no `learned` date; a date after everything scores nothing.
    let out = eval("learned", crate::common::tiny_model());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("learned.json"));
    let out = eval("2999-01-01", &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no commit"));
}
