//! Loading a model: a GGUF file, or a Hugging Face folder rewritten as one (`hf.rs`), read
//! (its header checked by `gguf.rs`, its hyperparameters by `checks.rs`), its tokenizer and chat
//! template found, its weights converted when asked (`WeightFormat`), and its network built:
//! `cpu/` on a CPU with the kernels, else candle-transformers'. It does not run the network
//! (`cache.rs`, `language_model.rs` do).

use super::checks::{Hyper, invalid};
use super::{GgufModel, LoadOptions, Net};
use crate::lm::LmError;
use crate::lm::chat::Template;
use crate::lm::cpu::{self, CpuNet};
use crate::lm::format::WeightFormat;
use crate::lm::gguf::{self, Header};
use crate::lm::hf;
use crate::lm::tokenizer::LmTokenizer;
use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_transformers::models::{quantized_llama, quantized_qwen2};
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

/// Where a model's GGUF bytes are: a file, or (a Hugging Face folder rewritten) memory.
pub(super) enum Stored {
    File(PathBuf),
    Memory(std::sync::Arc<[u8]>),
}

pub(super) trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

impl GgufModel {
    /// Loads a GGUF file, or a Hugging Face model folder (`hf.rs`: its weights converted as
    /// `options` says while they are rewritten). A `tokenizer.json` in the file's folder (the
    /// model folder's own) is used instead of the file's vocabulary.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<GgufModel, LmError> {
        let options = &LoadOptions {
            weights: options.weights.resolve(&options.device),
            device: options.device.clone(),
        };
        if path.is_dir() {
            if !hf::is_model_dir(path) {
                return Err(invalid(format!("{} holds no {}", path.display(), hf::CONFIG)));
            }
            let json = path.join(hf::TOKENIZER);
            if !json.is_file() {
                return Err(invalid(format!("{} holds no {}", path.display(), hf::TOKENIZER)));
            }
            let bytes: std::sync::Arc<[u8]> = hf::to_gguf(path, options.weights)?.into();
            return Self::load_stored(Stored::Memory(bytes), path, Some(&json), options);
        }
        let beside = path.parent().map(|d| d.join("tokenizer.json")).filter(|p| p.is_file());
        Self::load_stored(Stored::File(path.to_path_buf()), path, beside.as_deref(), options)
    }

    /// Memory holds the weights converted already; a file holds them as it stores them.
    fn load_stored(
        stored: Stored,
        path: &Path,
        json: Option<&Path>,
        options: &LoadOptions,
    ) -> Result<GgufModel, LmError> {
        let weights = match stored {
            Stored::File(_) => options.weights,
            Stored::Memory(_) => WeightFormat::AsStored,
        };
        let (header, content, mut reader) = read_stored(&stored)?;
        let hyper = Hyper::read(&content, &header)?;
        let tokenizer = match json {
            Some(json) => LmTokenizer::from_file(json)?,
            None => LmTokenizer::from_gguf(&content)?,
        };
        if tokenizer.vocab_size() > hyper.vocab {
            return Err(invalid(format!(
                "the tokenizer has {} tokens, the embedding {}",
                tokenizer.vocab_size(),
                hyper.vocab
            )));
        }
        let chat_template = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok());
        let template = Template::detect(chat_template.map(String::as_str));
        let mut end_ids: Vec<u32> = template
            .stop_tokens()
            .iter()
            .filter_map(|t| tokenizer.token_id(t))
            .collect();
        if let Some(eos) = content
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
        {
            end_ids.push(eos);
        }
        let bos = content
            .metadata
            .get("tokenizer.ggml.bos_token_id")
            .and_then(|v| v.to_u32().ok());
        let start_id = bos
            .or(end_ids.last().copied())
            .filter(|&id| (id as usize) < hyper.vocab);
        let name = content
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned();
        let net = match weights {
            WeightFormat::AsStored | WeightFormat::Auto => build(&hyper, content, &mut reader, &options.device)?,
            target => {
                let bytes = convert(&content, &mut reader, target)?;
                let mut memory = Cursor::new(bytes);
                let content = gguf_file::Content::read(&mut memory)?;
                build(&hyper, content, &mut memory, &options.device)?
            }
        };
        let requantised = match &net {
            Net::Cpu(net) => net.requantised(),
            _ => &[],
        };
        let description = describe(name, &header, &hyper, options.weights, requantised, path, &template);
        Ok(GgufModel {
            net,
            tokenizer,
            template,
            hyper,
            end_ids,
            start_id,
            device: options.device.clone(),
            description,
            cached: Vec::new(),
            anchors: Vec::new(),
            stored,
            weights,
            decoder: None,
            read: Vec::new(),
        })
    }
}

