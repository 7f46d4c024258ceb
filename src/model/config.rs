//! The risk model's `config.json`: sizes, calibration and the change-level combiner.
//!
//! Validated before anything is allocated: every size is bounded, so a hostile config
//! cannot make deepspark allocate gigabytes. Unknown keys are refused.

use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "deepspark-risk/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    pub format: String,
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub max_len: usize,
    pub n_features: usize,
    /// A bag-of-tokens path: one learned weight per vocabulary entry, added to every
    /// token's score (so the logit gains the mean weight of the hunk's tokens).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bag: bool,
    /// A wide path beside the transformer: one weight per (side, token) present in the
    /// hunk, plus the size features, stacked with the transformer's logit (see `model::wide`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wide: bool,
    /// A pair path: one weight per (side, token) like the wide path, fitted only on bug/fix
    /// pairs, so that it compares two versions of the same hunk (see `model::wide::PairPath`).
    /// It never enters the risk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pair: bool,
    /// The pair path's number of hashed token-bigram buckets per side (0: tokens alone).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pair_bigrams: usize,
    /// Whether the input starts with the file's name (names identify projects more than risk).
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub file_name: bool,
    /// Platt scaling fitted on the calibration split: p = sigmoid(a * logit + b).
    pub calibration: Platt,
    /// How hunk scores combine into the change's risk (fitted on calibration commits).
    pub change: ChangeCombiner,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platt {
    pub a: f32,
    pub b: f32,
}

impl Platt {
    pub const IDENTITY: Platt = Platt { a: 1.0, b: 0.0 };
    pub fn apply(&self, logit: f32) -> f32 {
        sigmoid(self.a * logit + self.b)
    }
}

/// P(change is risky) = sigmoid(w_max * max hunk logit + w_mean * mean hunk logit
///                              + w_count * ln(1 + hunks) + bias).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeCombiner {
    pub w_max: f32,
    pub w_mean: f32,
    pub w_count: f32,
    pub bias: f32,
}

impl ChangeCombiner {
    pub const MAX: ChangeCombiner = ChangeCombiner {
        w_max: 1.0,
        w_mean: 0.0,
        w_count: 0.0,
        bias: 0.0,
    };

    pub fn features(logits: &[f32]) -> [f32; 3] {
        if logits.is_empty() {
            return [0.0; 3];
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mean = logits.iter().sum::<f32>() / logits.len() as f32;
        [max, mean, (logits.len() as f32).ln_1p()]
    }

    /// The change's risk from its hunks' raw logits; no hunk means no evidence of risk.
    pub fn apply(&self, logits: &[f32]) -> f32 {
        if logits.is_empty() {
            return 0.0;
        }
        let [max, mean, count] = Self::features(logits);
        sigmoid(self.w_max * max + self.w_mean * mean + self.w_count * count + self.bias)
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn yes() -> bool {
    true
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("unsupported model format {0:?} (expected {FORMAT:?})")]
    Format(String),
    #[error("{field} = {value} is out of range ({min}..={max})")]
    Range {
        field: &'static str,
        value: usize,
        min: usize,
        max: usize,
    },
    #[error("d_model ({d_model}) must be a multiple of n_heads ({n_heads})")]
    Heads { d_model: usize, n_heads: usize },
    #[error("n_features = {0}, but this build encodes 4 (hunk) or {1} (hunk and change) features")]
    Features(usize, usize),
    #[error("pair_bigrams = {0} without a pair path (pair is false)")]
    BigramsWithoutPair(usize),
    #[error("calibration or combiner parameter is not a finite number")]
    NotFinite,
    #[error("the model would have {0} parameters; the limit is {1}")]
    TooBig(usize, usize),
}

pub const MAX_PARAMS: usize = 200_000_000;
/// The most bigram buckets per side a pair path may have (`pair_bigrams`).
pub const MAX_PAIR_BIGRAMS: usize = 1 << 22;

impl RiskConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.format != FORMAT {
            return Err(ConfigError::Format(self.format.clone()));
        }
        let range = |field, value: usize, min, max| {
            if value < min || value > max {
                Err(ConfigError::Range { field, value, min, max })
            } else {
                Ok(())
            }
        };
        range(
            "vocab_size",
            self.vocab_size,
            crate::tokenize::N_SPECIAL as usize + 1,
            1 << 18,
        )?;
        range("d_model", self.d_model, 4, 4096)?;
        range("n_layers", self.n_layers, 0, 48)?;
        range("n_heads", self.n_heads, 1, 64)?;
        range("d_ff", self.d_ff, 4, 16384)?;
        range("max_len", self.max_len, 8, 8192)?;
        if self.pair_bigrams > 0 && !self.pair {
            return Err(ConfigError::BigramsWithoutPair(self.pair_bigrams));
        }
        range("pair_bigrams", self.pair_bigrams, 0, MAX_PAIR_BIGRAMS)?;
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(ConfigError::Heads {
                d_model: self.d_model,
                n_heads: self.n_heads,
            });
        }
        if self.n_features != crate::tokenize::N_FEATURES && self.n_features != crate::tokenize::N_HUNK_FEATURES {
            return Err(ConfigError::Features(self.n_features, crate::tokenize::N_FEATURES));
        }
        let c = &self.change;
        let all = [
            self.calibration.a,
            self.calibration.b,
            c.w_max,
            c.w_mean,
            c.w_count,
            c.bias,
        ];
        if !all.iter().all(|v| v.is_finite()) {
            return Err(ConfigError::NotFinite);
        }
        let params = self.param_count();
        if params > MAX_PARAMS {
            return Err(ConfigError::TooBig(params, MAX_PARAMS));
        }
        Ok(())
    }

    pub fn param_count(&self) -> usize {
        let d = self.d_model;
        let per_layer = 4 * d * d + 4 * d + 2 * d * self.d_ff + self.d_ff + d + 4 * d;
        self.vocab_size * d
            + self.max_len * d
            + self.n_layers * per_layer
            + 2 * d
            + d
            + 1
            + self.n_features
            + 1
            + if self.bag { self.vocab_size } else { 0 }
            + if self.wide {
                super::wide::SIDES * self.vocab_size + self.n_features + 2
            } else {
                0
            }
            + if self.pair {
                super::wide::SIDES * (self.vocab_size + self.pair_bigrams)
            } else {
                0
            }
    }

    /// Approximate multiply-adds x2 for one sequence of `len` tokens (for benchmarks).
    pub fn flops(&self, len: usize) -> f64 {
        let (d, f, t) = (self.d_model as f64, self.d_ff as f64, len as f64);
        let per_layer = 2.0 * t * (4.0 * d * d + 2.0 * d * f) + 2.0 * 2.0 * t * t * d;
        self.n_layers as f64 * per_layer + 2.0 * t * d
    }
}

