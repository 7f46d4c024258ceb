//! Where a change stands in its repository's own history: the change risks of the last
//! [`HISTORY`] non-merge commits reachable from a revision, each reviewed against its first
//! parent as `scan` reviews it. `review` ranks a change against them ("riskier than 93% of
//! this repository's last 1000 commits") and the gate uses that rank (see
//! `review::Review::temper`): risk levels differ between projects, a rank does not.
//!
//! Scores are cached in the git directory (`.git/deepspark/history.json`, keyed by the model
//! and the settings that change a score), so a review scores only the commits that are new
//! since the last one. Nothing is written to the working tree, the index, refs or config;
//! a cache that cannot be read or written is ignored. A shallow clone gives what it holds.

use super::settings::{Settings, model_files};
use crate::history::calibration::{self, Calibration, Sample};
use crate::history::facts::{Fix, FunctionsFixed, Written};
use crate::history::similar::FixedHunk;
use crate::model::RiskModel;
use crate::review::CalibrationInForce;
use crate::{git, mine};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::review::{HISTORY, MIN_HISTORY};

/// Commits scored together.
const GROUP: usize = 64;

#[derive(Serialize, Deserialize, Default)]
struct Cache {
    key: String,
    commits: BTreeMap<String, Scored>,
}

/// One commit of the history as the review sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The model's change risk over its production hunks (0 when it has none), rounded to 1e-4.
    pub risk: f32,
    /// Whether it changed production code (see `syntax/`).
    pub production: bool,
    /// How many hunks it changed.
    pub hunks: u32,
}

/// The change risks of the last `n` non-merge commits reachable from `at` that change
/// production code (sorted, rounded to 1e-4): what a change is ranked against.
pub fn risks(
    repo: &git2::Repository,
    at: &str,
    n: usize,
    settings: &Settings,
    model: &mut Option<RiskModel>,
) -> Result<Vec<f32>> {
    let mut out: Vec<f32> = scored(repo, at, n, settings, model)?
        .into_iter()
        .filter(|(_, s)| s.production)
        .map(|(_, s)| s.risk)
        .collect();
    out.sort_by(f32::total_cmp);
    Ok(out)
}

/// The last `n` non-merge commits reachable from `at`, newest first, each scored as the
/// review scores a change (cached); none when fewer than [`MIN_HISTORY`] are there.
pub fn scored(
    repo: &git2::Repository,
    at: &str,
    n: usize,
    settings: &Settings,
    model: &mut Option<RiskModel>,
) -> Result<Vec<(git2::Oid, Scored)>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let ids = recent(repo, at, n)?;
    if ids.len() < MIN_HISTORY {
        return Ok(Vec::new());
    }
    let path = cache_path(repo);
    let key = cache_key(settings)?;
    let mut cache = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Cache>(&b).ok())
        .filter(|c| c.key == key)
        .unwrap_or(Cache {
            key,
            commits: BTreeMap::new(),
        });
    let missing: Vec<(git2::Oid, Option<git2::Oid>)> = ids
        .iter()
        .filter(|(id, _)| !cache.commits.contains_key(&id.to_string()))
        .copied()
        .collect();
    if !missing.is_empty() {
        let bar = progress_bar(missing.len());
        for group in missing.chunks(GROUP) {
            for (id, risk, hunks) in super::scoring::production_risks(repo, group, settings, model)? {
                let scored = Scored {
                    risk: (risk.unwrap_or(0.0) * 1e4).round() / 1e4,
                    production: risk.is_some(),
                    hunks,
                };
                cache.commits.insert(id.to_string(), scored);
            }
            bar.inc(group.len() as u64);
        }
        bar.finish_and_clear();
        // Only what the current history needs is kept, so the file stays small.
        let keep: std::collections::HashSet<String> = ids.iter().map(|(id, _)| id.to_string()).collect();
        cache.commits.retain(|k, _| keep.contains(k));
        // A cache that cannot be written (a read-only repository) only costs the next review time.
        let _ = write_json(&path, &cache);
    }
    Ok(ids
        .iter()
        .filter_map(|(id, _)| cache.commits.get(&id.to_string()).map(|s| (*id, *s)))
        .collect())
}

