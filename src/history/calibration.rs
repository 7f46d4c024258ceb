//! The repository's own calibration of the change risk: a logistic refit of the model's
//! change logit on this repository's labelled commits (labels from `mine::label`, SZZ over
//! its history), with the embedded model's calibration as the prior, and the rate at which
//! its changes that touch no production code were later fixed. Pure: no git, no model.
//!
//! Production changes: logit P(later fixed) = a · logit(model risk) + b, fitted by
//! maximum a posteriori with a Gaussian prior centred on the identity (a = 1, b = 0, the
//! model's own calibration): with few labelled commits the fit stays near the model, with
//! many it follows the repository. Changes with no production code ("quiet" ones): a
//! Beta-smoothed rate around [`QUIET_PRIOR`].

use serde::{Deserialize, Serialize};

/// The risk of a change that touches no production code when the repository cannot say:
/// 3%, so such a change is LGTM by default (P(clean) 0.97).
pub const QUIET_PRIOR: f64 = 0.03;
/// The weight of [`QUIET_PRIOR`], in commits.
const QUIET_PRIOR_COMMITS: f64 = 30.0;
/// Prior precisions of the slope and the intercept: the slope is held nearer the model's
/// than the intercept, since the share of later-fixed commits differs most between
/// projects (6-44% on the shared data) while the ranking transfers.
const PRIOR_SLOPE: f64 = 20.0;
const PRIOR_INTERCEPT: f64 = 2.0;
/// The one-sided 95% point of the normal distribution.
const CREDIBLE_Z: f64 = 1.645;
/// Fewer labelled production commits, or fewer later-fixed ones, than these: no fit.
pub const MIN_LABELLED: usize = 100;
pub const MIN_BUGGY: usize = 5;

/// One labelled commit of the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The model's change risk over the commit's production hunks (meaningless when
    /// `production` is false).
    pub risk: f32,
    pub production: bool,
    /// A fix within a year changed lines it added, as far as is known now.
    pub buggy: bool,
    /// The chance that such a fix, had there been one, would have been seen by now: 1 for
    /// a commit a year old, less for a younger one (the history's fix delays tell how
    /// much). A young commit that looks clean is partly an unseen buggy one.
    pub seen: f64,
}

/// A fitted calibration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
    /// The risk of a change with no production code.
    pub quiet: f64,
    /// Labelled production commits and how many of them were later fixed.
    pub labelled: usize,
    pub buggy: usize,
    /// Labelled quiet commits and how many were later fixed.
    pub quiet_labelled: usize,
    pub quiet_buggy: usize,
    /// The fit's uncertainty: the posterior covariance of (a, b) (Laplace), as
    /// `[var a, cov ab, var b]`. A review is judged on the risk's upper credible bound.
    #[serde(default)]
    pub cov: [f64; 3],
}

/// Why the history could not support a fit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoFit {
    #[error("only {labelled} labelled commits change production code ({MIN_LABELLED} needed)")]
    TooFew { labelled: usize },
    #[error("only {buggy} of its labelled commits were later fixed ({MIN_BUGGY} needed)")]
    TooFewFixed { buggy: usize },
}

impl Calibration {
    /// The embedded model's own calibration: what a review uses without a fit.
    pub const DEFAULT: Calibration = Calibration {
        a: 1.0,
        b: 0.0,
        quiet: QUIET_PRIOR,
        labelled: 0,
        buggy: 0,
        quiet_labelled: 0,
        quiet_buggy: 0,
        cov: [0.0; 3],
    };

    /// The calibrated risk of a change: `Some(model risk)` over its production hunks, or
    /// `None` when it has none.
    /// The fit's uncertainty counts against the change: this is the upper end of a one-sided
    /// 95% credible interval, so "95% confident" holds where the history is thin too (an
    /// extrapolation to risks few labelled commits had is not taken at face value).
    pub fn risk(&self, production_risk: Option<f32>) -> f64 {
        self.risk_range(production_risk).1
    }

    /// Both ends of the 90% credible interval of the risk (the lower end decides a REJECT:
    /// blocking needs confidence too); equal where there is no fit.
    pub fn risk_range(&self, production_risk: Option<f32>) -> (f64, f64) {
        match production_risk {
            Some(r) => {
                let x = logit(r as f64);
                let [vaa, vab, vbb] = self.cov;
                let sd = (x * x * vaa + 2.0 * x * vab + vbb).max(0.0).sqrt();
                let eta = self.a * x + self.b;
                (sigmoid(eta - CREDIBLE_Z * sd), sigmoid(eta + CREDIBLE_Z * sd))
            }
            None => (self.quiet, self.quiet),
        }
    }

