//! The verifier, the rewrite and `suggest` on stub models: what is never shown, and how the
//! rest are ranked.

use super::*;

fn hunk(header: &str, body: &str) -> Hunk {
    Hunk::parse(header, body).unwrap()
}

#[test]
fn verification_rejects_what_must_not_be_shown() {
    let h = hunk("@@ -1,2 +1,3 @@", " a\n+b\n c");
    let file = "a\nb\nc\n";
    let edit = |line, new: Option<&str>| {
        vec![LineEdit {
            line,
            new: new.map(str::to_string),
        }]
    };
    assert_eq!(verify(&h, &edit(1, Some("B")), file, None), Ok(()));
    assert_eq!(verify(&h, &edit(1, None), file, None), Ok(()));
    assert_eq!(
        verify(&h, &edit(0, Some("x")), file, None),
        Err(Unverified::NotAdded),
        "context"
    );
    assert_eq!(verify(&h, &edit(9, Some("x")), file, None), Err(Unverified::NotAdded));
    assert_eq!(verify(&h, &edit(1, Some("b")), file, None), Err(Unverified::NoOp));
    assert_eq!(
        verify(&h, &edit(1, Some("B\x1b[2J")), file, None),
        Err(Unverified::BadText)
    );
    assert_eq!(
        verify(&h, &edit(1, Some("B\u{202e}")), file, None),
        Err(Unverified::BadText)
    );
    assert_eq!(
        verify(&h, &edit(1, Some("B")), "a\nb\nC\n", None),
        Err(Unverified::Stale)
    );
    assert_eq!(
        verify(&h, &edit(1, Some("B")), "x\na\nb\nc\n", None),
        Err(Unverified::Stale)
    );
    let twice = [edit(1, Some("B")), edit(1, None)].concat();
    assert_eq!(verify(&h, &twice, file, None), Err(Unverified::Twice));
    // Regression: spacing-only rewrites (`let x  =  y;`) were shown as suggestions.
    let h = Hunk::parse("@@ -1,1 +1,1 @@", "-let x = 1;\n+let x = y;").unwrap();
    let spaced = vec![LineEdit {
        line: 1,
        new: Some("let x  =  y;".into()),
    }];
    assert_eq!(verify(&h, &spaced, "let x = y;\n", Some("rust")), Err(Unverified::NoOp));
    let commented = vec![LineEdit {
        line: 1,
        new: Some("let x = y; // fixed".into()),
    }];
    assert_eq!(
        verify(&h, &commented, "let x = y;\n", Some("rust")),
        Err(Unverified::NoOp)
    );
}

#[test]
fn rewriting_renumbers_and_applying_keeps_line_endings() {
    let h = hunk("@@ -1,2 +1,4 @@", " a\r\n+b\r\n+c\r\n d\r");
    let edits = vec![
        LineEdit {
            line: 1,
            new: Some("B\r".into()),
        },
        LineEdit { line: 2, new: None },
    ];
    let r = rewrite(&h, &edits);
    assert_eq!((r.count.new, r.added(), r.lines[2].lineno.new), (3, 1, Some(3)));
    let file = "a\r\nb\r\nc\r\nd\r";
    assert_eq!(apply_to(file, &line_edits(&h, &edits)), "a\r\nB\r\nd\r");
    let no_eol = "a\nb";
    assert_eq!(apply_to(no_eol, &[(2, Some("B"))]), "a\nB");
}

/// Risk = added lines / 10; proposes fixed candidates. With a pair path (the `bool`), its
/// logit is the number of added lines holding "bug".
struct Stub(Vec<crate::model::Candidate>, bool);
impl Scorer for Stub {
    fn describe(&self) -> String {
        "stub".into()
    }
    fn score(&self, inputs: &[ScoreInput]) -> anyhow::Result<Vec<HunkScore>> {
        let bugs = |h: &Hunk| {
            h.lines
                .iter()
                .filter(|l| l.kind == LineKind::Added && l.text.contains("bug"))
                .count() as f32
        };
        Ok(inputs
            .iter()
            .map(|i| HunkScore {
                risk: i.hunk.added() as f32 / 10.0,
                logit: 0.0,
                line_weights: vec![],
                pair_logit: self.1.then(|| bugs(i.hunk)),
            })
            .collect())
    }
    fn change_risk(&self, _: &[HunkScore]) -> anyhow::Result<f32> {
        Ok(0.0)
    }
}
impl Generator for Stub {
    fn describe(&self) -> String {
        "stub".into()
    }
    fn propose(&self, _: &Hunk, _: Option<&str>, max: usize) -> anyhow::Result<Vec<crate::model::Candidate>> {
        Ok(self.0.iter().take(max).cloned().collect())
    }
}

