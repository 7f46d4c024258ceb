//! The terminal report: verdict header, then per file and hunk a risk bar and the hunk
//! as a coloured unified diff, with word-level emphasis (similar) on changed line pairs
//! and a marker on the lines that drive the score. Every string from the repository or
//! the model passes through [`sanitize::clean`]; colour is decided by the caller.

use super::json::hot_lines;
use super::sanitize::clean;
use crate::diff::{FileDiff, Hunk, LineKind, OldNew, parse_patch};
use crate::review::{Review, Verdict};
use crate::suggest::Suggestion;
use similar::{ChangeTag, TextDiff};
use std::io::Write;

pub struct Style {
    pub color: bool,
}

const RESET: &str = "\x1b[0m";

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}{RESET}")
        } else {
            s.to_string()
        }
    }
}

fn verdict_code(v: Verdict) -> &'static str {
    match v {
        Verdict::Lgtm => "1;32",
        Verdict::NeedsWork => "1;33",
        Verdict::Reject => "1;31",
    }
}

fn risk_code(risk: f32) -> &'static str {
    if risk >= 0.5 {
        "31"
    } else if risk >= 0.2 {
        "33"
    } else {
        "32"
    }
}

pub fn bar(risk: f32, width: usize) -> String {
    let filled = ((risk.clamp(0.0, 1.0) * width as f32).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

pub fn write(r: &Review, sides: &OldNew<String>, style: &Style, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "deepspark review: {} -> {}", clean(&sides.old), clean(&sides.new))?;
    if let Some(m) = &r.model {
        writeln!(out, "model: {}", clean(m))?;
    }
    if let Some(g) = &r.generator {
        writeln!(out, "suggestions: {}", clean(g))?;
    }
    writeln!(out)?;
    let range = if r.p_clean_high > r.p_clean + 5e-4 {
        format!(" (up to {:.1}%)", r.p_clean_high * 100.0)
    } else {
        String::new()
    };
    writeln!(
        out,
        "  {}   P(clean) {:.1}%{range}   (LGTM >= {:.0}%, REJECT < {:.0}%)",
        style.paint(verdict_code(r.verdict), r.verdict.label()),
        r.p_clean * 100.0,
        r.thresholds.lgtm * 100.0,
        r.thresholds.reject * 100.0
    )?;
    match (r.tempered_sentence(), &r.history) {
        (Some(t), _) => writeln!(out, "  {t}")?,
        (None, Some(h)) => writeln!(out, "  {}", h.sentence())?,
        (None, None) => {}
    }
    if r.scores.iter().any(|s| !s.is_empty()) {
        writeln!(out, "  {}", style.paint("2", &clean(&r.calibration.text)))?;
    }
    if r.verdict != Verdict::Lgtm || r.production_risk.is_none() {
        for reason in &r.reasons {
            writeln!(
                out,
                "  {} {}",
                style.paint("1", &format!("why ({}):", reason.kind.label())),
                clean(&reason.text)
            )?;
        }
    }
    let reviewed = r.files.iter().filter(|f| f.skip.is_none()).count();
    let hunks: usize = r.scores.iter().map(Vec::len).sum();
    let skipped = r.files.len() - reviewed;
    write!(
        out,
        "  {reviewed} file{} and {hunks} hunk{} reviewed",
        plural(reviewed),
        plural(hunks)
    )?;
    if skipped > 0 {
        write!(out, "; {skipped} skipped")?;
    }
    if !r.dismissed.is_empty() {
        write!(out, "; {} dismissed (.deepspark/dismissed)", r.dismissed.len())?;
    }
    writeln!(out)?;
    if r.unreviewed > 0 {
        writeln!(
            out,
            "  {}",
            style.paint(
                "1;31",
                &format!("{} file(s) NOT REVIEWED (size limits): no LGTM possible", r.unreviewed)
            )
        )?;
    }
    if hunks == 0 && r.files.is_empty() {
        writeln!(out, "  nothing to review: no changes")?;
    }
    if let Some(whole) = r.assist.explanation.as_ref().and_then(|e| e.whole.as_deref()) {
        writeln!(
            out,
            "  {} {}",
            style.paint("1;35", "what it does (language model):"),
            clean(whole)
        )?;
    }
    for w in &r.warnings {
        let at = w.line.map(|l| format!(":{l}")).unwrap_or_default();
        writeln!(
            out,
            "  {} {}{}: {}",
            style.paint("1;31", "warning:"),
            clean(&w.path),
            at,
            w.message
        )?;
    }
    for (fi, (f, scores)) in r.files.iter().zip(&r.scores).enumerate() {
        if f.skip.is_some() {
            continue;
        }
        writeln!(out)?;
        writeln!(out, "{}", style.paint("1", &file_title(f)))?;
        let whole = r.assist.explanation.as_ref().and_then(|e| e.whole.as_deref());
        if let Some(e) = r.assist.explanation_for(fi).filter(|e| Some(*e) != whole) {
            writeln!(
                out,
                "  {} {}",
                style.paint("35", "what it does (language model):"),
                clean(e)
            )?;
        }
        for (hi, (h, s)) in f.hunks.iter().zip(scores).enumerate() {
            let inside = r
                .context_of(fi, hi)
                .map_or(String::new(), |c| format!(" in {}", clean(&c.describe())));
            writeln!(
                out,
                "  {} {:>3.0}% risk  {}{}",
                style.paint(risk_code(s.risk), &bar(s.risk, 10)),
                s.risk * 100.0,
                style.paint("36", &h.header()),
                style.paint("2", &inside)
            )?;
            if let Some(kind) = r
                .syntax
                .get(fi)
                .and_then(|fs| fs.hunks.get(hi))
                .filter(|k| **k != crate::syntax::Kind::Code)
            {
                writeln!(
                    out,
                    "  {}",
                    style.paint("2", &format!("{} only: no risk from it", kind.label()))
                )?;
            }
            write_hunk(h, &s.line_weights, style, out)?;
            for reason in r
                .reasons_for(fi, hi)
                .filter(|x| x.kind != crate::review::ReasonKind::LanguageModel)
            {
                writeln!(
                    out,
                    "  {} {}",
                    style.paint("1;33", &format!("why ({}):", reason.kind.label())),
                    clean(&reason.text)
                )?;
            }
            if let Some(c) = r.assist.comment_for(fi, hi) {
                writeln!(
                    out,
                    "  {} line {}: {}",
                    style.paint("1;35", "language model:"),
                    c.line,
                    clean(&c.text)
                )?;
            }
            for sg in r.suggestions_for(fi, hi) {
                write_suggestion(sg, style, out)?;
            }
        }
    }
    let skipped: Vec<&FileDiff> = r.files.iter().filter(|f| f.skip.is_some()).collect();
    if !skipped.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", style.paint("1", "skipped:"))?;
        for f in skipped {
            let why = f.skip.as_ref().map(|s| s.describe()).unwrap_or_default();
            let why = if f.skip.as_ref().is_some_and(|s| s.is_unreviewed()) {
                style.paint("1;31", &why)
            } else {
                why
            };
            writeln!(out, "  {}: {}", clean(f.display_path()), why)?;
        }
    }
    if let Some(note) = &r.assist.reject_note {
        writeln!(out)?;
        writeln!(out, "{} {}", style.paint("1;35", "note (language model):"), clean(note))?;
    }
    if let Some(lm) = &r.assist.report {
        writeln!(out)?;
        writeln!(out, "{}", style.paint("2", &lm_line(lm)))?;
        for task in &lm.not_reached {
            writeln!(
                out,
                "  {}",
                style.paint("33", &format!("not reached (budget): {}", clean(task)))
            )?;
        }
    }
    Ok(())
}