/// GGUF bytes' header (checked), their content as candle reads it, and a reader at their start.
pub(super) fn read_stored(stored: &Stored) -> Result<(Header, gguf_file::Content, Box<dyn ReadSeek>), LmError> {
    let (header, mut reader): (Header, Box<dyn ReadSeek>) = match stored {
        Stored::File(path) => {
            let io = |source| LmError::Io {
                path: path.display().to_string(),
                source,
            };
            let file = std::fs::File::open(path).map_err(io)?;
            let header = gguf::inspect(&file)?;
            let mut reader = BufReader::new(file);
            reader.rewind().map_err(io)?;
            (header, Box::new(reader))
        }
        Stored::Memory(bytes) => (gguf::inspect_bytes(bytes)?, Box::new(Cursor::new(bytes.clone()))),
    };
    let content = gguf_file::Content::read(&mut reader)?;
    Ok((header, content, reader))
}

fn build<R: Read + Seek>(
    hyper: &Hyper,
    content: gguf_file::Content,
    reader: &mut R,
    device: &Device,
) -> Result<Net, LmError> {
    if device.is_cpu() && cpu::has_kernels() {
        let shape = cpu::Shape {
            architecture: &hyper.architecture,
            embedding: hyper.embedding,
            heads: hyper.heads,
            kv_heads: hyper.kv_heads,
            layers: hyper.layers,
            context: hyper.context,
        };
        return Ok(Net::Cpu(CpuNet::from_gguf(&shape, &content, reader, cpu_threads())?));
    }
    candle_net(hyper, content, reader, device)
}

/// candle-transformers' network for the architecture (CUDA, Metal, and CPUs without the
/// kernels `cpu/` has; tests).
pub(super) fn candle_net<R: Read + Seek>(
    hyper: &Hyper,
    content: gguf_file::Content,
    reader: &mut R,
    device: &Device,
) -> Result<Net, LmError> {
    Ok(match hyper.architecture.as_str() {
        "qwen2" => Net::Qwen2(quantized_qwen2::ModelWeights::from_gguf(content, reader, device)?),
        _ => Net::Llama(quantized_llama::ModelWeights::from_gguf(content, reader, device)?),
    })
}

/// Threads of the CPU network's matrix products: `CANDLE_NUM_THREADS` when set, else one per
/// core (at most 8). Its pool yields when idle: on the 2-core machine, with a test run using
/// both cores, two threads decoded SmolLM2 as fast as one (102 and 103 tokens/s), and idle 1.5
/// times as fast (see the README's "Performance").
fn cpu_threads() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// The file rewritten in memory with its weight matrices converted to `target`; vectors
/// (norms, biases) and matrices whose rows do not fit the target's blocks stay as stored.
pub(super) fn convert<R: Read + Seek>(
    content: &gguf_file::Content,
    reader: &mut R,
    target: WeightFormat,
) -> Result<Vec<u8>, LmError> {
    let dtype = match target {
        WeightFormat::Q8_0 => GgmlDType::Q8_0,
        _ => GgmlDType::F32,
    };
    let cpu = Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let stored = content.tensor(reader, name, &cpu)?;
        let dims = stored.shape().dims().to_vec();
        let row = dims.last().copied().unwrap_or(0);
        let keep = dims.len() < 2 || stored.dtype() == dtype || row % dtype.block_size() != 0;
        let tensor = if keep {
            stored
        } else {
            QTensor::quantize(&stored.dequantize(&cpu)?, dtype)?
        };
        tensors.push((name.clone(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_refs)?;
    Ok(out.into_inner())
}

/// `requantised`: the types the CPU network has no kernel for and holds otherwise (said here,
/// once, at load).
fn describe(
    name: Option<String>,
    header: &Header,
    hyper: &Hyper,
    weights: WeightFormat,
    requantised: &[String],
    path: &Path,
    template: &Template,
) -> String {
    let name = name.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let params: u64 = header.tensors.iter().map(|t| t.dims.iter().product::<u64>()).sum();
    let mut types: Vec<&str> = header
        .tensors
        .iter()
        .filter(|t| t.dims.len() > 1)
        .map(|t| t.kind.name)
        .collect();
    types.sort();
    types.dedup();
    let held = match weights {
        WeightFormat::AsStored | WeightFormat::Auto if requantised.is_empty() => String::new(),
        WeightFormat::AsStored | WeightFormat::Auto => {
            format!(", requantised for want of a kernel: {}", requantised.join(", "))
        }
        WeightFormat::Q8_0 => ", run as Q8_0".into(),
        WeightFormat::F32 => ", run as f32".into(),
    };
    format!(
        "{name} ({}, {:.0}M parameters, {}{held}, {} template) from {}",
        hyper.architecture,
        params as f64 / 1e6,
        types.join("/"),
        template.name(),
        PathBuf::from(path).display()
    )
}