/// The last `n` non-merge commits from `at` with their first parents, newest first; stops
/// quietly at a shallow clone's boundary.
fn recent(repo: &git2::Repository, at: &str, n: usize) -> Result<Vec<(git2::Oid, Option<git2::Oid>)>> {
    let mut out = Vec::new();
    // Merges are walked past but not kept: a merge's diff is a whole branch's work.
    for id in git::commits(repo, at, n.saturating_mul(4))? {
        if out.len() == n {
            break;
        }
        if repo.find_commit(id)?.parent_count() > 1 {
            continue;
        }
        match git::first_parent(repo, id) {
            Ok(parent) => out.push((id, parent)),
            Err(git::GitError::Shallow { .. }) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Shown only on a terminal, and only when there is enough to score for it to matter.
fn progress_bar(total: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if total < 64 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "scoring this repository's history to rank the change [{bar:30}] {pos}/{len} commits ({eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    b
}

fn cache_path(repo: &git2::Repository) -> PathBuf {
    repo.path().join("deepspark").join("history.json")
}

/// What a cached score depends on: the model's bytes, the context and what is skipped.
fn cache_key(settings: &Settings) -> Result<String> {
    let files = model_files(settings.model.as_deref())?;
    let r = &settings.rules;
    // "production parsed": scores are over production hunks only, as the grammars read
    // them (see `syntax/`); "generated markers": whether files that say a tool generated them
    // are skipped (`skip::generated_by`). A change to either must invalidate the cached scores.
    let settings_text = format!(
        "{} production parsed generated markers {} {} {:?} {} {}",
        env!("CARGO_PKG_VERSION"),
        r.markers,
        settings.context,
        r.patterns,
        r.max_file_lines,
        r.max_change_lines
    );
    Ok(crate::review::fingerprint_bytes(&[
        settings_text.as_bytes(),
        &files.config,
        &files.weights,
        &files.tokenizer,
    ]))
}

/// What the history's labels depend on besides the model: the `[mine]` table's patterns
/// and the bytes of its bug-report export (an export that cannot be read is keyed as such,
/// and the labelling then says why).
fn labels_key(repo: &git2::Repository, settings: &Settings) -> String {
    let table = &settings.mine;
    let export = super::mine::reports_path(repo, table, None).map(|p| std::fs::read(p).unwrap_or_default());
    // The patterns in force: the table's, else the defaults (which a new version may change).
    let patterns = format!(
        "{:?} {:?}",
        table
            .fix
            .as_deref()
            .map_or(format!("{:?}", crate::mine::DEFAULT_FIX), |p| format!("{p:?}")),
        table
            .not_fix
            .as_deref()
            .map_or(format!("{:?}", crate::mine::DEFAULT_NOT_FIX), |p| format!("{p:?}")),
    );
    crate::review::fingerprint_bytes(&[patterns.as_bytes(), export.as_deref().unwrap_or(b"none")])
}

/// Writes a cache file through a temporary file and a rename.
fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let dir = path.parent().expect("the cache path has a folder");
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(value)?)?;
    std::fs::rename(&tmp, path)
}

/// After this many new commits since the last fit, the repository's calibration is fitted
/// again; fewer leave it as it is (a calibration does not move with every commit).
const REFIT_AFTER: usize = 100;
/// Fewer fix delays than this in the history: the unseen fixes of young commits are not
/// modelled, and only commits old enough are labelled.
const MIN_DELAYS: usize = 20;

/// The repository's calibration and the fixes of its history, as of one commit.
#[derive(Serialize, Deserialize)]
struct MemoryCache {
    key: String,
    /// The commit the history was labelled at.
    at: String,
    fit: Option<Calibration>,
    /// Why there is no fit.
    why: Option<String>,
    /// How many commits were scored.
    window: usize,
    fixes: Vec<Fix>,
    /// The fixes' hunks, for similar past bugs (a cache without them is rebuilt).
    fixed_hunks: Vec<FixedHunk>,
}

/// What the repository's history gives a review: the calibration in force, and the
/// fixes (with the date they are read as of) for the reasons.
pub struct Remembered {
    pub calibration: CalibrationInForce,
    pub fixes: Vec<Fix>,
    pub fixed_hunks: Vec<FixedHunk>,
    pub now: i64,
}

/// Labels the history up to HEAD (`mine::label`), fits this repository's calibration on
/// the `scored` commits old enough to be labelled, and keeps it in
/// `.git/deepspark/memory.json` until HEAD moves on by [`REFIT_AFTER`] commits or leaves
/// that history (a cache that cannot be read, is from another model, or names a commit
/// HEAD does not descend from is rebuilt, not trusted).
pub fn remember(repo: &git2::Repository, settings: &Settings, scored: &[(git2::Oid, Scored)]) -> Result<Remembered> {
    let head = repo.head()?.peel_to_commit()?;
    let now = head.time().seconds();
    let key = format!("{} {}", cache_key(settings)?, labels_key(repo, settings));
    let path = repo.path().join("deepspark").join("memory.json");
    let cached = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<MemoryCache>(&b).ok())
        .filter(|c| c.key == key && still_fits(repo, &c.at, head.id()));
    let memory = match cached {
        Some(c) => c,
        None => {
            let m = label_and_fit(repo, settings, &head, scored, key)?;
            let _ = write_json(&path, &m);
            m
        }
    };
    let calibration = match (memory.fit, &memory.why) {
        (Some(fit), _) => CalibrationInForce {
            source: "repository",
            text: format!(
                "calibrated on this repository's last {} commits: {:.0}% of the {} old enough to tell needed a fix within a year",
                memory.window,
                100.0 * fit.fixed_share(),
                fit.labelled + fit.quiet_labelled
            ),
            fit,
        },
        (None, why) => CalibrationInForce {
            text: format!(
                "the embedded model's calibration: this repository's history supports no fit ({})",
                why.as_deref().unwrap_or("no history")
            ),
            ..CalibrationInForce::default()
        },
    };
    Ok(Remembered {
        calibration,
        fixes: memory.fixes,
        fixed_hunks: memory.fixed_hunks,
        now,
    })
}

