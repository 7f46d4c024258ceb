//! A Hugging Face model folder (`config.json`, `tokenizer.json`, `model.safetensors` or its
//! shards) rewritten as a GGUF file in memory, so that one loader (`model/`) checks it, one
//! network code path runs it, and chat, the KV cache and one-pass log-probabilities work as
//! for any GGUF file.
//!
//! `config.json` gives the hyperparameters (llama and qwen2 only; rope scaling, sliding
//! windows, attention biases on llama and activations other than SiLU are refused, since the
//! network would silently compute something else). Every tensor is read through the
//! `safetensors` crate, which checks the header against the file before any tensor is used;
//! only F32, F16 and BF16 are accepted, and pickled weights (`pytorch_model.bin`) are
//! refused. The tensors are renamed to llama.cpp's names and converted to the weight format
//! asked for; llama's query and key rows are permuted the way llama.cpp's converter does,
//! because candle's GGUF llama applies interleaved rotary embeddings where Hugging Face's
//! llama applies half-split ones (Qwen2 uses half-split in both). Shapes are then checked
//! against the hyperparameters by the loader, as for a GGUF file.
//!
//! This module reads the folder; it does not find it (`source.rs`), build the network or
//! read the tokenizer (`model/`).

use super::LmError;
use super::format::WeightFormat;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::safetensors::Load;
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The files of a model folder this module reads.
pub const CONFIG: &str = "config.json";
pub const TOKENIZER: &str = "tokenizer.json";
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
const WEIGHTS: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";
/// Largest JSON file read (configs and indexes are kilobytes; tokenizer configs with
/// long chat templates well under this).
const MAX_JSON: u64 = 16 << 20;

/// Whether `dir` looks like a Hugging Face model folder.
pub fn is_model_dir(dir: &Path) -> bool {
    dir.is_dir() && dir.join(CONFIG).is_file()
}

/// The `config.json` fields this module reads.
#[derive(Debug, Deserialize)]
struct Config {
    model_type: Option<String>,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    vocab_size: usize,
    max_position_embeddings: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    hidden_act: Option<String>,
    head_dim: Option<usize>,
    use_sliding_window: Option<bool>,
    attention_bias: Option<bool>,
    bos_token_id: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
}

fn invalid(what: impl Into<String>) -> LmError {
    LmError::Invalid(what.into())
}

