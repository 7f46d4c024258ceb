use super::language_model::CHUNK;
use super::load::{candle_net, convert, read_stored};
use super::*;
use crate::lm::cpu;
use crate::lm::decode::log_softmax;
use crate::lm::net::Cache;
use crate::lm::tiny::Tiny;
use crate::lm::{ChatRequest, LanguageModel, StopReason};
use crate::lm::{Message, Sampling};
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use gguf_file::Value;
use std::io::Cursor;

fn load(tiny: &Tiny, weights: WeightFormat) -> (tempfile::TempDir, GgufModel) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    tiny.write(&path).unwrap();
    let model = GgufModel::load(
        &path,
        &LoadOptions {
            weights,
            device: Device::Cpu,
        },
    )
    .unwrap();
    (dir, model)
}

fn load_err(edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, QTensor)>)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    Tiny::default().write_with(&path, edit).unwrap();
    match GgufModel::load(&path, &LoadOptions::default()) {
        Ok(_) => panic!("loaded a bad model"),
        Err(e) => e.to_string(),
    }
}

fn set(metadata: &mut [(String, Value)], key: &str, value: Value) {
    metadata
        .iter_mut()
        .find(|(k, _)| k == key)
        .expect("key written by Tiny")
        .1 = value;
}

#[test]
fn greedy_is_repeatable_and_keeps_the_budget() {
    for arch in ["llama", "qwen2"] {
        let (_dir, mut model) = load(
            &Tiny {
                architecture: arch,
                ..Tiny::default()
            },
            WeightFormat::AsStored,
        );
        assert!(model.describe().contains(arch), "{}", model.describe());
        let request = ChatRequest::user("the cat in a hat", 6);
        let first = model.chat(&request).unwrap();
        let second = model.chat(&request).unwrap();
        assert_eq!(first.outcome(), second.outcome(), "{arch}");
        assert!(first.tokens <= 6 && first.prompt_tokens > 5, "{first:?}");
        assert!(
            first.stop == StopReason::Budget || first.stop == StopReason::EndOfText,
            "{first:?}"
        );
    }
}

#[test]
fn the_load_says_which_types_have_no_kernel() {
    // Q5_0 has none: held as Q8_0, and the description says so once; K-quants have theirs.
    let (_a, q5) = load(
        &Tiny {
            dtype: GgmlDType::Q5_0,
            ..Tiny::default()
        },
        WeightFormat::Auto,
    );
    let (_b, k) = load(
        &Tiny {
            dtype: GgmlDType::Q4K,
            embedding: 256,
            feed_forward: 512,
            ..Tiny::default()
        },
        WeightFormat::Auto,
    );
    if cpu::has_kernels() {
        let said = ", requantised for want of a kernel: Q5_0 as Q8_0, ";
        assert!(q5.describe().contains(said), "{}", q5.describe());
        assert!(!k.describe().contains("requantised"), "{}", k.describe());
    }
}

#[test]
fn without_the_cpu_kernels_candle_computes_and_auto_means_q8_0() {
    // What an Arm machine gets: candle-transformers' network with Q8_0 weights, chat and
    // one-pass log-probabilities (through `net.rs`) close to deepspark's own network.
    let tiny = Tiny::default();
    let (_a, mut ours) = load(&tiny, WeightFormat::Q8_0);
    let (_b, mut theirs) = cpu::without_kernels(|| load(&tiny, WeightFormat::Auto));
    assert!(matches!(theirs.net, Net::Llama(_)) && matches!(ours.net, Net::Cpu(_)));
    assert!(theirs.describe().contains("run as Q8_0"), "{}", theirs.describe());
    let request = ChatRequest::user("the cat in a hat", 6);
    let answer = theirs.chat(&request).unwrap();
    assert!(answer.tokens <= 6, "{answer:?}");
    let (a, b) = (
        ours.logprobs("in the", " hat").unwrap(),
        theirs.logprobs("in the", " hat").unwrap(),
    );
    assert!(
        theirs.decoder.is_some() && ours.decoder.is_none(),
        "only candle's path builds the decoder"
    );
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        // Both round activations to 8 bits, each on its own side of some steps (see cpu/).
        let near = (a.logprob - b.logprob).abs() < 0.02 * a.logprob.abs() + 0.05;
        assert!(a.id == b.id && near, "{a:?} vs {b:?}");
    }
    let (_c, ours) = load(&tiny, WeightFormat::Auto);
    assert!(!ours.describe().contains("run as"), "{}", ours.describe());
}