/// Whether a memory labelled at `at` still serves HEAD: HEAD is `at` or descends from it
/// by fewer than [`REFIT_AFTER`] commits.
fn still_fits(repo: &git2::Repository, at: &str, head: git2::Oid) -> bool {
    let Ok(at) = git2::Oid::from_str(at) else {
        return false;
    };
    if at == head {
        return true;
    }
    if !repo.graph_descendant_of(head, at).unwrap_or(false) {
        return false;
    }
    let Ok(mut walk) = repo.revwalk() else {
        return false;
    };
    walk.push(head).is_ok() && walk.hide(at).is_ok() && walk.take(REFIT_AFTER).count() < REFIT_AFTER
}

fn label_and_fit(
    repo: &git2::Repository,
    settings: &Settings,
    head: &git2::Commit,
    scored: &[(git2::Oid, Scored)],
    key: String,
) -> Result<MemoryCache> {
    let bar = label_bar();
    // The labels the fit needs reach back to the oldest scored commit, and the fix delays
    // to two years: older history is not read (curl's 30,000 commits took 36 s).
    let oldest_scored = scored
        .iter()
        .filter_map(|(id, _)| repo.find_commit(*id).ok())
        .map(|c| c.author().when().seconds())
        .min()
        .unwrap_or(i64::MAX);
    let now = head.time().seconds();
    let year = crate::history::facts::YEAR;
    let since = oldest_scored.min(now - 2 * year);
    let labels = mine::label(
        repo,
        &head.id().to_string(),
        &super::mine::patterns(repo, &settings.mine, None)?,
        &settings.rules,
        &bar,
        Some(since),
    )?;
    bar.0.finish_and_clear();
    let fixes: Vec<Fix> = labels
        .fixes
        .iter()
        .filter(|(_, paths)| !paths.is_empty())
        .map(|(i, paths)| {
            let c = &labels.history[*i];
            Fix {
                id: c.id.to_string(),
                date: c.author_date,
                subject: c.subject().to_string(),
                paths: paths.clone(),
            }
        })
        .collect();
    let dates: std::collections::HashMap<git2::Oid, i64> =
        labels.history.iter().map(|c| (c.id, c.author_date)).collect();
    // "Later needed a fix" means within a year of the commit: fixes found years later
    // (SZZ finds them too) would make older commits look buggier than a new one can be
    // known to be, and a calibration is about the change in front of the reviewer.
    let fix_dates: std::collections::HashMap<&str, i64> = fixes.iter().map(|f| (f.id.as_str(), f.date)).collect();
    let first_fix = |id: &git2::Oid| -> Option<i64> {
        labels
            .fixed_by
            .get(id)?
            .iter()
            .filter_map(|f| fix_dates.get(f.as_str()).copied())
            .min()
    };
    // How long fixes took, from the commits a year old or more: a younger commit's chance
    // of having met its fix by now (`Sample::seen`).
    let mut delays: Vec<i64> = labels
        .mined
        .iter()
        .map(|&i| &labels.history[i])
        .filter(|c| c.author_date <= now - year)
        .filter_map(|c| first_fix(&c.id).map(|f| (f - c.author_date).max(0)))
        .filter(|&d| d <= year)
        .collect();
    delays.sort_unstable();
    let known_delays = delays.len() >= MIN_DELAYS;
    let seen = |age: i64| -> f64 {
        if age >= year || !known_delays {
            return 1.0;
        }
        delays.partition_point(|&d| d <= age) as f64 / delays.len() as f64
    };
    // Without enough delays to model the unseen fixes, only the older half of the window
    // (or what is a year old) is labelled, as if fully seen.
    let mut window_dates: Vec<i64> = scored.iter().filter_map(|(id, _)| dates.get(id).copied()).collect();
    window_dates.sort_unstable();
    let median = window_dates.get(window_dates.len() / 2).copied().unwrap_or(i64::MIN);
    let cutoff = if known_delays { now } else { (now - year).max(median) };
    let samples: Vec<Sample> = scored
        .iter()
        .filter_map(|(id, s)| dates.get(id).filter(|&&d| d <= cutoff).map(|&d| (id, s, d)))
        .map(|(id, s, date)| Sample {
            risk: s.risk,
            production: s.production,
            buggy: first_fix(id).is_some_and(|f| f - date <= year),
            seen: seen(now - date),
        })
        .collect();
    let (fit, why) = if labels.summary.shallow {
        (
            None,
            Some("a shallow clone: its history cannot be labelled".to_string()),
        )
    } else if scored.is_empty() {
        (None, Some(format!("fewer than {MIN_HISTORY} commits to score")))
    } else {
        match calibration::fit(&samples) {
            Ok(fit) => (Some(fit), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    Ok(MemoryCache {
        key,
        at: head.id().to_string(),
        fit,
        why,
        window: scored.len(),
        fixes,
        fixed_hunks: labels.fixed_hunks,
    })
}

/// Mining's progress, on a terminal only.
fn label_bar() -> super::mine::Bar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return super::mine::Bar(indicatif::ProgressBar::hidden());
    }
    let b = indicatif::ProgressBar::new(0);
    b.set_style(
        indicatif::ProgressStyle::with_template("learning this repository's history: {msg} [{bar:30}] {pos}/{len}")
            .expect("static template")
            .progress_chars("=> "),
    );
    super::mine::Bar(b)
}

/// The cache of the functions each fix changed (`.git/deepspark/functions.json`): what a
/// fix changed never changes, so entries are kept until the grammars' reading does.
#[derive(Serialize, Deserialize, Default)]
struct FunctionsCache {
    version: u32,
    /// "<fix id> <path>" -> the names of the functions, methods and classes its hunks sit in.
    fixed: BTreeMap<String, Vec<String>>,
}

/// Bumped when the syntax stage reads contexts differently.
const FUNCTIONS_VERSION: u32 = 1;

/// Which functions the last year's fixes of each of `paths` (at most
/// `facts::FUNCTION_FIXES_READ` each) changed in that file, read with the grammars from each
/// fix's own diff against its parent. Cached; a fix that cannot be read is left out.
pub fn functions_fixed(repo: &git2::Repository, fixes: &[Fix], paths: &[&str], now: i64) -> FunctionsFixed {
    let path = repo.path().join("deepspark").join("functions.json");
    let mut cache = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<FunctionsCache>(&b).ok())
        .filter(|c| c.version == FUNCTIONS_VERSION)
        .unwrap_or(FunctionsCache {
            version: FUNCTIONS_VERSION,
            ..Default::default()
        });
    let mut out = FunctionsFixed::new();
    let mut added = false;
    for &p in paths {
        let (of, _) = crate::history::facts::fixes_of(fixes, p, now);
        let recent = of.into_iter().filter(|f| f.date > now - crate::history::facts::YEAR);
        for fix in recent.take(crate::history::facts::FUNCTION_FIXES_READ) {
            let key = format!("{} {p}", fix.id);
            let names = match cache.fixed.get(&key) {
                Some(n) => n.clone(),
                None => match functions_of_fix(repo, &fix.id, p) {
                    Ok(n) => {
                        cache.fixed.insert(key, n.clone());
                        added = true;
                        n
                    }
                    Err(_) => continue,
                },
            };
            out.insert((fix.id.clone(), p.to_string()), names);
        }
    }
    if added {
        let _ = write_json(&path, &cache);
    }
    out
}

