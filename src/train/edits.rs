//! Patch suggestions learned from real bug fixes, and measured on held-out ones.
//!
//! Every hunk of a commit with `fix: true` gives a (before, after) pair. The generator
//! sees the *view*: the fix's old side, with the lines the fix removed shown as if they
//! had just been added (that is what a reviewer of the buggy change saw); it matches when
//! its rewrite of those lines gives exactly the fix's new side (whitespace-insensitive:
//! runs of blanks collapse, ends are trimmed). Fixes are split by date per project like
//! the risk model's data (train 70% / calib 10% / test 20%): rules are mined and the
//! ranker trained on train fixes only, the epoch chosen on calib, and `eval-suggest`
//! reports on test. Does not read git or write the working tree.

use super::data::{self, Split};
use super::rng::Rng;
use crate::diff::{Hunk, LineKind, parse_patch};
use crate::model::edit::{EditConfig, EditModel, N_EDIT_FEATURES, Ranker, Rule, RuleIndex, edit_rules, enumerate};
use crate::model::{Generator, LineEdit, ScoreInput, Scorer};
use crate::suggest::{self, Settings, Target};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// One hunk of a bug fix, seen from before the fix.
#[derive(Debug, Clone)]
pub struct FixHunk {
    pub project: String,
    pub commit: String,
    pub split: Split,
    pub path: String,
    /// The fix's hunk as it was committed.
    pub fix: Hunk,
    /// The fix's old side with its removed lines as added lines.
    pub view: Hunk,
    /// The fix's new side (context and added lines), the exact-match target.
    pub target: Vec<String>,
    /// The fix is a single hunk (over its code files) with at most 5 changed lines.
    pub small: bool,
    /// The file's path before the fix.
    pub old_path: String,
    /// The file as it was before the fix (at the fix's parent), when read (`attach_files`):
    /// the generator takes names from it. Shared by the hunks of one file.
    pub file: Option<std::sync::Arc<str>>,
}

#[derive(Deserialize)]
struct CommitRecord {
    commit_id: String,
    project: String,
    author_date: i64,
    #[serde(default)]
    fix: bool,
    #[serde(default)]
    diff: Option<String>,
    #[serde(default)]
    diff_truncated: bool,
}

/// The view and target of a fix hunk; `None` when the fix removed nothing (no line to rewrite is
/// still a fix hunk: it is kept, with an empty view, so coverage counts it).
pub fn view_of(fix: &Hunk) -> (Hunk, Vec<String>) {
    let mut body = String::new();
    let mut target = Vec::new();
    for l in &fix.lines {
        match l.kind {
            LineKind::Context => {
                body.push(' ');
                target.push(l.text.clone());
            }
            LineKind::Removed => body.push('+'),
            LineKind::Added => {
                target.push(l.text.clone());
                continue;
            }
        }
        body.push_str(&l.text);
        body.push('\n');
    }
    let context = fix.lines.iter().filter(|l| l.kind == LineKind::Context).count();
    let header = format!(
        "@@ -{},{context} +{},{} @@",
        fix.start.old, fix.start.old, fix.count.old
    );
    let view = Hunk::parse(&header, &body).expect("a view rebuilt from a parsed hunk parses");
    (view, target)
}

/// Lines compared for exact match: blank runs collapsed, ends trimmed.
pub fn normalize<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    lines
        .into_iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Whether the edits turn the view into the fix's new side.
pub fn matches(view: &Hunk, edits: &[LineEdit], target: &[String]) -> bool {
    let after = suggest::rewrite(view, edits);
    let new_side = after
        .lines
        .iter()
        .filter(|l| l.kind != LineKind::Removed)
        .map(|l| l.text.as_str());
    normalize(new_side) == normalize(target.iter().map(String::as_str))
}

