//! The generator's two files: `generator.json` (version, sizes, where the rules were mined,
//! the rules) and `generator.safetensors` (the ranker), validated before anything is built
//! (strict JSON with bounded sizes, exact tensor names and shapes, finite values), read from
//! a model directory or embedded from `weights/`. Errors name the file's path as it is; the
//! caller sanitises what it prints.

use super::EditModel;
use super::candidates::N_EDIT_FEATURES;
use super::ranker::Ranker;
use super::rules::{MAX_RULE_CHARS, Rule};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const CONFIG: &str = "generator.json";
pub const WEIGHTS: &str = "generator.safetensors";
const MAX_CONFIG_BYTES: u64 = 16 << 20;
const MAX_RULES: usize = 200_000;
const MAX_HIDDEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditConfig {
    pub version: u32,
    pub n_features: usize,
    pub hidden: usize,
    /// Where the rules were mined (for `describe`).
    pub trained_on: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum EditLoadError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: invalid generator: {msg}")]
    Invalid { path: String, msg: String },
}

impl EditConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!("version {} (this build reads version 1)", self.version));
        }
        if self.n_features != N_EDIT_FEATURES {
            return Err(format!("n_features {} (expected {N_EDIT_FEATURES})", self.n_features));
        }
        if self.hidden == 0 || self.hidden > MAX_HIDDEN {
            return Err(format!("hidden {} (1..={MAX_HIDDEN})", self.hidden));
        }
        if self.rules.len() > MAX_RULES {
            return Err(format!("{} rules (at most {MAX_RULES})", self.rules.len()));
        }
        for r in &self.rules {
            if r.old.is_empty() || r.old.chars().count() > MAX_RULE_CHARS + 2 || r.new.chars().count() > MAX_RULE_CHARS
            {
                return Err(format!("rule {:?} -> {:?} is empty or too long", r.old, r.new));
            }
            // Tab too: a rule writes a few tokens within a line, never its layout.
            if r.new.chars().any(|c| c == '\t' || crate::chars::is_hidden(c)) {
                return Err(format!(
                    "rule {:?} -> {:?} would write a line break or marker",
                    r.old, r.new
                ));
            }
        }
        Ok(())
    }
}

#[cfg(has_default_generator)]
static DEFAULT: (&[u8], &[u8]) = (
    include_bytes!("../../../weights/generator.json"),
    include_bytes!("../../../weights/generator.safetensors"),
);

impl EditModel {
    /// The raw files of the embedded generator (config, weights), if this build has one.
    pub fn embedded_bytes() -> Option<(&'static [u8], &'static [u8])> {
        #[cfg(has_default_generator)]
        {
            Some(DEFAULT)
        }
        #[cfg(not(has_default_generator))]
        None
    }

    /// The generator embedded from `weights/`, if this build has one.
    pub fn embedded() -> Option<Result<EditModel, EditLoadError>> {
        #[cfg(has_default_generator)]
        {
            Some(Self::from_bytes(
                DEFAULT.0,
                DEFAULT.1,
                "embedded default generator (weights/)",
            ))
        }
        #[cfg(not(has_default_generator))]
        None
    }

    /// The generator in a model directory (`--model DIR`), if the directory has one.
    pub fn read_dir(dir: &Path) -> Option<Result<EditModel, EditLoadError>> {
        let (c, w) = (dir.join(CONFIG), dir.join(WEIGHTS));
        if !c.exists() && !w.exists() {
            return None;
        }
        let read = |p: &Path, limit: u64| -> Result<Vec<u8>, EditLoadError> {
            let io = |source| EditLoadError::Io {
                path: p.display().to_string(),
                source,
            };
            let size = std::fs::metadata(p).map_err(io)?.len();
            if size > limit {
                return Err(EditLoadError::Invalid {
                    path: p.display().to_string(),
                    msg: format!("{size} bytes, more than the {limit} allowed"),
                });
            }
            std::fs::read(p).map_err(io)
        };
        Some((|| {
            let config = read(&c, MAX_CONFIG_BYTES)?;
            let weights = read(&w, MAX_CONFIG_BYTES)?;
            Self::from_bytes(&config, &weights, &dir.display().to_string())
        })())
    }

    /// Validates both files before building anything: strict config with bounded sizes,
    /// exact tensor names and shapes, finite values.
    pub fn from_bytes(config: &[u8], weights: &[u8], origin: &str) -> Result<EditModel, EditLoadError> {
        let bad = |file: &str, msg: String| EditLoadError::Invalid {
            path: format!("{origin}/{file}"),
            msg,
        };
        let cfg: EditConfig = serde_json::from_slice(config).map_err(|e| bad(CONFIG, e.to_string()))?;
        cfg.validate().map_err(|m| bad(CONFIG, m))?;
        let st = safetensors::SafeTensors::deserialize(weights).map_err(|e| bad(WEIGHTS, e.to_string()))?;
        let expected = Ranker::expected_tensors(cfg.hidden);
        if st.names().len() != expected.len() {
            return Err(bad(
                WEIGHTS,
                format!("holds {} tensors, expected {}", st.names().len(), expected.len()),
            ));
        }
        for (name, shape) in &expected {
            let view = st
                .tensor(name)
                .map_err(|_| bad(WEIGHTS, format!("missing tensor {name:?}")))?;
            if view.shape() != shape.as_slice() || view.dtype() != safetensors::Dtype::F32 {
                return Err(bad(
                    WEIGHTS,
                    format!(
                        "tensor {name:?} is {:?} {:?}, expected F32 {shape:?}",
                        view.dtype(),
                        view.shape()
                    ),
                ));
            }
        }
        let tensors =
            candle_core::safetensors::load_buffer(weights, &Device::Cpu).map_err(|e| bad(WEIGHTS, e.to_string()))?;
        for (name, t) in &tensors {
            let values = t
                .flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .map_err(|e| bad(WEIGHTS, e.to_string()))?;
            if !values.iter().all(|v| v.is_finite()) {
                return Err(bad(WEIGHTS, format!("tensor {name:?} holds NaN or infinite values")));
            }
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let ranker = Ranker::new(cfg.hidden, vb).map_err(|e| bad(WEIGHTS, e.to_string()))?;
        Ok(Self::from_parts(cfg, ranker, origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_configs_are_refused() {
        let cfg = |rules: Vec<Rule>, hidden| EditConfig {
            version: 1,
            n_features: N_EDIT_FEATURES,
            hidden,
            trained_on: "t".into(),
            rules,
        };
        assert!(cfg(vec![], 0).validate().is_err());
        assert!(cfg(vec![], 1 << 20).validate().is_err());
        let nl = Rule {
            old: "a".into(),
            new: "b\nc".into(),
            count: 1,
            projects: 1,
        };
        assert!(cfg(vec![nl], 8).validate().is_err());
        assert!(cfg(vec![], 8).validate().is_ok());
        let json = serde_json::to_vec(&cfg(vec![], 8)).unwrap();
        assert!(EditModel::from_bytes(&json, b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk", "mem").is_err());
        assert!(EditModel::from_bytes(b"{\"version\":1,\"surprise\":1}", &[], "mem").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        // Hostile generator files from a model directory: an error, never a panic.
        #[test]
        fn arbitrary_generator_files_never_panic(
            config in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            weights in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let _ = EditModel::from_bytes(&config, &weights, "mem");
        }
    }
}
