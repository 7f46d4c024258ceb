//! Model loading: hostile or broken weights give a clear error naming the file, exit 2.

use crate::common::*;
use predicates::str::contains;
use std::path::Path;

fn copy_model(to: &Path) {
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(tiny_model().join(f), to.join(f)).unwrap();
    }
}

fn review_with(model: &Path) -> assert_cmd::assert::Assert {
    let r = two_commits();
    r.cmd().args(["review", "HEAD~1"]).arg("--model").arg(model).assert()
}

#[test]
fn truncated_weights() {
    let d = tempfile::tempdir().unwrap();
    copy_model(d.path());
    let w = std::fs::read(d.path().join("model.safetensors")).unwrap();
    std::fs::write(d.path().join("model.safetensors"), &w[..w.len() / 2]).unwrap();
    review_with(d.path()).code(2).stderr(contains("model.safetensors"));
}

#[test]
fn lying_safetensors_headers() {
    let d = tempfile::tempdir().unwrap();
    copy_model(d.path());
    let path = d.path().join("model.safetensors");
    // Header length far beyond the file.
    let mut w = std::fs::read(&path).unwrap();
    w[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&path, &w).unwrap();
    review_with(d.path()).code(2).stderr(contains("model.safetensors"));
    // Offsets out of range.
    let header = r#"{"tok.weight":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4000000]}}"#;
    let mut w = (header.len() as u64).to_le_bytes().to_vec();
    w.extend_from_slice(header.as_bytes());
    w.extend_from_slice(&[0u8; 4]);
    std::fs::write(&path, &w).unwrap();
    review_with(d.path()).code(2).stderr(contains("model.safetensors"));
    // Garbage.
    std::fs::write(&path, b"not a model").unwrap();
    review_with(d.path()).code(2).stderr(contains("model.safetensors"));
}

#[test]
fn wrong_shapes_and_absurd_configs_are_refused() {
    let d = tempfile::tempdir().unwrap();
    copy_model(d.path());
    let cfg_path = d.path().join("config.json");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    let mut wrong = cfg.clone();
    wrong["d_ff"] = 48.into();
    std::fs::write(&cfg_path, wrong.to_string()).unwrap();
    review_with(d.path()).code(2).stderr(contains("shape"));
    let mut absurd = cfg.clone();
    absurd["d_model"] = 1_000_000_000u64.into();
    std::fs::write(&cfg_path, absurd.to_string()).unwrap();
    review_with(d.path())
        .code(2)
        .stderr(contains("config.json").and(contains("out of range")));
    let mut unknown = cfg;
    unknown["surprise"] = 1.into();
    std::fs::write(&cfg_path, unknown.to_string()).unwrap();
    review_with(d.path()).code(2).stderr(contains("surprise"));
}

#[test]
fn pickle_files_are_refused_and_missing_dirs_named() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("pytorch_model.bin"), b"\x80\x02pickle").unwrap();
    review_with(d.path()).code(2).stderr(contains("pickle"));
    review_with(Path::new("/no/such/model"))
        .code(2)
        .stderr(contains("/no/such/model"));
}

use predicates::prelude::*;

#[test]
fn the_embedded_default_model_loads_and_reviews() {
    // The real loading code on the shipped weights/: no --model, no DEEPSPARK_MODEL.
    let r = two_commits();
    let out = r
        .cmd()
        .env_remove("DEEPSPARK_MODEL")
        .args(["review", "HEAD~1", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    assert!(v["model"].as_str().unwrap().contains("embedded default model"));
    let risk = v["files"][0]["hunks"][0]["risk"].as_f64().unwrap();
    assert!(risk > 0.0 && risk < 1.0);
    let p = v["p_clean"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1.0);
}

#[test]
fn embedded_model_matches_its_files_in_weights() {
    // The same weights loaded from the directory give the same scores as the embedded copy.
    let r = two_commits();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    let a = r
        .cmd()
        .env_remove("DEEPSPARK_MODEL")
        .args(["review", "HEAD~1", "--format", "json"])
        .output()
        .unwrap();
    let b = r
        .cmd()
        .args(["review", "HEAD~1", "--format", "json", "--model"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(json_of(&a)["files"], json_of(&b)["files"]);
}

#[test]
fn candle_matches_the_pytorch_reference() {
    // The embedded default model scores 16 hunks as an independent PyTorch implementation
    // of the same network did on the same weights (tests/fixtures/README.md).
    use deepspark::model::weights::ModelFiles;
    use deepspark::model::{RiskModel, forward_batched};
    use deepspark::tokenize::{Encoded, N_FEATURES, NO_LINE};
    let reference: serde_json::Value = serde_json::from_str(include_str!("../fixtures/torch_reference.json")).unwrap();
    let files = ModelFiles::embedded().expect("the default model is embedded");
    let model = RiskModel::load(&files, &candle_core::Device::Cpu).unwrap();
    let encoded: Vec<Encoded> = reference["ids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["features"].as_array().unwrap())
        .map(|(ids, f)| {
            let ids: Vec<u32> = serde_json::from_value(ids.clone()).unwrap();
            let f: Vec<f32> = serde_json::from_value(f.clone()).unwrap();
            let mut features = [0f32; N_FEATURES];
            features.copy_from_slice(&f);
            Encoded {
                line: vec![NO_LINE; ids.len()],
                ids,
                features,
            }
        })
        .collect();
    let refs: Vec<&Encoded> = encoded.iter().collect();
    let ours = forward_batched(&model.net, model.config.n_features, &refs, &candle_core::Device::Cpu).unwrap();
    let theirs: Vec<f32> = serde_json::from_value(reference["logits"].clone()).unwrap();
    assert_eq!(ours.len(), theirs.len());
    for (i, ((logit, _), t)) in ours.iter().zip(&theirs).enumerate() {
        assert!((logit - t).abs() < 1e-4, "hunk {i}: candle {logit}, PyTorch {t}");
    }
}
