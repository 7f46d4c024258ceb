//! Inputs for the PyTorch comparison (`benches/torch_compare.py`): encodes 256 synthetic
//! hunks with the embedded default model, scores them with candle in length-sorted batches of
//! 32 (as `review` does), times that, and writes ids, features, candle's logits and the timing
//! as JSON to the path in `DEEPSPARK_TORCH_INPUTS` (default `target/torch_inputs.json`).
//! Run: `cargo bench --bench torch_inputs` (the Python script does it for you).

use deepspark::diff::Hunk;
use deepspark::model::weights::ModelFiles;
use deepspark::model::{RiskModel, ScoreInput};
use deepspark::tokenize::ChangeStats;
use std::time::Instant;

fn hunks(n: usize) -> Vec<Hunk> {
    (0..n)
        .map(|i| {
            // Lengths from a few tokens to well past max_len, so batches pad like real ones.
            let lines = 1 + (i * 7) % 40;
            let body: String = (0..lines)
                .map(|k| match (i + k) % 4 {
                    0 => format!("-    let total_{k} = items.iter().map(|x| x.size).sum::<usize>();\n"),
                    1 => format!("+    if count_{k} > limit {{ return Err(Error::TooMany({k})); }}\n"),
                    2 => format!("+    buffer[{i} + {k}] = compute(value_{k}, {i}).unwrap();\n"),
                    _ => format!("     // keep {k}\n"),
                })
                .collect();
            let old = body.lines().filter(|l| !l.starts_with('+')).count();
            let new = body.lines().filter(|l| !l.starts_with('-')).count();
            Hunk::parse(&format!("@@ -1,{old} +1,{new} @@"), &body).expect("synthetic hunk parses")
        })
        .collect()
}

fn main() {
    deepspark::model::kernels::tune_allocator();
    let files = ModelFiles::embedded().expect("needs the embedded model in weights/");
    let model = RiskModel::load(&files, &candle_core::Device::Cpu).expect("the embedded model loads");
    let hs = hunks(256);
    let change = ChangeStats {
        hunks: hs.len(),
        added: hs.iter().map(Hunk::added).sum(),
        files: 16,
    };
    let inputs: Vec<ScoreInput> = hs
        .iter()
        .enumerate()
        .map(|(i, h)| ScoreInput {
            path: if i % 3 == 0 { "src/lib.rs" } else { "src/parse.rs" },
            hunk: h,
            change,
        })
        .collect();
    let encoded = model.encode(&inputs).expect("encodes");
    let mut times = Vec::new();
    let mut logits = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        logits = model.forward_encoded(&encoded).expect("forward");
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let tokens: usize = encoded.iter().map(|e| e.ids.len()).sum();
    println!(
        "candle: {} hunks ({} tokens) in {:.1} ms (median of 7): {:.0} hunks/s, threads: {}",
        encoded.len(),
        tokens,
        median * 1e3,
        encoded.len() as f64 / median,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into())
    );
    let doc = serde_json::json!({
        "config": model.config,
        "ids": encoded.iter().map(|e| e.ids.clone()).collect::<Vec<_>>(),
        "features": encoded.iter().map(|e| e.features.to_vec()).collect::<Vec<_>>(),
        "candle_logits": logits.iter().map(|l| l.0).collect::<Vec<_>>(),
        "candle_seconds": median,
        "batch": deepspark::model::BATCH,
    });
    let out = std::env::var("DEEPSPARK_TORCH_INPUTS").unwrap_or_else(|_| "target/torch_inputs.json".into());
    std::fs::write(&out, serde_json::to_string(&doc).expect("serialises")).expect("writes the inputs");
    println!("wrote {out}");
}
