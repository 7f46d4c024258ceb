//! Training and measuring the risk model: data loading, the training loop, calibration
//! and evaluation metrics.
//!
//! `train` fits the tokenizer and the network on the train split, picks the epoch with
//! the best calibration-split AUC, fits Platt scaling and the change combiner on the
//! calibration split, and measures the test split with the same [`evaluate`] that
//! `deepspark eval` prints. The test split is never used to fit anything. This module
//! does not read git.

pub mod data;
pub mod edits;
pub mod metrics;
pub mod rng;
pub mod wide;

use crate::model::config::{ChangeCombiner, FORMAT, Platt, RiskConfig};
use crate::model::net::{Batch, Mode};
use crate::model::{self, RiskModel, weights};
use crate::tokenize::{self, Encoded, Encoder, N_FEATURES};
use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use data::{Dataset, Split};
use rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub data: Vec<PathBuf>,
    pub out: PathBuf,
    pub epochs: usize,
    pub seed: u64,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub max_len: usize,
    pub vocab: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub dropout: f32,
    /// Projects left out of training and calibration entirely (to measure unseen code).
    pub holdout: Vec<String>,
    /// Use at most this many training hunks (a quick run); all when `None`.
    pub max_train: Option<usize>,
    pub resume: bool,
    pub checkpoint_every: usize,
    /// Also feed the change's size (hunks, added lines, files) to the model.
    pub change_features: bool,
    /// Add the bag-of-tokens path (see `RiskConfig::bag`).
    pub bag: bool,
    /// Put the file name into the input (see `RiskConfig::file_name`).
    pub file_name: bool,
    /// Fit the wide path after the transformer (see `model::wide`); `None` leaves it out.
    pub wide: Option<wide::WideOptions>,
    /// Fit the wide path first and train the transformer on what it leaves (its logit is
    /// added to the wide logit in the loss), instead of fitting the wide path afterwards.
    pub boost: bool,
    /// Start from the trained model in this directory: keep its tokenizer and transformer,
    /// fit only the wide path and the calibration.
    pub base: Option<PathBuf>,
}

/// What `eval` prints and `metrics.json` stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    pub split: String,
    pub n: usize,
    pub positives: usize,
    pub auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub ece: Option<f64>,
    pub brier: Option<f64>,
    pub baseline_auc: Option<f64>,
    pub n_added: usize,
    pub auc_added: Option<f64>,
    pub baseline_auc_added: Option<f64>,
    pub commit_n: usize,
    pub commit_auc: Option<f64>,
    pub commit_baseline_auc: Option<f64>,
    pub commit_ece: Option<f64>,
    /// Hunk-level AUC per project (model, baseline).
    pub projects: Vec<ProjectAuc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProjectAuc {
    pub project: String,
    pub n: usize,
    pub auc: Option<f64>,
    pub baseline_auc: Option<f64>,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    epoch: usize,
    step_in_epoch: usize,
    rng: Rng,
    best_calib_auc: f64,
    best_epoch: Option<usize>,
}

fn labelled(label: i8) -> bool {
    label == 0 || label == 1
}

/// Scores `split` of `data` with `model` and computes every metric.
pub fn evaluate(model: &RiskModel, data: &Dataset, split: Split) -> Result<EvalReport> {
    let (chosen, logits) = score_split(model, data, split)?;
    Ok(report_scored(model, data, &chosen, &logits, split))
}

/// The report for logits already computed by [`score_split`].
pub fn report_scored(model: &RiskModel, data: &Dataset, chosen: &[usize], logits: &[f32], split: Split) -> EvalReport {
    report(
        model.config.calibration,
        model.config.change,
        data,
        chosen,
        logits,
        split,
    )
}

