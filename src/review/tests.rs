//! The verdict from a change's risk, the gate, the rank against the history, calibration
//! and the reasons.

use super::*;
use crate::diff::{FileStatus, OldNew, Skip};

const T: Thresholds = Thresholds {
    lgtm: 0.95,
    reject: 0.60,
    reject_rank: DEFAULT_REJECT_RANK,
};

fn file(skip: Option<Skip>) -> FileDiff {
    FileDiff {
        path: OldNew {
            old: Some("a.rs".into()),
            new: Some("a.rs".into()),
        },
        status: FileStatus::Modified,
        mode: OldNew::default(),
        language: Some("rust"),
        hunks: vec![],
        skip,
    }
}

#[test]
fn thresholds_decide_the_verdict() {
    assert_eq!(judge(vec![], vec![], 0.04, T, None).verdict, Verdict::Lgtm);
    assert_eq!(judge(vec![], vec![], 0.05, T, None).verdict, Verdict::Lgtm);
    assert_eq!(judge(vec![], vec![], 0.06, T, None).verdict, Verdict::NeedsWork);
    assert_eq!(judge(vec![], vec![], 0.40, T, None).verdict, Verdict::NeedsWork);
    assert_eq!(judge(vec![], vec![], 0.41, T, None).verdict, Verdict::Reject);
}

#[test]
fn unreviewed_files_forbid_lgtm() {
    let r = judge(
        vec![file(Some(Skip::FileTooLarge { lines: 9, limit: 1 }))],
        vec![vec![]],
        0.0,
        T,
        None,
    );
    assert_eq!(r.verdict, Verdict::NeedsWork);
    let r = judge(vec![file(Some(Skip::Binary))], vec![vec![]], 0.0, T, None);
    assert_eq!(r.verdict, Verdict::Lgtm);
}

#[test]
fn a_syntax_error_the_change_brings_forbids_lgtm_and_is_a_reason() {
    use crate::syntax::{FileSyntax, Kind, Parse, Role, SyntaxError};
    let reading = |error: Option<SyntaxError>| FileSyntax {
        role: Role::Source,
        hunks: vec![Kind::Code],
        contexts: vec![None],
        parse: Parse::ParseError,
        error,
    };
    let mut clean = judge(vec![file(None)], vec![vec![]], 0.0, T, None);
    clean.set_syntax(vec![reading(None)]);
    assert_eq!(clean.verdict, Verdict::Lgtm);
    let mut broken = judge(vec![file(None)], vec![vec![]], 0.0, T, None);
    let error = SyntaxError {
        line: 2,
        what: "missing `)`".into(),
        hunk: 0,
    };
    broken.set_syntax(vec![reading(Some(error))]);
    assert_eq!(broken.verdict, Verdict::NeedsWork);
    // A later calibration decides again, and still may not say LGTM.
    broken.calibrate(CalibrationInForce::default());
    assert_eq!(broken.verdict, Verdict::NeedsWork);
    broken.explain(&Memory::default());
    let why: Vec<&Reason> = broken.reasons.iter().filter(|r| r.kind == ReasonKind::Syntax).collect();
    assert_eq!(why.len(), 1, "{:?}", broken.reasons);
    assert!(
        why[0].text.contains(":2: the change does not parse (missing `)`)"),
        "{}",
        why[0].text
    );
    assert_eq!(
        broken
            .reasons_for(0, 0)
            .filter(|r| r.kind == ReasonKind::Syntax)
            .count(),
        1
    );
}

#[test]
fn gate() {
    assert!(gate_tripped(Verdict::Reject, FailOn::Reject));
    assert!(!gate_tripped(Verdict::NeedsWork, FailOn::Reject));
    assert!(gate_tripped(Verdict::NeedsWork, FailOn::NeedsWork));
    assert!(!gate_tripped(Verdict::Reject, FailOn::Never));
}

#[test]
fn a_reject_needs_the_change_to_be_among_the_riskiest_of_its_history() {
    // 100 past commits of risk 0.00, 0.01, ..., 0.99.
    let history: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
    let rank = |risk| HistoryRank::of(risk, &history);
    let mut ordinary = judge(vec![], vec![], 0.45, T, None);
    assert_eq!(ordinary.verdict, Verdict::Reject);
    ordinary.temper(rank(0.45));
    assert_eq!(
        ordinary.verdict,
        Verdict::NeedsWork,
        "riskier than 46% only (0.45 as f32 is below 0.45)"
    );
    assert!(ordinary.tempered);
    let sentence = ordinary.tempered_sentence().unwrap();
    assert!(
        sentence.contains("only 46%") && sentence.contains("last 100 commits"),
        "{sentence}"
    );
    let mut risky = judge(vec![], vec![], 0.95, T, None);
    risky.temper(rank(0.95));
    assert_eq!(risky.verdict, Verdict::Reject, "riskier than 95%");
    assert!(!risky.tempered && risky.tempered_sentence().is_none());
    let mut no_history = judge(vec![], vec![], 0.45, T, None);
    no_history.temper(None);
    assert_eq!(no_history.verdict, Verdict::Reject);
    let mut clean = judge(vec![], vec![], 0.10, T, None);
    clean.temper(rank(0.10));
    assert_eq!(clean.verdict, Verdict::NeedsWork);
    assert!(!clean.tempered, "only a REJECT is tempered");
    let off = Thresholds { reject_rank: 0.0, ..T };
    let mut plain = judge(vec![], vec![], 0.45, off, None);
    plain.temper(rank(0.45));
    assert_eq!(plain.verdict, Verdict::Reject, "--reject-rank 0: the probability alone");

    // `rejects` decides as judge + temper do.
    assert!(!rejects(0.45, &history, 100, T));
    assert!(rejects(0.95, &history, 100, T));
    assert!(
        rejects(0.45, &history[..99], 100, T),
        "too short a history gives no rank"
    );
    assert!(!rejects(0.30, &history[..10], 100, T), "P(clean) 0.70 is no REJECT");
    assert!(rejects(0.45, &history, 100, off));
}
