//! How a model's weight matrices are held in memory ([`WeightFormat`]), chosen with `--weights`:
//! the one type both the Hugging Face rewriter (`hf.rs`) and the loader (`model/`) read, kept
//! apart so that neither imports the other for it. It converts nothing itself.

use super::cpu;
use candle_core::Device;

/// How weight matrices are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WeightFormat {
    /// As stored on x86-64 CPUs with AVX2, FMA and F16C (deepspark's own kernels) and on GPUs;
    /// Q8_0 on other CPUs, where candle computes and is fastest with it.
    #[default]
    Auto,
    /// As the file stores them (on a CPU with deepspark's kernels, for Q4_0, Q4_1, Q8_0, Q4_K,
    /// Q5_K, Q6_K, f16 and f32; other block types are requantised to Q8_0, as the model's
    /// description says).
    AsStored,
    /// Requantised to Q8_0 at load; 8.5 bits a weight.
    #[value(name = "q8_0")]
    Q8_0,
    /// Dequantised to f32 at load: fastest prefill, four bytes a weight.
    F32,
}

impl WeightFormat {
    /// The format `Auto` stands for on `device`; any other is itself.
    pub fn resolve(self, device: &Device) -> WeightFormat {
        match self {
            WeightFormat::Auto if device.is_cpu() && !cpu::has_kernels() => WeightFormat::Q8_0,
            WeightFormat::Auto => WeightFormat::AsStored,
            other => other,
        }
    }
}
