//! GitHub Actions workflow commands: `::error`/`::warning`/`::notice` lines that show up
//! inline on a pull request without any token. Values are escaped as the runner
//! expects (`%`, CR, LF everywhere; also `:` and `,` in properties), so file content
//! cannot inject commands.

use crate::review::{Review, Verdict};

fn data(s: &str) -> String {
    crate::render::sanitize::clean(s)
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

pub fn write(r: &Review, min_risk: f32, out: &mut impl std::io::Write) -> std::io::Result<()> {
    for f in r.findings(min_risk) {
        let (start, end) = f.lines();
        let level = if f.score.risk >= 0.6 { "error" } else { "warning" };
        writeln!(
            out,
            "::{level} file={},line={start},endLine={end},title={}::{}",
            property(f.file.display_path()),
            property(&format!("deepspark: {:.0}% risk", f.score.risk * 100.0)),
            data(&format!(
                "deepspark estimates a {:.0}% chance that this hunk will need a fix.{}{}",
                f.score.risk * 100.0,
                r.why_suffix(f.index),
                r.assist.comment_suffix(f.index)
            ))
        )?;
    }
    for f in r
        .files
        .iter()
        .filter(|f| f.skip.as_ref().is_some_and(|s| s.is_unreviewed()))
    {
        let why = f.skip.as_ref().map(|s| s.describe()).unwrap_or_default();
        writeln!(
            out,
            "::error file={},title=deepspark: not reviewed::{}",
            property(f.display_path()),
            data(&why)
        )?;
    }
    for w in &r.warnings {
        writeln!(
            out,
            "::error file={},line={},title=deepspark: bidi override::{}",
            property(&w.path),
            w.line.unwrap_or(1),
            data(&w.message)
        )?;
    }
    let level = match r.verdict {
        Verdict::Lgtm => "notice",
        Verdict::NeedsWork => "warning",
        Verdict::Reject => "error",
    };
    writeln!(
        out,
        "::{level} title=deepspark verdict::{}",
        data(&format!(
            "{} (P(clean) {:.1}%; {}){}",
            r.verdict.label(),
            r.p_clean * 100.0,
            r.calibration.text,
            r.change_why()
        ))
    )
}
