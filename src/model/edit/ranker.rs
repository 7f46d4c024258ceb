//! The ranker: a two-layer network over a candidate's features (ReLU hidden layer, one
//! score); a softmax over one hunk's candidates gives each its probability of being the fix.
//! It is trained in `train::edits`; it does not make candidates (see `candidates`).

use super::candidates::{N_EDIT_FEATURES, Proposal};
use candle_core::{Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

/// The ranker: features -> hidden (ReLU) -> score; probabilities are a softmax over a hunk's candidates.
pub struct Ranker {
    l1: Linear,
    l2: Linear,
}

impl Ranker {
    pub fn new(hidden: usize, vb: VarBuilder) -> candle_core::Result<Ranker> {
        Ok(Ranker {
            l1: linear(N_EDIT_FEATURES, hidden, vb.pp("l1"))?,
            l2: linear(hidden, 1, vb.pp("l2"))?,
        })
    }

    pub fn expected_tensors(hidden: usize) -> Vec<(String, Vec<usize>)> {
        vec![
            ("l1.bias".into(), vec![hidden]),
            ("l1.weight".into(), vec![hidden, N_EDIT_FEATURES]),
            ("l2.bias".into(), vec![1]),
            ("l2.weight".into(), vec![1, hidden]),
        ]
    }

    /// `features`: (n, N_EDIT_FEATURES) -> scores (n).
    pub fn forward(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.l2.forward(&self.l1.forward(features)?.relu()?)?.squeeze(1)
    }
}

pub fn features_tensor(proposals: &[Proposal], device: &Device) -> candle_core::Result<Tensor> {
    let flat: Vec<f32> = proposals.iter().flat_map(|p| p.features).collect();
    Tensor::from_vec(flat, (proposals.len(), N_EDIT_FEATURES), device)
}