    /// The share of the labelled commits that were later fixed.
    pub fn fixed_share(&self) -> f64 {
        let n = self.labelled + self.quiet_labelled;
        if n == 0 {
            return 0.0;
        }
        (self.buggy + self.quiet_buggy) as f64 / n as f64
    }
}

/// Fits the repository's calibration on its labelled commits.
pub fn fit(samples: &[Sample]) -> Result<Calibration, NoFit> {
    let prod: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.production)
        .map(|s| (logit(s.risk as f64), if s.buggy { 1.0 } else { 0.0 }))
        .collect();
    let buggy = prod.iter().filter(|(_, y)| *y > 0.5).count();
    if prod.len() < MIN_LABELLED {
        return Err(NoFit::TooFew { labelled: prod.len() });
    }
    if buggy < MIN_BUGGY {
        return Err(NoFit::TooFewFixed { buggy });
    }
    // EM over the unseen fixes: a young clean-looking commit counts as buggy with the
    // probability that it is, given the current fit and how much of a year it has had.
    let seen: Vec<f64> = samples
        .iter()
        .filter(|s| s.production)
        .map(|s| s.seen.clamp(1e-3, 1.0))
        .collect();
    let (mut a, mut b) = map_logistic(&prod);
    for _ in 0..30 {
        let soft: Vec<(f64, f64)> = prod
            .iter()
            .zip(&seen)
            .map(|(&(x, y), &s)| {
                (
                    x,
                    if y > 0.5 {
                        1.0
                    } else {
                        unseen_buggy(sigmoid(a * x + b), s)
                    },
                )
            })
            .collect();
        let (na, nb) = map_logistic(&soft);
        let moved = (na - a).abs() + (nb - b).abs();
        (a, b) = (na, nb);
        if moved < 1e-6 {
            break;
        }
    }
    let cov = posterior_cov(&prod, a, b);
    let quiet_labelled = samples.iter().filter(|s| !s.production).count();
    let quiet_buggy = samples.iter().filter(|s| !s.production && s.buggy).count();
    let mut quiet = QUIET_PRIOR;
    for _ in 0..30 {
        let expected: f64 = samples
            .iter()
            .filter(|s| !s.production)
            .map(|s| {
                if s.buggy {
                    1.0
                } else {
                    unseen_buggy(quiet, s.seen.clamp(1e-3, 1.0))
                }
            })
            .sum();
        quiet = (expected + QUIET_PRIOR_COMMITS * QUIET_PRIOR) / (quiet_labelled as f64 + QUIET_PRIOR_COMMITS);
    }
    Ok(Calibration {
        a,
        b,
        quiet,
        labelled: prod.len(),
        buggy,
        quiet_labelled,
        quiet_buggy,
        cov,
    })
}

/// P(buggy | no fix seen yet) for a commit of prior risk `p` whose fix would have been
/// seen by now with probability `seen`.
fn unseen_buggy(p: f64, seen: f64) -> f64 {
    p * (1.0 - seen) / (1.0 - p * seen).max(1e-9)
}