/// Score every hunk of a split: the indices of the chosen samples and their raw (uncalibrated) logits.
pub fn score_split(model: &RiskModel, data: &Dataset, split: Split) -> Result<(Vec<usize>, Vec<f32>)> {
    let chosen: Vec<usize> = (0..data.samples.len())
        .filter(|&i| Dataset::in_split(data.samples[i].split, split))
        .collect();
    let inputs: Vec<model::ScoreInput> = chosen
        .iter()
        .map(|&i| {
            let s = &data.samples[i];
            model::ScoreInput {
                path: &s.path,
                hunk: &s.hunk,
                change: s.change,
            }
        })
        .collect();
    let bar = progress(inputs.len() as u64, "scoring");
    let mut logits = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(512) {
        let enc = model.encode(chunk)?;
        logits.extend(model.logits(&enc)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok((chosen, logits))
}

fn report(
    platt: Platt,
    change: ChangeCombiner,
    data: &Dataset,
    chosen: &[usize],
    logits: &[f32],
    split: Split,
) -> EvalReport {
    let mut r = EvalReport {
        split: format!("{split:?}").to_lowercase(),
        ..Default::default()
    };
    let (mut p, mut y, mut base, mut p_add, mut y_add, mut base_add) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut per_project: HashMap<&str, (Vec<f32>, Vec<bool>, Vec<f32>)> = HashMap::new();
    let mut per_commit: HashMap<(&str, &str), (Vec<f32>, usize)> = HashMap::new();
    for (&i, &logit) in chosen.iter().zip(logits) {
        let s = &data.samples[i];
        let added = s.hunk.added();
        let e = per_commit.entry((&s.project, &s.commit)).or_default();
        e.0.push(logit);
        e.1 += added;
        if !labelled(s.label) {
            continue;
        }
        let prob = platt.apply(logit);
        let label = s.label == 1;
        p.push(prob);
        y.push(label);
        base.push(added as f32);
        if added > 0 {
            p_add.push(prob);
            y_add.push(label);
            base_add.push(added as f32);
        }
        let pp = per_project.entry(&s.project).or_default();
        pp.0.push(prob);
        pp.1.push(label);
        pp.2.push(added as f32);
    }
    r.n = p.len();
    r.positives = y.iter().filter(|&&v| v).count();
    r.auc = metrics::roc_auc(&p, &y);
    r.pr_auc = metrics::pr_auc(&p, &y);
    r.ece = metrics::ece(&p, &y, 10);
    r.brier = metrics::brier(&p, &y);
    r.baseline_auc = metrics::roc_auc(&base, &y);
    r.n_added = p_add.len();
    r.auc_added = metrics::roc_auc(&p_add, &y_add);
    r.baseline_auc_added = metrics::roc_auc(&base_add, &y_add);
    let mut projects: Vec<_> = per_project.into_iter().collect();
    projects.sort_by(|a, b| a.0.cmp(b.0));
    r.projects = projects
        .into_iter()
        .map(|(name, (p, y, b))| ProjectAuc {
            project: name.to_string(),
            n: p.len(),
            auc: metrics::roc_auc(&p, &y),
            baseline_auc: metrics::roc_auc(&b, &y),
        })
        .collect();
    let buggy: HashMap<(&str, &str), bool> = data
        .commits
        .iter()
        .map(|c| ((c.project.as_str(), c.id.as_str()), c.buggy))
        .collect();
    let (mut cp, mut cy, mut cb) = (vec![], vec![], vec![]);
    for (key, (logits, added)) in &per_commit {
        if let Some(&b) = buggy.get(key) {
            cp.push(change.apply(logits));
            cy.push(b);
            cb.push(*added as f32);
        }
    }
    r.commit_n = cp.len();
    r.commit_auc = metrics::roc_auc(&cp, &cy);
    r.commit_baseline_auc = metrics::roc_auc(&cb, &cy);
    r.commit_ece = metrics::ece(&cp, &cy, 10);
    r
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// Overwrites candle's (unseedable) initial values with seeded ones, in name order.
fn init_weights(varmap: &VarMap, rng: &mut Rng) -> Result<()> {
    set_vars(varmap, |name, n, _| {
        if name.ends_with(".bias") || name.starts_with("bag.") {
            vec![0.0; n]
        } else if name.contains("ln1.") || name.contains("ln2.") || name.starts_with("norm.") {
            vec![1.0; n]
        } else {
            (0..n).map(|_| rng.normal() * 0.02).collect()
        }
    })
}

/// Sets every variable of `varmap`, in name order (so a seeded generator gives the same
/// weights every time), to `values(name, element count, fan-in)`.
pub(crate) fn set_vars(varmap: &VarMap, mut values: impl FnMut(&str, usize, usize) -> Vec<f32>) -> Result<()> {
    let mut vars: Vec<(String, candle_core::Var)> = varmap
        .data()
        .lock()
        .expect("varmap lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        let fan_in = var.dims().last().copied().unwrap_or(1).max(1);
        let v = values(&name, var.elem_count(), fan_in);
        var.set(&Tensor::from_vec(v, var.shape(), var.device())?)?;
    }
    Ok(())
}

/// A fresh network with seeded initial weights, and the variables that hold them.
pub fn init_model(cfg: &RiskConfig, rng: &mut Rng, device: &Device) -> Result<(VarMap, model::net::RiskNet)> {
    let varmap = VarMap::new();
    let net = model::build(cfg, &varmap, device)?;
    init_weights(&varmap, rng)?;
    Ok((varmap, net))
}

/// Groups indices into batches of similar length (less padding), in a seeded order.
fn batches(indices: &[usize], encoded: &[Encoded], batch: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut idx = indices.to_vec();
    rng.shuffle(&mut idx);
    let mut out = Vec::new();
    for group in idx.chunks(batch * 64) {
        let mut g = group.to_vec();
        g.sort_by_key(|&i| encoded[i].ids.len());
        out.extend(g.chunks(batch).map(|c| c.to_vec()));
    }
    rng.shuffle(&mut out);
    out
}

fn logits_of(net: &model::net::RiskNet, n_features: usize, encoded: &[&Encoded], device: &Device) -> Result<Vec<f32>> {
    Ok(model::forward_batched(net, n_features, encoded, device)?
        .into_iter()
        .map(|(l, _)| l)
        .collect())
}

pub fn train(opts: &TrainOptions, device: &Device) -> Result<EvalReport> {
    if let Some(dir) = &opts.base {
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same(dir, &opts.out) {
            bail!(
                "--out {} is the --base model itself: training writes into --out, so give it another directory",
                opts.out.display()
            );
        }
    }
    // A base model is read and validated whole before any work (config, tensors, tokenizer,
    // checked as `review` checks them): its transformer's tensors (F32, F16 or BF16) seed the
    // varmap below.
    let (base, base_cfg, base_tensors) = match &opts.base {
        Some(dir) => {
            let files = weights::ModelFiles::read_dir(dir)?;
            let cfg = files.parse_config()?;
            let tensors = files.tensors(&cfg, device)?;
            files.encoder(&cfg)?;
            (Some(files), Some(cfg), Some(tensors))
        }
        None => (None, None, None),
    };
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create {}", opts.out.display()))?;
    let t0 = Instant::now();
    let mut data = Dataset::load(&opts.data)?;
    if !opts.holdout.is_empty() {
        data.samples.retain(|s| !opts.holdout.contains(&s.project));
        data.commits.retain(|c| !opts.holdout.contains(&c.project));
    }
    if !data.has_dates() {
        bail!("training needs commit records (*.commits.jsonl) to split hunks by date; pass them with --data");
    }
    let mut rng = Rng::new(opts.seed);
    let mut train_idx: Vec<usize> = (0..data.samples.len())
        .filter(|&i| data.samples[i].split == Split::Train && labelled(data.samples[i].label))
        .collect();
    if let Some(max) = opts.max_train {
        let mut r = Rng::new(opts.seed ^ 0xA5A5);
        r.shuffle(&mut train_idx);
        train_idx.truncate(max);
        train_idx.sort();
    }
    let calib_all: Vec<usize> = (0..data.samples.len())
        .filter(|&i| data.samples[i].split == Split::Calib)
        .collect();
    let calib_idx: Vec<usize> = calib_all
        .iter()
        .copied()
        .filter(|&i| labelled(data.samples[i].label))
        .collect();
    if train_idx.is_empty() || calib_idx.is_empty() {
        bail!(
            "not enough labelled hunks: {} in train, {} in calibration",
            train_idx.len(),
            calib_idx.len()
        );
    }
    eprintln!(
        "deepspark: {} hunks loaded ({} malformed skipped); train {} / calibration {} labelled hunks [{:.1}s]",
        data.samples.len(),
        data.malformed,
        train_idx.len(),
        calib_idx.len(),
        t0.elapsed().as_secs_f64()
    );

    // Tokenizer: trained on the training split only.
    let tok_path = opts.out.join(weights::TOKENIZER);
    let tokenizer = if let Some(files) = &base {
        std::fs::write(&tok_path, &files.tokenizer).with_context(|| format!("cannot write {}", tok_path.display()))?;
        tokenizers::Tokenizer::from_bytes(&files.tokenizer).map_err(|e| anyhow::anyhow!("{}: {e}", files.origin))?
    } else if opts.resume && tok_path.exists() {
        tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| anyhow::anyhow!("{}: {e}", tok_path.display()))?
    } else {
        let mut sample = train_idx.clone();
        Rng::new(opts.seed ^ 0x70C).shuffle(&mut sample);
        sample.truncate(40_000);
        sample.sort();
        let texts: Vec<String> = sample
            .iter()
            .map(|&i| tokenize::training_text(&data.samples[i].path, &data.samples[i].hunk))
            .collect();
        let tok = tokenize::train_tokenizer(texts.into_iter(), opts.vocab)?;
        tok.save(&tok_path, false)
            .map_err(|e| anyhow::anyhow!("{}: {e}", tok_path.display()))?;
        tok
    };
    let encoder = Encoder::new(tokenizer, base_cfg.as_ref().map_or(opts.max_len, |c| c.max_len));
    let encoder = if base_cfg.as_ref().map_or(opts.file_name, |c| c.file_name) {
        encoder
    } else {
        encoder.without_file_name()
    };
    eprintln!(
        "deepspark: tokenizer ready, {} tokens [{:.1}s]",
        encoder.vocab_size(),
        t0.elapsed().as_secs_f64()
    );

    // Encode every hunk the run needs, once.
    let mut needed: Vec<usize> = train_idx.iter().chain(&calib_all).copied().collect();
    needed.sort();
    needed.dedup();
    let mut encoded: Vec<Encoded> = Vec::with_capacity(data.samples.len());
    let mut slot = vec![usize::MAX; data.samples.len()];
    for &i in &needed {
        slot[i] = encoded.len();
        let s = &data.samples[i];
        encoded.push(encoder.encode(&s.path, &s.hunk, s.change)?);
    }
    let labels: Vec<f32> = needed.iter().map(|&i| data.samples[i].label.max(0) as f32).collect();
    let train_slots: Vec<usize> = train_idx.iter().map(|&i| slot[i]).collect();
    let calib_slots: Vec<usize> = calib_idx.iter().map(|&i| slot[i]).collect();
    eprintln!(
        "deepspark: {} hunks encoded [{:.1}s]",
        encoded.len(),
        t0.elapsed().as_secs_f64()
    );

    let mut cfg = if let Some(c) = &base_cfg {
        RiskConfig {
            wide: false,
            calibration: Platt::IDENTITY,
            change: ChangeCombiner::MAX,
            ..c.clone()
        }
    } else {
        RiskConfig {
            format: FORMAT.into(),
            vocab_size: encoder.vocab_size(),
            d_model: opts.d_model,
            n_layers: opts.n_layers,
            n_heads: opts.n_heads,
            d_ff: opts.d_ff,
            max_len: opts.max_len,
            n_features: if opts.change_features {
                N_FEATURES
            } else {
                tokenize::N_HUNK_FEATURES
            },
            bag: opts.bag,
            wide: false,
            file_name: opts.file_name,
            calibration: Platt::IDENTITY,
            change: ChangeCombiner::MAX,
        }
    };
    cfg.validate()?;
    let (mut varmap, net) = init_model(&cfg, &mut rng, device)?;
    if let Some(tensors) = &base_tensors {
        for (name, var) in varmap.data().lock().expect("varmap lock: one thread").iter() {
            let t = tensors
                .get(name)
                .with_context(|| format!("the base model has no tensor {name:?}"))?;
            var.set(t)?;
        }
    }

    let ckpt_path = opts.out.join("checkpoint.safetensors");
    let ckpt_json = opts.out.join("checkpoint.json");
    let best_path = opts.out.join("best.safetensors");
    let mut state = Checkpoint {
        epoch: 0,
        step_in_epoch: 0,
        rng,
        best_calib_auc: f64::NEG_INFINITY,
        best_epoch: None,
    };
    if opts.resume && ckpt_json.exists() {
        state = serde_json::from_slice(&std::fs::read(&ckpt_json)?)?;
        varmap.load(&ckpt_path)?;
        eprintln!(
            "deepspark: resumed at epoch {} step {} (optimizer moments restart)",
            state.epoch + 1,
            state.step_in_epoch
        );
    }

    let params = ParamsAdamW {
        lr: opts.lr,
        weight_decay: opts.weight_decay,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let steps_per_epoch = train_slots.len().div_ceil(opts.batch);
    let total_steps = steps_per_epoch * opts.epochs;
    let warmup = (total_steps / 20).clamp(1, 300);
    let calib_enc: Vec<&Encoded> = calib_slots.iter().map(|&s| &encoded[s]).collect();
    let calib_y: Vec<bool> = calib_slots.iter().map(|&s| labels[s] > 0.5).collect();
    let fit_wide = |wo: &wide::WideOptions| -> Result<(model::wide::Wide, f64)> {
        let train_enc: Vec<&Encoded> = train_slots.iter().map(|&s| &encoded[s]).collect();
        let train_y: Vec<f32> = train_slots.iter().map(|&s| labels[s]).collect();
        wide::fit(
            &train_enc,
            &train_y,
            &calib_enc,
            &calib_y,
            cfg.vocab_size,
            cfg.n_features,
            wo,
            device,
        )
    };
    // Boosting: the wide path first, then the transformer learns on top of its logit.
    let first = match (&opts.wide, opts.boost && opts.base.is_none()) {
        (Some(wo), true) => Some(fit_wide(wo)?),
        _ => None,
    };
    let offsets: Vec<f32> = match &first {
        Some((w, _)) => encoded.iter().map(|e| w.logit(e)).collect(),
        None => vec![0.0; encoded.len()],
    };
    let calib_offsets: Vec<f32> = calib_slots.iter().map(|&s| offsets[s]).collect();

    let epochs = if opts.base.is_some() { 0 } else { opts.epochs };
    while state.epoch < epochs {
        let epoch = state.epoch;
        let mut order_rng = Rng::new(opts.seed.wrapping_add(1000 + epoch as u64));
        let plan = batches(&train_slots, &encoded, opts.batch, &mut order_rng);
        let bar = progress(plan.len() as u64, &format!("epoch {}/{}", epoch + 1, opts.epochs));
        bar.set_position(state.step_in_epoch as u64);
        let (mut ema, mut seen, t_epoch) = (None::<f32>, 0usize, Instant::now());
        for step in state.step_in_epoch..plan.len() {
            let global = epoch * steps_per_epoch + step;
            let lr = if global < warmup {
                opts.lr * (global + 1) as f64 / warmup as f64
            } else {
                let f = (global - warmup) as f64 / (total_steps - warmup).max(1) as f64;
                opts.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * f).cos()))
            };
            opt.set_learning_rate(lr);
            let items: Vec<&Encoded> = plan[step].iter().map(|&s| &encoded[s]).collect();
            let y: Vec<f32> = plan[step].iter().map(|&s| labels[s]).collect();
            let batch = Batch::new(&items, cfg.n_features, device)?;
            let target = Tensor::from_vec(y, items.len(), device)?;
            let out = net.forward(
                &batch,
                &mut Mode::Train {
                    dropout: opts.dropout,
                    rng: &mut state.rng,
                },
            )?;
            let offset: Vec<f32> = plan[step].iter().map(|&s| offsets[s]).collect();
            let logits = (&out.logits + Tensor::from_vec(offset, items.len(), device)?)?;
            let loss = candle_nn::loss::binary_cross_entropy_with_logit(&logits, &target)?;
            opt.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()?;
            ema = Some(ema.map_or(l, |e| 0.98 * e + 0.02 * l));
            seen += items.len();
            let rate = seen as f64 / t_epoch.elapsed().as_secs_f64();
            bar.set_message(format!("loss {:.4} {:.0} hunks/s", ema.unwrap_or(l), rate));
            bar.inc(1);
            // Without a terminal (a background run), log a line every 100 steps instead.
            if bar.is_hidden() && (step + 1) % 100 == 0 {
                eprintln!(
                    "epoch {} step {}/{} loss {:.4} {:.0} hunks/s lr {:.2e} [{:.0}s]",
                    epoch + 1,
                    step + 1,
                    plan.len(),
                    ema.unwrap_or(l),
                    rate,
                    lr,
                    t0.elapsed().as_secs_f64()
                );
            }
            if (step + 1) % opts.checkpoint_every == 0 {
                state.step_in_epoch = step + 1;
                varmap.save(&ckpt_path)?;
                std::fs::write(&ckpt_json, serde_json::to_vec(&state)?)?;
            }
        }
        bar.finish_and_clear();
        let mut logits = logits_of(&net, cfg.n_features, &calib_enc, device)?;
        for (l, o) in logits.iter_mut().zip(&calib_offsets) {
            *l += o;
        }
        let auc = metrics::roc_auc(&logits, &calib_y).unwrap_or(0.5);
        eprintln!(
            "deepspark: epoch {} done, calibration AUC {auc:.4} [{:.0}s]",
            epoch + 1,
            t0.elapsed().as_secs_f64()
        );
        if auc > state.best_calib_auc {
            state.best_calib_auc = auc;
            state.best_epoch = Some(epoch);
            varmap.save(&best_path)?;
        }
        state.epoch += 1;
        state.step_in_epoch = 0;
        varmap.save(&ckpt_path)?;
        std::fs::write(&ckpt_json, serde_json::to_vec(&state)?)?;
    }

    // Calibrate the best epoch's weights on the calibration split.
    if opts.base.is_none() {
        varmap.load(&best_path)?;
    }
    let mut calib_logits = logits_of(&net, cfg.n_features, &calib_enc, device)?;
    let wide = match &opts.wide {
        None => None,
        Some(wo) => {
            let (w, auc) = match first {
                Some(f) => f,
                None => fit_wide(wo)?,
            };
            let w = wide::stack(w, &calib_logits, &calib_enc, &calib_y);
            for (l, e) in calib_logits.iter_mut().zip(&calib_enc) {
                *l = w.combine(*l, e);
            }
            eprintln!(
                "deepspark: wide path calibration AUC {auc:.4}; stacked with the transformer {:.4} (weight {:.3})",
                metrics::roc_auc(&calib_logits, &calib_y).unwrap_or(0.5),
                w.deep
            );
            cfg.wide = true;
            Some(w)
        }
    };
    let xs: Vec<Vec<f64>> = calib_logits.iter().map(|&l| vec![l as f64]).collect();
    let (w, b) = metrics::fit_logistic(&xs, &calib_y, 1e-3);
    cfg.calibration = Platt {
        a: w[0] as f32,
        b: b as f32,
    };
    let all_enc: Vec<&Encoded> = calib_all.iter().map(|&i| &encoded[slot[i]]).collect();
    let mut all_logits = logits_of(&net, cfg.n_features, &all_enc, device)?;
    if let Some(w) = &wide {
        for (l, e) in all_logits.iter_mut().zip(&all_enc) {
            *l = w.combine(*l, e);
        }
    }
    cfg.change = fit_change_combiner(&data, &calib_all, &all_logits);
    cfg.validate()?;

    let extra = match &wide {
        Some(w) => wide::tensors(w, device)?,
        None => vec![],
    };
    save(&varmap, extra, &cfg, &opts.out)?;
    for p in [&ckpt_path, &ckpt_json, &best_path] {
        let _ = std::fs::remove_file(p);
    }
    let model = RiskModel::load(&weights::ModelFiles::read_dir(&opts.out)?, device)?;
    let test = evaluate(&model, &data, Split::Test)?;
    let calib = evaluate(&model, &data, Split::Calib)?;
    let metrics = serde_json::json!({
        "best_epoch": state.best_epoch.map(|e| e + 1),
        "epochs": epochs,
        "seed": opts.seed,
        "holdout": opts.holdout,
        "base": opts.base,
        "boost": opts.boost,
        "wide": opts.wide.as_ref().map(|w| serde_json::json!({"epochs": w.epochs, "l2": w.l2, "lr": w.lr, "batch": w.batch})),
        "train_hunks": train_idx.len(),
        "parameters": cfg.param_count(),
        "train_seconds": t0.elapsed().as_secs_f64(),
        "calibration": calib,
        "test": test,
    });
    std::fs::write(
        opts.out.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)? + "\n",
    )?;
    Ok(test)
}

