//! Weights files (safetensors header and data), validated against the embedded default
//! model's config: any bytes give an error or tensors, never a panic. The config and the
//! tokenizer are parsed once, so the time goes to the untrusted bytes.
#![no_main]
use deepspark::model::config::RiskConfig;
use deepspark::model::weights::ModelFiles;
use std::sync::OnceLock;

static BASE: OnceLock<Option<(RiskConfig, String)>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((cfg, origin)) = BASE.get_or_init(|| {
        let files = ModelFiles::embedded()?;
        Some((files.parse_config().ok()?, files.origin))
    }) else {
        return;
    };
    let files = ModelFiles {
        origin: origin.clone(),
        config: Vec::new(),
        weights: data.to_vec(),
        tokenizer: Vec::new(),
    };
    let _ = files.tensors(cfg, &candle_core::Device::Cpu);
});
