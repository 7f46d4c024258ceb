//! `deepspark dismiss FINGERPRINT`: record a finding as not a problem, in
//! `.deepspark/dismissed` (one fingerprint per line, then an optional reason; commit it to
//! share it). A dismissed hunk (same path, same added lines) is scored as no risk by
//! `review`, `scan` and the hook, so it is raised in no format and does not weigh in the
//! verdict, and `learn` counts it as a clean example. Writes only that file.

use crate::cli::DismissArgs;
use crate::exit;
use anyhow::{Context, Result, bail};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Relative to the work tree.
pub const DISMISSED_FILE: &str = ".deepspark/dismissed";

/// The dismissed fingerprints of the repository whose work tree is `root` (none when the
/// file is absent). Lines starting with `#` are comments.
pub fn load(root: Option<&Path>) -> Result<HashSet<String>> {
    let Some(path) = root.map(|r| r.join(DISMISSED_FILE)) else {
        return Ok(HashSet::new());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

fn is_fingerprint(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

pub fn run(args: DismissArgs) -> Result<u8> {
    let repo = crate::git::open(args.repo.as_deref())?;
    let Some(root) = repo.workdir() else {
        bail!("a bare repository has no work tree for {DISMISSED_FILE}");
    };
    if !is_fingerprint(&args.fingerprint) {
        bail!(
            "{:?} is not a finding's fingerprint (16 hex digits: the `fingerprint` of a hunk in `review --format json`, \
             or `partialFingerprints` in SARIF)",
            args.fingerprint
        );
    }
    let path: PathBuf = root.join(DISMISSED_FILE);
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let has = |l: &str| l.split_whitespace().next() == Some(args.fingerprint.as_str());
    let new = if args.undo {
        if !old.lines().any(has) {
            eprintln!("deepspark: {} was not dismissed", args.fingerprint);
            return Ok(exit::PASS);
        }
        old.lines()
            .filter(|l| !has(l))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    } else {
        if old.lines().any(has) {
            eprintln!("deepspark: {} is already dismissed", args.fingerprint);
            return Ok(exit::PASS);
        }
        let reason = args
            .reason
            .as_deref()
            .map(|r| r.replace(['\n', '\r'], " "))
            .unwrap_or_default();
        let mut text = if old.is_empty() {
            "# Findings dismissed with `deepspark dismiss`: fingerprint, then why.\n".to_string()
        } else {
            old.clone()
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(format!("{}  {reason}", args.fingerprint).trim_end());
        text.push('\n');
        text
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, new).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "deepspark: {} {} in {DISMISSED_FILE}",
        args.fingerprint,
        if args.undo { "no longer dismissed" } else { "dismissed" }
    );
    Ok(exit::PASS)
}
