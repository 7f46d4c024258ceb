//! Loading a risk model from its three files, validating each before allocating.
//!
//! A model is `config.json` + `model.safetensors` + `tokenizer.json`, either embedded in
//! the binary (the default model from `weights/`) or read from a directory (`--model`).
//! Checks, in order: file sizes bounded; config parsed strictly and its sizes bounded;
//! the safetensors header parsed by the `safetensors` crate (lengths and offsets inside
//! the file); exactly the expected tensor names with the shapes the config implies;
//! every value finite; the tokenizer's vocabulary matching the config. Any failure
//! names the file. Only safetensors is accepted: pickled `.bin` files are refused.

use super::config::RiskConfig;
use super::net::{DTYPE, RiskNet};
use crate::tokenize::{Encoder, N_SPECIAL};
use candle_core::Device;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.json";
pub const WEIGHTS: &str = "model.safetensors";
pub const TOKENIZER: &str = "tokenizer.json";

const MAX_CONFIG_BYTES: u64 = 1 << 20;
const MAX_TOKENIZER_BYTES: u64 = 64 << 20;
const MAX_WEIGHTS_BYTES: u64 = 2 << 30;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: file is {size} bytes, more than the {limit} allowed")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: invalid config: {msg}")]
    Config { path: String, msg: String },
    #[error("{path}: not a valid safetensors file: {msg}")]
    Safetensors { path: String, msg: String },
    #[error("{path}: {msg}")]
    Tensors { path: String, msg: String },
    #[error("{path}: invalid tokenizer: {msg}")]
    Tokenizer { path: String, msg: String },
    #[error("{path}: pickled PyTorch weights are refused (they can run code); convert them to safetensors")]
    Pickle { path: String },
    #[error("{0}: no model here (expected {CONFIG}, {WEIGHTS} and {TOKENIZER})")]
    Missing(String),
}

/// The raw bytes of a model's three files and where they came from (for messages).
pub struct ModelFiles {
    pub origin: String,
    pub config: Vec<u8>,
    pub weights: Vec<u8>,
    pub tokenizer: Vec<u8>,
}

#[cfg(has_default_model)]
static DEFAULT: (&[u8], &[u8], &[u8]) = (
    include_bytes!("../../weights/config.json"),
    include_bytes!("../../weights/model.safetensors"),
    include_bytes!("../../weights/tokenizer.json"),
);

impl ModelFiles {
    /// The default model embedded at build time from `weights/`.
    pub fn embedded() -> Option<ModelFiles> {
        #[cfg(has_default_model)]
        {
            Some(ModelFiles {
                origin: "embedded default model (weights/)".into(),
                config: DEFAULT.0.to_vec(),
                weights: DEFAULT.1.to_vec(),
                tokenizer: DEFAULT.2.to_vec(),
            })
        }
        #[cfg(not(has_default_model))]
        None
    }