/// The functions, methods and classes the hunks of fix `id` sit in, in the file that was
/// `path` before it (empty where no grammar reads the file).
fn functions_of_fix(repo: &git2::Repository, id: &str, path: &str) -> Result<Vec<String>> {
    let id = git2::Oid::from_str(id)?;
    let parent = repo.find_commit(id)?.parent_ids().next();
    let mut files = git::diff_commits(repo, parent, id, 0)?;
    files.retain(|f| f.path.old.as_deref() == Some(path));
    let texts = git::Sides::of_commits(repo, parent, id)?.texts(repo, &files, crate::syntax::wants_text)?;
    let mut names: Vec<String> = crate::syntax::read(&files, &texts)
        .into_iter()
        .flat_map(|s| s.contexts)
        .flatten()
        .map(|c| c.name)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// How many files, and how long a span of each, `written` blames.
const BLAME_FILES: usize = 8;
const BLAME_LINES: u32 = 400;

/// Who wrote the lines each production hunk of `review` modifies or deletes: blame of the
/// old side's commit `old` (whitespace ignored) over the removed lines, file by file, with
/// each line's commit date. Blame walks the file's whole history, so it is bounded by what
/// it asks: the first [`BLAME_FILES`] files with removed production lines, each over at
/// most [`BLAME_LINES`] lines; a file blame cannot read is left out.
pub fn written(
    repo: &git2::Repository,
    old: git2::Oid,
    review: &crate::review::Review,
) -> Vec<((usize, usize), Written)> {
    let mut out = Vec::new();
    let mut dates: std::collections::HashMap<git2::Oid, i64> = std::collections::HashMap::new();
    let mut blamed = 0;
    for (fi, f) in review.files.iter().enumerate() {
        let Some(path) = f.path.old.as_deref() else { continue };
        let removed: Vec<(usize, Vec<u32>)> = f
            .hunks
            .iter()
            .enumerate()
            .filter(|(hi, _)| review.syntax.get(fi).is_some_and(|s| s.is_production(*hi)))
            .map(|(hi, h)| {
                let lines = h
                    .lines
                    .iter()
                    .filter(|l| l.kind == crate::diff::LineKind::Removed)
                    .filter_map(|l| l.lineno.old)
                    .collect();
                (hi, lines)
            })
            .filter(|(_, lines): &(usize, Vec<u32>)| !lines.is_empty())
            .collect();
        if blamed == BLAME_FILES {
            break;
        }
        let (Some(first), Some(last)) = (
            removed.iter().flat_map(|(_, l)| l).min(),
            removed.iter().flat_map(|(_, l)| l).max(),
        ) else {
            continue;
        };
        if last - first >= BLAME_LINES {
            continue;
        }
        blamed += 1;
        let mut opts = git2::BlameOptions::new();
        opts.newest_commit(old)
            .min_line(*first as usize)
            .max_line(*last as usize);
        opts.ignore_whitespace(true);
        let Ok(blame) = repo.blame_file(Path::new(path), Some(&mut opts)) else {
            continue;
        };
        for (hi, lines) in removed {
            let origins = lines
                .iter()
                .filter_map(|&l| {
                    let id = blame.get_line(l as usize)?.final_commit_id();
                    let date = *dates
                        .entry(id)
                        .or_insert_with(|| repo.find_commit(id).map_or(0, |c| c.time().seconds()));
                    Some((id.to_string(), date))
                })
                .collect();
            out.push(((fi, hi), Written { origins }));
        }
    }
    out
}
