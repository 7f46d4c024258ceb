//! The CPU network that chat decodes with and `logprobs` scores with: the llama and Qwen2 blocks
//! of candle-transformers 0.11.1 (`quantized_llama`, `quantized_qwen2`), computed in place. A
//! decode step of a small model is about 200 small matrix-vector products; through candle's
//! tensors each costs an allocation and a dispatch, and candle has no SIMD dot product for Q4_1,
//! the type small GGUF files ship in. Here the weights stay the file's blocks (Q4_0, Q4_1 and
//! Q8_0; the K-quants Q4_K, Q5_K and Q6_K of `Q4_K_M`/`Q5_K_M` files; F16 and F32; any other
//! type is requantised to Q8_0 at load, and the model's description says so), the activations
//! are quantised as llama.cpp does (to 8 bits with their scale, per 32 values with their sum
//! for the 32-value types, per 256 with the sums of each 16 for the K-quants), the dot products
//! use AVX2 (checked at run time), matrices that read the same input are stacked into one, the
//! keys and values grow in place (as f16 for quantised weights, as llama.cpp holds them), and a
//! long prompt's attention goes through candle's matrix products.
//!
//! It computes what those networks compute: RMS norm, interleaved rotary embeddings for llama
//! and half-split ones for Qwen2, Qwen2's query/key/value biases, grouped-query attention, the
//! token embedding as output layer when the file has no `output.weight` (tests compare its logits
//! with candle-transformers'). It returns the logits after the last token, or after each (for
//! scoring a text); it does not check the file (`model/checks.rs` has, before it is built), and runs
//! nowhere but an x86-64 CPU with AVX2: CUDA, Metal and other CPUs keep candle-transformers'
//! networks (its plain-Rust kernels are the reference the SIMD ones are tested against, not a
//! fast path).
//!
//! Where each part is: `blocks.rs` the quantised block types (their layouts) and the weight
//! matrix; `kernels.rs` which kernel runs (AVX2 or plain) and the activations' quantisation;
//! `scalar.rs` the plain-Rust dot products (the reference); `x86/` the AVX2 ones (`x86/mod.rs`:
//! the Q4_0/Q4_1 dot product is `x86::q4` and `x86::q4x4`, and `x86::q4_tile` on the Q4_0 tiles
//! `blocks::Matrix::tile` makes of them at load, eight rows interleaved (`tiles.rs` their
//! layouts, Q4_K's and Q6_K's too); Q8_0, f16, f32;
//! `x86/kquants.rs`: Q4_K, Q5_K, Q6_K, and `q4k_tile`, `q6k_tile` on their tiles); `matmul.rs`
//! the matrix product and its threads (`team.rs` the threads of one token's products);
//! `weights.rs` the layers' weights read from the file; `forward.rs` a pass through the
//! layers; `attention.rs` the rotary angles and causal attention, `cache.rs` the keys and values
//! it reads. `tests.rs` holds the network to candle-transformers', `kquant_tests.rs` the K-quant
//! kernels to candle's dequantisation.

mod attention;
mod blocks;
mod cache;
mod forward;
mod kernels;
mod matmul;
mod scalar;
mod team;
mod tiles;
mod weights;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod kquant_tests;
#[cfg(test)]
mod tests;

pub use kernels::has_kernels;
#[cfg(test)]
pub use kernels::without_kernels;

use std::sync::Arc;
use weights::Weights;

/// The network with its keys and values: cloning it shares the weights and copies the cache.
#[derive(Clone)]
pub struct CpuNet {
    w: Arc<Weights>,
    /// Per layer, `[tokens, kv_heads, head_dim]` after the rotary embedding (`cache.rs`).
    keys: Vec<cache::Cache>,
    values: Vec<cache::Cache>,
    len: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
    /// The same number of threads for the products of one token (`team.rs`), for a network
    /// whose products are long enough (`team::MIN_BYTES`); else the pool takes them too.
    team: Option<Arc<team::Team>>,
}

/// What the network is built from (checked by `model/checks.rs` before).
pub struct Shape<'a> {
    pub architecture: &'a str,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub layers: usize,
    pub context: usize,
}