#[test]
fn seeded_sampling_is_repeatable() {
    let (_dir, mut model) = load(&Tiny::default(), WeightFormat::AsStored);
    let mut request = ChatRequest::user("in the", 12);
    request.sampling = Sampling::Random {
        temperature: 1.5,
        top_p: 1.0,
        seed: 3,
    };
    let a = model.chat(&request).unwrap();
    let b = model.chat(&request).unwrap();
    assert_eq!(a.text, b.text);
    request.sampling = Sampling::Greedy;
    request.messages.push(Message::assistant("x"));
    assert!(model.chat(&request).is_ok());
}

#[test]
fn generation_stops_when_the_context_is_full() {
    let (_dir, mut model) = load(
        &Tiny {
            context: 40,
            ..Tiny::default()
        },
        WeightFormat::AsStored,
    );
    let mut request = ChatRequest::user("hi", 1000);
    request.sampling = Sampling::Random {
        temperature: 0.5,
        top_p: 1.0,
        seed: 1,
    };
    // Forbid the end of turn by making it a stop string nobody generates first.
    let done = model.chat(&request).unwrap();
    assert!(done.prompt_tokens + done.tokens <= 41, "{done:?}");
    assert!(
        matches!(done.stop, StopReason::ContextFull | StopReason::EndOfText),
        "{done:?}"
    );
    let long = "word ".repeat(100);
    assert!(matches!(
        model.chat(&ChatRequest::user(long, 1)),
        Err(LmError::TooLong { .. })
    ));
}

#[test]
fn logprobs_with_the_cache_equal_a_fresh_pass_per_token() {
    for arch in ["llama", "qwen2"] {
        let (_dir, mut model) = load(
            &Tiny {
                architecture: arch,
                ..Tiny::default()
            },
            WeightFormat::AsStored,
        );
        let (context, text) = ("in the hat ", "the cat in");
        let cached = model.logprobs(context, text).unwrap();
        let again = model.logprobs(context, text).unwrap();
        assert_eq!(cached, again, "{arch}: a reused context gives the same numbers");
        let context_ids = model.tokenizer.encode(context).unwrap();
        let text_ids = model.tokenizer.encode(text).unwrap();
        assert_eq!(cached.iter().map(|t| t.id).collect::<Vec<_>>(), text_ids);
        for (i, t) in cached.iter().enumerate() {
            let mut prefix = context_ids.clone();
            prefix.extend_from_slice(&text_ids[..i]);
            model.cached.clear();
            let fresh = log_softmax(&model.logits_after(&prefix).unwrap())[t.id as usize];
            assert!(t.logprob <= 0.0);
            assert!(
                (t.logprob - fresh).abs() < 2e-3,
                "{arch} token {i}: {} vs {fresh}",
                t.logprob
            );
        }
    }
}

/// The one-pass decoder's logits at every position of `ids`, from an empty cache.
fn one_pass(model: &mut GgufModel, ids: &[u32]) -> Vec<Vec<f32>> {
    model
        .decoder()
        .unwrap()
        .forward(ids, &mut Cache::default())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
}

