//! [`LanguageModel`] for [`GgufModel`]: a chat completion (the prompt rendered by the model's
//! template, a system prompt read once, tokens sampled until the end of text, a stop string,
//! the budget or a full context) and the log-probabilities of a text after a context. The
//! caches these reuse are in `cache.rs`; sampling itself is `decode.rs`'s.

use super::GgufModel;
use super::checks::invalid;
use crate::lm::decode::{Sampler, find_stop};
use crate::lm::{ChatRequest, Completion, LanguageModel, LmError, StopReason, TokenLogprob};

/// Text tokens scored in one pass at most: bounds the `[tokens, vocab]` logits (and the
/// attention scores) a long text would allocate.
pub(super) const CHUNK: usize = 256;

impl GgufModel {
    /// The token ids a chat request's prompt starts from.
    pub fn prompt_ids(&self, request: &ChatRequest) -> Result<Vec<u32>, LmError> {
        Ok(self.tokenizer.encode(&self.template.render(&request.messages))?)
    }
}

impl LanguageModel for GgufModel {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn chat(&mut self, request: &ChatRequest) -> Result<Completion, LmError> {
        let prompt = self.prompt_ids(request)?;
        if prompt.is_empty() {
            return Err(invalid("the prompt is empty"));
        }
        let started = std::time::Instant::now();
        // A system prompt is read once for all the requests that share it.
        if let Some(system) = self.template.system_turn(&request.messages) {
            let system = self.tokenizer.encode(&system)?;
            if system.len() < prompt.len() && prompt.starts_with(&system) {
                self.anchor(&system)?;
            }
        }
        let mut logits = self.logits_after(&prompt)?;
        let prefill = started.elapsed();
        let mut sampler = Sampler::new(request.sampling);
        let mut generated: Vec<u32> = Vec::new();
        // Every token but the last is fed back, so the budget costs max_tokens - 1 steps.
        let stop = loop {
            if generated.len() >= request.max_tokens {
                break StopReason::Budget;
            }
            let id = sampler.next(&logits);
            generated.push(id);
            if self.end_ids.contains(&id) {
                break StopReason::EndOfText;
            }
            let text = self.tokenizer.decode(&generated)?;
            if let Some((_, s)) = find_stop(&text, &request.stop) {
                break StopReason::StopString(s.to_string());
            }
            if generated.len() >= request.max_tokens {
                break StopReason::Budget;
            }
            if self.cached.len() >= self.hyper.context {
                break StopReason::ContextFull;
            }
            logits = self.step(id)?;
        };
        let mut text = self.tokenizer.decode(&generated)?;
        if let Some((at, _)) = find_stop(&text, &request.stop) {
            text.truncate(at);
        }
        let decode = started.elapsed() - prefill;
        Ok(Completion {
            text,
            stop,
            prompt_tokens: prompt.len(),
            tokens: generated.len(),
            prefill,
            decode,
        })
    }

    fn logprobs(&mut self, context: &str, text: &str) -> Result<Vec<TokenLogprob>, LmError> {
        let context_ids = self.tokenizer.encode(context)?;
        let text_ids = self.tokenizer.encode(text)?;
        if text_ids.is_empty() {
            return Ok(Vec::new());
        }
        let total = context_ids.len() + text_ids.len();
        if total > self.hyper.context {
            return Err(LmError::TooLong {
                tokens: total,
                context: self.hyper.context,
            });
        }
        // The first text token is predicted from the context's last logits; with no
        // context there is nothing to predict it from, so it is scored after BOS (or EOS).
        let context_ids = if context_ids.is_empty() {
            self.start_id.map(|id| vec![id]).unwrap_or_default()
        } else {
            context_ids
        };
        if context_ids.is_empty() {
            return Err(invalid(
                "an empty context needs a BOS or EOS token, and the model has neither",
            ));
        }
        let first = context_ids.len() - 1;
        let ids: Vec<u32> = context_ids.into_iter().chain(text_ids.iter().copied()).collect();
        let logprobs = self.score(&ids, first, CHUNK)?;
        text_ids
            .iter()
            .zip(logprobs)
            .map(|(&id, logprob)| {
                Ok(TokenLogprob {
                    id,
                    token: self.tokenizer.token(id)?,
                    logprob,
                })
            })
            .collect()
    }
}
