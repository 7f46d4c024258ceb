//! Fitting the transformer: seeded initial weights, the epoch loop (AdamW, linear warm-up
//! then cosine learning rate, batches of similar length), checkpoints for `--resume`, and
//! keeping the epoch with the best calibration AUC; `save` writes the trained network.
//!
//! It neither tokenizes nor calibrates: `train` hands it encoded hunks, and `calibrate`
//! fits the wide path, Platt scaling and the change combiner on what it leaves.

use super::rng::Rng;
use super::{Run, TrainOptions, metrics, progress};
use crate::model::config::RiskConfig;
use crate::model::net::{Batch, Mode, RiskNet};
use crate::model::{self, weights};
use crate::tokenize::Encoded;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where a run stands, saved in --out beside the weights (every `--checkpoint-every` steps
/// and after each epoch) so that `--resume` continues with the same data order and dropout.
#[derive(Serialize, Deserialize)]
pub(super) struct Checkpoint {
    epoch: usize,
    step_in_epoch: usize,
    rng: Rng,
    best_calib_auc: f64,
    pub(super) best_epoch: Option<usize>,
}

/// The checkpoint's weights, its state and the best epoch's weights, in `out`.
fn checkpoint_files(out: &Path) -> [PathBuf; 3] {
    [
        out.join("checkpoint.safetensors"),
        out.join("checkpoint.json"),
        out.join("best.safetensors"),
    ]
}

/// A fresh state around `rng`, or, with --resume and a checkpoint in --out, the saved
/// state and weights.
pub(super) fn start(opts: &TrainOptions, varmap: &mut VarMap, rng: Rng) -> Result<Checkpoint> {
    let [ckpt_path, ckpt_json, _] = checkpoint_files(&opts.out);
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
    Ok(state)
}

/// Trains `net` on the train split from where `state` stands until `epochs`, with
/// `offsets[slot]` (the boosted wide path's logit, or zeros) added to its logit, and leaves
/// the best epoch's weights in `varmap` (a `--base` run trains no epoch and keeps its own).
pub(super) fn fit(
    run: &Run,
    cfg: &RiskConfig,
    net: &RiskNet,
    varmap: &mut VarMap,
    state: &mut Checkpoint,
    offsets: &[f32],
    epochs: usize,
) -> Result<()> {
    let Run {
        opts,
        device,
        t0,
        encoded,
        labels,
        train: train_slots,
        calib: calib_slots,
        ..
    } = run;
    let [ckpt_path, ckpt_json, best_path] = checkpoint_files(&opts.out);
    let params = ParamsAdamW {
        lr: opts.lr,
        weight_decay: opts.weight_decay,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let steps_per_epoch = train_slots.len().div_ceil(opts.batch);
    let total_steps = steps_per_epoch * opts.epochs;
    let warmup = (total_steps / 20).clamp(1, 300);
    let calib_enc = run.calib_enc();
    let calib_y = run.calib_y();
    let calib_offsets: Vec<f32> = calib_slots.iter().map(|&s| offsets[s]).collect();

    while state.epoch < epochs {
        let epoch = state.epoch;
        let mut order_rng = Rng::new(opts.seed.wrapping_add(1000 + epoch as u64));
        let plan = batches(train_slots, encoded, opts.batch, &mut order_rng);
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
        let mut logits = logits_of(net, cfg.n_features, &calib_enc, device)?;
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

    if opts.base.is_none() {
        varmap.load(&best_path)?;
    }
    Ok(())
}

/// Deletes the checkpoint files once the trained model is saved.
pub(super) fn remove_checkpoints(out: &Path) {
    for p in checkpoint_files(out) {
        let _ = std::fs::remove_file(p);
    }
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

/// The transformer's raw logits for `encoded`, in batches.
pub(super) fn logits_of(
    net: &model::net::RiskNet,
    n_features: usize,
    encoded: &[&Encoded],
    device: &Device,
) -> Result<Vec<f32>> {
    Ok(model::forward_batched(net, n_features, encoded, device)?
        .into_iter()
        .map(|(l, _)| l)
        .collect())
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
    use crate::model::RiskModel;
    use crate::model::net::RiskNet;
    use crate::model::weights::ModelFiles;
    use crate::model::{ScoreInput, Scorer};
    use crate::tokenize::{self, Encoder};
    use crate::train::wide;

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
    fn blank_lines_braces_and_comments_never_drive_the_score() {
        // Regression: the report marked blank lines and lone braces as driving the score.
        let enc = tiny_encoder();
        let mut cfg = tiny_cfg(&enc);
        cfg.wide = true;
        let (_, net) = init_model(&cfg, &mut Rng::new(6), &Device::Cpu).unwrap();
        // Every token pushes the wide logit up, so every line the model sees weighs > 0.
        let w = model::wide::Wide {
            tokens: vec![1.0; model::wide::SIDES * cfg.vocab_size],
            features: vec![0.0; cfg.n_features],
            bias: 0.0,
            deep: 0.0,
        };
        let model = RiskModel::from_parts(cfg, net, enc, Device::Cpu, "mem").with_wide(Some(w));
        let body = "+    let a = ptr.read();
+
+    }
+    // a note
+    });
+    a.unwrap()
";
        let hunk = Hunk::parse("@@ -0,0 +1,6 @@", body).unwrap();
        let s = &model
            .score(&[ScoreInput {
                path: "src/a.rs",
                hunk: &hunk,
                change: Default::default(),
            }])
            .unwrap()[0];
        assert!(
            s.line_weights[0] > 0.0 && s.line_weights[5] > 0.0,
            "{:?}",
            s.line_weights
        );
        assert_eq!(&s.line_weights[1..5], &[0.0; 4], "{:?}", s.line_weights);
        let hot = crate::render::json::hot_lines(&hunk.lines, &s.line_weights, 3);
        assert_eq!(hot, vec![0, 5]);
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
            pair_logit: None,
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