/// One line on what the language model did: model, calls, time, budget.
pub fn lm_line(lm: &crate::assist::LmReport) -> String {
    let budget = lm
        .budget_seconds
        .map(|b| format!(" of a {b:.0}s budget"))
        .unwrap_or_default();
    let refused = if lm.refused.is_empty() {
        String::new()
    } else {
        format!("; {} answer(s) not used", lm.refused.len())
    };
    let phases = if lm.phases.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = lm
            .phases
            .iter()
            .map(|p| format!("{} {:.1}s", p.phase, p.seconds))
            .collect();
        format!(" ({})", parts.join(", "))
    };
    format!(
        "language model: {}; {} call(s) in {:.1}s{phases}{budget}{refused}; its text is model output and does not change the verdict",
        clean(&lm.model),
        lm.calls,
        lm.seconds
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn file_title(f: &FileDiff) -> String {
    let status = format!("{:?}", f.status).to_lowercase();
    let lang = f.language.map(|l| format!(", {l}")).unwrap_or_default();
    match (&f.path.old, &f.path.new) {
        (Some(o), Some(n)) if o != n => format!("{} -> {} ({status}{lang})", clean(o), clean(n)),
        _ => format!("{} ({status}{lang})", clean(f.display_path())),
    }
}

/// A suggestion under its hunk: the scores, then its patch as a coloured diff.
fn write_suggestion(s: &Suggestion, style: &Style, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "  {} risk {:.0}% -> {:.0}% if applied ({})",
        style.paint("1;36", "suggestion:"),
        s.risk.old * 100.0,
        s.risk.new * 100.0,
        match s.by {
            crate::suggest::Author::Embedded => format!("generator confidence {:.0}%", s.probability * 100.0),
            crate::suggest::Author::LanguageModel => "written by the language model".to_string(),
            crate::suggest::Author::History => "what the bug fix named above did to these lines".to_string(),
        }
    )?;
    for file in parse_patch(&s.diff) {
        for h in &file.hunks {
            writeln!(out, "  {}", style.paint("36", &h.header()))?;
            write_hunk(h, &[], style, out)?;
        }
    }
    Ok(())
}

