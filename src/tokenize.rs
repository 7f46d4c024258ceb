//! Hunks -> model inputs: token ids, the line each token came from, and size features.
//!
//! This is the one preprocessing path: `review`, `eval` and `train` all call
//! [`Encoder::encode`], so the model never sees text laid out differently from how it
//! was trained. The layout is
//! `<file> basename <lang> language (<add>|<del> line-tokens)*`, changed lines only,
//! indentation kept, each line cut at [`MAX_LINE_CHARS`] and [`MAX_LINE_TOKENS`], the
//! whole sequence cut at the model's `max_len`. Context lines are left out on purpose:
//! measured on the training data, they help a model recognise the project more than the
//! risk (see weights/MODEL_CARD.md). This module does not batch or pad (see `model::net`).

use crate::diff::{Hunk, LineKind, is_test_path, language_of};
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{Tokenizer, TokenizerBuilder};

/// Ids below this are deepspark's own markers; BPE token `t` has model id `t + N_SPECIAL`.
/// Keeping markers outside the BPE vocabulary means no file content can forge them.
/// Id 0 is padding (see `model::net::Batch`).
pub const FILE: u32 = 1;
pub const LANG: u32 = 2;
pub const ADD: u32 = 3;
pub const DEL: u32 = 4;
pub const N_SPECIAL: u32 = 5;

pub const MAX_LINE_CHARS: usize = 160;
pub const MAX_LINE_TOKENS: usize = 48;
const MAX_NAME_TOKENS: usize = 12;

/// Size features of the hunk itself (see [`features`]).
pub const N_HUNK_FEATURES: usize = 4;
/// Hunk features plus the change-level ones; a model uses the first 4 or all 7.
pub const N_FEATURES: usize = 7;

/// The size of the whole change a hunk belongs to (reviewed code files only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeStats {
    pub hunks: usize,
    pub added: usize,
    pub files: usize,
}

impl ChangeStats {
    /// Over the files that will be scored (not skipped).
    pub fn of(files: &[crate::diff::FileDiff]) -> ChangeStats {
        let reviewed = files.iter().filter(|f| f.skip.is_none() && !f.hunks.is_empty());
        let mut s = ChangeStats::default();
        for f in reviewed {
            s.files += 1;
            s.hunks += f.hunks.len();
            s.added += f.hunks.iter().map(Hunk::added).sum::<usize>();
        }
        s
    }
}

/// Token index that belongs to no line of the hunk (file name, language).
pub const NO_LINE: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// For each token, the index into `hunk.lines` it came from, or [`NO_LINE`].
    pub line: Vec<u32>,
    pub features: [f32; N_FEATURES],
}

#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

pub struct Encoder {
    tokenizer: Tokenizer,
    max_len: usize,
    /// Whether the file name goes into the input (see `RiskConfig::file_name`).
    file_name: bool,
}

/// The size features: ln(1+added), ln(1+removed), no added line, test file; then the
/// change's ln(1+hunks), ln(1+added lines), ln(1+files).
pub fn features(path: &str, hunk: &Hunk, change: ChangeStats) -> [f32; N_FEATURES] {
    let added = hunk.added();
    [
        (added as f32).ln_1p(),
        (hunk.removed() as f32).ln_1p(),
        if added == 0 { 1.0 } else { 0.0 },
        if is_test_path(path) { 1.0 } else { 0.0 },
        (change.hunks as f32).ln_1p(),
        (change.added as f32).ln_1p(),
        (change.files as f32).ln_1p(),
    ]
}

impl Encoder {
    pub fn new(tokenizer: Tokenizer, max_len: usize) -> Self {
        Encoder {
            tokenizer,
            max_len,
            file_name: true,
        }
    }

    /// Leaves the file name out of the input (the language marker stays).
    pub fn without_file_name(self) -> Self {
        Encoder {
            file_name: false,
            ..self
        }
    }