fn unsupported(what: impl Into<String>) -> LmError {
    LmError::Unsupported(what.into())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LmError> {
    let io = |source| LmError::Io {
        path: path.display().to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_JSON {
        return Err(invalid(format!(
            "{} is {size} bytes, more than a JSON file of a model holds",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    serde_json::from_str(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

impl Config {
    fn read(dir: &Path) -> Result<Config, LmError> {
        let config: Config = read_json(&dir.join(CONFIG))?;
        let arch = config.architecture()?;
        if let Some(scaling) = config.rope_scaling.as_ref().filter(|v| !v.is_null()) {
            let kind = scaling
                .get("rope_type")
                .or_else(|| scaling.get("type"))
                .and_then(|t| t.as_str())
                .unwrap_or("unnamed");
            return Err(unsupported(format!("rope scaling (`{kind}`) is not supported")));
        }
        if let Some(act) = config.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(unsupported(format!("activation `{act}` is not supported (silu is)")));
        }
        if config.use_sliding_window == Some(true) {
            return Err(unsupported("sliding-window attention is not supported"));
        }
        if arch == "llama" && config.attention_bias == Some(true) {
            return Err(unsupported("llama models with attention biases are not supported"));
        }
        let heads = config.num_attention_heads;
        if heads == 0 || !config.hidden_size.is_multiple_of(heads) {
            return Err(invalid(format!(
                "{heads} attention heads do not divide the hidden size {}",
                config.hidden_size
            )));
        }
        if let Some(d) = config.head_dim.filter(|&d| d != config.hidden_size / heads) {
            return Err(unsupported(format!(
                "a head dimension ({d}) other than hidden size / heads is not supported"
            )));
        }
        Ok(config)
    }

    fn architecture(&self) -> Result<&'static str, LmError> {
        match self.model_type.as_deref() {
            Some("llama") => Ok("llama"),
            Some("qwen2") => Ok("qwen2"),
            Some(other) => Err(unsupported(format!(
                "model type `{other}` is not supported (llama and qwen2 are)"
            ))),
            None => Err(invalid("config.json has no model_type")),
        }
    }

    fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// GGUF metadata for these hyperparameters; the loader checks them as it checks a file's.
    fn metadata(&self, name: &str) -> Result<Vec<(String, Value)>, LmError> {
        let arch = self.architecture()?;
        let count = |key: &str, v: usize| -> Result<(String, Value), LmError> {
            let v = u32::try_from(v).map_err(|_| invalid(format!("{key} is {v}, too large")))?;
            Ok((format!("{arch}.{key}"), Value::U32(v)))
        };
        let float = |key: &str, v: f64| (format!("{arch}.{key}"), Value::F32(v as f32));
        Ok(vec![
            ("general.architecture".into(), Value::String(arch.into())),
            ("general.name".into(), Value::String(name.into())),
            count("embedding_length", self.hidden_size)?,
            count("feed_forward_length", self.intermediate_size)?,
            count("block_count", self.num_hidden_layers)?,
            count("attention.head_count", self.num_attention_heads)?,
            count("attention.head_count_kv", self.kv_heads())?,
            count("context_length", self.max_position_embeddings.unwrap_or(4096))?,
            count("rope.dimension_count", self.hidden_size / self.num_attention_heads)?,
            float("rope.freq_base", self.rope_theta.unwrap_or(10_000.0)),
            float("attention.layer_norm_rms_epsilon", self.rms_norm_eps.unwrap_or(1e-6)),
        ])
    }
}

/// A token id from `config.json` (a number, or a list whose first entry is one).
fn token_id(v: Option<&serde_json::Value>) -> Option<u32> {
    let v = v?;
    let n = v.as_u64().or_else(|| v.as_array()?.first()?.as_u64())?;
    u32::try_from(n).ok()
}

/// llama.cpp's name for a Hugging Face tensor, `None` for tensors the network does not use.
fn gguf_name(name: &str) -> Result<Option<String>, LmError> {
    let fixed = match name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Ok(Some(f.into()));
    }
    let unknown = || unsupported(format!("tensor `{name}` is not one a llama or qwen2 network reads"));
    let rest = name.strip_prefix("model.layers.").ok_or_else(unknown)?;
    let (layer, part) = rest.split_once('.').ok_or_else(unknown)?;
    let layer: usize = layer.parse().map_err(|_| unknown())?;
    let part = match part {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        "self_attn.rotary_emb.inv_freq" => return Ok(None),
        _ => return Err(unknown()),
    };
    Ok(Some(format!("blk.{layer}.{part}")))
}

/// The safetensors files holding the weights: one file, or the shards an index names.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, LmError> {
    if dir.join(WEIGHTS).is_file() {
        return Ok(vec![dir.join(WEIGHTS)]);
    }
    if dir.join(INDEX).is_file() {
        #[derive(Deserialize)]
        struct Index {
            weight_map: std::collections::BTreeMap<String, String>,
        }
        let index: Index = read_json(&dir.join(INDEX))?;
        let mut files: Vec<&String> = index.weight_map.values().collect();
        files.sort();
        files.dedup();
        return files
            .into_iter()
            .map(|f| {
                let plain = !f.is_empty() && !f.contains(['/', '\\']) && f != "." && f != "..";
                if !plain || !f.ends_with(".safetensors") {
                    return Err(invalid(format!(
                        "{INDEX} names `{f}`, not a safetensors file beside it"
                    )));
                }
                Ok(dir.join(f))
            })
            .collect();
    }
    if dir.join("pytorch_model.bin").exists() || dir.join("pytorch_model.bin.index.json").exists() {
        return Err(unsupported(format!(
            "{} holds pickled PyTorch weights, which can run code when read and are refused; use the model's safetensors files",
            dir.display()
        )));
    }
    Err(invalid(format!("{} has no {WEIGHTS} and no {INDEX}", dir.display())))
}

/// llama.cpp's permutation of a llama query or key matrix (`[heads × head_dim, in]`): each
/// head's rows reordered from half-split to interleaved rotary pairs.
fn permute(t: &Tensor, heads: usize) -> Result<Tensor, LmError> {
    let (out, inner) = t.dims2()?;
    if heads == 0 || out % (2 * heads) != 0 {
        return Err(invalid(format!(
            "a query/key matrix of {out} rows cannot hold {heads} heads"
        )));
    }
    Ok(t.reshape((heads, 2, out / heads / 2, inner))?
        .transpose(1, 2)?
        .reshape((out, inner))?)
}

/// The folder's model as the bytes of a GGUF file, weight matrices in `weights`' format
/// (as stored: F16, BF16 or F32 as the files hold them).
pub fn to_gguf(dir: &Path, weights: WeightFormat) -> Result<Vec<u8>, LmError> {
    let config = Config::read(dir)?;
    let arch = config.architecture()?;
    let name = dir
        .canonicalize()
        .ok()
        .as_deref()
        .and_then(repo_name)
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let mut metadata = config.metadata(&name)?;
    let tokenizer_config: Option<serde_json::Value> = match dir.join(TOKENIZER_CONFIG) {
        p if p.is_file() => Some(read_json(&p)?),
        _ => None,
    };
    if let Some(template) = tokenizer_config
        .as_ref()
        .and_then(|c| c.get("chat_template"))
        .and_then(|t| t.as_str())
    {
        metadata.push(("tokenizer.chat_template".into(), Value::String(template.into())));
    }
    if let Some(id) = token_id(config.bos_token_id.as_ref()) {
        metadata.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(id)));
    }
    if let Some(id) = token_id(config.eos_token_id.as_ref()) {
        metadata.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(id)));
    }
    let cpu = Device::Cpu;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for file in weight_files(dir)? {
        let io = |source| LmError::Io {
            path: file.display().to_string(),
            source,
        };
        let bytes = std::fs::read(&file).map_err(io)?;
        let st =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| invalid(format!("{}: {e}", file.display())))?;
        let mut names: Vec<&str> = st.names();
        names.sort();
        for hf in names {
            let Some(gguf) = gguf_name(hf)? else { continue };
            if tensors.iter().any(|(n, _)| *n == gguf) {
                return Err(invalid(format!("tensor `{hf}` is stored twice")));
            }
            let view = st.tensor(hf).map_err(|e| invalid(format!("{hf}: {e}")))?;
            use safetensors::Dtype::*;
            let stored = match view.dtype() {
                F32 => GgmlDType::F32,
                F16 => GgmlDType::F16,
                BF16 => GgmlDType::BF16,
                other => {
                    return Err(unsupported(format!(
                        "tensor `{hf}` is {other:?}; F32, F16 and BF16 are supported"
                    )));
                }
            };
            let mut t = view.load(&cpu)?.to_dtype(DType::F32)?;
            if arch == "llama" && gguf.ends_with("attn_q.weight") {
                t = permute(&t, config.num_attention_heads)?;
            } else if arch == "llama" && gguf.ends_with("attn_k.weight") {
                t = permute(&t, config.kv_heads())?;
            }
            let dims = t.dims().to_vec();
            let dtype = match (dims.len(), weights) {
                (2, WeightFormat::Q8_0) if dims[1] % GgmlDType::Q8_0.block_size() == 0 => GgmlDType::Q8_0,
                (2, WeightFormat::AsStored | WeightFormat::Auto) => stored,
                _ => GgmlDType::F32,
            };
            tensors.push((gguf, QTensor::quantize(&t, dtype)?));
        }
    }
    let (_, embd) = tensors
        .iter()
        .find(|(n, _)| n == "token_embd.weight")
        .ok_or_else(|| invalid("no model.embed_tokens.weight"))?;
    if embd.shape().dims().first() != Some(&config.vocab_size) {
        return Err(invalid(format!(
            "the embedding has shape {:?}, config.json says {} tokens",
            embd.shape().dims(),
            config.vocab_size
        )));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors)?;
    Ok(out.into_inner())
}

