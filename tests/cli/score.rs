//! `deepspark score --jsonl`: the stream-filter contract that Spark and other batch engines
//! rely on (input order, one output line per input line, error records, exit codes, a
//! closed stdout, batching that does not change the numbers).

use crate::common::{Repo, cmd_in};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

/// A hunk record of commit `c` in the schema of the shared data.
fn hunk_record(c: usize, h: usize) -> Value {
    let added: String = (0..(h % 4 + 1))
        .map(|i| format!("\n+    let v{i} = x{c} + {h};"))
        .collect();
    json!({
        "commit_id": format!("{c:040x}"),
        "project": "demo",
        "file": format!("src/m{}.rs", h % 3),
        "hunk_header": format!("@@ -{h},2 +{h},{} @@", h % 4 + 3),
        "hunk": format!(" fn f{h}() {{{added}\n-    old();\n }}"),
        "hunk_label": (h % 2) as i64,
    })
}

fn run_score(input: &[u8]) -> (Vec<Value>, i32, String) {
    let out = cmd_in(std::env::temp_dir().as_path())
        .args(["score", "--jsonl"])
        .write_stdin(input.to_vec())
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (
        lines,
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn jsonl(records: &[Value]) -> Vec<u8> {
    records
        .iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn every_record_comes_back_in_order_with_its_fields_and_scores() {
    // 700 hunks over 140 commits: more than one internal batch, runs cut across batches.
    let records: Vec<Value> = (0..140)
        .flat_map(|c| (0..5).map(move |h| hunk_record(c, c * 5 + h)))
        .collect();
    let (out, code, stderr) = run_score(&jsonl(&records));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "", "a stream filter writes nothing to stderr");
    assert_eq!(out.len(), records.len());
    for (i, (got, sent)) in out.iter().zip(&records).enumerate() {
        for (k, v) in sent.as_object().unwrap() {
            assert_eq!(&got[k], v, "record {i}: field {k} changed");
        }
        let risk = got["risk"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&risk), "record {i}: risk {risk}");
        assert!(got["logit"].as_f64().unwrap().is_finite());
    }
}

#[test]
fn batching_does_not_change_the_numbers() {
    // Each commit's records scored alone give the same scores as in one long stream.
    let records: Vec<Value> = (0..80)
        .flat_map(|c| (0..4).map(move |h| hunk_record(c, c * 4 + h)))
        .collect();
    let (all, code, _) = run_score(&jsonl(&records));
    assert_eq!(code, 0);
    for c in [0usize, 37, 79] {
        let (alone, code, _) = run_score(&jsonl(&records[c * 4..c * 4 + 4]));
        assert_eq!(code, 0);
        for (a, b) in alone.iter().zip(&all[c * 4..c * 4 + 4]) {
            assert_eq!(a["risk"], b["risk"], "commit {c}");
            assert_eq!(a["logit"], b["logit"], "commit {c}");
        }
    }
    // The change features matter: a hunk scored without its commit's siblings differs.
    let mut lone = records[1].clone();
    lone["commit_id"] = json!("f".repeat(40));
    let (single, _, _) = run_score(&jsonl(&[lone]));
    assert_ne!(
        single[0]["logit"], all[1]["logit"],
        "the run's change features were not used"
    );
}

#[test]
fn malformed_lines_become_error_records_and_the_stream_goes_on() {
    let good = hunk_record(1, 1).to_string();
    let mut input = Vec::new();
    input.extend(format!("{good}\n{{not json\n[1, 2]\n{{\"x\": 1}}\n").as_bytes());
    input.extend(b"{\"file\": \"a.rs\", \"hunk_header\": \"@@ nonsense\", \"hunk\": \"+a\"}\n");
    input.extend(b"\xff\xfe\n\n");
    input.extend(format!("{good}\n").as_bytes());
    let (out, code, stderr) = run_score(&input);
    assert_eq!(code, 1, "some lines failed: exit 1 ({stderr})");
    assert_eq!(out.len(), 7, "one record per non-blank line: {out:?}");
    assert!(out[0]["risk"].is_number());
    for (i, line) in [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6)] {
        assert_eq!(out[i]["line"], line, "{:?}", out[i]);
        assert!(out[i]["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(out[6]["risk"], out[0]["risk"]);
}

#[test]
fn empty_input_gives_empty_output_without_loading_a_model() {
    let out = cmd_in(std::env::temp_dir().as_path())
        .args(["score", "--jsonl", "--model", "/nonexistent/model"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn a_closed_stdout_ends_the_filter_quietly() {
    let bin = assert_cmd::cargo::cargo_bin("deepspark");
    let mut child = Command::new(bin)
        .args(["score", "--jsonl"])
        .env("DEEPSPARK_MODEL", crate::common::tiny_model())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let records: Vec<Value> = (0..300).map(|c| hunk_record(c, c)).collect();
    // The filter may stop reading once its stdout is gone: a failed write here is fine.
    let _ = child.stdin.take().unwrap().write_all(&jsonl(&records));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_commit_record_gets_the_verdict_review_gives_that_commit() {
    let r = Repo::new();
    r.write("src/lib.rs", "pub fn a() -> u32 {\n    1\n}\n");
    r.commit("first");
    r.write(
        "src/lib.rs",
        "pub fn a() -> u32 {\n    let v = [1, 2];\n    v[2]\n}\npub fn b() {}\n",
    );
    r.write("Cargo.lock", "# generated\n");
    let id = r.commit("second");
    let show = Command::new("git")
        .args(["show", "-U3", "--format=", "--no-renames", &id.to_string()])
        .current_dir(r.path())
        .output()
        .unwrap();
    assert!(show.status.success());
    let diff = String::from_utf8(show.stdout).unwrap();
    let record = json!({ "commit_id": id.to_string(), "project": "demo", "diff": diff });
    let (out, code, stderr) = run_score(&jsonl(&[record.clone(), json!({"diff": ""})]));
    assert_eq!(code, 0, "{stderr}");
    let (review, _) = crate::common::review_json(&r, &["--commit", &id.to_string()]);
    let p = out[0]["p_clean"].as_f64().unwrap();
    assert!(
        (p - review["p_clean"].as_f64().unwrap()).abs() < 1e-6,
        "{p} vs {}",
        review["p_clean"]
    );
    assert_eq!(out[0]["verdict"], review["verdict"]);
    assert_eq!(out[0]["hunks"], 1, "Cargo.lock is skipped as in review");
    assert!((out[0]["risk"].as_f64().unwrap() - (1.0 - p)).abs() < 1e-6);
    // An empty change is clean, as an empty review is.
    assert_eq!(out[1]["hunks"], 0);
    assert_eq!(out[1]["verdict"], "lgtm");
    // A cut-off diff is never LGTM.
    let mut cut = record;
    cut["diff_truncated"] = json!(true);
    let (out, _, _) = run_score(&jsonl(&[cut, json!({"diff": "", "diff_truncated": true})]));
    assert_ne!(out[1]["verdict"], "lgtm");
}
