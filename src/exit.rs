//! Exit codes, in one place. A crash or any error is never 0, so it never reads as a pass.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success: no gate tripped (or `--fail-on never`) |
//! | 1 | the gate tripped: the verdict reached `--fail-on` (default: REJECT) |
//! | 2 | usage or runtime error (bad revision, unreadable model, I/O error, ...) |
//!
//! `score --jsonl` has no gate: there, 1 means that some input lines became error records
//! (written in their place; the stream went on).
//!
//! A broken pipe on stdout (e.g. `| head`) ends the process quietly with code 0 when
//! the report was cut short by the reader, since the reader chose to stop. Rust's own
//! panics exit with 101, which is also never 0.

pub const PASS: u8 = 0;
pub const GATE: u8 = 1;
pub const ERROR: u8 = 2;