/// Reads the fix commits of commit files (plain or .gz; hunk records among them, as `mine`
/// writes, are passed over), split by date within each project. Only code files (a known
/// language) count; truncated diffs are left out.
pub fn load_fixes(paths: &[impl AsRef<Path>]) -> Result<Vec<FixHunk>> {
    let mut dates: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    let mut fixes: Vec<(String, String, String)> = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.contains(".hunks.") {
            continue;
        }
        let reader = data::open(path)?;
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{}: read error at record {}", path.display(), n + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let r: CommitRecord = match serde_json::from_str(&line) {
                Ok(r) => r,
                // `deepspark mine` writes hunk records among its commit records: not fixes.
                Err(_)
                    if serde_json::from_str::<serde_json::Value>(&line)
                        .is_ok_and(|v| v.get("hunk_label").is_some()) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("{}: record {} is not a commit record", path.display(), n + 1));
                }
            };
            dates
                .entry(r.project.clone())
                .or_default()
                .push((r.author_date, r.commit_id.clone()));
            if r.fix
                && !r.diff_truncated
                && let Some(d) = r.diff
            {
                fixes.push((r.project, r.commit_id, d));
            }
        }
    }
    let mut split: HashMap<(String, String), Split> = HashMap::new();
    for (project, mut cs) in dates {
        cs.sort();
        let n = cs.len();
        for (rank, (_, id)) in cs.into_iter().enumerate() {
            split.insert((project.clone(), id), data::split_of(rank, n));
        }
    }
    let mut out = Vec::new();
    for (project, commit, diff) in fixes {
        let files: Vec<_> = parse_patch(&diff)
            .into_iter()
            .filter(|f| {
                f.path
                    .new
                    .as_deref()
                    .is_some_and(|p| crate::diff::language_of(p).is_some())
            })
            .collect();
        let n_hunks: usize = files.iter().map(|f| f.hunks.len()).sum();
        let s = split
            .get(&(project.clone(), commit.clone()))
            .copied()
            .unwrap_or(Split::All);
        for f in files {
            let path = f.path.new.clone().unwrap_or_default();
            let old_path = f.path.old.clone().unwrap_or_else(|| path.clone());
            for h in &f.hunks {
                let (view, target) = view_of(h);
                out.push(FixHunk {
                    project: project.clone(),
                    commit: commit.clone(),
                    split: s,
                    path: path.clone(),
                    fix: h.clone(),
                    view,
                    target,
                    small: n_hunks == 1 && h.added() + h.removed() <= 5,
                    old_path: old_path.clone(),
                    file: None,
                });
            }
        }
    }
    Ok(out)
}

/// Gives each fix hunk the text of its file before the fix, from `read(commit, old path)` (the
/// file at the commit's first parent; `None` when it cannot be read). Each file is read once.
/// Returns how many hunks got one.
pub fn attach_files(fixes: &mut [FixHunk], mut read: impl FnMut(&str, &str) -> Option<String>) -> usize {
    let mut cache: HashMap<(String, String), Option<std::sync::Arc<str>>> = HashMap::new();
    let bar = super::progress(fixes.len() as u64, "reading files");
    let mut n = 0;
    for f in fixes.iter_mut() {
        let key = (f.commit.clone(), f.old_path.clone());
        let file = cache
            .entry(key)
            .or_insert_with(|| read(&f.commit, &f.old_path).map(std::sync::Arc::from))
            .clone();
        n += file.is_some() as usize;
        f.file = file;
        bar.inc(1);
    }
    bar.finish_and_clear();
    n
}

/// Mines edit rules from the fixes' changed line pairs (a run of removed lines followed by
/// as many added lines, paired in order); keeps rules seen at least `min_count` times, with
/// the number of projects that used each (see `RuleIndex`).
pub fn mine_rules(originals: &[(&Hunk, &str)], min_count: u32) -> Vec<Rule> {
    let mut counts: HashMap<(String, String), u32> = HashMap::new();
    let mut projects: HashMap<(String, String), std::collections::HashSet<&str>> = HashMap::new();
    for &(h, project) in originals {
        let lines = &h.lines;
        let mut i = 0;
        while i < lines.len() {
            if lines[i].kind != LineKind::Removed {
                i += 1;
                continue;
            }
            let r0 = i;
            while i < lines.len() && lines[i].kind == LineKind::Removed {
                i += 1;
            }
            let a0 = i;
            while i < lines.len() && lines[i].kind == LineKind::Added {
                i += 1;
            }
            if a0 - r0 == i - a0 {
                for k in 0..(a0 - r0) {
                    let (old, new) = (&lines[r0 + k].text, &lines[a0 + k].text);
                    let strip = |s: &str| s.strip_suffix('\r').unwrap_or(s).to_string();
                    for rule in edit_rules(&strip(old), &strip(new)) {
                        projects.entry(rule.clone()).or_default().insert(project);
                        *counts.entry(rule).or_default() += 1;
                    }
                }
            }
        }
    }
    let mut rules: Vec<Rule> = counts
        .into_iter()
        .filter(|(_, c)| *c >= min_count)
        .map(|((old, new), count)| {
            let projects = projects[&(old.clone(), new.clone())].len() as u32;
            Rule {
                old,
                new,
                count,
                projects,
            }
        })
        .collect();
    rules.sort_by(|a, b| b.count.cmp(&a.count).then(a.old.cmp(&b.old)).then(a.new.cmp(&b.new)));
    rules
}

