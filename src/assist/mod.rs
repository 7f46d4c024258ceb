//! What a language model does for a review, beside the embedded risk model: it reads a hunk
//! (surprisal of the added lines, `read.rs`), comments on risky hunks, explains the change,
//! proposes replacement lines, writes the REJECT note, and fixes a reported issue.
//!
//! Every answer is model output: it is parsed strictly (`parse.rs`), refused when malformed
//! or when it reaches outside the hunk it was asked about, sanitised before any report, and it
//! never changes a verdict. Prompts (`prompt.rs`) present the diff as data inside a fence the
//! diff cannot close. All of it runs under a time budget (`Budget`); what was not reached is
//! said in the report. This module never loads a model (see `commands::model::open`) and never
//! writes a file.

pub mod read;
