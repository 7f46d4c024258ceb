//! One integration test binary (linked once): end-to-end behaviour of the `deepspark`
//! command on temporary git repositories built by the tests themselves.

#[path = "cli/assist.rs"]
mod assist;
#[path = "cli/ci.rs"]
mod ci;
#[path = "cli/common.rs"]
mod common;
#[path = "cli/dismiss.rs"]
mod dismiss;
#[path = "cli/docs.rs"]
mod docs;
#[path = "cli/errors.rs"]
mod errors;
#[path = "cli/hook.rs"]
mod hook;
#[path = "cli/hostile.rs"]
mod hostile;
#[path = "cli/install.rs"]
mod install;
#[path = "cli/learn.rs"]
mod learn;
#[path = "cli/lm.rs"]
mod lm;
#[path = "cli/mine.rs"]
mod mine;
#[path = "cli/model.rs"]
mod model;
#[path = "cli/pairs.rs"]
mod pairs;
#[path = "cli/review.rs"]
mod review;
#[path = "cli/score.rs"]
mod score;
#[path = "cli/spark.rs"]
mod spark;
#[path = "cli/suggest.rs"]
mod suggest;
#[path = "cli/train.rs"]
mod train;
#[path = "cli/verdict.rs"]
mod verdict;