#[derive(Debug, Clone)]
pub struct GeneratorOptions {
    pub epochs: usize,
    pub seed: u64,
    pub hidden: usize,
    pub lr: f64,
    pub min_count: u32,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        GeneratorOptions {
            epochs: 40,
            seed: 17,
            hidden: 32,
            lr: 3e-3,
            min_count: 2,
        }
    }
}

/// What training the generator measured (generator ranking alone, no risk model).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GeneratorReport {
    pub rules: usize,
    pub train_hunks: usize,
    /// Training hunks whose fix is among the candidates (the ones the ranker learns from).
    pub train_reachable: usize,
    pub calib_hunks: usize,
    pub calib_reachable: usize,
    pub calib_top1: f64,
    pub calib_top5: f64,
    pub best_epoch: usize,
}

/// Candidates of a view with the index of the one matching the fix, if any.
fn labelled_candidates(f: &FixHunk, rules: &RuleIndex) -> (Vec<crate::model::edit::Proposal>, Option<usize>) {
    let p = enumerate(&f.view, rules, f.file.as_deref());
    let hit = p.iter().position(|p| matches(&f.view, &p.edits, &f.target));
    (p, hit)
}

/// Mines the rules on train fixes, trains the ranker, keeps the epoch with the best calib top-1.
pub fn train_generator(fixes: &[FixHunk], opts: &GeneratorOptions) -> Result<(EditModel, VarMap, GeneratorReport)> {
    let train: Vec<&FixHunk> = fixes.iter().filter(|f| f.split == Split::Train).collect();
    let calib: Vec<&FixHunk> = fixes.iter().filter(|f| f.split == Split::Calib).collect();
    let originals: Vec<(&Hunk, &str)> = train.iter().map(|f| (&f.fix, f.project.as_str())).collect();
    let rules = mine_rules(&originals, opts.min_count);
    let index = RuleIndex::new(&rules);
    let prepare = |set: &[&FixHunk], index: &RuleIndex| -> Vec<(Tensor, usize)> {
        set.iter()
            .filter_map(|f| {
                let (p, hit) = labelled_candidates(f, index);
                let t = crate::model::edit::features_tensor(&p, &Device::Cpu).ok()?;
                hit.map(|h| (t, h))
            })
            .collect()
    };
    // Cross-fitting: the ranker learns on each half of the training fixes with rules mined
    // from the other half, so a rule never vouches for the fix it was mined from (which
    // would teach the ranker to trust rule counts more than they deserve on new code).
    let fold = |f: &FixHunk| {
        f.commit
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
            % 2
    };
    let mut train_sets = Vec::new();
    for k in 0..2 {
        let (inside, outside): (Vec<&FixHunk>, Vec<&FixHunk>) = train.iter().partition(|f| fold(f) == k);
        let other: Vec<(&Hunk, &str)> = outside.iter().map(|f| (&f.fix, f.project.as_str())).collect();
        let half_rules = RuleIndex::new(&mine_rules(&other, opts.min_count.saturating_sub(1).max(1)));
        train_sets.extend(prepare(&inside, &half_rules));
    }
    let calib_sets = prepare(&calib, &index);
    let mut report = GeneratorReport {
        rules: rules.len(),
        train_hunks: train.len(),
        train_reachable: train_sets.len(),
        calib_hunks: calib.len(),
        calib_reachable: calib_sets.len(),
        ..Default::default()
    };
    let config = EditConfig {
        version: 1,
        n_features: N_EDIT_FEATURES,
        hidden: opts.hidden,
        trained_on: format!("{} fix hunks", train.len()),
        rules,
    };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let ranker = Ranker::new(opts.hidden, vb)?;
    // Seeded initial weights (candle's own initialisers draw from an unseeded generator).
    let mut init = Rng::new(opts.seed ^ 0x5EED);
    super::set_vars(&varmap, |name, n, fan_in| {
        if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| init.normal() / (fan_in as f32).sqrt()).collect()
        }
    })?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: opts.lr,
            weight_decay: 0.01,
            ..Default::default()
        },
    )?;
    let mut rng = Rng::new(opts.seed);
    let mut order: Vec<usize> = (0..train_sets.len()).collect();
    let mut best: Option<(f64, usize, HashMap<String, Tensor>)> = None;
    let bar = super::progress(opts.epochs as u64, "generator");
    for epoch in 0..opts.epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(32) {
            let losses: Vec<Tensor> = chunk
                .iter()
                .map(|&i| {
                    let (x, hit) = &train_sets[i];
                    let s = ranker.forward(x)?;
                    let lse = candle_nn::ops::log_softmax(&s, 0)?;
                    lse.get(*hit)?.neg()
                })
                .collect::<candle_core::Result<_>>()?;
            let loss = Tensor::stack(&losses, 0)?.mean_all()?;
            opt.backward_step(&loss)?;
        }
        let (top1, top5) = ranked_accuracy(&ranker, &calib_sets, calib.len())?;
        if best.as_ref().is_none_or(|b| top1 > b.0) {
            let snapshot = varmap
                .data()
                .lock()
                .expect("varmap lock")
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
                .collect::<candle_core::Result<_>>()?;
            best = Some((top1, epoch, snapshot));
            report.calib_top1 = top1;
            report.calib_top5 = top5;
            report.best_epoch = epoch + 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some((_, _, snapshot)) = best {
        for (k, v) in varmap.data().lock().expect("varmap lock").iter() {
            v.set(&snapshot[k])?;
        }
    }
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = EditModel::from_parts(config, Ranker::new(opts.hidden, vb)?, "trained in memory");
    Ok((model, varmap, report))
}