/// A tiny configuration for tests and benchmarks (never shipped).
pub fn tiny(vocab_size: usize) -> RiskConfig {
    RiskConfig {
        format: FORMAT.into(),
        vocab_size,
        d_model: 16,
        n_layers: 1,
        n_heads: 2,
        d_ff: 32,
        max_len: 64,
        n_features: crate::tokenize::N_FEATURES,
        bag: false,
        wide: false,
        pair: false,
        pair_bigrams: 0,
        file_name: true,
        calibration: Platt::IDENTITY,
        change: ChangeCombiner::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_sizes_are_refused_before_allocation() {
        let mut c = tiny(100);
        assert!(c.validate().is_ok());
        c.d_model = 1 << 30;
        assert!(matches!(c.validate(), Err(ConfigError::Range { field: "d_model", .. })));
        let mut c = tiny(100);
        c.n_heads = 3;
        assert!(matches!(c.validate(), Err(ConfigError::Heads { .. })));
        let mut c = tiny(100);
        c.calibration.a = f32::NAN;
        assert_eq!(c.validate(), Err(ConfigError::NotFinite));
        let mut c = tiny(1 << 18);
        c.d_model = 4096;
        c.n_layers = 48;
        c.d_ff = 16384;
        assert!(matches!(c.validate(), Err(ConfigError::TooBig(..))));
        // Bigram buckets belong to a pair path, and are bounded.
        let mut c = tiny(100);
        c.pair_bigrams = 64;
        assert_eq!(c.validate(), Err(ConfigError::BigramsWithoutPair(64)));
        c.pair = true;
        assert!(c.validate().is_ok());
        c.pair_bigrams = 1 << 30;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Range {
                field: "pair_bigrams",
                ..
            })
        ));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let mut v = serde_json::to_value(tiny(100)).unwrap();
        v["surprise"] = 1.into();
        assert!(serde_json::from_value::<RiskConfig>(v).is_err());
    }

    #[test]
    fn change_combiner_is_monotone_in_the_worst_hunk() {
        let c = ChangeCombiner {
            w_max: 1.0,
            w_mean: 0.5,
            w_count: 0.1,
            bias: -1.0,
        };
        assert!(c.apply(&[-2.0, 3.0]) > c.apply(&[-2.0, 1.0]));
        assert_eq!(c.apply(&[]), 0.0);
    }
}
