//! `.deepspark.toml` and the model's `config.json`: parsing and validation never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = deepspark::config::Config::parse(&text);
    if let Ok(cfg) = serde_json::from_str::<deepspark::model::config::RiskConfig>(&text) {
        let _ = cfg.validate();
    }
});
