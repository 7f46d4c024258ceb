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

use super::review::{Settings, model_files};
use crate::git;
use crate::model::RiskModel;
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
    risks: BTreeMap<String, f32>,
}

/// The change risks of the last `n` non-merge commits reachable from `at` (sorted, rounded
/// to 1e-4), scored with `settings`' model, `model` when it is already loaded.
pub fn risks(
    repo: &git2::Repository,
    at: &str,
    n: usize,
    settings: &Settings,
    model: &mut Option<RiskModel>,
) -> Result<Vec<f32>> {
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
            risks: BTreeMap::new(),
        });
    let missing: Vec<(git2::Oid, Option<git2::Oid>)> = ids
        .iter()
        .filter(|(id, _)| !cache.risks.contains_key(&id.to_string()))
        .copied()
        .collect();
    if !missing.is_empty() {
        let bar = progress_bar(missing.len());
        for group in missing.chunks(GROUP) {
            for (id, review) in super::scan::review_group(repo, group, settings, model)? {
                cache
                    .risks
                    .insert(id.to_string(), ((1.0 - review.p_clean) * 1e4).round() as f32 / 1e4);
            }
            bar.inc(group.len() as u64);
        }
        bar.finish_and_clear();
        // Only what the current history needs is kept, so the file stays small.
        let keep: std::collections::HashSet<String> = ids.iter().map(|(id, _)| id.to_string()).collect();
        cache.risks.retain(|k, _| keep.contains(k));
        // A cache that cannot be written (a read-only repository) only costs the next review time.
        let _ = write(&path, &cache);
    }
    let mut out: Vec<f32> = ids
        .iter()
        .filter_map(|(id, _)| cache.risks.get(&id.to_string()).copied())
        .collect();
    out.sort_by(f32::total_cmp);
    Ok(out)
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
    let settings_text = format!(
        "{} {} {:?} {} {}",
        env!("CARGO_PKG_VERSION"),
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

/// Writes the cache through a temporary file and a rename.
fn write(path: &Path, cache: &Cache) -> std::io::Result<()> {
    let dir = path.parent().expect("the cache path has a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".history.json.tmp-{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(cache)?)?;
    std::fs::rename(&tmp, path)
}