/// Newton's method on the penalised log-likelihood of y ~ sigmoid(a x + b), the penalty
/// being the Gaussian prior around (1, 0). Concave, so a few steps converge.
fn map_logistic(data: &[(f64, f64)]) -> (f64, f64) {
    let (mut a, mut b) = (1.0f64, 0.0f64);
    for _ in 0..50 {
        let (mut ga, mut gb) = (-PRIOR_SLOPE * (a - 1.0), -PRIOR_INTERCEPT * b);
        let (mut haa, mut hab, mut hbb) = (PRIOR_SLOPE, 0.0, PRIOR_INTERCEPT);
        for &(x, y) in data {
            let p = sigmoid(a * x + b);
            let w = p * (1.0 - p);
            ga += (y - p) * x;
            gb += y - p;
            haa += w * x * x;
            hab += w * x;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a += da;
        b += db;
        if da.abs() + db.abs() < 1e-9 {
            break;
        }
    }
    (a, b)
}

/// The inverse of the penalised log-likelihood's Hessian at (a, b): the Laplace
/// approximation of the posterior covariance, `[var a, cov ab, var b]`.
fn posterior_cov(data: &[(f64, f64)], a: f64, b: f64) -> [f64; 3] {
    let (mut haa, mut hab, mut hbb) = (PRIOR_SLOPE, 0.0, PRIOR_INTERCEPT);
    for &(x, _) in data {
        let p = sigmoid(a * x + b);
        let w = p * (1.0 - p);
        haa += w * x * x;
        hab += w * x;
        hbb += w;
    }
    let det = haa * hbb - hab * hab;
    if det.abs() < 1e-12 {
        return [0.0; 3];
    }
    [hbb / det, -hab / det, haa / det]
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The logit of a risk, clamped away from 0 and 1 so that a saturated score stays finite.
fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits whose true risk is sigmoid(2 x - 3) for model logits x spread over [-4, 2].
    fn history(n: usize) -> Vec<Sample> {
        let mut rng = crate::train::rng::Rng::new(7);
        (0..n)
            .map(|i| {
                let x = -4.0 + 6.0 * (i as f64 / n as f64);
                let truth = sigmoid(2.0 * x - 3.0);
                Sample {
                    risk: sigmoid(x) as f32,
                    production: true,
                    buggy: (rng.uniform() as f64) < truth,
                    seen: 1.0,
                }
            })
            .collect()
    }

    #[test]
    fn a_large_history_is_followed_and_a_small_one_stays_near_the_model() {
        let big = fit(&history(4000)).unwrap();
        assert!((big.a - 2.0).abs() < 0.3 && (big.b + 3.0).abs() < 0.5, "{big:?}");
        let small = fit(&history(120)).unwrap();
        assert!(
            (small.a - 1.0).abs() < (big.a - 1.0).abs(),
            "the prior holds a small history nearer the identity: {small:?} vs {big:?}"
        );
        assert!(
            big.risk(Some(0.5)) < 0.5,
            "at model logit 0 the repository says sigmoid(-3)"
        );
        // The credible bound is above the point estimate, more so where the history is thin.
        let point = |c: &Calibration, r: f64| sigmoid(c.a * logit(r) + c.b);
        assert!(big.risk(Some(0.5)) > point(&big, 0.5));
        let margin = |c: &Calibration| c.risk(Some(0.5)) - point(c, 0.5);
        assert!(margin(&small) > margin(&big), "{} vs {}", margin(&small), margin(&big));
    }

    #[test]
    fn young_commits_whose_fixes_may_be_unseen_do_not_lower_the_risk() {
        // The same history, but half of it so young that only half its fixes were seen.
        let full = fit(&history(4000)).unwrap();
        let mut rng = crate::train::rng::Rng::new(9);
        let censored: Vec<Sample> = history(4000)
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let seen = if i % 2 == 0 { 1.0 } else { 0.5 };
                Sample {
                    buggy: s.buggy && (rng.uniform() as f64) < seen,
                    seen,
                    ..s
                }
            })
            .collect();
        let naive: Vec<Sample> = censored.iter().map(|s| Sample { seen: 1.0, ..*s }).collect();
        let corrected = fit(&censored).unwrap();
        let naive = fit(&naive).unwrap();
        let at = Some(0.8f32);
        assert!(
            naive.risk(at) < full.risk(at) * 0.9,
            "ignoring the censoring lowers the risk"
        );
        assert!(
            (corrected.risk(at) - full.risk(at)).abs() < (naive.risk(at) - full.risk(at)).abs() / 2.0,
            "{} vs full {} (naive {})",
            corrected.risk(at),
            full.risk(at),
            naive.risk(at)
        );
    }

    #[test]
    fn too_little_history_gives_no_fit_and_quiet_changes_have_their_own_rate() {
        assert_eq!(fit(&history(50)), Err(NoFit::TooFew { labelled: 50 }));
        let clean: Vec<Sample> = (0..200)
            .map(|i| Sample {
                risk: 0.3,
                production: true,
                buggy: i < 2,
                seen: 1.0,
            })
            .collect();
        assert_eq!(fit(&clean), Err(NoFit::TooFewFixed { buggy: 2 }));
        let mut h = history(1000);
        h.extend((0..300).map(|_| Sample {
            risk: 0.0,
            production: false,
            buggy: false,
            seen: 1.0,
        }));
        let c = fit(&h).unwrap();
        assert_eq!((c.quiet_labelled, c.quiet_buggy), (300, 0));
        assert!(c.quiet < QUIET_PRIOR / 5.0 && c.risk(None) == c.quiet, "{c:?}");
        assert_eq!(Calibration::DEFAULT.risk(None), QUIET_PRIOR);
        assert!((Calibration::DEFAULT.risk(Some(0.2)) - 0.2).abs() < 1e-6);
    }
}
