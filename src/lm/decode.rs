//! Choosing tokens from logits and deciding when to stop: greedy and seeded top-p sampling,
//! log-softmax, and the stop conditions of a generation (end tokens, stop strings, budget).
//!
//! Pure functions over logit vectors, so they are tested without a model; the loop that
//! feeds the network lives in `model/language_model.rs`. Randomness comes from deepspark's seeded
//! generator (`train::rng`), never from the system, so a seed fixes the text.

use super::Sampling;
use crate::train::rng::Rng;

/// Natural-log probabilities of `logits`, computed in f64 so that large logits do not overflow.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let log_sum = log_sum_exp(logits);
    logits.iter().map(|&l| (l as f64 - log_sum) as f32).collect()
}

/// `log_softmax(logits)[id]`, without the other entries.
pub fn log_prob(logits: &[f32], id: usize) -> f32 {
    (logits[id] as f64 - log_sum_exp(logits)) as f32
}

fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln()
}

/// The index of the largest logit; the first among equals; NaN is never chosen.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Chooses tokens as [`Sampling`] says.
pub struct Sampler {
    sampling: Sampling,
    rng: Rng,
}

impl Sampler {
    pub fn new(sampling: Sampling) -> Sampler {
        let seed = match sampling {
            Sampling::Greedy => 0,
            Sampling::Random { seed, .. } => seed,
        };
        Sampler {
            sampling,
            rng: Rng::new(seed),
        }
    }

    pub fn next(&mut self, logits: &[f32]) -> u32 {
        match self.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Random { temperature, top_p, .. } => {
                if temperature <= 0.0 || !temperature.is_finite() {
                    return argmax(logits);
                }
                let scaled: Vec<f32> = logits.iter().map(|l| l / temperature).collect();
                let probs: Vec<f64> = log_softmax(&scaled).iter().map(|&l| (l as f64).exp()).collect();
                let mut order: Vec<usize> = (0..probs.len()).filter(|&i| probs[i] > 0.0).collect();
                order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
                // The smallest set of most probable tokens whose mass reaches top_p.
                let top_p = f64::from(top_p.clamp(0.0, 1.0));
                let mut kept = 0;
                let mut mass = 0.0;
                for &i in &order {
                    kept += 1;
                    mass += probs[i];
                    if mass >= top_p {
                        break;
                    }
                }
                let order = &order[..kept.max(1).min(order.len())];
                if order.is_empty() {
                    return argmax(logits);
                }
                let total: f64 = order.iter().map(|&i| probs[i]).sum();
                let mut draw = f64::from(self.rng.uniform()) * total;
                for &i in order {
                    draw -= probs[i];
                    if draw < 0.0 {
                        return i as u32;
                    }
                }
                order[order.len() - 1] as u32
            }
        }
    }
}

/// Where in `text` the first of `stops` begins, and which one.
pub fn find_stop<'a>(text: &str, stops: &'a [String]) -> Option<(usize, &'a str)> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.as_str())))
        .min_by_key(|&(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn log_softmax_sums_to_one() {
        let lp = log_softmax(&[1.0, 2.0, 3.0, 1000.0]);
        assert_eq!(log_prob(&[1.0, 2.0, 3.0, 1000.0], 1), lp[1]);
        let total: f64 = lp.iter().map(|&l| (l as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        assert!(lp[3] > -1e-6 && lp[0] < -990.0);
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
    }

    #[test]
    fn same_seed_same_tokens_other_seed_other_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let draw = |seed| {
            let mut s = Sampler::new(Sampling::Random {
                temperature: 1.0,
                top_p: 1.0,
                seed,
            });
            (0..40).map(|_| s.next(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn a_small_top_p_keeps_only_the_most_probable() {
        let mut s = Sampler::new(Sampling::Random {
            temperature: 1.0,
            top_p: 0.5,
            seed: 1,
        });
        // Token 2 holds about 84% of the mass, so it alone reaches top_p.
        for _ in 0..100 {
            assert_eq!(s.next(&[0.0, 1.0, 3.0, 0.5]), 2);
        }
    }

    #[test]
    fn the_first_stop_string_wins() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(find_stop("a\n\nb END", &stops), Some((1, "\n\n")));
        assert_eq!(find_stop("abc", &stops), None);
    }

    proptest! {
        #[test]
        fn sampling_stays_in_the_vocabulary(logits in proptest::collection::vec(-50f32..50.0, 1..64),
                                            temperature in 0f32..3.0, top_p in 0f32..1.0, seed: u64) {
            let mut s = Sampler::new(Sampling::Random { temperature, top_p, seed });
            let id = s.next(&logits);
            prop_assert!((id as usize) < logits.len());
        }
    }
}