/// Fits the change combiner on every calibration hunk's (uncalibrated) model logit.
fn fit_change_combiner(data: &Dataset, calib_all: &[usize], logits: &[f32]) -> ChangeCombiner {
    let mut per_commit: HashMap<(&str, &str), Vec<f32>> = HashMap::new();
    for (&i, &l) in calib_all.iter().zip(logits) {
        per_commit
            .entry((&data.samples[i].project, &data.samples[i].commit))
            .or_default()
            .push(l);
    }
    let buggy: HashMap<(&str, &str), bool> = data
        .commits
        .iter()
        .map(|c| ((c.project.as_str(), c.id.as_str()), c.buggy))
        .collect();
    let (mut xs, mut ys) = (vec![], vec![]);
    let mut keys: Vec<_> = per_commit.keys().copied().collect();
    keys.sort();
    for key in keys {
        if let Some(&b) = buggy.get(&key) {
            xs.push(
                ChangeCombiner::features(&per_commit[&key])
                    .iter()
                    .map(|&v| v as f64)
                    .collect(),
            );
            ys.push(b);
        }
    }
    if ys.iter().all(|&b| b) || ys.iter().all(|&b| !b) {
        return ChangeCombiner::MAX;
    }
    let (w, b) = metrics::fit_logistic(&xs, &ys, 1e-3);
    ChangeCombiner {
        w_max: w[0] as f32,
        w_mean: w[1] as f32,
        w_count: w[2] as f32,
        bias: b as f32,
    }
}

