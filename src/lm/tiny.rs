//! Tiny random language models for tests: a few dimensions, seeded weights, a byte-level
//! vocabulary that encodes any text, and a ChatML template, written as a GGUF file with
//! candle's own GGUF writer or as a Hugging Face folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `tokenizer_config.json`). They prove the mechanics (loading, caching, decoding, log-
//! probabilities, hostile files); what they say is noise. Not used outside tests.

use crate::train::rng::Rng;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::Path;

/// The shape of a tiny model.
#[derive(Debug, Clone)]
pub struct Tiny {
    /// `llama` or `qwen2`.
    pub architecture: &'static str,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub layers: usize,
    pub feed_forward: usize,
    pub context: usize,
    /// Type of the weight matrices.
    pub dtype: GgmlDType,
    pub seed: u64,
}

impl Default for Tiny {
    fn default() -> Self {
        Tiny {
            architecture: "llama",
            embedding: 64,
            heads: 4,
            kv_heads: 2,
            layers: 2,
            feed_forward: 128,
            context: 128,
            dtype: GgmlDType::Q4_1,
            seed: 1,
        }
    }
}

/// The special tokens at the start of the vocabulary.
pub const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

impl Tiny {
    /// The file's metadata and tensors; `edit` may change them before they are written
    /// (tests of hostile files).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        self.write_with(path, |_, _| {})
    }

    pub fn write_with(
        &self,
        path: &Path,
        edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, QTensor)>),
    ) -> anyhow::Result<()> {
        let mut alphabet: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
            .into_iter()
            .collect();
        alphabet.sort();
        let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        tokens.extend(alphabet.iter().map(|c| c.to_string()));
        let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a"];
        for m in merges {
            tokens.push(m.replace(' ', ""));
        }
        let vocab = tokens.len();
        let arch = self.architecture;
        let mut types = vec![Value::I32(3); SPECIALS.len()];
        types.resize(vocab, Value::I32(1));
        let mut metadata: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String(arch.into())),
            ("general.name".into(), Value::String(format!("tiny-{arch}"))),
            (format!("{arch}.embedding_length"), Value::U32(self.embedding as u32)),
            (format!("{arch}.attention.head_count"), Value::U32(self.heads as u32)),
            (
                format!("{arch}.attention.head_count_kv"),
                Value::U32(self.kv_heads as u32),
            ),
            (format!("{arch}.block_count"), Value::U32(self.layers as u32)),
            (
                format!("{arch}.feed_forward_length"),
                Value::U32(self.feed_forward as u32),
            ),
            (format!("{arch}.context_length"), Value::U32(self.context as u32)),
            (
                format!("{arch}.rope.dimension_count"),
                Value::U32((self.embedding / self.heads) as u32),
            ),
            (format!("{arch}.rope.freq_base"), Value::F32(10000.0)),
            (format!("{arch}.attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
            ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
            ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(tokens.into_iter().map(Value::String).collect()),
            ),
            ("tokenizer.ggml.token_type".into(), Value::Array(types)),
            (
                "tokenizer.ggml.merges".into(),
                Value::Array(merges.iter().map(|m| Value::String(m.to_string())).collect()),
            ),
            ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
            (
                "tokenizer.chat_template".into(),
                Value::String("{{'<|im_start|>' + message['role']}}".into()),
            ),
        ];
        let device = Device::Cpu;
        let mut rng = Rng::new(self.seed);
        let mut random = |dims: &[usize], dtype: GgmlDType, scale: f32| -> anyhow::Result<QTensor> {
            let n: usize = dims.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.normal() * scale).collect();
            Ok(QTensor::quantize(&Tensor::from_vec(values, dims, &device)?, dtype)?)
        };
        let ones = |n: usize| -> anyhow::Result<QTensor> {
            Ok(QTensor::quantize(
                &Tensor::ones(n, candle_core::DType::F32, &device)?,
                GgmlDType::F32,
            )?)
        };
        let (e, ff) = (self.embedding, self.feed_forward);
        let kv = e / self.heads * self.kv_heads;
        let mut tensors: Vec<(String, QTensor)> = vec![
            ("token_embd.weight".into(), random(&[vocab, e], GgmlDType::Q8_0, 0.5)?),
            ("output_norm.weight".into(), ones(e)?),
        ];
        for i in 0..self.layers {
            let p = format!("blk.{i}");
            let d = self.dtype;
            tensors.push((format!("{p}.attn_norm.weight"), ones(e)?));
            tensors.push((format!("{p}.ffn_norm.weight"), ones(e)?));
            tensors.push((format!("{p}.attn_q.weight"), random(&[e, e], d, 0.2)?));
            tensors.push((format!("{p}.attn_k.weight"), random(&[kv, e], d, 0.2)?));
            tensors.push((format!("{p}.attn_v.weight"), random(&[kv, e], d, 0.2)?));
            tensors.push((format!("{p}.attn_output.weight"), random(&[e, e], d, 0.2)?));
            tensors.push((format!("{p}.ffn_gate.weight"), random(&[ff, e], d, 0.2)?));
            tensors.push((format!("{p}.ffn_up.weight"), random(&[ff, e], d, 0.2)?));
            tensors.push((format!("{p}.ffn_down.weight"), random(&[e, ff], d, 0.2)?));
            if arch == "qwen2" {
                tensors.push((format!("{p}.attn_q.bias"), random(&[e], GgmlDType::F32, 0.1)?));
                tensors.push((format!("{p}.attn_k.bias"), random(&[kv], GgmlDType::F32, 0.1)?));
                tensors.push((format!("{p}.attn_v.bias"), random(&[kv], GgmlDType::F32, 0.1)?));
            }
        }
        edit(&mut metadata, &mut tensors);
        let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        gguf_file::write(&mut file, &metadata, &tensors)?;
        std::io::Write::flush(&mut file)?;
        Ok(())
    }

    /// The same shape as a Hugging Face model folder in `dir` (created): its own seeded
    /// weights under Hugging Face's names (llama unpermuted; the output layer its own for
    /// llama, tied to the embedding for qwen2), the GGUF file's vocabulary as `tokenizer.json`.
    pub fn write_hf(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let gguf = dir.join(".vocabulary.gguf");
        self.write(&gguf)?;
        let content = {
            let mut f = std::fs::File::open(&gguf)?;
            gguf_file::Content::read(&mut f)?
        };
        std::fs::remove_file(&gguf)?;
        let tokenizer = super::tokenizer::LmTokenizer::from_gguf(&content)?;
        tokenizer.save(&dir.join("tokenizer.json"))?;
        let vocab = tokenizer.vocab_size();
        let arch = self.architecture;
        let tied = arch == "qwen2";
        let config = serde_json::json!({
            "model_type": arch,
            "architectures": [if tied { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" }],
            "hidden_size": self.embedding,
            "intermediate_size": self.feed_forward,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "vocab_size": vocab,
            "max_position_embeddings": self.context,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_scaling": null,
            "hidden_act": "silu",
            "tie_word_embeddings": tied,
            "use_sliding_window": false,
            "sliding_window": self.context,
            "max_window_layers": self.layers,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "torch_dtype": "float32",
        });
        std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config)?)?;
        let template = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        std::fs::write(
            dir.join("tokenizer_config.json"),
            serde_json::json!({ "chat_template": template }).to_string(),
        )?;
        let device = Device::Cpu;
        let mut rng = Rng::new(self.seed.wrapping_add(1000));
        let mut random = |dims: &[usize], scale: f32| -> anyhow::Result<Tensor> {
            let n: usize = dims.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.normal() * scale).collect();
            Ok(Tensor::from_vec(values, dims, &device)?)
        };
        let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &device);
        let (e, ff) = (self.embedding, self.feed_forward);
        let kv = e / self.heads * self.kv_heads;
        let mut tensors: std::collections::HashMap<String, Tensor> = std::collections::HashMap::new();
        tensors.insert("model.embed_tokens.weight".into(), random(&[vocab, e], 0.5)?);
        tensors.insert("model.norm.weight".into(), ones(e)?);
        if !tied {
            tensors.insert("lm_head.weight".into(), random(&[vocab, e], 0.5)?);
        }
        for i in 0..self.layers {
            let p = format!("model.layers.{i}");
            tensors.insert(format!("{p}.input_layernorm.weight"), ones(e)?);
            tensors.insert(format!("{p}.post_attention_layernorm.weight"), ones(e)?);
            tensors.insert(format!("{p}.self_attn.q_proj.weight"), random(&[e, e], 0.2)?);
            tensors.insert(format!("{p}.self_attn.k_proj.weight"), random(&[kv, e], 0.2)?);
            tensors.insert(format!("{p}.self_attn.v_proj.weight"), random(&[kv, e], 0.2)?);
            tensors.insert(format!("{p}.self_attn.o_proj.weight"), random(&[e, e], 0.2)?);
            tensors.insert(format!("{p}.mlp.gate_proj.weight"), random(&[ff, e], 0.2)?);
            tensors.insert(format!("{p}.mlp.up_proj.weight"), random(&[ff, e], 0.2)?);
            tensors.insert(format!("{p}.mlp.down_proj.weight"), random(&[e, ff], 0.2)?);
            if tied {
                tensors.insert(format!("{p}.self_attn.q_proj.bias"), random(&[e], 0.1)?);
                tensors.insert(format!("{p}.self_attn.k_proj.bias"), random(&[kv], 0.1)?);
                tensors.insert(format!("{p}.self_attn.v_proj.bias"), random(&[kv], 0.1)?);
            }
        }
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
        Ok(())
    }
}
