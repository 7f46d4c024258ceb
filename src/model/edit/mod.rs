//! The default suggestion generator: learned edit rules proposed in place, ranked by a
//! small candle network.
//!
//! Bug fixes are mostly small edits: a token replaced (`<` for `<=`), a token inserted
//! (`!`), a line deleted. `train::edits` mines such rules from real fixes (the commits
//! with `fix: true`), keeping those seen at least twice; this module enumerates every
//! rule that applies to a hunk's added lines, plus similar names from the hunk and from the
//! rest of its file (when the caller has the file), off-by-one integers and line deletions,
//! describes each candidate by a few features (the rule's frequency, how specific it is,
//! what kind of edit it is) and ranks them with a two-layer network trained on which candidate the
//! human fix actually was (softmax over a hunk's candidates). The result is a
//! probability per candidate.
//!
//! It only ever edits or deletes the hunk's added lines: context and removed lines are
//! never touched, and no line is invented. It does not check that a candidate applies
//! to the file, re-score it or rank it by risk (see `suggest/`).
//!
//! Files: `generator.json` (the rules and the network's sizes) and
//! `generator.safetensors` (the network), embedded from `weights/` like the risk model.
//!
//! One file per part: `rules` (lexing, the rule an edit teaches, the rule index), `candidates`
//! (the rules applied to a hunk, with each candidate's features), `ranker` (the network) and
//! `format` (the two files: validation, loading, the embedded default). This file puts them
//! together as the [`Generator`](super::Generator) the pipeline sees.

mod candidates;
mod format;
mod ranker;
mod rules;

pub use candidates::{LineEdit, N_EDIT_FEATURES, Op, Proposal, enumerate};
pub use format::{CONFIG, EditConfig, EditLoadError, WEIGHTS};
pub use ranker::{Ranker, features_tensor};
pub use rules::{BEFORE_WORD, Rule, RuleIndex, edit_rule, edit_rules, lex};

use crate::diff::Hunk;
use candle_core::Device;

/// A ranked candidate: its edits and the generator's probability that it is the fix.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub edits: Vec<LineEdit>,
    pub probability: f32,
}

pub struct EditModel {
    pub config: EditConfig,
    pub rules: RuleIndex,
    pub ranker: Ranker,
    origin: String,
}

impl EditModel {
    pub fn from_parts(config: EditConfig, ranker: Ranker, origin: &str) -> EditModel {
        EditModel {
            rules: RuleIndex::new(&config.rules),
            config,
            ranker,
            origin: origin.into(),
        }
    }
}

impl super::Generator for EditModel {
    fn describe(&self) -> String {
        format!(
            "edit rules ({} mined from {}) ranked by a {}-unit network, {}",
            self.config.rules.len(),
            self.config.trained_on,
            self.config.hidden,
            self.origin
        )
    }

    fn propose(&self, hunk: &Hunk, file: Option<&str>, max: usize) -> anyhow::Result<Vec<Candidate>> {
        let proposals = enumerate(hunk, &self.rules, file);
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        let scores = self
            .ranker
            .forward(&features_tensor(&proposals, &Device::Cpu)?)?
            .to_vec1::<f32>()?;
        let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f32 = scores.iter().map(|s| (s - top).exp()).sum();
        let mut ranked: Vec<Candidate> = proposals
            .into_iter()
            .zip(&scores)
            .map(|(p, s)| Candidate {
                edits: p.edits,
                probability: (s - top).exp() / z,
            })
            .collect();
        ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        ranked.truncate(max);
        Ok(ranked)
    }
}
