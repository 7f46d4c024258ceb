//! The model side of the pipeline: two small interfaces and the embedded risk model.
//!
//! [`Scorer`] turns hunks into calibrated risks (with per-line attribution) and
//! combines them into the change's risk; [`Generator`] turns a hunk into candidate
//! rewrites. The pipeline only ever sees these traits, so other models plug in beside the
//! embedded one; pretrained language models live in `lm/` behind their own trait
//! (`lm::LanguageModel`). This module does not read git or decide verdicts (see `review/`).

pub mod config;
pub mod device;
pub mod edit;
pub mod kernels;
pub mod net;
pub mod weights;
pub mod wide;

use crate::diff::{Hunk, is_cosmetic, language_of};
use crate::tokenize::{ChangeStats, Encoded, Encoder, NO_LINE};
use candle_core::Device;
use config::RiskConfig;
pub use edit::{Candidate, EditModel, LineEdit};
use net::{Batch, Mode, RiskNet};
use weights::ModelFiles;

/// One hunk to score: its repository-relative path, the hunk, and the size of the
/// change it belongs to.
#[derive(Clone, Copy)]
pub struct ScoreInput<'a> {
    pub path: &'a str,
    pub hunk: &'a Hunk,
    pub change: ChangeStats,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HunkScore {
    /// Calibrated probability that the hunk is risky (needs a fix later), in [0, 1].
    pub risk: f32,
    /// The raw network logit (before calibration), used to combine hunks into a change score.
    pub logit: f32,
    /// For each line of the hunk, how much it pushed the score up (positive) or down,
    /// relative to the hunk's average token; 0 for lines the model did not see and for
    /// lines that cannot hold a bug (blank, lone braces and punctuation, comment-only: see
    /// `diff::is_cosmetic`), so that a report never says such a line drives the score.
    pub line_weights: Vec<f32>,
    /// The pair path's logit when the model has one (`wide::PairPath`): compare it only
    /// between two versions of the same hunk, the higher reads as buggier.
    pub pair_logit: Option<f32>,
}

pub trait Scorer {
    /// A one-line description for reports (name, size, origin).
    fn describe(&self) -> String;
    fn score(&self, inputs: &[ScoreInput]) -> anyhow::Result<Vec<HunkScore>>;
    /// The change's risk from all its scored hunks (documented in `config::ChangeCombiner`).
    /// Fails rather than return a number that is not one (weights that overflow).
    fn change_risk(&self, hunks: &[HunkScore]) -> anyhow::Result<f32>;
}

pub trait Generator {
    fn describe(&self) -> String;
    /// Candidate rewrites of the hunk's added lines, most probable first (at most `max`).
    /// `file`: the text of the file the added lines are in, when known (read, never written).
    fn propose(&self, hunk: &Hunk, file: Option<&str>, max: usize) -> anyhow::Result<Vec<Candidate>>;
}

/// The embedded transformer risk model.
pub struct RiskModel {
    pub config: RiskConfig,
    pub net: RiskNet,
    pub encoder: Encoder,
    pub device: Device,
    /// The wide path, when the config has one (`config.wide`).
    pub wide: Option<wide::Wide>,
    /// The pair path, when the config has one (`config.pair`).
    pub pair: Option<wide::PairPath>,
    origin: String,
}

pub const BATCH: usize = 32;

/// From how many values candle 0.11 splits an elementwise operation over its own threads
/// (`cpu_backend::utils::PAR_ELEMWISE_MIN`).
const CANDLE_SPLITS_FROM: usize = 64 * 1024;

/// `order` (indices, shortest first) cut into batches of at most [`BATCH`] hunks. On the CPU a
/// batch also stays under [`CANDLE_SPLITS_FROM`] values in its widest layer (`widest` a token,
/// its tokens padded to its longest), so that none of its layers' elementwise operations is
/// split over candle's threads (attention's `[heads, tokens, tokens]` scores go through
/// `kernels::masked_softmax` instead): [`forward_batched`] already runs the batches in parallel,
/// and candle's threads then waited on each other. On curl's first review (1,000 commits scored), that waiting was a
/// quarter of the time. A GPU takes the larger batches.
fn batches<'a>(order: &'a [usize], len: impl Fn(usize) -> usize, device: &Device, widest: usize) -> Vec<&'a [usize]> {
    if !device.is_cpu() {
        return order.chunks(BATCH).collect();
    }
    let mut out = Vec::new();
    let mut rest = order;
    while !rest.is_empty() {
        // Shortest first, so the batch's padded length is its last hunk's.
        let mut n = 1;
        while n < rest.len().min(BATCH) && (n + 1) * len(rest[n]).max(1) * widest < CANDLE_SPLITS_FROM {
            n += 1;
        }
        let (batch, after) = rest.split_at(n);
        out.push(batch);
        rest = after;
    }
    out
}

