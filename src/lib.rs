//! deepspark: a local, offline AI code reviewer for git.
//!
//! The pipeline, one module per stage (see ARCHITECTURE.md):
//! `git` (revision -> [`diff::FileDiff`]s) -> `skip` (what the model does not see) ->
//! `tokenize` (hunk -> token ids) -> `model` (ids -> risk) -> `review` (risks -> verdict)
//! -> `suggest` (risky hunks -> verified, re-scored rewrites) -> `render` (terminal, JSON,
//! SARIF, ...); `apply` writes suggestions (`--apply`, `--patch`). `mine` labels a
//! repository's own history (SZZ) for training; `train` fits and measures the models;
//! `commands` wires each subcommand; `exit` holds the exit codes; `chars` the character
//! classes several stages test for.

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
pub mod render;
pub mod review;
pub mod skip;
pub mod suggest;
pub mod syntax;
pub mod tokenize;
pub mod train;