/// Top-1 and top-5 of the ranker over labelled candidate sets, as shares of `n` hunks.
fn ranked_accuracy(ranker: &Ranker, sets: &[(Tensor, usize)], n: usize) -> Result<(f64, f64)> {
    let (mut top1, mut top5) = (0usize, 0usize);
    for (x, hit) in sets {
        let s = ranker.forward(x)?.to_vec1::<f32>()?;
        let better = s.iter().filter(|v| **v > s[*hit]).count();
        top1 += (better == 0) as usize;
        top5 += (better < 5) as usize;
    }
    let d = n.max(1) as f64;
    Ok((top1 as f64 / d, top5 as f64 / d))
}

pub fn save_generator(model: &EditModel, varmap: &VarMap, dir: &Path) -> Result<()> {
    let tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .expect("varmap lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join(crate::model::edit::WEIGHTS))?;
    std::fs::write(
        dir.join(crate::model::edit::CONFIG),
        serde_json::to_string(&model.config)? + "\n",
    )?;
    Ok(())
}

/// What `eval-suggest` prints (`--format json` keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SuggestReport {
    pub split: String,
    /// Fix hunks measured.
    pub n: usize,
    /// Of those, the ones whose fix removed at least one line: the others only insert lines,
    /// so their view has no added line to rewrite and no suggestion can match them.
    pub rewritable: usize,
    /// Of those, the ones whose file before the fix was read (`--repo`), so that the generator
    /// could also try the file's names.
    #[serde(default)]
    pub with_file: usize,
    /// The first shown suggestion is the human fix.
    pub top1: f64,
    /// One of the first five shown suggestions is the human fix.
    pub top5: f64,
    /// Share of hunks that get at least one suggestion.
    pub coverage: f64,
    /// Share of shown suggestions whose patch applies to the file and gives the intended text.
    pub applies: f64,
    /// Mean risk drop of the first shown suggestions.
    pub risk_drop: f64,
    /// The generator's own first candidate is the fix (no risk model, no margin).
    pub top1_generator: f64,
    pub top5_generator: f64,
    /// Share of hunks whose fix is among all the generator's candidates (an upper bound on top-k).
    pub reachable: f64,
    /// Share of hunks whose fix is among the candidates and passes the rule that keeps a
    /// suggestion (`suggest::keeps`: a risk drop by the margin, or with a pair path no rise
    /// by more than it): the upper bound on top-1.
    pub eligible: f64,
    /// Share of the first shown suggestions that only delete lines (revert what was added).
    pub first_deletes: f64,
    /// With a language model (`--lm`): share of hunks whose model rewrite verified, share whose
    /// first shown suggestion is the model's, and share whose model rewrite is the human fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm: Option<LmSuggestReport>,
    /// Examples: (path, shown first suggestion as a patch, matched).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LmSuggestReport {
    pub model: String,
    pub rewrites: f64,
    pub first_by_model: f64,
    pub model_top1: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Example {
    pub project: String,
    pub commit: String,
    pub path: String,
    pub matched: bool,
    pub patch: String,
}

/// The view as a file (its new side), for verification and patch checks.
fn view_file(view: &Hunk) -> (String, Hunk) {
    // Renumber the view from line 1 so the snippet is a file of its own.
    let body: String = view
        .lines
        .iter()
        .map(|l| format!("{}{}\n", l.kind.sigil(), l.text))
        .collect();
    let old = view.lines.iter().filter(|l| l.kind != LineKind::Added).count();
    let new = view.lines.iter().filter(|l| l.kind != LineKind::Removed).count();
    let hunk = Hunk::parse(&format!("@@ -1,{old} +1,{new} @@"), &body).expect("renumbered view parses");
    let text: String = hunk
        .lines
        .iter()
        .filter(|l| l.kind != LineKind::Removed)
        .map(|l| format!("{}\n", l.text))
        .collect();
    (text, hunk)
}

/// Measures suggestions on fix hunks as `review` makes them (`suggest::suggest`, same
/// verification, margin and ranking), with two differences: every view is considered (the fix
/// says it needed work), and the risk model sees each view as a change of its own (one hunk,
/// one file), since the rest of the buggy commit is not part of the fix.
pub fn evaluate_suggestions(
    fixes: &[&FixHunk],
    scorer: &dyn Scorer,
    generator: &EditModel,
    settings: &Settings,
    split: Split,
    n_examples: usize,
    mut assistant: Option<&mut crate::assist::Assistant>,
) -> Result<SuggestReport> {
    let (mut rewrites, mut first_by_model, mut model_top1) = (0usize, 0usize, 0usize);
    let mut r = SuggestReport {
        split: format!("{split:?}").to_lowercase(),
        n: fixes.len(),
        rewritable: fixes.iter().filter(|f| f.view.added() > 0).count(),
        with_file: fixes.iter().filter(|f| f.file.is_some()).count(),
        ..Default::default()
    };
    let (mut top1, mut top5, mut covered, mut shown, mut applied, mut drop) = (0, 0, 0, 0, 0, 0.0f64);
    let (mut g1, mut g5, mut reach, mut eligible, mut deletes) = (0, 0, 0, 0, 0);
    let bar = super::progress(fixes.len() as u64, "eval-suggest");
    for chunk in fixes.chunks(64) {
        let files: Vec<(String, Hunk)> = chunk.iter().map(|f| view_file(&f.view)).collect();
        let inputs: Vec<ScoreInput> = chunk
            .iter()
            .zip(&files)
            .map(|(f, (_, h))| ScoreInput {
                path: &f.path,
                hunk: h,
                change: crate::tokenize::ChangeStats {
                    hunks: 1,
                    added: h.added(),
                    files: 1,
                },
            })
            .collect();
        let before = scorer.score(&inputs)?;
        for (k, (f, (text, hunk))) in chunk.iter().zip(&files).enumerate() {
            let all = enumerate(hunk, &generator.rules, f.file.as_deref());
            // Every candidate that gives the fix (they may differ in whitespace only).
            let fixed: Vec<Hunk> = all
                .iter()
                .filter(|p| matches(hunk, &p.edits, &f.target))
                .map(|p| suggest::rewrite(hunk, &p.edits))
                .collect();
            let target = Target {
                file: 0,
                hunk: 0,
                path: &f.path,
                hunk_ref: hunk,
                // The fix proves the hunk needed work: measure every view, not only risky ones.
                risk: before[k].risk,
                pair_logit: before[k].pair_logit,
                content: Some(text),
                names: f.file.as_deref().or(Some(text)),
            };
            if !fixed.is_empty() {
                reach += 1;
                let fixed_inputs: Vec<ScoreInput> = fixed.iter().map(|h| ScoreInput { hunk: h, ..inputs[k] }).collect();
                let risks = scorer.score(&fixed_inputs)?;
                eligible += risks
                    .iter()
                    .any(|r| suggest::keeps(&target, r, suggest::Author::Embedded, settings))
                    as usize;
            }
            let ranked = generator.propose(hunk, target.names, 5)?;
            g1 += ranked.first().is_some_and(|c| matches(hunk, &c.edits, &f.target)) as usize;
            g5 += ranked.iter().any(|c| matches(hunk, &c.edits, &f.target)) as usize;
            let s = Settings {
                above: f32::NEG_INFINITY,
                per_hunk: 5,
                ..*settings
            };
            let mut written = Vec::new();
            if let Some(a) = assistant.as_deref_mut()
                && let Some(edits) = a.rewrite(&f.path, None, hunk)
            {
                if suggest::verify(hunk, &edits, text, crate::diff::language_of(&f.path)).is_ok() {
                    rewrites += 1;
                    model_top1 += matches(hunk, &edits, &f.target) as usize;
                }
                written.push((0, edits, suggest::Author::LanguageModel));
            }
            let sugg = suggest::suggest(&[target], inputs[k].change, scorer, generator, &written, &s)?;
            let Some(first) = sugg.first() else { continue };
            first_by_model += (first.by == suggest::Author::LanguageModel) as usize;
            covered += 1;
            top1 += matches(hunk, &first.edits, &f.target) as usize;
            top5 += sugg.iter().any(|s| matches(hunk, &s.edits, &f.target)) as usize;
            drop += (first.risk.old - first.risk.new) as f64;
            deletes += first.edits.iter().all(|e| e.new.is_none()) as usize;
            for s in sugg.iter().take(settings.per_hunk) {
                shown += 1;
                let new = suggest::apply_to(text, &suggest::line_edits(hunk, &s.edits));
                let ok = suggest::patch_round_trips(&f.path, text, &new);
                applied += ok as usize;
            }
            if r.examples.len() < n_examples {
                let new = suggest::apply_to(text, &suggest::line_edits(hunk, &first.edits));
                r.examples.push(Example {
                    project: f.project.clone(),
                    commit: f.commit.clone(),
                    path: f.path.clone(),
                    matched: matches(hunk, &first.edits, &f.target),
                    patch: crate::apply::patch(&[crate::apply::FileEdit {
                        path: f.path.clone(),
                        old: text.clone().into_bytes(),
                        new: new.into_bytes(),
                    }])
                    .unwrap_or_default(),
                });
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let n = r.n.max(1) as f64;
    r.top1 = top1 as f64 / n;
    r.top5 = top5 as f64 / n;
    r.coverage = covered as f64 / n;
    r.applies = if shown == 0 { 0.0 } else { applied as f64 / shown as f64 };
    r.risk_drop = if covered == 0 { 0.0 } else { drop / covered as f64 };
    if let Some(a) = assistant {
        r.lm = Some(LmSuggestReport {
            model: a.describe_model(),
            rewrites: rewrites as f64 / n,
            first_by_model: first_by_model as f64 / n,
            model_top1: model_top1 as f64 / n,
            seconds: a.spent(),
        });
    }
    r.top1_generator = g1 as f64 / n;
    r.top5_generator = g5 as f64 / n;
    r.reachable = reach as f64 / n;
    r.eligible = eligible as f64 / n;
    r.first_deletes = if covered == 0 {
        0.0
    } else {
        deletes as f64 / covered as f64
    };
    Ok(r)
}