    pub fn read_dir(dir: &Path) -> Result<ModelFiles, LoadError> {
        let show = |p: &Path| p.display().to_string();
        if !dir.is_dir() {
            return Err(LoadError::Missing(show(dir)));
        }
        for pickle in ["pytorch_model.bin", "model.bin", "model.pt", "model.pth"] {
            let p = dir.join(pickle);
            if p.exists() && !dir.join(WEIGHTS).exists() {
                return Err(LoadError::Pickle { path: show(&p) });
            }
        }
        let read = |name: &str, limit: u64| -> Result<Vec<u8>, LoadError> {
            let p: PathBuf = dir.join(name);
            let io = |source| LoadError::Io { path: show(&p), source };
            let size = std::fs::metadata(&p).map_err(io)?.len();
            if size > limit {
                return Err(LoadError::TooLarge {
                    path: show(&p),
                    size,
                    limit,
                });
            }
            std::fs::read(&p).map_err(io)
        };
        Ok(ModelFiles {
            origin: show(dir),
            config: read(CONFIG, MAX_CONFIG_BYTES)?,
            weights: read(WEIGHTS, MAX_WEIGHTS_BYTES)?,
            tokenizer: read(TOKENIZER, MAX_TOKENIZER_BYTES)?,
        })
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.origin)
    }

    pub fn parse_config(&self) -> Result<RiskConfig, LoadError> {
        let err = |msg: String| LoadError::Config {
            path: self.path(CONFIG),
            msg,
        };
        let cfg: RiskConfig = serde_json::from_slice(&self.config).map_err(|e| err(e.to_string()))?;
        cfg.validate().map_err(|e| err(e.to_string()))?;
        Ok(cfg)
    }

    /// Validates the weights against `cfg` and returns them as tensors on `device`.
    pub fn tensors(
        &self,
        cfg: &RiskConfig,
        device: &Device,
    ) -> Result<HashMap<String, candle_core::Tensor>, LoadError> {
        let path = self.path(WEIGHTS);
        let st = safetensors::SafeTensors::deserialize(&self.weights).map_err(|e| LoadError::Safetensors {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let bad = |msg: String| LoadError::Tensors {
            path: path.clone(),
            msg,
        };
        let expected = RiskNet::expected_tensors(cfg);
        let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        names.sort();
        if names.len() != expected.len() {
            return Err(bad(format!(
                "holds {} tensors, the config implies {}",
                names.len(),
                expected.len()
            )));
        }
        for (name, shape) in &expected {
            let view = st.tensor(name).map_err(|_| bad(format!("missing tensor {name:?}")))?;
            if view.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "tensor {name:?} has shape {:?}, the config implies {shape:?}",
                    view.shape()
                )));
            }
            use safetensors::Dtype::*;
            if !matches!(view.dtype(), F32 | F16 | BF16) {
                return Err(bad(format!(
                    "tensor {name:?} has dtype {:?}; expected F32, F16 or BF16",
                    view.dtype()
                )));
            }
        }
        let tensors = candle_core::safetensors::load_buffer(&self.weights, device).map_err(|e| bad(e.to_string()))?;
        let mut out = HashMap::new();
        for (name, t) in tensors {
            let t = t.to_dtype(DTYPE).map_err(|e| bad(e.to_string()))?;
            let finite = t
                .flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .map_err(|e| bad(e.to_string()))?
                .iter()
                .all(|v| v.is_finite());
            if !finite {
                return Err(bad(format!("tensor {name:?} holds NaN or infinite values")));
            }
            out.insert(name, t);
        }
        Ok(out)
    }

    pub fn encoder(&self, cfg: &RiskConfig) -> Result<Encoder, LoadError> {
        let path = self.path(TOKENIZER);
        let enc = Encoder::from_json(&self.tokenizer, cfg.max_len).map_err(|e| LoadError::Tokenizer {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let enc = if cfg.file_name { enc } else { enc.without_file_name() };
        if enc.vocab_size() != cfg.vocab_size {
            return Err(LoadError::Tokenizer {
                path,
                msg: format!(
                    "{} tokens + {N_SPECIAL} markers != vocab_size {} in the config",
                    enc.vocab_size() - N_SPECIAL as usize,
                    cfg.vocab_size
                ),
            });
        }
        Ok(enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn files(weights: Vec<u8>) -> ModelFiles {
        static TOK: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
        let (tok, vocab) = TOK
            .get_or_init(|| {
                let t = crate::tokenize::train_tokenizer((0..20).map(|i| format!("let a{i} = {i};")), 280).unwrap();
                let enc = Encoder::new(t, 32);
                (enc.tokenizer().to_string(false).unwrap().into_bytes(), enc.vocab_size())
            })
            .clone();
        let cfg = super::super::config::tiny(vocab);
        ModelFiles {
            origin: "mem".into(),
            config: serde_json::to_vec(&cfg).unwrap(),
            weights,
            tokenizer: tok,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        // Hostile weights files: any bytes give an error (or, by luck, a model), never a panic.
        #[test]
        fn arbitrary_weights_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = RiskModel::load(&files(bytes), &Device::Cpu);
        }

        #[test]
        fn lying_headers_never_panic(len in any::<u64>(), header in "\\PC{0,200}", tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = len.to_le_bytes().to_vec();
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&tail);
            prop_assert!(RiskModel::load(&files(bytes), &Device::Cpu).is_err());
        }
    }

    use crate::model::RiskModel;
}
