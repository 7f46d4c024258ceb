//! deepspark: a local, offline AI code reviewer for git.
//!
//! The pipeline, one module per stage (see ARCHITECTURE.md):
//! `git` (revision -> [`diff::FileDiff`]s) -> `skip` -> `syntax` (file roles, hunk kinds and
//! functions, by tree-sitter grammars) ->
//! `tokenize` -> `model` (ids -> risk) -> `review` (risks -> verdict, with `reason`s) ->
//! `suggest` -> `render`; beside the review, `history` (the repository's own calibration and
//! the facts its fixes give). `mine` labels a history (SZZ); `train` fits and measures the
//! models; `commands` wires each subcommand; `apply` writes suggestions; `exit` the exit codes.

pub mod apply;
pub mod assist;
pub mod chars;
pub mod cli;
pub mod commands;
pub mod config;
pub mod diff;
pub mod exit;
pub mod git;
pub mod history;
pub mod hook;
pub mod lm;
pub mod mine;
pub mod model;
pub mod reason;
pub mod render;
pub mod review;
pub mod skip;
pub mod suggest;
pub mod syntax;
pub mod tokenize;
pub mod train;
