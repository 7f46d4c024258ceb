//! `deepspark mine`: label the repository's history with SZZ (see `mine.rs`) and write the
//! records to a file or stdout. Reads the repository only; writes only `--out`.

use crate::cli::MineArgs;
use crate::config::{Config, MineConfig};
use crate::mine::{self, BugReports, DEFAULT_FIX, DEFAULT_NOT_FIX, Options, Patterns, Progress};
use crate::{exit, skip};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

const DAY: i64 = 86_400;

/// `mine::Progress` on an indicatif bar.
pub struct Bar(pub ProgressBar);

impl Progress for Bar {
    fn phase(&self, name: &str, steps: usize) {
        self.0.set_length(steps as u64);
        self.0.set_position(0);
        self.0.set_message(name.to_string());
    }
    fn step(&self) {
        self.0.inc(1);
    }
}

/// How to mine `repo`: the settings file's `[mine]` table and skip rules, under the flags.
pub fn options(
    repo: &git2::Repository,
    cfg: &Config,
    at: &str,
    project: Option<&str>,
    grace_days: Option<u32>,
    bug_reports: Option<&Path>,
) -> Result<Options> {
    let own = |ps: &[&str]| ps.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let patterns = patterns(repo, &cfg.mine, bug_reports)?;
    let mut skips: Vec<String> = if cfg.default_skips.unwrap_or(true) {
        own(skip::DEFAULT_PATTERNS)
    } else {
        Vec::new()
    };
    skips.extend(cfg.skip.iter().cloned());
    Ok(Options {
        at: at.to_string(),
        project: project.map_or_else(|| mine::project_name(repo), str::to_string),
        grace_secs: grace_days.or(cfg.mine.grace_days).unwrap_or(365) as i64 * DAY,
        young_implicated: true,
        patterns,
        rules: skip::Rules {
            patterns: skips,
            markers: cfg.default_skips.unwrap_or(true),
            max_file_lines: cfg.max_file_lines.unwrap_or(5000),
            max_change_lines: cfg.max_change_lines.unwrap_or(20000),
        },
    })
}

/// Which commits are fixes: the `[mine]` table's patterns (else the defaults) and the bug
/// reports of `flag`, else of `[mine] bug_reports`.
pub fn patterns(repo: &git2::Repository, table: &MineConfig, flag: Option<&Path>) -> Result<Patterns> {
    let own = |ps: &[&str]| ps.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Ok(Patterns::new(
        table.fix.as_deref().unwrap_or(&own(DEFAULT_FIX)),
        table.not_fix.as_deref().unwrap_or(&own(DEFAULT_NOT_FIX)),
    )?
    .with_reports(bug_reports_of(repo, table, flag)?))
}

/// The export `flag` names, else `[mine] bug_reports` (made relative to the settings file
/// by `Config::load`; to the repository root otherwise).
pub fn reports_path(repo: &git2::Repository, table: &MineConfig, flag: Option<&Path>) -> Option<std::path::PathBuf> {
    let root = repo.workdir().unwrap_or_else(|| repo.path());
    flag.map(Path::to_path_buf)
        .or_else(|| table.bug_reports.as_ref().map(|p| root.join(p)))
}

/// The bug reports of [`reports_path`], with a line on stderr saying how many; none when
/// no export is named.
fn bug_reports_of(repo: &git2::Repository, table: &MineConfig, flag: Option<&Path>) -> Result<Option<BugReports>> {
    let Some(path) = reports_path(repo, table, flag) else {
        return Ok(None);
    };
    let reports = BugReports::read(&path)?;
    let (bugs, others) = reports.counts();
    eprintln!(
        "deepspark: {}: {bugs} bug reports{}; a commit that names one is a fix",
        path.display(),
        if others > 0 {
            format!(", {others} other issues (a commit naming only those is not)")
        } else {
            String::new()
        }
    );
    Ok(Some(reports))
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn bar() -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
                .expect("static template")
                .progress_chars("=> "),
        )
    } else {
        ProgressBar::hidden()
    }
}

pub fn run(args: MineArgs) -> Result<u8> {
    let t0 = Instant::now();
    let repo = mine::open(args.repo.as_deref())?;
    let (cfg, _) = Config::load(args.config.as_deref(), repo.workdir())?;
    let opts = options(
        &repo,
        &cfg,
        &args.at,
        args.project.as_deref(),
        args.grace_days,
        args.reports.bug_reports.as_deref(),
    )?;
    let bar = bar();
    let summary = match &args.out {
        Some(path) => {
            // Written beside the target, then renamed over it: a failed run leaves the old file.
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".tmp-{}", std::process::id()));
            let tmp = path.with_file_name(name);
            let written = write_file(&tmp, path, &repo, &opts, &bar);
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            let summary = written?;
            std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
            summary
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match mine::mine(&repo, &opts, &mut out, &Bar(bar.clone())) {
                Err(mine::MineError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(exit::PASS);
                }
                other => other?,
            }
        }
    };
    bar.finish_and_clear();
    report(&summary, t0.elapsed().as_secs_f64());
    Ok(exit::PASS)
}

/// The summary line on stderr.
pub fn report(summary: &mine::Summary, secs: f64) {
    if summary.unreadable > 0 {
        eprintln!(
            "deepspark: {} commits left out: objects they need are missing from this clone (`git fsck` lists them)",
            summary.unreadable
        );
    }
    if summary.shallow {
        eprintln!(
            "deepspark: shallow clone: mined only the history that is here (`git fetch --unshallow` for all of it)"
        );
    }
    eprintln!(
        "deepspark: mined {} commits in {:.1}s ({:.0} commits/s): {} fixes ({} sweeps not blamed), {} blamed lines; \
         wrote {} commits ({} buggy, {} hunks); {} younger than the grace period left out, {} merges skipped",
        summary.commits,
        secs,
        summary.commits as f64 / secs.max(1e-9),
        summary.fixes,
        summary.sweeps,
        summary.blamed_lines,
        summary.written,
        summary.buggy,
        summary.hunks,
        summary.unlabelled,
        summary.merges,
    );
}

fn write_file(
    tmp: &std::path::Path,
    path: &std::path::Path,
    repo: &git2::Repository,
    opts: &Options,
    bar: &ProgressBar,
) -> Result<mine::Summary> {
    let file = std::fs::File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let buf = std::io::BufWriter::new(file);
    let (summary, file) = if path.extension().is_some_and(|e| e == "gz") {
        let mut w = flate2::write::GzEncoder::new(buf, flate2::Compression::default());
        let s = mine::mine(repo, opts, &mut w, &Bar(bar.clone()))?;
        (s, w.finish()?.into_inner().map_err(|e| e.into_error())?)
    } else {
        let mut w = buf;
        let s = mine::mine(repo, opts, &mut w, &Bar(bar.clone()))?;
        (s, w.into_inner().map_err(|e| e.into_error())?)
    };
    file.sync_all()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    Ok(summary)
}