/// `ORG/NAME` for a snapshot of the Hugging Face cache (`…/models--ORG--NAME/snapshots/SHA`).
fn repo_name(dir: &Path) -> Option<String> {
    let snapshots = dir.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let repo = snapshots.parent()?.file_name()?.to_str()?.strip_prefix("models--")?;
    Some(repo.replacen("--", "/", 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::tiny::Tiny;

    #[test]
    fn names_map_to_llama_cpp_and_strangers_are_refused() {
        assert_eq!(
            gguf_name("model.layers.3.self_attn.k_proj.bias").unwrap().as_deref(),
            Some("blk.3.attn_k.bias")
        );
        assert_eq!(gguf_name("model.layers.0.self_attn.rotary_emb.inv_freq").unwrap(), None);
        assert!(gguf_name("model.layers.0.block_sparse_moe.gate.weight").is_err());
        assert!(gguf_name("model.layers.x.mlp.up_proj.weight").is_err());
    }

    #[test]
    fn the_permutation_interleaves_each_heads_halves() {
        // One head of dimension 4, one input: rows [a0 a1 b0 b1] (half-split pairs (a0,b0),
        // (a1,b1)) become [a0 b0 a1 b1].
        let t = Tensor::new(&[[0f32], [1.], [2.], [3.]], &Device::Cpu).unwrap();
        let p = permute(&t, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(p, [0., 2., 1., 3.]);
        assert!(permute(&t, 3).is_err());
    }

    #[test]
    fn unsupported_configs_say_why() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        Tiny::default().write_hf(&dir).unwrap();
        let edit = |key: &str, value: serde_json::Value| {
            let path = dir.join(CONFIG);
            let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            json[key] = value;
            std::fs::write(&path, json.to_string()).unwrap();
        };
        edit(
            "rope_scaling",
            serde_json::json!({"rope_type": "llama3", "factor": 8.0}),
        );
        let e = to_gguf(&dir, WeightFormat::F32).unwrap_err().to_string();
        assert!(e.contains("rope scaling (`llama3`)"), "{e}");
        edit("rope_scaling", serde_json::Value::Null);
        edit("model_type", serde_json::json!("gemma"));
        let e = to_gguf(&dir, WeightFormat::F32).unwrap_err().to_string();
        assert!(e.contains("`gemma` is not supported"), "{e}");
        edit("model_type", serde_json::json!("llama"));
        std::fs::remove_file(dir.join(WEIGHTS)).unwrap();
        std::fs::write(dir.join("pytorch_model.bin"), b"PK\x03\x04").unwrap();
        let e = to_gguf(&dir, WeightFormat::F32).unwrap_err().to_string();
        assert!(e.contains("pickled PyTorch weights"), "{e}");
    }

    #[test]
    fn a_hostile_safetensors_header_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        Tiny::default().write_hf(&dir).unwrap();
        // A header claiming a tensor far past the end of the file.
        let header =
            br#"{"model.embed_tokens.weight":{"dtype":"F32","shape":[1000000,1000],"data_offsets":[0,4000000000]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0; 64]);
        std::fs::write(dir.join(WEIGHTS), bytes).unwrap();
        let e = to_gguf(&dir, WeightFormat::F32).unwrap_err().to_string();
        assert!(e.contains("model.safetensors"), "{e}");
        // An index pointing outside the folder.
        std::fs::remove_file(dir.join(WEIGHTS)).unwrap();
        std::fs::write(
            dir.join(INDEX),
            r#"{"weight_map":{"model.norm.weight":"../secret.safetensors"}}"#,
        )
        .unwrap();
        let e = to_gguf(&dir, WeightFormat::F32).unwrap_err().to_string();
        assert!(e.contains("not a safetensors file beside it"), "{e}");
    }

    #[test]
    fn a_sharded_model_reads_every_shard() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        Tiny::default().write_hf(&dir).unwrap();
        let whole = to_gguf(&dir, WeightFormat::F32).unwrap();
        let bytes = std::fs::read(dir.join(WEIGHTS)).unwrap();
        let all = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut map = serde_json::Map::new();
        for (i, (n, t)) in all.into_iter().enumerate() {
            let shard = if i % 2 == 0 {
                "model-00001-of-00002.safetensors"
            } else {
                "model-00002-of-00002.safetensors"
            };
            map.insert(n.clone(), shard.into());
            if i % 2 == 0 { a.push((n, t)) } else { b.push((n, t)) }
        }
        candle_core::safetensors::save(&a.into_iter().collect(), dir.join("model-00001-of-00002.safetensors")).unwrap();
        candle_core::safetensors::save(&b.into_iter().collect(), dir.join("model-00002-of-00002.safetensors")).unwrap();
        std::fs::remove_file(dir.join(WEIGHTS)).unwrap();
        std::fs::write(dir.join(INDEX), serde_json::json!({ "weight_map": map }).to_string()).unwrap();
        assert_eq!(to_gguf(&dir, WeightFormat::F32).unwrap(), whole);
    }
}
