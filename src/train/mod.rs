//! Training and measuring the risk model, one file per step: `data` (loading and the split
//! by date), `transformer` (initial weights, the epoch loop, checkpoints), `wide` (the
//! token path), `calibrate` (stacking, Platt scaling, the change combiner), `evaluate` and
//! `metrics` (what is measured), `pairs` (bug/fix pairs), `stack` (whether a language
//! model's surprisal adds to the risk model) and `history` (whether the repository's past fixes
//! do); `edits` does the same for the suggestion generator.
//!
//! [`train`] sequences them: it fits the tokenizer and the network on the train split,
//! picks the epoch with the best calibration-split AUC, fits Platt scaling and the change
//! combiner on the calibration split, and measures the test split with the same
//! [`evaluate`] that `deepspark eval` prints. The test split is never used to fit anything.
//! This module does not read git.

mod calibrate;
pub mod data;
pub mod edits;
mod evaluate;
pub mod history;
pub mod metrics;
pub mod pairs;
pub mod rng;
pub mod stack;
mod transformer;
pub mod wide;

pub use evaluate::{EvalReport, ProjectAuc, evaluate, report_scored, score_split};
pub(crate) use transformer::set_vars;
pub use transformer::{init_model, save};

use crate::model::config::{ChangeCombiner, FORMAT, Platt, RiskConfig};
use crate::model::{RiskModel, weights};
use crate::tokenize::{self, Encoded, Encoder, N_FEATURES};
use anyhow::{Context, Result, bail};
use candle_core::Device;
use data::{Dataset, Split};
use rng::Rng;
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
    /// Commit files whose every fix pair joins the pair path's training pairs (and nothing else).
    pub pair_data: Vec<PathBuf>,
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
    /// Fit the pair path on the training split's bug/fix pairs (see `model::wide::PairPath`);
    /// `None` keeps the base model's pair path, if it has one.
    pub pair: Option<wide::PairOptions>,
    /// Fit the wide path first and train the transformer on what it leaves (its logit is
    /// added to the wide logit in the loss), instead of fitting the wide path afterwards.
    pub boost: bool,
    /// Start from the trained model in this directory: keep its tokenizer and transformer,
    /// fit only the wide path and the calibration.
    pub base: Option<PathBuf>,
    /// With `base`: start the wide path from the base's and penalise the distance to it.
    pub wide_prior: bool,
    /// With `base`: keep the base's wide path too, and refit only the stacking, the
    /// calibration and the change combiner.
    pub recalibrate_only: bool,
}

/// What the fitting steps of one run share: its options, and every hunk it needs, encoded
/// once, with where each split's hunks are.
struct Run<'a> {
    opts: &'a TrainOptions,
    device: &'a Device,
    t0: Instant,
    data: &'a Dataset,
    encoded: Vec<Encoded>,
    /// Beside `encoded`: 1.0 risky, 0.0 clean (or unlabelled).
    labels: Vec<f32>,
    /// Positions in `encoded` of the labelled train and calibration hunks.
    train: Vec<usize>,
    calib: Vec<usize>,
    /// Every calibration sample, labelled or not (the change combiner sees whole changes),
    /// and `slot[sample]`, its position in `encoded`.
    calib_all: Vec<usize>,
    slot: Vec<usize>,
    /// The bug/fix pairs of the train and calibration splits, encoded (buggy, fixed), when
    /// the wide path has a pairwise term (see `wide::fit`); empty otherwise.
    train_pairs: Vec<(Encoded, Encoded)>,
    calib_pairs: Vec<(Encoded, Encoded)>,
}

impl Run<'_> {
    fn calib_enc(&self) -> Vec<&Encoded> {
        self.calib.iter().map(|&s| &self.encoded[s]).collect()
    }

    fn calib_y(&self) -> Vec<bool> {
        self.calib.iter().map(|&s| self.labels[s] > 0.5).collect()
    }
}

