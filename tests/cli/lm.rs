//! `deepspark model list|path|pull|run|score`: specs resolved in temporary Hugging Face and Ollama
//! stores (never the network), tiny random GGUF models and Hugging Face safetensors folders
//! run end to end, hostile files refused
//! with exit 2, and the real SmolLM2 when `.ci/run` has fetched it.

use crate::common::*;
use deepspark::lm::tiny::Tiny;
use predicates::prelude::*;
use predicates::str::contains;
use std::path::{Path, PathBuf};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A folder with a HF cache and an Ollama store, both empty, and `deepspark` pointed at them.
struct Stores {
    dir: tempfile::TempDir,
}

impl Stores {
    fn new() -> Stores {
        Stores {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self) -> assert_cmd::Command {
        let mut c = cmd_in(self.dir.path());
        c.env("HF_HUB_CACHE", self.dir.path().join("hub"))
            .env("OLLAMA_MODELS", self.dir.path().join("ollama"))
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_HOME");
        c
    }

    /// A tiny model in the HF cache as `org/tiny` at SHA (refs/main pointing there).
    fn hub_model(&self) -> PathBuf {
        let repo = self.dir.path().join("hub/models--org--tiny");
        let snap = repo.join("snapshots").join(SHA);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), SHA).unwrap();
        let path = snap.join("tiny.Q4_1.gguf");
        Tiny::default().write(&path).unwrap();
        path
    }
}

#[test]
fn run_answers_within_the_budget_and_repeats_itself() {
    let s = Stores::new();
    let model = s.hub_model();
    let run = || {
        s.cmd()
            .args(["model", "run", "org/tiny", "--prompt", "the cat", "--max-tokens", "5"])
            .assert()
            .success()
            .stderr(contains("tiny-llama").and(contains("generated")))
            .get_output()
            .stdout
            .clone()
    };
    assert_eq!(run(), run());
    // The same file by path, sampled with a seed: repeatable too.
    let sampled = |seed: &str| {
        s.cmd()
            .args([
                "model",
                "run",
                "--prompt",
                "the cat",
                "--max-tokens",
                "6",
                "--temperature",
                "1.2",
                "--seed",
                seed,
            ])
            .arg(&model)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    assert_eq!(sampled("4"), sampled("4"));
}

#[test]
fn a_safetensors_model_runs_from_the_hub_cache_pinned_listed_and_by_path() {
    let s = Stores::new();
    let repo = s.dir.path().join("hub/models--org--st");
    let snap = repo.join("snapshots").join(SHA);
    Tiny {
        architecture: "qwen2",
        ..Tiny::default()
    }
    .write_hf(&snap)
    .unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), SHA).unwrap();
    let run = |spec: &str| {
        s.cmd()
            .args([
                "model",
                "run",
                "--offline",
                spec,
                "--prompt",
                "the cat",
                "--max-tokens",
                "5",
            ])
            .assert()
            .success()
            .stderr(
                // Held as the folder stores them (the default `--lm-weights as-stored`).
                contains("org/st (qwen2").and(contains("F32, ChatML template")),
            )
            .get_output()
            .stdout
            .clone()
    };
    let by_id = run("org/st");
    assert_eq!(run(&format!("org/st@{SHA}")), by_id);
    assert_eq!(run(snap.to_str().unwrap()), by_id);
    s.cmd()
        .args(["model", "path", "org/st"])
        .assert()
        .success()
        .stdout(format!("{}\n", snap.display()));
    s.cmd()
        .args(["model", "list"])
        .assert()
        .success()
        .stdout(contains(format!("org/st@{SHA}")));
    s.cmd()
        .args(["model", "score", "--offline", "org/st", "--text", "fn main() {}"])
        .assert()
        .success();
    // A pinned revision that is not cached, offline: named, with the command that fetches it.
    s.cmd()
        .args([
            "model",
            "run",
            "--offline",
            &format!("org/st@{}", "f".repeat(40)),
            "--prompt",
            "x",
        ])
        .assert()
        .code(2)
        .stderr(contains("not in the Hugging Face cache").and(contains("*.safetensors")));
    // Weights that do not fit the config: refused with the tensor's name, exit 2.
    let config = snap.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"hidden_size\": 64", "\"hidden_size\": 32")).unwrap();
    s.cmd()
        .args(["model", "run", "--offline", "org/st", "--prompt", "x"])
        .assert()
        .code(2)
        .stderr(contains("token_embd.weight"));
}

#[test]
fn model_output_reaches_the_terminal_sanitised() {
    // A vocabulary whose tokens decode to an OSC escape sequence (byte-level BPE writes
    // ESC as U+011B and BEL as U+0107): whatever the model says, no raw ESC or BEL reaches stdout.
    let s = Stores::new();
    let path = s.dir.path().join("esc.gguf");
    Tiny::default()
        .write_with(&path, |metadata, _| {
            for (k, v) in metadata.iter_mut() {
                if k == "tokenizer.ggml.tokens"
                    && let candle_core::quantized::gguf_file::Value::Array(tokens) = v
                {
                    // The characters of bytes 0xA1..=0xFF, which an ASCII prompt does not need.
                    for (i, t) in tokens.iter_mut().enumerate() {
                        if let candle_core::quantized::gguf_file::Value::String(s) = t
                            && s.chars().count() == 1
                            && ('\u{a1}'..='\u{ff}').contains(&s.chars().next().unwrap_or(' '))
                        {
                            *s = format!("\u{11b}]0;owned{i}\u{107}");
                        }
                    }
                }
            }
        })
        .unwrap();
    let out = s
        .cmd()
        .args([
            "model",
            "run",
            "--prompt",
            "x",
            "--max-tokens",
            "12",
            "--lm-weights",
            "as-stored",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("owned"),
        "the model said no escape at all: {text:?} {err}"
    );
    assert!(!out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07), "{text:?}");
}

