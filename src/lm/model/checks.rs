//! The checks a model passes before its network is built: the architecture (llama or qwen2, no
//! mixture of experts, no partial rotary embeddings), its hyperparameters within sane bounds,
//! and every tensor the network reads present with the shape they give it ([`Hyper`]). The
//! GGUF header itself is checked before this, by `gguf.rs`; nothing here reads a tensor.

use crate::lm::LmError;
use crate::lm::gguf::Header;
use candle_core::quantized::gguf_file;
use candle_transformers::models::quantized_llama;

/// The hyperparameters the network is built from, checked before it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hyper {
    pub architecture: String,
    pub vocab: usize,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub layers: usize,
    pub feed_forward: usize,
    /// Tokens of context the network is run with.
    pub context: usize,
}

impl Hyper {
    pub(super) fn read(content: &gguf_file::Content, header: &Header) -> Result<Hyper, LmError> {
        let architecture = header
            .architecture
            .clone()
            .ok_or_else(|| invalid("no general.architecture"))?;
        if !matches!(architecture.as_str(), "llama" | "qwen2") {
            return Err(LmError::Unsupported(format!(
                "architecture `{architecture}` is not supported (llama and qwen2 are)"
            )));
        }
        let get = |key: &str| -> Result<usize, LmError> {
            let full = format!("{architecture}.{key}");
            let value = content
                .metadata
                .get(&full)
                .ok_or_else(|| invalid(format!("no {full}")))?;
            let value = value.to_u64().or_else(|_| value.to_u32().map(u64::from));
            value
                .ok()
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| invalid(format!("{full} is not a count")))
        };
        let embedding = get("embedding_length")?;
        let heads = get("attention.head_count")?;
        let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
        let layers = get("block_count")?;
        let declared_context = get("context_length")?;
        if let Ok(experts) = get("expert_count")
            && experts > 1
        {
            return Err(LmError::Unsupported(
                "mixture-of-experts models are not supported".into(),
            ));
        }
        let sane = |name: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(invalid(format!("{name} is {v} (1 to {max} allowed)")))
            } else {
                Ok(())
            }
        };
        sane("embedding_length", embedding, 1 << 16)?;
        sane("attention.head_count", heads, 1024)?;
        sane("attention.head_count_kv", kv_heads, heads)?;
        sane("block_count", layers, 1024)?;
        sane("context_length", declared_context, 1 << 18)?;
        if embedding % heads != 0 || heads % kv_heads != 0 {
            return Err(invalid(format!(
                "{heads} heads ({kv_heads} for keys and values) do not divide the embedding of {embedding}"
            )));
        }
        let head_dim = embedding / heads;
        if head_dim % 2 != 0 {
            return Err(invalid(format!("head dimension {head_dim} is odd")));
        }
        if architecture == "llama" && get("rope.dimension_count").unwrap_or(head_dim) != head_dim {
            return Err(LmError::Unsupported(
                "partial rotary embeddings are not supported".into(),
            ));
        }
        // candle's llama precomputes rotary tables for 4096 positions; its Qwen2 for the
        // declared context, which is capped here so a file cannot ask for a huge table.
        let context = match architecture.as_str() {
            "llama" => declared_context.min(quantized_llama::MAX_SEQ_LEN),
            _ => declared_context.min(1 << 17),
        };
        let token_embd = header
            .tensor("token_embd.weight")
            .ok_or_else(|| invalid("no token_embd.weight"))?;
        let vocab = token_embd.dims.get(1).copied().unwrap_or(0) as usize;
        let feed_forward = header
            .tensor("blk.0.ffn_gate.weight")
            .and_then(|t| t.dims.get(1))
            .copied()
            .unwrap_or(0) as usize;
        let hyper = Hyper {
            architecture,
            vocab,
            embedding,
            heads,
            kv_heads,
            layers,
            feed_forward,
            context,
        };
        hyper.check_tensors(header)?;
        Ok(hyper)
    }

    /// Every tensor the network reads exists with the shape the hyperparameters give it.
    fn check_tensors(&self, header: &Header) -> Result<(), LmError> {
        let (e, kv, ff, v) = (
            self.embedding as u64,
            (self.embedding / self.heads * self.kv_heads) as u64,
            self.feed_forward as u64,
            self.vocab as u64,
        );
        let expect = |name: &str, dims: &[u64], required: bool| -> Result<(), LmError> {
            match header.tensor(name) {
                Some(t) if t.dims == dims => Ok(()),
                Some(t) => Err(invalid(format!(
                    "tensor `{name}` has shape {:?}, expected {dims:?}",
                    t.dims
                ))),
                None if required => Err(invalid(format!("tensor `{name}` is missing"))),
                None => Ok(()),
            }
        };
        expect("token_embd.weight", &[e, v], true)?;
        expect("output_norm.weight", &[e], true)?;
        expect("output.weight", &[e, v], false)?;
        for i in 0..self.layers {
            let p = format!("blk.{i}");
            expect(&format!("{p}.attn_norm.weight"), &[e], true)?;
            expect(&format!("{p}.ffn_norm.weight"), &[e], true)?;
            expect(&format!("{p}.attn_q.weight"), &[e, e], true)?;
            expect(&format!("{p}.attn_k.weight"), &[e, kv], true)?;
            expect(&format!("{p}.attn_v.weight"), &[e, kv], true)?;
            expect(&format!("{p}.attn_output.weight"), &[e, e], true)?;
            expect(&format!("{p}.ffn_gate.weight"), &[e, ff], true)?;
            expect(&format!("{p}.ffn_up.weight"), &[e, ff], true)?;
            expect(&format!("{p}.ffn_down.weight"), &[ff, e], true)?;
            let qwen = self.architecture == "qwen2";
            expect(&format!("{p}.attn_q.bias"), &[e], qwen)?;
            expect(&format!("{p}.attn_k.bias"), &[kv], qwen)?;
            expect(&format!("{p}.attn_v.bias"), &[kv], qwen)?;
        }
        Ok(())
    }
}

pub(super) fn invalid(what: impl Into<String>) -> LmError {
    LmError::Invalid(what.into())
}