fn write_hunk(h: &Hunk, weights: &[f32], style: &Style, out: &mut impl Write) -> std::io::Result<()> {
    let hot = hot_lines(&h.lines, weights, 3);
    let emphasis = pair_emphasis(h);
    for (i, l) in h.lines.iter().enumerate() {
        let num = |n: Option<u32>| n.map(|n| format!("{n:>5}")).unwrap_or_else(|| "     ".into());
        let gutter = format!("{} {}", num(l.lineno.old), num(l.lineno.new));
        let (code, sigil) = match l.kind {
            LineKind::Added => ("32", '+'),
            LineKind::Removed => ("31", '-'),
            LineKind::Context => ("2", ' '),
        };
        let body = match &emphasis[i] {
            Some(segments) if style.color => segments
                .iter()
                .map(|(strong, s)| {
                    let s = clean(s);
                    if *strong {
                        format!("\x1b[{code};1;4m{s}{RESET}")
                    } else {
                        style.paint(code, &s)
                    }
                })
                .collect::<String>(),
            _ => style.paint(code, &clean(&l.text)),
        };
        let mark = if hot.contains(&i) {
            style.paint("1;35", "  <- drives the score")
        } else {
            String::new()
        };
        writeln!(
            out,
            "{} {}{}{}",
            style.paint("2", &gutter),
            style.paint(code, &sigil.to_string()),
            body,
            mark
        )?;
        if l.no_newline {
            writeln!(out, "{}", style.paint("2", "            \\ No newline at end of file"))?;
        }
    }
    Ok(())
}

/// For runs of removed lines followed by as many added lines, word-level segments
/// `(changed, text)` for each line of a pair; `None` for lines without a partner.
fn pair_emphasis(h: &Hunk) -> Vec<Option<Vec<(bool, String)>>> {
    let mut out: Vec<Option<Vec<(bool, String)>>> = vec![None; h.lines.len()];
    let mut i = 0;
    while i < h.lines.len() {
        if h.lines[i].kind != LineKind::Removed {
            i += 1;
            continue;
        }
        let del_start = i;
        while i < h.lines.len() && h.lines[i].kind == LineKind::Removed {
            i += 1;
        }
        let add_start = i;
        while i < h.lines.len() && h.lines[i].kind == LineKind::Added {
            i += 1;
        }
        let (dels, adds) = (add_start - del_start, i - add_start);
        if dels != adds {
            continue;
        }
        for k in 0..dels {
            let (old, new) = (&h.lines[del_start + k].text, &h.lines[add_start + k].text);
            let diff = TextDiff::from_words(old.as_str(), new.as_str());
            let (mut o, mut n) = (Vec::new(), Vec::new());
            for c in diff.iter_all_changes() {
                let v = c.value().to_string();
                match c.tag() {
                    ChangeTag::Equal => {
                        o.push((false, v.clone()));
                        n.push((false, v));
                    }
                    ChangeTag::Delete => o.push((true, v)),
                    ChangeTag::Insert => n.push((true, v)),
                }
            }
            out[del_start + k] = Some(o);
            out[add_start + k] = Some(n);
        }
    }
    out
}