#[test]
fn path_and_list_find_hub_and_ollama_models() {
    let s = Stores::new();
    let model = s.hub_model();
    s.cmd()
        .args(["model", "path", "org/tiny"])
        .assert()
        .success()
        .stdout(format!("{}\n", model.display()));
    let pinned = format!("org/tiny@{SHA}:tiny.Q4_1.gguf");
    s.cmd()
        .args(["model", "path", &pinned])
        .assert()
        .success()
        .stdout(format!("{}\n", model.display()));

    let hex = "ab".repeat(32);
    let blob = s.dir.path().join(format!("ollama/blobs/sha256-{hex}"));
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::copy(&model, &blob).unwrap();
    let manifest = s.dir.path().join("ollama/manifests/registry.ollama.ai/library/tiny/1m");
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::write(
        &manifest,
        format!(r#"{{"layers":[{{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:{hex}"}}]}}"#),
    )
    .unwrap();
    s.cmd()
        .args(["model", "path", "ollama:tiny:1m"])
        .assert()
        .success()
        .stdout(format!("{}\n", blob.display()));
    s.cmd().args(["model", "list"]).assert().success().stdout(
        contains("org/tiny:tiny.Q4_1.gguf")
            .and(contains(SHA))
            .and(contains("ollama:tiny:1m")),
    );
    // The Ollama blob is loaded in place.
    s.cmd()
        .args(["model", "run", "ollama:tiny:1m", "--prompt", "hi", "--max-tokens", "2"])
        .assert()
        .success();
}

#[test]
fn offline_names_what_is_missing_and_how_to_fetch_it() {
    let s = Stores::new();
    s.cmd()
        .env("HF_HUB_OFFLINE", "1")
        .args(["model", "pull", "org/absent@v1:absent.Q8_0.gguf"])
        .assert()
        .code(2)
        .stderr(
            contains("org/absent@v1:absent.Q8_0.gguf")
                .and(contains("offline"))
                .and(contains("hint: fetch it with `"))
                .and(contains(
                    "`huggingface-cli download org/absent absent.Q8_0.gguf --revision v1`",
                ))
                .and(contains("`deepspark model pull org/absent@v1:absent.Q8_0.gguf`")),
        );
    s.cmd()
        .args(["model", "run", "--offline", "org/absent", "--prompt", "x"])
        .assert()
        .code(2)
        .stderr(contains("org/absent").and(contains("offline")));
    s.cmd()
        .args(["model", "path", "not a spec"])
        .assert()
        .code(2)
        .stderr(contains("is not a model"));
}

#[test]
fn hostile_gguf_files_exit_2_with_the_reason() {
    let s = Stores::new();
    let path = s.dir.path().join("m.gguf");
    Tiny::default().write(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let run = |p: &Path| s.cmd().args(["model", "run", "--prompt", "x"]).arg(p).assert().code(2);
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    run(&path).stderr(contains("truncated GGUF file").and(contains("m.gguf")));
    std::fs::write(&path, b"PK\x03\x04 a zip, not weights").unwrap();
    run(&path).stderr(contains("not a GGUF file"));
    let mut huge = bytes.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&path, &huge).unwrap();
    run(&path).stderr(contains("truncated GGUF file"));
}

#[test]
fn smollm2_answers_a_question() {
    let Some(path) = smollm2() else { return };
    let s = Stores::new();
    s.cmd()
        .args([
            "model",
            "run",
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "8",
        ])
        .arg(&path)
        .assert()
        .success()
        .stdout(contains("Paris"))
        .stderr(contains("SmolLM2").or(contains("Smollm2")).and(contains("generated")));
}

#[test]
fn score_prints_each_token_and_the_mean_surprisal() {
    let s = Stores::new();
    let model = s.hub_model();
    std::fs::write(s.dir.path().join("ctx.txt"), "the cat ").unwrap();
    let out = s
        .cmd()
        .args(["model", "score", "--context", "@ctx.txt", "--text", "in the hat"])
        .arg(&model)
        .assert()
        .success()
        .stderr(contains("scored"))
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let logprobs: Vec<f64> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert!(!logprobs.is_empty() && logprobs.iter().all(|&l| l < 0.0), "{out}");
    let mean = -logprobs.iter().sum::<f64>() / logprobs.len() as f64;
    let last = lines[lines.len() - 1];
    let printed: f64 = last.split(' ').nth(2).unwrap().parse().unwrap();
    assert!(
        (printed - mean).abs() < 1e-3 && last.ends_with(&format!("over {} tokens", logprobs.len())),
        "{last} vs {mean}"
    );
    s.cmd()
        .args(["model", "score", "--text", "@missing.txt"])
        .arg(&model)
        .assert()
        .code(2)
        .stderr(contains("missing.txt"));
}
