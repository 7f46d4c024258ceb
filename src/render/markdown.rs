//! A pull-request comment in Markdown: the verdict, a table of the risky hunks, each
//! risky hunk as a ```diff block, and, when the verdict is REJECT, a short, courteous
//! note that thanks the contributor and says what would change the verdict. Control
//! characters are escaped; fences grow longer than any backtick run in the content.

use crate::diff::LineKind;
use crate::render::sanitize::{clean, clean_with};
use crate::review::{Review, Verdict};
use std::io::Write;

fn code_span(s: &str) -> String {
    let s = clean(s).replace('|', "\\|");
    let longest = longest_run(&s, '`');
    let ticks = "`".repeat(longest + 1);
    format!("{ticks} {s} {ticks}")
}

fn html(s: &str) -> String {
    clean(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Model output as inert Markdown text: HTML escaped, Markdown punctuation backslashed, and
/// `@` broken so that a model cannot mention people or write links, images or HTML.
fn model_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in html(s).chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("&#64;"),
            '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut cur) = (0, 0);
    for ch in s.chars() {
        cur = if ch == c { cur + 1 } else { 0 };
        best = best.max(cur);
    }
    best
}

pub fn write(r: &Review, min_risk: f32, out: &mut impl Write) -> std::io::Result<()> {
    let icon = match r.verdict {
        Verdict::Lgtm => "✅",
        Verdict::NeedsWork => "⚠️",
        Verdict::Reject => "❌",
    };
    writeln!(
        out,
        "## deepspark review: {icon} {}, P(clean) {:.1}%",
        r.verdict.label(),
        r.p_clean * 100.0
    )?;
    writeln!(out)?;
    if let Some(e) = &r.assist.explanation {
        if let Some(whole) = &e.whole {
            writeln!(out, "**What this change does** (language model): {}", model_text(whole))?;
            writeln!(out)?;
        }
        if e.files.len() > 1 {
            for f in &e.files {
                writeln!(out, "- {}: {}", code_span(&f.path), model_text(&f.text))?;
            }
            writeln!(out)?;
        }
    }
    match (r.tempered_sentence(), &r.history) {
        (Some(t), _) => writeln!(out, "{t}.\n")?,
        (None, Some(h)) => writeln!(out, "This change is {}.\n", h.sentence())?,
        (None, None) => {}
    }
    let reviewed = r.files.iter().filter(|f| f.skip.is_none()).count();
    let hunks: usize = r.scores.iter().map(Vec::len).sum();
    writeln!(
        out,
        "{reviewed} file(s) and {hunks} hunk(s) reviewed. LGTM at P(clean) ≥ {:.0}%, REJECT below {:.0}%; {}.",
        r.thresholds.lgtm * 100.0,
        r.thresholds.reject * 100.0,
        clean(&r.calibration.text)
    )?;
    if !r.reasons.is_empty() && (r.verdict != Verdict::Lgtm || r.production_risk.is_none()) {
        writeln!(
            out,
            "
**Why:**"
        )?;
        for reason in &r.reasons {
            writeln!(out, "- {} ({})", html(&reason.text), reason.kind.label())?;
        }
    }
    if r.unreviewed > 0 {
        writeln!(
            out,
            "\n**{} file(s) were not reviewed** (size or time limits), so this change cannot be LGTM yet:",
            r.unreviewed
        )?;
        for f in r
            .files
            .iter()
            .filter(|f| f.skip.as_ref().is_some_and(|s| s.is_unreviewed()))
        {
            writeln!(out, "- {}", code_span(f.display_path()))?;
        }
    }
    for w in &r.warnings {
        writeln!(
            out,
            "\n**Warning:** {}:{}: {}",
            code_span(&w.path),
            w.line.unwrap_or(1),
            w.message
        )?;
    }
    let findings = r.findings(min_risk);
    if findings.is_empty() && r.verdict != Verdict::Lgtm {
        // A verdict with nothing under it reads as arbitrary: say where it comes from.
        let riskiest: Vec<String> = r
            .findings(f32::NEG_INFINITY)
            .iter()
            .take(3)
            .map(|f| {
                format!(
                    "{} {} ({:.0}%)",
                    code_span(f.file.display_path()),
                    code_span(&f.hunk.header()),
                    f.score.risk * 100.0
                )
            })
            .collect();
        if !riskiest.is_empty() {
            writeln!(
                out,
                "\nNo single hunk reaches the {:.0}% risk shown in detail: the verdict weighs the change as a whole. \
                 The riskiest hunks: {}.",
                min_risk * 100.0,
                riskiest.join(", ")
            )?;
        }
    }
    if !findings.is_empty() {
        writeln!(out, "\n| Risk | File | Hunk | In |\n|---:|---|---|---|")?;
        for f in &findings {
            let inside = r
                .context_of(f.index.0, f.index.1)
                .map_or(String::new(), |c| format!("{} {}", c.kind, code_span(&c.name)));
            writeln!(
                out,
                "| {:.0}% | {} | {} | {} |",
                f.score.risk * 100.0,
                code_span(f.file.display_path()),
                code_span(&f.hunk.header()),
                inside
            )?;
        }
        for f in &findings {
            let body: Vec<String> = f
                .hunk
                .lines
                .iter()
                .map(|l| format!("{}{}", l.kind.sigil(), clean(&l.text)))
                .collect();
            let fence = "`".repeat(3.max(body.iter().map(|b| longest_run(b, '`')).max().unwrap_or(0) + 1));
            writeln!(
                out,
                "\n<details><summary><code>{}</code> <code>{}</code> ({:.0}% risk)</summary>\n",
                html(f.file.display_path()),
                html(&f.hunk.header()),
                f.score.risk * 100.0
            )?;
            writeln!(out, "{fence}diff\n{}\n{}\n{fence}", f.hunk.header(), body.join("\n"))?;
            let hot: Vec<String> = crate::render::json::hot_lines(&f.hunk.lines, &f.score.line_weights, 3)
                .into_iter()
                .filter(|&i| f.hunk.lines[i].kind == LineKind::Added)
                .filter_map(|i| f.hunk.lines[i].lineno.new.map(|n| n.to_string()))
                .collect();
            if !hot.is_empty() {
                writeln!(out, "\nLines that drive the score: {}.", hot.join(", "))?;
            }
            for reason in r
                .reasons_for(f.index.0, f.index.1)
                .filter(|x| x.kind != crate::review::ReasonKind::LanguageModel)
            {
                writeln!(out, "\n**Why** ({}): {}", reason.kind.label(), html(&reason.text))?;
            }
            if let Some(c) = r.assist.comment_for(f.index.0, f.index.1) {
                writeln!(out, "\n**Language model** on line {}: {}", c.line, model_text(&c.text))?;
            }
            for sg in r.suggestions_for(f.index.0, f.index.1) {
                let diff = clean_with(&sg.diff, true);
                let fence = "`".repeat(3.max(longest_run(&diff, '`') + 1));
                writeln!(
                    out,
                    "\nA possible change{} (risk {:.0}% → {:.0}% if applied; `deepspark review --apply` applies it):\n\n{fence}diff\n{}{fence}",
                    match sg.by {
                        crate::suggest::Author::LanguageModel => ", written by the language model",
                        crate::suggest::Author::History => ", what the bug fix named above did to these lines",
                        crate::suggest::Author::Embedded => "",
                    },
                    sg.risk.old * 100.0,
                    sg.risk.new * 100.0,
                    diff
                )?;
            }
            writeln!(out, "\n</details>")?;
        }
    }
    if let (Verdict::Reject, Some(note)) = (r.verdict, &r.assist.reject_note) {
        writeln!(
            out,
            "\n---\n{}\n\n<sub>This note was written by a language model; the verdict is deepspark's ({:.0}% confident the change is clean). A human reviewer has the last word.</sub>",
            model_text(note),
            r.p_clean * 100.0
        )?;
    } else if r.verdict == Verdict::Reject {
        writeln!(
            out,
            "\n---\nThank you for this contribution, and I'm sorry to be the bearer of a REJECT. \
             I can't recommend merging this change as it stands: from changes like it, I estimate only a \
             {:.0}% chance that it will not need a fix later. What would change my verdict: smaller, focused \
             changes; tests that exercise the riskiest hunks above; and a second look at the lines that drive \
             the score. I am a statistical model and I am sometimes wrong. A human reviewer has the last word.",
            r.p_clean * 100.0
        )?;
    }
    writeln!(
        out,
        "\n<sub>deepspark {} · {}</sub>",
        env!("CARGO_PKG_VERSION"),
        r.model
            .as_deref()
            .map(|m| clean(m).into_owned())
            .unwrap_or_else(|| "no model needed".into())
    )
}