fn candidate(edits: Vec<(usize, Option<&str>)>, p: f32) -> crate::model::Candidate {
    crate::model::Candidate {
        edits: edits
            .into_iter()
            .map(|(line, new)| LineEdit {
                line,
                new: new.map(str::to_string),
            })
            .collect(),
        probability: p,
    }
}

#[test]
fn in_a_review_the_generator_reads_the_reviewed_file_for_names() {
    struct Seen(std::cell::RefCell<Vec<Option<String>>>);
    impl Generator for Seen {
        fn describe(&self) -> String {
            "seen".into()
        }
        fn propose(&self, _: &Hunk, file: Option<&str>, _: usize) -> anyhow::Result<Vec<crate::model::Candidate>> {
            self.0.borrow_mut().push(file.map(str::to_string));
            Ok(vec![])
        }
    }
    let files = vec![FileDiff {
        path: OldNew {
            old: Some("a.c".into()),
            new: Some("a.c".into()),
        },
        status: crate::diff::FileStatus::Modified,
        mode: OldNew { old: None, new: None },
        language: Some("c"),
        hunks: vec![hunk("@@ -1 +1,2 @@", " a\n+b")],
        skip: None,
    }];
    let scores = vec![vec![HunkScore {
        risk: 0.9,
        logit: 0.0,
        line_weights: vec![],
        pair_logit: None,
    }]];
    let contents = vec![Some("a\nb\nOTHER_NAME\n".to_string())];
    let t = targets(&files, &scores, &contents);
    let seen = Seen(Default::default());
    let stub = Stub(vec![], false);
    suggest(&t, ChangeStats::default(), &stub, &seen, &[], &Settings::default()).unwrap();
    assert_eq!(*seen.0.borrow(), vec![Some("a\nb\nOTHER_NAME\n".to_string())]);
}

#[test]
fn unverified_unsafe_or_useless_candidates_are_never_shown_and_the_rest_rank_by_risk() {
    let h = hunk("@@ -1,2 +1,4 @@", " a\n+b\n+c\n d");
    let content = "a\nb\nc\nd\n";
    let stub = Stub(
        vec![
            candidate(vec![(0, Some("A"))], 0.5),          // edits context: dropped
            candidate(vec![(1, Some("B"))], 0.3),          // same risk: below the margin
            candidate(vec![(1, None)], 0.1),               // risk 0.2 -> 0.1
            candidate(vec![(2, Some("c\u{1b}[2J"))], 0.1), // escape sequence: dropped
        ],
        false,
    );
    let s = Settings {
        above: 0.0,
        margin: 0.05,
        per_hunk: 5,
        plausible: 10,
    };
    let run = |path: &str| {
        let t = Target {
            file: 0,
            hunk: 0,
            path,
            hunk_ref: &h,
            risk: 0.2,
            pair_logit: None,
            content: Some(content),
            names: None,
        };
        suggest(&[t], ChangeStats::default(), &stub, &stub, &[], &s).unwrap()
    };
    let out = run("src/a.c");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].edits[0].new, None);
    assert!((out[0].risk.old - 0.2).abs() < 1e-6 && (out[0].risk.new - 0.1).abs() < 1e-6);
    assert!(
        out[0].diff.starts_with("diff --git a/src/a.c b/src/a.c"),
        "{}",
        out[0].diff
    );
    // A path that leaves the repository or enters .git never gets a suggestion.
    for bad in ["../a.c", ".git/config", "/etc/passwd", "a/../../b.c"] {
        assert!(run(bad).is_empty(), "{bad}");
    }
    // Below the threshold: nothing is generated.
    let t = Target {
        file: 0,
        hunk: 0,
        path: "a.c",
        hunk_ref: &h,
        risk: 0.2,
        pair_logit: None,
        content: Some(content),
        names: None,
    };
    let high = Settings { above: 0.5, ..s };
    assert!(
        suggest(&[t], ChangeStats::default(), &stub, &stub, &[], &high)
            .unwrap()
            .is_empty()
    );
}

