//! The repository's memory, beside the review: what its own history says about a change.
//! `calibration.rs` fits the repository's probability of a later fix; `facts.rs` turns the
//! fixes mined from its history into facts about the files a change touches; `similar.rs`
//! finds the lines a fix took out that a change adds back. All pure: the history is read,
//! scored, mined and cached by `commands/history.rs`.

pub mod calibration;
pub mod facts;
pub mod similar;
