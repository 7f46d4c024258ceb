//! A language model's tokenizer: a `tokenizer.json` beside the weights when there is one,
//! else the GGUF file's own vocabulary (`tokenizer.ggml.*`) through candle's builder, with
//! the pre-tokenizer corrected where candle's differs from the model's.
//!
//! candle 0.11 knows the `qwen2` and `llama3` pre-tokenizers; every other one (SmolLM2's
//! `smollm`, GPT-2's `gpt2`) falls into a default that adds a space before the first word
//! of every segment, so "<|im_start|>user" would become "<|im_start|>" " user". Here those
//! get the model's own rules (for `smollm`, as its tokenizer.json: single digits, then
//! GPT-2's byte-level split without a prefix space). Special tokens (`<|im_start|>`, ...) in
//! a prompt are read as one token each; they are how chat templates are written. Only
//! byte-level BPE vocabularies (`tokenizer.ggml.model = gpt2`) are built from a GGUF file;
//! SentencePiece ones (`llama`: Llama 2, CodeLlama, Mistral) need a `tokenizer.json`. This
//! module does not build prompts (`chat.rs`) or run the model.

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use std::path::Path;
use tokenizers::Tokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot build the tokenizer from the GGUF vocabulary: {0}")]
    Gguf(String),
    #[error("cannot read tokenizer {path}: {message}")]
    File { path: String, message: String },
    #[error("the tokenizer cannot encode the text: {0}")]
    Encode(String),
    #[error("token {0} is not in the vocabulary")]
    UnknownId(u32),
}

pub struct LmTokenizer {
    inner: Tokenizer,
    /// Where the vocabulary came from, for `describe`.
    pub origin: String,
}

impl LmTokenizer {
    /// The tokenizer of a GGUF file's metadata.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self, TokenizerError> {
        let kind = content
            .metadata
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok());
        if let Some(kind) = kind.filter(|k| k.as_str() != "gpt2") {
            return Err(TokenizerError::Gguf(format!(
                "its vocabulary is `{kind}`, not byte-level BPE (`gpt2`); put the model's tokenizer.json beside the file"
            )));
        }
        let mut inner = Tokenizer::from_gguf(content).map_err(|e| TokenizerError::Gguf(e.to_string()))?;
        let pre = content
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str);
        let origin = match pre {
            Some("qwen2" | "llama3" | "smaug-bpe" | "lfm2") => {
                format!("GGUF vocabulary, pre-tokenizer {}", pre.unwrap_or(""))
            }
            Some("smollm") => {
                inner.with_pre_tokenizer(Some(Sequence::new(vec![
                    Digits::new(true).into(),
                    ByteLevel::new(false, true, true).into(),
                ])));
                "GGUF vocabulary, pre-tokenizer smollm".to_string()
            }
            other => {
                // GPT-2's rules: the byte-level regex, no space added in front.
                inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
                format!(
                    "GGUF vocabulary, pre-tokenizer {} (as gpt2)",
                    other.unwrap_or("unnamed")
                )
            }
        };
        Ok(LmTokenizer { inner, origin })
    }

    /// A Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let inner = Tokenizer::from_file(path).map_err(|e| TokenizerError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(LmTokenizer {
            inner,
            origin: path.display().to_string(),
        })
    }

    /// Writes the vocabulary as a Hugging Face `tokenizer.json` (what `from_file` reads).
    pub fn save(&self, path: &Path) -> Result<(), TokenizerError> {
        self.inner.save(path, false).map_err(|e| TokenizerError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Token ids of `text`, special tokens written in it read as themselves; no BOS or EOS
    /// is added (chat templates write their own).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn token(&self, id: u32) -> Result<String, TokenizerError> {
        self.inner.id_to_token(id).ok_or(TokenizerError::UnknownId(id))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gguf_file::Value;
    use std::collections::HashMap;

    /// A byte-level vocabulary of a few tokens, with one merge, as a GGUF file holds it.
    fn content(pre: &str) -> gguf_file::Content {
        let tokens = [
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "h",
            "i",
            "Ġ",
            "hi",
            "Ġhi",
            "1",
            "2",
            "u",
            "s",
            "e",
            "r",
            "12",
        ];
        let mut metadata = HashMap::new();
        metadata.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
        metadata.insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
        metadata.insert(
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.iter().map(|t| Value::String(t.to_string())).collect()),
        );
        metadata.insert(
            "tokenizer.ggml.merges".into(),
            Value::Array(vec![
                Value::String("h i".into()),
                Value::String("Ġ hi".into()),
                Value::String("1 2".into()),
            ]),
        );
        let types = (0..tokens.len())
            .map(|i| Value::I32(if i < 3 { 3 } else { 1 }))
            .collect();
        metadata.insert("tokenizer.ggml.token_type".into(), Value::Array(types));
        metadata.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
        gguf_file::Content {
            magic: gguf_file::VersionedMagic::GgufV3,
            metadata,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    // Regression: candle's default pre-tokenizer puts a space in front of the text after a
    // special token, so "<|im_start|>hi" read as "<|im_start|>" "Ġhi".
    #[test]
    fn no_space_is_added_after_special_tokens() {
        for pre in ["smollm", "gpt2"] {
            let tok = LmTokenizer::from_gguf(&content(pre)).unwrap();
            assert_eq!(tok.encode("<|im_start|>hi").unwrap(), [1, 6], "{pre}");
            assert_eq!(tok.encode("hi hi").unwrap(), [6, 7], "{pre}");
            assert_eq!(tok.decode(&[1, 6, 7, 2]).unwrap(), "hi hi", "{pre}");
        }
    }

    #[test]
    fn smollm_splits_digits() {
        let tok = LmTokenizer::from_gguf(&content("smollm")).unwrap();
        assert_eq!(tok.encode("12").unwrap(), [8, 9]);
        let gpt2 = LmTokenizer::from_gguf(&content("gpt2")).unwrap();
        assert_eq!(gpt2.encode("12").unwrap(), [14]);
        assert_eq!(tok.token_id("<|im_end|>"), Some(2));
    }

    #[test]
    fn a_broken_vocabulary_is_an_error() {
        let mut c = content("smollm");
        c.metadata.insert(
            "tokenizer.ggml.merges".into(),
            Value::Array(vec![Value::String("nospace".into())]),
        );
        assert!(matches!(LmTokenizer::from_gguf(&c), Err(TokenizerError::Gguf(_))));
        c.metadata
            .insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
        let err = LmTokenizer::from_gguf(&c)
            .err()
            .expect("a SentencePiece vocabulary is refused")
            .to_string();
        assert!(err.contains("`llama`") && err.contains("tokenizer.json"), "{err}");
    }
}