impl RiskModel {
    pub fn load(files: &ModelFiles, device: &Device) -> Result<RiskModel, weights::LoadError> {
        let config = files.parse_config()?;
        let encoder = files.encoder(&config)?;
        let mut tensors = files.tensors(&config, device)?;
        let mut take = |name: &str| {
            tensors
                .remove(name)
                .and_then(|t| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).ok())
                .ok_or_else(|| weights::LoadError::Tensors {
                    path: files.origin.clone(),
                    msg: format!("tensor {name:?} is missing or unreadable"),
                })
        };
        let wide = if config.wide {
            Some(wide::Wide {
                tokens: take(wide::TOKENS)?,
                features: take(wide::FEATURES)?,
                bias: take(wide::BIAS)?[0],
                deep: take(wide::DEEP)?[0],
            })
        } else {
            None
        };
        let pair = if config.pair {
            Some(wide::PairPath {
                tokens: take(wide::PAIR)?,
                bigrams: if config.pair_bigrams > 0 {
                    take(wide::PAIR_BIGRAMS)?
                } else {
                    vec![]
                },
            })
        } else {
            None
        };
        let vb = candle_nn::VarBuilder::from_tensors(tensors, net::DTYPE, device);
        let net = RiskNet::new(&config, vb).map_err(|e| weights::LoadError::Tensors {
            path: files.origin.clone(),
            msg: e.to_string(),
        })?;
        Ok(RiskModel {
            config,
            net,
            encoder,
            device: device.clone(),
            wide,
            pair,
            origin: files.origin.clone(),
        })
    }

    pub fn from_parts(config: RiskConfig, net: RiskNet, encoder: Encoder, device: Device, origin: &str) -> Self {
        RiskModel {
            config,
            net,
            encoder,
            device,
            wide: None,
            pair: None,
            origin: origin.to_string(),
        }
    }

    /// The same model with this wide path (or none).
    pub fn with_wide(self, wide: Option<wide::Wide>) -> Self {
        RiskModel { wide, ..self }
    }

    pub fn encode(&self, inputs: &[ScoreInput]) -> anyhow::Result<Vec<Encoded>> {
        Ok(inputs
            .iter()
            .map(|i| self.encoder.encode(i.path, i.hunk, i.change))
            .collect::<Result<_, _>>()?)
    }

    /// The transformer's raw logits and per-token scores for already-encoded hunks,
    /// batched by length (without the wide path).
    pub fn forward_encoded(&self, encoded: &[Encoded]) -> anyhow::Result<Vec<(f32, Vec<f32>)>> {
        let items: Vec<&Encoded> = encoded.iter().collect();
        Ok(forward_batched(
            &self.net,
            self.config.n_features,
            &items,
            &self.device,
        )?)
    }

    /// The model's uncalibrated logits: the transformer's, stacked with the wide path when
    /// there is one. This is what calibration and the change combiner take.
    pub fn logits(&self, encoded: &[Encoded]) -> anyhow::Result<Vec<f32>> {
        let raw = self.forward_encoded(encoded)?;
        raw.into_iter()
            .zip(encoded)
            .map(|((logit, _), enc)| self.combine(logit, enc, "a hunk"))
            .collect()
    }

    /// The hunk's logit: the transformer's, stacked with the wide path when there is one.
    /// A logit that is not a finite number (weights that are finite but overflow) is an
    /// error, never a risk: NaN or infinity would otherwise give a silent verdict.
    fn combine(&self, deep_logit: f32, enc: &Encoded, what: &str) -> anyhow::Result<f32> {
        let logit = match &self.wide {
            Some(w) => w.combine(deep_logit, enc),
            None => deep_logit,
        };
        if !logit.is_finite() {
            anyhow::bail!(
                "the model computed no finite number ({logit}) for {what}: its weights, though finite, are unusable ({})",
                self.origin
            );
        }
        Ok(logit)
    }
}

/// Inference over encoded hunks in batches of similar length: the raw logit and the
/// per-token scores of each, in input order. Shared by scoring and by training's evaluation.
pub fn forward_batched(
    net: &RiskNet,
    n_features: usize,
    encoded: &[&Encoded],
    device: &Device,
) -> candle_core::Result<Vec<(f32, Vec<f32>)>> {
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|&i| encoded[i].ids.len());
    let batches = batches(&order, |i| encoded[i].ids.len(), device, net.widest());
    // Batches run in parallel: candle's own threading barely helps a model this small (its
    // matrices are too small to split), while independent batches keep every core busy.
    use rayon::prelude::*;
    // Per batch: its hunks' positions in `encoded`, their logits and their token scores.
    type Scored = (Vec<usize>, Vec<f32>, Vec<Vec<f32>>);
    let results: Vec<Scored> = batches
        .into_par_iter()
        .map(|chunk| {
            let items: Vec<&Encoded> = chunk.iter().map(|&i| encoded[i]).collect();
            let o = net.forward(&Batch::new(&items, n_features, device)?, &mut Mode::Infer)?;
            Ok((
                chunk.to_vec(),
                o.logits.to_vec1::<f32>()?,
                o.token_scores.to_vec2::<f32>()?,
            ))
        })
        .collect::<candle_core::Result<_>>()?;
    let mut out = vec![(0f32, Vec::new()); encoded.len()];
    for (chunk, logits, tokens) in results {
        for (k, &i) in chunk.iter().enumerate() {
            let n = encoded[i].ids.len();
            out[i] = (logits[k], tokens[k][..n].to_vec());
        }
    }
    Ok(out)
}