#[test]
fn one_pass_gives_the_logits_of_candle_step_by_step() {
    // The decoder `logprobs` reads with off the CPU computes what candle-transformers'
    // networks do, at every position, for both architectures and every way of holding the
    // weights.
    for architecture in ["llama", "qwen2"] {
        for weights in [WeightFormat::AsStored, WeightFormat::Q8_0, WeightFormat::F32] {
            let (_dir, mut model) = load(
                &Tiny {
                    architecture,
                    ..Tiny::default()
                },
                weights,
            );
            let ids = model.tokenizer.encode("in the hat the cat in a hat").unwrap();
            let one_pass = one_pass(&mut model, &ids);
            assert_eq!(one_pass.len(), ids.len());
            let (_, content, mut reader) = read_stored(&model.stored).unwrap();
            let mut net = match weights {
                WeightFormat::AsStored => candle_net(&model.hyper, content, &mut reader, &Device::Cpu),
                target => {
                    let mut memory = Cursor::new(convert(&content, &mut reader, target).unwrap());
                    let content = gguf_file::Content::read(&mut memory).unwrap();
                    candle_net(&model.hyper, content, &mut memory, &Device::Cpu)
                }
            }
            .unwrap();
            for (i, row) in one_pass.iter().enumerate() {
                let step = net.forward(&ids[i..i + 1], i, &Device::Cpu).unwrap();
                let worst = row.iter().zip(&step).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst < 2e-3, "{architecture} {weights:?} position {i}: {worst}");
            }
        }
    }
}

#[test]
fn a_hugging_face_folder_computes_what_candle_transformers_safetensors_networks_do() {
    // The folder rewritten as GGUF (names mapped, llama's query and key rows permuted for
    // interleaved rotary embeddings) gives the logits candle-transformers' own llama and
    // Qwen2, reading the safetensors directly, give: after a step, and at every position
    // of the one-pass decoder.
    use candle_transformers::models::{llama, qwen2};
    let cpu = Device::Cpu;
    for architecture in ["llama", "qwen2"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        Tiny {
            architecture,
            ..Tiny::default()
        }
        .write_hf(&dir)
        .unwrap();
        let options = LoadOptions {
            weights: WeightFormat::F32,
            device: cpu.clone(),
        };
        let mut model = GgufModel::load(&dir, &options).unwrap();
        let ids = model.tokenizer.encode("in the hat the cat in a hat").unwrap();
        let stepped = model.logits_after(&ids).unwrap();
        let one_pass = one_pass(&mut model, &ids);
        let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
        let vb = candle_nn::VarBuilder::from_buffered_safetensors(weights, candle_core::DType::F32, &cpu).unwrap();
        let input = Tensor::new(ids.as_slice(), &cpu).unwrap().unsqueeze(0).unwrap();
        let reference = match architecture {
            "qwen2" => {
                let cfg: qwen2::Config = serde_json::from_str(&config).unwrap();
                let mut m = qwen2::ModelForCausalLM::new(&cfg, vb).unwrap();
                m.forward(&input, 0).unwrap()
            }
            _ => {
                let cfg: llama::LlamaConfig = serde_json::from_str(&config).unwrap();
                let cfg = cfg.into_config(false);
                let m = llama::Llama::load(vb, &cfg).unwrap();
                let mut cache = llama::Cache::new(true, candle_core::DType::F32, &cfg, &cpu).unwrap();
                m.forward(&input, 0, &mut cache).unwrap()
            }
        };
        let reference = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = |a: &[f32]| a.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert_eq!(stepped.len(), reference.len());
        assert!(worst(&stepped) < 1e-3, "{architecture}: {}", worst(&stepped));
        let last = one_pass.last().unwrap();
        assert!(worst(last) < 1e-3, "{architecture} one pass: {}", worst(last));
        assert!(
            model
                .describe()
                .contains(&format!("{architecture}, 0M parameters, F32, run as f32")),
            "{}",
            model.describe()
        );
    }
}