/// The suggestions for one hunk of `src/a.rs` at risk 0.2 holding `content`, every candidate
/// of `stub` considered, kept on a risk drop of 0.05.
fn suggested(h: &Hunk, content: &str, stub: &Stub) -> Vec<Suggestion> {
    let s = Settings {
        above: 0.0,
        margin: 0.05,
        per_hunk: 5,
        plausible: 10,
    };
    let t = Target {
        file: 0,
        hunk: 0,
        path: "src/a.rs",
        hunk_ref: h,
        risk: 0.2,
        pair_logit: None,
        content: Some(content),
        names: None,
    };
    suggest(&[t], ChangeStats::default(), stub, stub, &[], &s).unwrap()
}

#[test]
fn a_candidate_that_breaks_the_parse_is_never_shown() {
    // Two added lines; each candidate deletes one: the risk falls from 0.2 to 0.1 for both.
    let h = hunk("@@ -1,2 +1,4 @@", " fn f() {\n+    if a {\n+        g();\n }");
    let content = "fn f() {\n    if a {\n        g();\n}\n";
    let stub = Stub(
        vec![
            candidate(vec![(1, None)], 0.5), // deletes `if a {`
            candidate(vec![(2, None)], 0.4), // deletes `g();`
        ],
        false,
    );
    // The file as given does not parse either (`if` unclosed): both are judged by risk alone.
    assert_eq!(suggested(&h, content, &stub).len(), 2);
    // Closed, the file parses: only the candidate that keeps it parsing is shown.
    let h2 = hunk("@@ -1,3 +1,5 @@", " fn f() {\n+    if a {\n+        g();\n     }\n }");
    let closed = "fn f() {\n    if a {\n        g();\n    }\n}\n";
    let out = suggested(&h2, closed, &stub);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].edits[0].line, 2, "deleting `if a {{` leaves a `}}` unmatched");
}

#[test]
fn a_candidate_that_deletes_a_declaration_the_file_still_uses_is_never_shown() {
    // The regression: the generator's deletions removed fields and variables the rest of the
    // file reads, which cannot compile. Each candidate deletes one added line (risk 0.2 -> 0.1).
    let h = hunk(
        "@@ -1,2 +1,4 @@",
        " fn f() -> i32 {\n+    let n = 4;\n+    let m = 2;\n     n",
    );
    let content = "fn f() -> i32 {\n    let n = 4;\n    let m = 2;\n    n\n}\n";
    let stub = Stub(
        vec![
            candidate(vec![(1, None)], 0.5), // deletes `let n = 4;`, which `n` below reads
            candidate(vec![(2, None)], 0.4), // deletes `let m = 2;`, which nothing reads
        ],
        false,
    );
    let out = suggested(&h, content, &stub);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].edits[0].line, 2);
}

#[test]
fn with_a_pair_path_a_candidate_need_not_lower_the_risk() {
    let h = hunk("@@ -1,2 +1,3 @@", " a\n+b\n c");
    let target = |pair_logit| Target {
        file: 0,
        hunk: 0,
        path: "a.c",
        hunk_ref: &h,
        risk: 0.4,
        pair_logit,
        content: None,
        names: None,
    };
    let after = |risk, pair_logit| HunkScore {
        risk,
        logit: 0.0,
        line_weights: vec![],
        pair_logit,
    };
    let s = Settings::default();
    let embedded = Author::Embedded;
    // No pair path: only a risk drop by the margin counts.
    assert!(keeps(&target(None), &after(0.3, None), embedded, &s));
    assert!(!keeps(&target(None), &after(0.39, None), embedded, &s));
    // A pair path: a token fix that leaves the risk as it was is kept (the ranking, not
    // the risk, says which reads most like the fix), unless it raises the risk by more
    // than the margin.
    assert!(keeps(&target(Some(0.5)), &after(0.41, Some(-0.2)), embedded, &s));
    assert!(!keeps(&target(Some(0.5)), &after(0.5, Some(-0.2)), embedded, &s));
    // A language model's rewrite: kept unless it raises the risk by more than the margin.
    assert!(keeps(
        &target(Some(0.5)),
        &after(0.41, Some(0.9)),
        Author::LanguageModel,
        &s
    ));
}