/// Per-line weights: each line's mean token score minus the hunk's mean token score.
fn line_weights(enc: &Encoded, tokens: &[f32], n_lines: usize) -> Vec<f32> {
    let mut sum = vec![0f32; n_lines];
    let mut count = vec![0u32; n_lines];
    let mean = if tokens.is_empty() {
        0.0
    } else {
        tokens.iter().sum::<f32>() / tokens.len() as f32
    };
    for (&line, &s) in enc.line.iter().zip(tokens) {
        if line != NO_LINE && (line as usize) < n_lines {
            sum[line as usize] += s;
            count[line as usize] += 1;
        }
    }
    sum.iter()
        .zip(&count)
        .map(|(&s, &c)| if c == 0 { 0.0 } else { s / c as f32 - mean })
        .collect()
}

impl Scorer for RiskModel {
    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "transformer {}x{}{} ({} parameters), {}",
            c.n_layers,
            c.d_model,
            match (c.wide, c.pair) {
                (true, true) => " + wide and pair token paths",
                (true, false) => " + wide token path",
                (false, true) => " + pair token path",
                (false, false) => "",
            },
            c.param_count(),
            self.origin
        )
    }

    fn score(&self, inputs: &[ScoreInput]) -> anyhow::Result<Vec<HunkScore>> {
        let encoded = self.encode(inputs)?;
        let raw = self.forward_encoded(&encoded)?;
        raw.into_iter()
            .zip(&encoded)
            .zip(inputs)
            .map(|(((deep, tokens), enc), input)| {
                let n = input.hunk.lines.len();
                let what = format!("a hunk of {}", input.path);
                let logit = self.combine(deep, enc, &what)?;
                let mut weights = line_weights(enc, &tokens, n);
                if let Some(w) = &self.wide {
                    for (lw, c) in weights.iter_mut().zip(w.line_contributions(enc, n)) {
                        *lw = w.deep * *lw + c;
                    }
                }
                // Their tokens still count in the score; only the attribution leaves them out
                // (a blank line's marker token or a brace would otherwise be "the reason").
                let language = language_of(input.path);
                for (lw, line) in weights.iter_mut().zip(&input.hunk.lines) {
                    if is_cosmetic(&line.text, language) {
                        *lw = 0.0;
                    }
                }
                Ok(HunkScore {
                    risk: self.config.calibration.apply(logit),
                    logit,
                    line_weights: weights,
                    pair_logit: self.pair.as_ref().map(|p| p.logit(enc)),
                })
            })
            .collect()
    }

    fn change_risk(&self, hunks: &[HunkScore]) -> anyhow::Result<f32> {
        let logits: Vec<f32> = hunks.iter().map(|h| h.logit).collect();
        let risk = self.config.change.apply(&logits);
        if !risk.is_finite() {
            anyhow::bail!(
                "the model computed no finite change risk ({risk}): its change combiner is unusable ({})",
                self.origin
            );
        }
        Ok(risk)
    }
}

/// Builds a model in memory from a varmap (training and tests).
pub fn build(cfg: &RiskConfig, varmap: &candle_nn::VarMap, device: &Device) -> candle_core::Result<RiskNet> {
    let vb = candle_nn::VarBuilder::from_varmap(varmap, net::DTYPE, device);
    RiskNet::new(cfg, vb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_batches_stay_under_candles_split_size_and_keep_the_order() {
        // Regression: batches of 32 long hunks made every elementwise operation of the network
        // wait on candle's own threads, inside batches already run in parallel.
        let lens: Vec<usize> = (0..200).map(|i| 1 + i * 191 / 199).collect();
        let order: Vec<usize> = (0..lens.len()).collect();
        let widest = 192;
        let cpu = batches(&order, |i| lens[i], &Device::Cpu, widest);
        assert_eq!(cpu.concat(), order, "every hunk once, in order");
        for b in &cpu {
            assert!(b.len() <= BATCH);
            let padded = b.iter().map(|&i| lens[i]).max().unwrap();
            assert!(b.len() == 1 || b.len() * padded * widest < CANDLE_SPLITS_FROM, "{b:?}");
        }
        // A batch ends only where it is full or the next hunk would take it past the size.
        for pair in cpu.windows(2) {
            let (n, next) = (pair[0].len(), lens[pair[1][0]]);
            assert!(n == BATCH || (n + 1) * next * widest >= CANDLE_SPLITS_FROM, "{pair:?}");
        }
        assert!(cpu[0].len() > 1 && cpu.last().unwrap().len() == 1);
    }
}