#[test]
fn a_hugging_face_folder_chats_and_keeps_its_format() {
    // Greedy answers repeat; Q8_0 and the files' own f32 (the default) stay close to f32.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    Tiny::default().write_hf(&dir).unwrap();
    let load = |weights| {
        GgufModel::load(
            &dir,
            &LoadOptions {
                weights,
                device: Device::Cpu,
            },
        )
        .unwrap()
    };
    let request = ChatRequest {
        messages: vec![Message::user("the cat")],
        max_tokens: 8,
        sampling: Sampling::Greedy,
        stop: Vec::new(),
    };
    let mut model = load(WeightFormat::Q8_0);
    assert!(model.describe().contains("Q8_0, run as Q8_0"), "{}", model.describe());
    let first = model.chat(&request).unwrap();
    assert!(first.tokens <= 8);
    assert_eq!(model.chat(&request).unwrap().outcome(), first.outcome());
    let ids = model.tokenizer.encode("the cat in the hat").unwrap();
    let q8 = model.logits_after(&ids).unwrap();
    let f32s = load(WeightFormat::F32).logits_after(&ids).unwrap();
    let stored = load(WeightFormat::AsStored).logits_after(&ids).unwrap();
    assert_eq!(stored, f32s);
    // Q8_0 multiplies against activations rounded to 8 bits: near, not equal.
    let (q8, f32s) = (log_softmax(&q8), log_softmax(&f32s));
    assert_ne!(q8, f32s);
    let worst = q8.iter().zip(&f32s).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let range = f32s.iter().fold(0.0f32, |m, v| m.max(-v));
    assert!(worst < 0.05 * range, "{worst} of {range}");
}

#[test]
fn a_context_read_before_is_not_read_again_and_changes_nothing() {
    for architecture in ["llama", "qwen2"] {
        let tiny = Tiny {
            architecture,
            ..Tiny::default()
        };
        let (_a, mut model) = load(&tiny, WeightFormat::AsStored);
        let (_b, mut fresh) = load(&tiny, WeightFormat::AsStored);
        let first = model.logprobs("the cat", " in a hat").unwrap();
        model.logprobs("a hat", " in a hat").unwrap();
        assert_eq!(model.logprobs("the cat", " in a hat").unwrap(), first, "{architecture}");
        // The next piece of a text, after what was read (how `assist` reads a hunk).
        let next = model.logprobs("the cat in a hat", " the hat").unwrap();
        assert_eq!(
            model.read.len(),
            2,
            "{architecture}: the longer read replaced its prefix"
        );
        let reference = fresh.logprobs("the cat in a hat", " the hat").unwrap();
        for (a, b) in next.iter().zip(&reference) {
            assert!((a.logprob - b.logprob).abs() < 1e-4, "{architecture}: {a:?} vs {b:?}");
        }
        // A text read in several passes scores as in one.
        let ids = model.tokenizer.encode("in the hat the cat in a hat the").unwrap();
        let whole = fresh.score(&ids, 2, CHUNK).unwrap();
        model.read.clear();
        let pieces = model.score(&ids, 2, 3).unwrap();
        assert_eq!(whole.len(), ids.len() - 3);
        for (a, b) in whole.iter().zip(&pieces) {
            assert!((a - b).abs() < 1e-4, "{architecture}: {a} vs {b}");
        }
    }
}

#[test]
fn logprobs_past_the_context_are_refused() {
    let (_dir, mut model) = load(
        &Tiny {
            context: 40,
            ..Tiny::default()
        },
        WeightFormat::AsStored,
    );
    let long = "word ".repeat(10);
    assert!(matches!(model.logprobs(&long, &long), Err(LmError::TooLong { .. })));
    assert!(model.decoder.is_none(), "refused before the decoder is built");
    assert!(model.logprobs("word", " word").is_ok());
}