fn labelled(label: i8) -> bool {
    label == 0 || label == 1
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

    let wants_pairs = opts.wide.as_ref().is_some_and(|w| w.pairs_weight > 0.0) || opts.pair.is_some();
    let (train_pairs, calib_pairs) = if wants_pairs {
        let mut all = pairs::load_pairs(&opts.data)?;
        all.retain(|p| !opts.holdout.contains(&p.project));
        let encode = |split: Split| -> Result<Vec<(Encoded, Encoded)>> {
            pairs::in_split(&all, split)
                .into_iter()
                .map(|p| {
                    let enc = |h| encoder.encode(&p.path, h, pairs::FixPair::change(h));
                    Ok((enc(&p.buggy)?, enc(&p.fixed)?))
                })
                .collect()
        };
        let (mut t, c) = (encode(Split::Train)?, encode(Split::Calib)?);
        // More pairs for the pair path alone: every pair of these files, whatever its date.
        let mut more = pairs::load_pairs(&opts.pair_data)?;
        more.retain(|p| !opts.holdout.contains(&p.project));
        let data_projects: std::collections::HashSet<&str> = all.iter().map(|p| p.project.as_str()).collect();
        if let Some(p) = more.iter().find(|p| data_projects.contains(p.project.as_str())) {
            bail!(
                "--pair-data holds pairs of {}, a project of --data: its calibration and test commits would leak into training",
                p.project
            );
        }
        let extra = more.len();
        for p in &more {
            let enc = |h| encoder.encode(&p.path, h, pairs::FixPair::change(h));
            t.push((enc(&p.buggy)?, enc(&p.fixed)?));
        }
        eprintln!(
            "deepspark: {} train ({extra} of them from --pair-data) / {} calibration bug/fix pairs encoded [{:.1}s]",
            t.len(),
            c.len(),
            t0.elapsed().as_secs_f64()
        );
        (t, c)
    } else {
        (vec![], vec![])
    };

    let mut cfg = if let Some(c) = &base_cfg {
        RiskConfig {
            wide: false,
            pair: false,
            pair_bigrams: 0,
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
            pair: false,
            pair_bigrams: 0,
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

    let run = Run {
        opts,
        device,
        t0,
        data: &data,
        encoded,
        labels,
        train: train_slots,
        calib: calib_slots,
        calib_all,
        slot,
        train_pairs,
        calib_pairs,
    };
    let base_wide = match &base_tensors {
        Some(t) if base_cfg.as_ref().is_some_and(|c| c.wide) => Some(wide_of(t)?),
        _ => None,
    };
    if (opts.wide_prior || opts.recalibrate_only) && base_wide.is_none() {
        bail!("--wide-prior and --recalibrate need a --base model with a wide path");
    }
    let wide_opts = opts.wide.clone().map(|w| wide::WideOptions {
        prior: base_wide.clone().filter(|_| opts.wide_prior),
        ..w
    });
    let mut state = transformer::start(opts, &mut varmap, rng)?;
    // Boosting: the wide path first, then the transformer learns on top of its logit.
    // Recalibrating: the base's wide path as it is.
    let first = match (&wide_opts, opts.boost && opts.base.is_none()) {
        _ if opts.recalibrate_only => base_wide.map(|w| (w, f64::NAN)),
        (Some(wo), true) => Some(calibrate::fit_wide(&run, &cfg, wo)?),
        _ => None,
    };
    let offsets: Vec<f32> = match &first {
        Some((w, _)) => run.encoded.iter().map(|e| w.logit(e)).collect(),
        None => vec![0.0; run.encoded.len()],
    };
    let epochs = if opts.base.is_some() { 0 } else { opts.epochs };
    transformer::fit(&run, &cfg, &net, &mut varmap, &mut state, &offsets, epochs)?;
    let wide = calibrate::calibrate(&run, &mut cfg, &net, first, wide_opts.as_ref())?;
    cfg.validate()?;

    let mut extra = match &wide {
        Some(w) => wide::tensors(w, device)?,
        None => vec![],
    };
    // The pair path: fitted now, or the base's kept as it is (it never enters the risk, so
    // recalibrating or refitting the rest leaves it valid).
    let pair = match (&opts.pair, &base_tensors) {
        (Some(po), _) => {
            let train: Vec<(&Encoded, &Encoded)> = run.train_pairs.iter().map(|(b, f)| (b, f)).collect();
            let calib: Vec<(&Encoded, &Encoded)> = run.calib_pairs.iter().map(|(b, f)| (b, f)).collect();
            let (path, acc) = wide::fit_pairs(&train, &calib, cfg.vocab_size, po)?;
            eprintln!("deepspark: pair path fitted, calibration pair accuracy {acc:.4}");
            Some(path)
        }
        (None, Some(t)) if base_cfg.as_ref().is_some_and(|c| c.pair) => {
            let with_bigrams = base_cfg.as_ref().is_some_and(|c| c.pair_bigrams > 0);
            Some(pair_of(t, with_bigrams)?)
        }
        _ => None,
    };
    if let Some(p) = &pair {
        cfg.pair = true;
        cfg.pair_bigrams = p.buckets();
        extra.push((
            crate::model::wide::PAIR.into(),
            candle_core::Tensor::new(p.tokens.as_slice(), device)?,
        ));
        if !p.bigrams.is_empty() {
            extra.push((
                crate::model::wide::PAIR_BIGRAMS.into(),
                candle_core::Tensor::new(p.bigrams.as_slice(), device)?,
            ));
        }
    }
    save(&varmap, extra, &cfg, &opts.out)?;
    transformer::remove_checkpoints(&opts.out);
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
        "wide_prior": opts.wide_prior,
        "recalibrate_only": opts.recalibrate_only,
        "wide": opts.wide.as_ref().map(|w| serde_json::json!({"epochs": w.epochs, "l2": w.l2, "lr": w.lr, "batch": w.batch,
            "pairs_weight": w.pairs_weight, "pairs_margin": w.pairs_margin, "pairs_size": w.pairs_size, "train_pairs": run.train_pairs.len()})),
        "pair": opts.pair.as_ref().map(|p| serde_json::json!({"epochs": p.epochs, "l2": p.l2, "lr": p.lr, "margin": p.margin,
            "batch": p.batch, "train_pairs": run.train_pairs.len(), "calibration_pairs": run.calib_pairs.len(), "pair_data": opts.pair_data, "bigrams": p.bigrams})),
        "train_hunks": run.train.len(),
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

type Tensors = std::collections::HashMap<String, candle_core::Tensor>;

/// A base model's tensor as f32 values.
fn values_of(tensors: &Tensors, name: &str) -> Result<Vec<f32>> {
    let t = tensors
        .get(name)
        .with_context(|| format!("the base model has no tensor {name:?}"))?;
    Ok(t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// The pair path stored in a model's tensors (as `RiskModel::load` reads it).
fn pair_of(tensors: &Tensors, with_bigrams: bool) -> Result<crate::model::wide::PairPath> {
    Ok(crate::model::wide::PairPath {
        tokens: values_of(tensors, crate::model::wide::PAIR)?,
        bigrams: if with_bigrams {
            values_of(tensors, crate::model::wide::PAIR_BIGRAMS)?
        } else {
            vec![]
        },
    })
}

/// The wide path stored in a model's tensors (as `RiskModel::load` reads it).
fn wide_of(tensors: &Tensors) -> Result<crate::model::wide::Wide> {
    let get = |name: &str| values_of(tensors, name);
    let one = |name: &str| -> Result<f32> {
        get(name)?
            .first()
            .copied()
            .with_context(|| format!("the base model's {name:?} is empty"))
    };
    Ok(crate::model::wide::Wide {
        tokens: get(crate::model::wide::TOKENS)?,
        features: get(crate::model::wide::FEATURES)?,
        bias: one(crate::model::wide::BIAS)?,
        deep: one(crate::model::wide::DEEP)?,
    })
}