#[test]
fn with_a_pair_path_the_edit_that_reads_like_the_fix_ranks_before_a_deletion() {
    let h = hunk("@@ -1,2 +1,4 @@", " a\n+bug(x)\n+c\n d");
    let content = "a\nbug(x)\nc\nd\n";
    let stub = Stub(
        vec![
            candidate(vec![(2, None)], 0.5),              // a deletion: less risky, as buggy
            candidate(vec![(1, Some("fix(x)"))], 0.3),    // same risk, no longer reads buggy
            candidate(vec![(1, Some("bug(x); c"))], 0.2), // as buggy, as risky
        ],
        true,
    );
    let t = Target {
        file: 0,
        hunk: 0,
        path: "a.c",
        hunk_ref: &h,
        risk: 0.2,
        pair_logit: Some(1.0),
        content: Some(content),
        names: None,
    };
    let s = Settings {
        above: 0.0,
        per_hunk: 5,
        ..Settings::default()
    };
    let out = suggest(&[t], ChangeStats::default(), &stub, &stub, &[], &s).unwrap();
    let firsts: Vec<Option<&str>> = out.iter().map(|s| s.edits[0].new.as_deref()).collect();
    // ln 0.3 − 0 > ln 0.5 − 1.5 > ln 0.2 − 1.5: the generator's favourite deletion comes second.
    assert_eq!(firsts, [Some("fix(x)"), None, Some("bug(x); c")]);
}

#[test]
fn a_patch_applies_strictly_or_not_at_all() {
    let old = "a\nb\nc\n";
    let new = "a\nB\nc\n";
    let text = crate::apply::patch(&[crate::apply::FileEdit {
        path: "x".into(),
        old: old.into(),
        new: new.into(),
    }])
    .unwrap();
    let f = &crate::diff::parse_patch(&text)[0];
    assert_eq!(apply_patch(old, f).as_deref(), Some(new));
    assert_eq!(apply_patch("a\nX\nc\n", f), None, "context differs");
    assert_eq!(apply_patch("a\nb\nc", f), None, "final newline differs");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    // apply(a, diff(a, b)) == b: the patch a suggestion is shown and written as, parsed
    // back and applied strictly, gives exactly the new text (CRLF and a missing final
    // newline included).
    #[test]
    fn patches_round_trip(
        a in proptest::collection::vec("[abc ]{0,3}", 0..12),
        b in proptest::collection::vec("[abc ]{0,3}", 0..12),
        crlf in proptest::bool::ANY,
        a_eol in proptest::bool::ANY,
        b_eol in proptest::bool::ANY,
    ) {
        let join = |lines: &[String], eol: bool| {
            let sep = if crlf { "\r\n" } else { "\n" };
            let mut t = lines.join(sep);
            if eol && !lines.is_empty() {
                t.push_str(sep);
            }
            t
        };
        let (old, new) = (join(&a, a_eol), join(&b, b_eol));
        let text = crate::apply::patch(&[crate::apply::FileEdit {
            path: "f.txt".into(),
            old: old.clone().into_bytes(),
            new: new.clone().into_bytes(),
        }])
        .unwrap();
        if old == new {
            proptest::prop_assert!(crate::diff::parse_patch(&text).iter().all(|f| f.hunks.is_empty()));
        } else {
            let files = crate::diff::parse_patch(&text);
            proptest::prop_assert_eq!(files.len(), 1);
            proptest::prop_assert_eq!(apply_patch(&old, &files[0]), Some(new));
        }
    }
}