#[test]
fn converted_weights_give_nearly_the_same_numbers() {
    for architecture in ["llama", "qwen2"] {
        let tiny = Tiny {
            architecture,
            ..Tiny::default()
        };
        let (_a, mut stored) = load(&tiny, WeightFormat::AsStored);
        let (_b, mut q8) = load(&tiny, WeightFormat::Q8_0);
        let (_c, mut f32s) = load(&tiny, WeightFormat::F32);
        assert!(q8.describe().contains("Q8_0") && f32s.describe().contains("f32"));
        let base = stored.logprobs("the", " cat in").unwrap();
        for other in [&mut q8, &mut f32s] {
            let lp = other.logprobs("the", " cat in").unwrap();
            // Converted weights compute differently (the conversion happened)...
            assert!(
                base.iter().zip(&lp).any(|(a, b)| a.logprob != b.logprob),
                "{architecture}"
            );
            for (a, b) in base.iter().zip(&lp) {
                // ...but nearly alike: Q4_1 multiplies against activations rounded to 8 bits.
                assert!(
                    (a.logprob - b.logprob).abs() < 0.03 * a.logprob.abs() + 0.05,
                    "{architecture}: {} vs {}",
                    a.logprob,
                    b.logprob
                );
            }
        }
    }
}

#[test]
fn hostile_hyperparameters_are_refused_before_candle_sees_them() {
    let err = load_err(|m, _| set(m, "llama.attention.head_count", Value::U32(0)));
    assert!(err.contains("head_count is 0"), "{err}");
    let err = load_err(|m, _| set(m, "llama.attention.head_count_kv", Value::U32(3)));
    assert!(err.contains("do not divide"), "{err}");
    let err = load_err(|m, _| set(m, "llama.block_count", Value::U32(3)));
    assert!(err.contains("blk.2.attn_norm.weight` is missing"), "{err}");
    let err = load_err(|m, _| {
        set(m, "llama.embedding_length", Value::U32(128));
        set(m, "llama.rope.dimension_count", Value::U32(32));
    });
    assert!(err.contains("has shape"), "{err}");
    let err = load_err(|m, _| set(m, "general.architecture", Value::String("mamba".into())));
    assert!(err.contains("mamba") && err.contains("not supported"), "{err}");
    let err = load_err(|_, t| t.retain(|(n, _)| n != "blk.1.ffn_up.weight"));
    assert!(err.contains("blk.1.ffn_up.weight"), "{err}");
}

#[test]
fn a_shared_system_prompt_is_read_once_and_changes_nothing() {
    let (_a, mut reused) = load(&Tiny::default(), WeightFormat::AsStored);
    let (_b, mut fresh) = load(&Tiny::default(), WeightFormat::AsStored);
    let ask = |question: &str| ChatRequest {
        messages: vec![Message::system("the cat in the hat"), Message::user(question)],
        ..ChatRequest::user("", 4)
    };
    reused.chat(&ask("in a hat")).unwrap();
    assert_eq!(reused.anchors.len(), 1, "the system turn is kept");
    let second = reused.chat(&ask("the hat")).unwrap();
    assert_eq!(reused.anchors.len(), 1, "and found again");
    let prompt = fresh.prompt_ids(&ask("the hat")).unwrap();
    let reference = fresh.chat(&ask("the hat")).unwrap();
    assert_eq!(second.outcome(), reference.outcome());
    // Reading the prompt in two parts gives the logits of one pass.
    reused.cached.clear();
    let (a, b) = (reused.logits_after(&prompt).unwrap(), {
        fresh.anchors.clear();
        fresh.cached.clear();
        fresh.logits_after(&prompt).unwrap()
    });
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-3, "{worst}");
}

#[test]
fn the_model_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<GgufModel>();
}

#[test]
fn an_empty_context_scores_after_bos() {
    let (_dir, mut model) = load(&Tiny::default(), WeightFormat::AsStored);
    let lp = model.logprobs("", "the cat").unwrap();
    assert_eq!(lp.len(), model.tokenizer.encode("the cat").unwrap().len());
    assert!(lp.iter().all(|t| t.logprob < 0.0));
    assert!(model.logprobs("the", "").unwrap().is_empty());
}

#[test]
fn a_truncated_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    Tiny::default().write(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for len in [0, 3, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..len]).unwrap();
        assert!(GgufModel::load(&path, &LoadOptions::default()).is_err(), "{len}");
    }
}
