//! Weights files (safetensors header and data) against the embedded default model's config
//! and tokenizer: any bytes give an error or a model, never a panic.
#![no_main]
use deepspark::model::RiskModel;
use deepspark::model::weights::ModelFiles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(mut files) = ModelFiles::embedded() else {
        return;
    };
    files.weights = data.to_vec();
    let _ = RiskModel::load(&files, &candle_core::Device::Cpu);
});