/// Writes `config.json` and `model.safetensors` (f32: the varmap's tensors and `extra`)
/// next to the tokenizer.
pub fn save(varmap: &VarMap, extra: Vec<(String, Tensor)>, cfg: &RiskConfig, dir: &Path) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .expect("varmap lock")
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(DType::F32)?)))
        .collect::<candle_core::Result<_>>()?;
    tensors.extend(extra);
    candle_core::safetensors::save(&tensors, dir.join(weights::WEIGHTS))?;
    std::fs::write(dir.join(weights::CONFIG), serde_json::to_string_pretty(cfg)? + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Hunk;
    use crate::model::net::RiskNet;
    use crate::model::weights::ModelFiles;
    use crate::model::{ScoreInput, Scorer};

    fn corpus() -> Vec<(String, Hunk, f32)> {
        // Risky hunks use `unsafe`/`unwrap`, clean ones add comments: learnable.
        (0..64)
            .map(|i| {
                let risky = i % 2 == 0;
                let body = if risky {
                    format!("-    let a = {i};\n+    let a = unsafe {{ ptr.add({i}).read() }}.unwrap();")
                } else {
                    format!("-    // old note {i}\n+    // a clearer note {i}")
                };
                (
                    format!("src/f{i}.rs"),
                    Hunk::parse("@@ -1,1 +1,1 @@", &body).unwrap(),
                    risky as u8 as f32,
                )
            })
            .collect()
    }

    fn score_inputs(data: &[(String, Hunk, f32)]) -> Vec<ScoreInput<'_>> {
        data.iter()
            .map(|(p, h, _)| ScoreInput {
                path: p,
                hunk: h,
                change: Default::default(),
            })
            .collect()
    }

    fn corpus_batch(enc: &Encoder, cfg: &RiskConfig, data: &[(String, Hunk, f32)]) -> Batch {
        let encoded: Vec<Encoded> = data
            .iter()
            .map(|(p, h, _)| enc.encode(p, h, Default::default()).unwrap())
            .collect();
        Batch::new(&encoded.iter().collect::<Vec<_>>(), cfg.n_features, &Device::Cpu).unwrap()
    }

    fn tiny_encoder() -> Encoder {
        let texts = corpus()
            .into_iter()
            .map(|(p, h, _)| tokenize::training_text(&p, &h))
            .collect::<Vec<_>>();
        Encoder::new(tokenize::train_tokenizer(texts.into_iter(), 300).unwrap(), 64)
    }

    fn tiny_cfg(enc: &Encoder) -> RiskConfig {
        crate::model::config::tiny(enc.vocab_size())
    }

    fn loss_of(net: &model::net::RiskNet, batch: &Batch, y: &Tensor) -> f32 {
        let o = net.forward(batch, &mut Mode::Infer).unwrap();
        candle_nn::loss::binary_cross_entropy_with_logit(&o.logits, y)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn tiny_model_gives_finite_probabilities() {
        let enc = tiny_encoder();
        let cfg = tiny_cfg(&enc);
        let (_vm, net) = init_model(&cfg, &mut Rng::new(1), &Device::Cpu).unwrap();
        let model = RiskModel::from_parts(cfg, net, enc, Device::Cpu, "test");
        let data = corpus();
        let inputs = score_inputs(&data);
        let scores = model.score(&inputs).unwrap();
        assert_eq!(scores.len(), inputs.len());
        for s in &scores {
            assert!(s.risk.is_finite() && (0.0..=1.0).contains(&s.risk));
            assert_eq!(s.line_weights.len(), 2);
        }
        let r = model.change_risk(&scores).unwrap();
        assert!((0.0..=1.0).contains(&r));
    }

    /// Every variable receives a non-zero gradient in training mode (the fused
    /// softmax/layer-norm would leave the attention and norm weights without one).
    fn assert_every_variable_gets_a_gradient(enc: &Encoder, cfg: &RiskConfig) {
        let dev = Device::Cpu;
        let (varmap, net) = init_model(cfg, &mut Rng::new(2), &dev).unwrap();
        let data = corpus();
        let batch = corpus_batch(enc, cfg, &data);
        let y = Tensor::from_vec(data.iter().map(|d| d.2).collect::<Vec<_>>(), data.len(), &dev).unwrap();
        let mut rng = Rng::new(3);
        let out = net
            .forward(
                &batch,
                &mut Mode::Train {
                    dropout: 0.0,
                    rng: &mut rng,
                },
            )
            .unwrap();
        let loss = candle_nn::loss::binary_cross_entropy_with_logit(&out.logits, &y).unwrap();
        let grads = loss.backward().unwrap();
        let vars = varmap.data().lock().unwrap();
        assert_eq!(vars.len(), RiskNet::expected_tensors(cfg).len());
        for (name, var) in vars.iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0, "zero gradient for {name}");
        }
    }

    #[test]
    fn every_variable_gets_a_gradient_with_and_without_the_bag() {
        let enc = tiny_encoder();
        for bag in [false, true] {
            assert_every_variable_gets_a_gradient(&enc, &RiskConfig { bag, ..tiny_cfg(&enc) });
        }
    }

    #[test]
    fn the_loss_goes_down() {
        let enc = tiny_encoder();
        let cfg = tiny_cfg(&enc);
        let dev = Device::Cpu;
        let (varmap, net) = init_model(&cfg, &mut Rng::new(2), &dev).unwrap();
        let data = corpus();
        let batch = corpus_batch(&enc, &cfg, &data);
        let y = Tensor::from_vec(data.iter().map(|d| d.2).collect::<Vec<_>>(), data.len(), &dev).unwrap();
        let before = loss_of(&net, &batch, &y);
        let mut rng = Rng::new(3);
        let mut opt = AdamW::new(
            varmap.all_vars(),
            ParamsAdamW {
                lr: 3e-3,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..30 {
            let out = net
                .forward(
                    &batch,
                    &mut Mode::Train {
                        dropout: 0.1,
                        rng: &mut rng,
                    },
                )
                .unwrap();
            let loss = candle_nn::loss::binary_cross_entropy_with_logit(&out.logits, &y).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        let after = loss_of(&net, &batch, &y);
        assert!(after < before * 0.8, "loss {before} -> {after}");
    }

    #[test]
    fn train_and_infer_modes_agree_without_dropout() {
        let enc = tiny_encoder();
        let cfg = tiny_cfg(&enc);
        let (_vm, net) = init_model(&cfg, &mut Rng::new(4), &Device::Cpu).unwrap();
        let data = corpus();
        let batch = corpus_batch(&enc, &cfg, &data);
        let a = net
            .forward(&batch, &mut Mode::Infer)
            .unwrap()
            .logits
            .to_vec1::<f32>()
            .unwrap();
        let mut rng = Rng::new(5);
        let b = net
            .forward(
                &batch,
                &mut Mode::Train {
                    dropout: 0.0,
                    rng: &mut rng,
                },
            )
            .unwrap()
            .logits
            .to_vec1::<f32>()
            .unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }

    #[test]
    fn save_then_load_round_trips() {
        let enc = tiny_encoder();
        let cfg = tiny_cfg(&enc);
        let dir = tempfile::tempdir().unwrap();
        let (varmap, net) = init_model(&cfg, &mut Rng::new(6), &Device::Cpu).unwrap();
        save(&varmap, vec![], &cfg, dir.path()).unwrap();
        enc.tokenizer()
            .save(dir.path().join(weights::TOKENIZER), false)
            .unwrap();
        let loaded = RiskModel::load(&ModelFiles::read_dir(dir.path()).unwrap(), &Device::Cpu).unwrap();
        assert_eq!(loaded.config, cfg);
        let original = RiskModel::from_parts(cfg, net, enc, Device::Cpu, "mem");
        let data = corpus();
        let inputs = score_inputs(&data);
        let a = original.score(&inputs).unwrap();
        let b = loaded.score(&inputs).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x.logit - y.logit).abs() < 1e-5);
        }
    }

    #[test]
    fn a_wide_path_round_trips_and_moves_the_logit() {
        let enc = tiny_encoder();
        let mut cfg = tiny_cfg(&enc);
        cfg.wide = true;
        let dir = tempfile::tempdir().unwrap();
        let (varmap, net) = init_model(&cfg, &mut Rng::new(6), &Device::Cpu).unwrap();
        let mut rng = Rng::new(8);
        let w = model::wide::Wide {
            tokens: (0..model::wide::SIDES * cfg.vocab_size).map(|_| rng.normal()).collect(),
            features: vec![0.25; cfg.n_features],
            bias: -0.5,
            deep: 0.75,
        };
        save(&varmap, wide::tensors(&w, &Device::Cpu).unwrap(), &cfg, dir.path()).unwrap();
        enc.tokenizer()
            .save(dir.path().join(weights::TOKENIZER), false)
            .unwrap();
        let loaded = RiskModel::load(&ModelFiles::read_dir(dir.path()).unwrap(), &Device::Cpu).unwrap();
        assert_eq!(loaded.wide.as_ref(), Some(&w));
        let deep_only = RiskModel::from_parts(cfg, net, enc, Device::Cpu, "mem");
        let data = corpus();
        let inputs = score_inputs(&data);
        let encoded = deep_only.encode(&inputs).unwrap();
        let deep = deep_only.score(&inputs).unwrap();
        let both = loaded.score(&inputs).unwrap();
        for ((d, b), e) in deep.iter().zip(&both).zip(&encoded) {
            assert!((b.logit - w.combine(d.logit, e)).abs() < 1e-4);
            assert!((0.0..=1.0).contains(&b.risk));
        }
        // Saved without its wide tensors, the config is refused.
        let (varmap, _) = init_model(&loaded.config, &mut Rng::new(6), &Device::Cpu).unwrap();
        save(&varmap, vec![], &loaded.config, dir.path()).unwrap();
        assert!(RiskModel::load(&ModelFiles::read_dir(dir.path()).unwrap(), &Device::Cpu).is_err());
    }

    #[test]
    fn a_model_that_computes_nan_gives_an_error_not_a_verdict() {
        // Finite weights whose sums overflow both ways: +inf from the tokens, -inf from the
        // size features, NaN in the logit.
        let enc = tiny_encoder();
        let cfg = tiny_cfg(&enc);
        let (_, net) = init_model(&cfg, &mut Rng::new(6), &Device::Cpu).unwrap();
        let w = model::wide::Wide {
            tokens: vec![3e38; model::wide::SIDES * cfg.vocab_size],
            features: vec![-3e38; cfg.n_features],
            bias: 0.0,
            deep: 1.0,
        };
        let m = RiskModel::from_parts(cfg, net, enc, Device::Cpu, "mem").with_wide(Some(w));
        let data = corpus();
        let err = m.score(&score_inputs(&data)).unwrap_err().to_string();
        assert!(err.contains("no finite number (NaN)"), "{err}");
    }

    #[test]
    fn an_infinite_logit_or_change_risk_is_an_error_not_a_verdict() {
        let enc = tiny_encoder();
        let mut cfg = tiny_cfg(&enc);
        let (_, net) = init_model(&cfg, &mut Rng::new(6), &Device::Cpu).unwrap();
        // Two failures. First, finite wide weights whose sum overflows: a +inf hunk logit.
        // Second, a finite hunk logit that the change combiner turns into +inf - inf = NaN
        // (a sigmoid never returns inf, so NaN is the way a change risk goes wrong), which
        // would otherwise read as "needs work".
        cfg.change = crate::model::config::ChangeCombiner {
            w_max: 10.0,
            w_mean: -10.0,
            w_count: 0.0,
            bias: 0.0,
        };
        let w = model::wide::Wide {
            tokens: vec![3e38; model::wide::SIDES * cfg.vocab_size],
            features: vec![0.0; cfg.n_features],
            bias: 0.0,
            deep: 1.0,
        };
        let inf = RiskModel::from_parts(cfg.clone(), net, enc, Device::Cpu, "mem").with_wide(Some(w));
        let data = corpus();
        let err = inf.score(&score_inputs(&data)).unwrap_err().to_string();
        assert!(err.contains("no finite number (inf)"), "{err}");
        let (_, net) = init_model(&cfg, &mut Rng::new(6), &Device::Cpu).unwrap();
        let m = RiskModel::from_parts(cfg, net, tiny_encoder(), Device::Cpu, "mem");
        let huge = model::HunkScore {
            risk: 1.0,
            logit: 3e38,
            line_weights: vec![],
        };
        let err = m.change_risk(&[huge]).unwrap_err().to_string();
        assert!(err.contains("no finite change risk"), "{err}");
    }

    #[test]
    fn same_seed_same_initial_weights() {
        let enc = tiny_encoder();
        let cfg = tiny_cfg(&enc);
        let (a, _) = init_model(&cfg, &mut Rng::new(7), &Device::Cpu).unwrap();
        let (b, _) = init_model(&cfg, &mut Rng::new(7), &Device::Cpu).unwrap();
        let get = |vm: &VarMap| {
            vm.data().lock().unwrap()["tok.weight"]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(get(&a), get(&b));
    }
}
