//! `deepspark model list|path|pull|run|score`: language models found, fetched and tried (see
//! `lm/`), and [`open`], which every command given `--lm` uses to load one. Model output is
//! sanitised before it reaches the terminal.

use crate::cli::{LmArgs, ModelCommand, ModelRunArgs, ModelScoreArgs};
use crate::lm::source::{self, Stores};
use crate::lm::{ChatRequest, GgufModel, LanguageModel, LoadOptions, Message, Sampling};
use crate::model::device::device;
use crate::{exit, render::sanitize};
use anyhow::{Context, Result};
use candle_core::Device;

pub fn run(cmd: ModelCommand) -> Result<u8> {
    match cmd {
        ModelCommand::List => {
            let stores = Stores::from_env(true);
            let found = source::list(&stores);
            if found.is_empty() {
                eprintln!(
                    "no GGUF models in {} or {}",
                    stores
                        .hf_cache
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    stores
                        .ollama
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
            }
            for m in found {
                println!(
                    "{}\t{:.1} MB\t{}\t{}",
                    sanitize::clean(&m.spec),
                    m.bytes as f64 / 1e6,
                    sanitize::clean(&m.revision),
                    sanitize::clean(&m.path.display().to_string())
                );
            }
            Ok(exit::PASS)
        }
        ModelCommand::Path { spec } => {
            let found = source::resolve(&spec, &Stores::from_env(true))?;
            println!("{}", found.path.display());
            Ok(exit::PASS)
        }
        ModelCommand::Pull { spec } => {
            let found = source::resolve(&spec, &Stores::from_env(false))?;
            println!("{}", found.path.display());
            Ok(exit::PASS)
        }
        ModelCommand::Run(args) => run_prompt(args),
        ModelCommand::Score(args) => score(args),
    }
}

/// TEXT, or the contents of FILE for `@FILE` (`@-`: standard input).
pub fn text_arg(arg: &str) -> Result<String> {
    match arg.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("cannot read standard input")?;
            Ok(s)
        }
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(arg.to_string()),
    }
}

/// `--lm` when given, else the config file's `lm`.
pub fn lm_or_config(args: &LmArgs, cfg: &crate::config::Config) -> LmArgs {
    LmArgs {
        lm: args.lm.clone().or_else(|| cfg.lm.clone()),
        ..args.clone()
    }
}

fn score(args: ModelScoreArgs) -> Result<u8> {
    let device = device(args.device)?;
    let lm = LmArgs {
        lm: Some(args.spec.clone()),
        offline: args.offline,
        lm_weights: args.lm_weights,
    };
    let (context, text) = (text_arg(&args.context)?, text_arg(&args.text)?);
    let mut model = open(&lm, &device)?.context("no model named")?;
    let started = std::time::Instant::now();
    let tokens = model.logprobs(&context, &text)?;
    let elapsed = started.elapsed();
    for t in &tokens {
        println!("{:.4}\t{}", t.logprob, sanitize::clean(&t.token));
    }
    let surprisal = -tokens.iter().map(|t| f64::from(t.logprob)).sum::<f64>() / tokens.len().max(1) as f64;
    println!("mean surprisal {surprisal:.4} nats/token over {} tokens", tokens.len());
    eprintln!(
        "scored {} tokens in {:.2}s ({:.1} tokens/s) with {}",
        tokens.len(),
        elapsed.as_secs_f64(),
        tokens.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        sanitize::clean(&model.describe())
    );
    Ok(exit::PASS)
}

/// The language model `--lm` names, loaded; `None` when no `--lm` was given.
pub fn open(args: &LmArgs, device: &Device) -> Result<Option<Box<dyn LanguageModel>>> {
    let Some(spec) = &args.lm else { return Ok(None) };
    let found = source::resolve(spec, &Stores::from_env(args.offline))?;
    let options = LoadOptions {
        weights: args.lm_weights,
        device: device.clone(),
    };
    let model = GgufModel::load(&found.path, &options)
        .with_context(|| format!("cannot load the language model {}", found.path.display()))?;
    Ok(Some(Box::new(model)))
}

fn run_prompt(args: ModelRunArgs) -> Result<u8> {
    let device = device(args.device)?;
    let lm = LmArgs {
        lm: Some(args.spec.clone()),
        offline: args.offline,
        lm_weights: args.lm_weights,
    };
    let started = std::time::Instant::now();
    let mut model = open(&lm, &device)?.context("no model named")?;
    eprintln!(
        "loaded {} in {:.2}s",
        sanitize::clean(&model.describe()),
        started.elapsed().as_secs_f64()
    );
    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(Message::system(system));
    }
    messages.push(Message::user(args.prompt));
    let sampling = if args.temperature > 0.0 {
        Sampling::Random {
            temperature: args.temperature,
            top_p: args.top_p,
            seed: args.seed,
        }
    } else {
        Sampling::Greedy
    };
    let request = ChatRequest {
        messages,
        max_tokens: args.max_tokens,
        sampling,
        stop: Vec::new(),
    };
    let answer = model.chat(&request)?;
    println!("{}", sanitize::clean_with(answer.text.trim_end(), true));
    let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
    eprintln!(
        "prompt {} tokens in {:.2}s ({:.1} tokens/s); generated {} tokens in {:.2}s ({:.1} tokens/s); stopped: {:?}",
        answer.prompt_tokens,
        answer.prefill.as_secs_f64(),
        rate(answer.prompt_tokens, answer.prefill),
        answer.tokens,
        answer.decode.as_secs_f64(),
        rate(answer.tokens.saturating_sub(1), answer.decode),
        answer.stop
    );
    Ok(exit::PASS)
}