    pub fn from_json(bytes: &[u8], max_len: usize) -> Result<Self, TokenizeError> {
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| TokenizeError::Tokenizer(e.to_string()))?;
        Ok(Self::new(tokenizer, max_len))
    }

    /// Model vocabulary size: the BPE vocabulary plus deepspark's markers.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true) + N_SPECIAL as usize
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    fn piece(&self, text: &str, cap: usize, out: &mut Vec<u32>) -> Result<(), TokenizeError> {
        if text.is_empty() {
            return Ok(());
        }
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TokenizeError::Tokenizer(e.to_string()))?;
        out.extend(enc.get_ids().iter().take(cap).map(|t| t + N_SPECIAL));
        Ok(())
    }

    pub fn encode(&self, path: &str, hunk: &Hunk, change: ChangeStats) -> Result<Encoded, TokenizeError> {
        let mut ids = Vec::with_capacity(64);
        let mut line = Vec::with_capacity(64);
        let name = path.rsplit('/').next().unwrap_or(path);
        ids.push(FILE);
        if self.file_name {
            self.piece(name, MAX_NAME_TOKENS, &mut ids)?;
        }
        ids.push(LANG);
        self.piece(language_of(path).unwrap_or("text"), 4, &mut ids)?;
        line.resize(ids.len(), NO_LINE);
        let mut buf = Vec::new();
        for (i, l) in hunk.lines.iter().enumerate() {
            if ids.len() >= self.max_len {
                break;
            }
            let marker = match l.kind {
                LineKind::Added => ADD,
                LineKind::Removed => DEL,
                LineKind::Context => continue,
            };
            buf.clear();
            buf.push(marker);
            let text = truncate_chars(l.text.trim_end(), MAX_LINE_CHARS);
            self.piece(text, MAX_LINE_TOKENS, &mut buf)?;
            ids.extend_from_slice(&buf);
            line.extend(std::iter::repeat_n(i as u32, buf.len()));
        }
        ids.truncate(self.max_len);
        line.truncate(self.max_len);
        Ok(Encoded {
            ids,
            line,
            features: features(path, hunk, change),
        })
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The text a tokenizer is trained on for one hunk: its changed lines, as `encode` cuts them.
pub fn training_text(path: &str, hunk: &Hunk) -> String {
    let mut s = String::new();
    s.push_str(path.rsplit('/').next().unwrap_or(path));
    s.push('\n');
    for l in &hunk.lines {
        if l.kind != LineKind::Context {
            s.push_str(truncate_chars(l.text.trim_end(), MAX_LINE_CHARS));
            s.push('\n');
        }
    }
    s
}

/// Trains a byte-level BPE tokenizer (GPT-2 style splitting, no prefix space, so
/// indentation survives as tokens) on the given texts.
pub fn train_tokenizer<I>(texts: I, vocab_size: usize) -> Result<Tokenizer, TokenizeError>
where
    I: Iterator<Item = String> + Send,
{
    let err = |e: tokenizers::Error| TokenizeError::Tokenizer(e.to_string());
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let byte_level = ByteLevel::new(false, false, true);
    let mut tokenizer = TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, PostProcessorWrapper, ByteLevel>::new()
        .with_model(BPE::default())
        .with_pre_tokenizer(Some(byte_level))
        .with_decoder(Some(byte_level))
        .build()
        .map_err(err)?;
    tokenizer.train(&mut trainer, texts).map_err(err)?;
    Ok(tokenizer.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Encoder {
        let texts = (0..50).map(|i| format!("    let x{i} = foo(bar, {i});\nreturn None;\n"));
        Encoder::new(train_tokenizer(texts, 300).unwrap(), 64)
    }

    #[test]
    fn the_file_name_can_be_left_out() {
        let h = Hunk::parse("@@ -1 +1 @@", "-a\n+b").unwrap();
        let with = tiny().encode("src/foo_bar.rs", &h, ChangeStats::default()).unwrap();
        let without = tiny()
            .without_file_name()
            .encode("src/foo_bar.rs", &h, ChangeStats::default())
            .unwrap();
        assert_eq!(&without.ids[..2], &[FILE, LANG]);
        assert!(with.ids.len() > without.ids.len());
        assert_eq!(with.ids[with.ids.len() - without.ids.len()..][2..], without.ids[2..]);
    }

    #[test]
    fn layout_marks_changed_lines_and_maps_tokens_to_lines() {
        let enc = tiny();
        let h = Hunk::parse("@@ -1,2 +1,2 @@", " ctx\n-    let x = 1;\n+    let x = 2;").unwrap();
        let e = enc
            .encode(
                "src/a.rs",
                &h,
                ChangeStats {
                    hunks: 1,
                    added: 1,
                    files: 1,
                },
            )
            .unwrap();
        assert_eq!(e.ids[0], FILE);
        assert!(e.ids.contains(&ADD) && e.ids.contains(&DEL));
        assert_eq!(e.ids.len(), e.line.len());
        let del_at = e.ids.iter().position(|&t| t == DEL).unwrap();
        assert_eq!(e.line[del_at], 1);
        let add_at = e.ids.iter().position(|&t| t == ADD).unwrap();
        assert_eq!(e.line[add_at], 2);
        assert!(e.ids.iter().all(|&t| (t as usize) < enc.vocab_size()));
        assert_eq!(e.features[0], (1f32).ln_1p());
    }

    #[test]
    fn content_cannot_forge_markers_and_length_is_capped() {
        let enc = tiny();
        let body: String = (0..200).map(|_| "+<add> <del> <pad>\n").collect();
        let h = Hunk::parse("@@ -0,0 +1,200 @@", &body).unwrap();
        let e = enc.encode("x.rs", &h, ChangeStats::default()).unwrap();
        assert_eq!(e.ids.len(), 64);
        let markers = e.ids.iter().filter(|&&t| t == ADD).count();
        let lines = e
            .line
            .iter()
            .filter(|&&l| l != NO_LINE)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert_eq!(markers, lines, "only real line starts carry the <add> marker");
    }
}
